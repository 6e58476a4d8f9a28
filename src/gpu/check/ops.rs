//! Op by op: every op's output, input and parameter gradients and running statistics on the
//! CPU and the GPU from the same inputs.

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sparsenet_net::Op;

use crate::autodiff::op_gradients;
use crate::backend::BnStats;
use crate::backend::ConvCfg;
use crate::cpu::{read, Act, CpuBackend, Param};
use crate::gpu::kit::addr;
use crate::gpu::{GParam, GStats, GpuCtx, Kit};

use super::{random, rel_diff, Comparison};

/// One op under test, with its input shapes and parameter sizes.
#[derive(Clone, Debug)]
enum Case {
    /// A convolution, with a bias when the flag says so.
    Conv(ConvCfg, [usize; 4], bool),
    BatchNorm {
        dims: [usize; 4],
        relu: bool,
        train: bool,
    },
    Relu([usize; 4]),
    Concat(Vec<[usize; 4]>),
    Sum([usize; 4], usize),
    /// An element-wise maximum of this many inputs.
    Max([usize; 4], usize),
    Shortcut([usize; 4], usize, usize),
    AvgPool([usize; 4], usize, usize),
    MaxPool([usize; 4], usize, usize, usize),
    GlobalAvg([usize; 4]),
    Linear([usize; 4], usize),
    /// Dropout of the given probability (in training: both sides draw the mask by one rule).
    Dropout([usize; 4], f64),
    /// A mean join of this many inputs with this drop-path probability.
    MeanJoin([usize; 4], usize, f64),
}

impl Case {
    fn label(&self) -> String {
        match self {
            Case::Conv(c, d, bias) => format!(
                "conv {k}×{k} s{} p{} {}→{}{} on {}×{}{}",
                c.stride,
                c.padding,
                c.in_ch,
                c.out_ch,
                if c.groups > 1 {
                    format!(" in {} groups", c.groups)
                } else {
                    String::new()
                },
                d[2],
                d[3],
                if *bias { " + bias" } else { "" },
                k = c.kernel
            ),
            Case::BatchNorm { relu, train, .. } => format!(
                "batch norm{} ({})",
                if *relu { " + relu" } else { "" },
                if *train { "training" } else { "evaluation" }
            ),
            Case::Relu(_) => "relu".into(),
            Case::Concat(v) => format!("concat of {}", v.len()),
            Case::Sum(_, k) => format!("sum of {k}"),
            Case::Max(_, k) => format!("max of {k}"),
            Case::Shortcut(_, s, o) => format!("shortcut A s{s} → {o}"),
            Case::AvgPool(_, k, s) => format!("avg pool {k}/{s}"),
            Case::MaxPool(_, k, s, p) => format!("max pool {k}/{s} p{p}"),
            Case::GlobalAvg(_) => "global avg pool".into(),
            Case::Linear(_, o) => format!("linear → {o}"),
            Case::Dropout(_, p) => format!("dropout p = {p}"),
            Case::MeanJoin(_, k, p) => format!("mean join of {k}, drop-path {p}"),
        }
    }
    fn inputs(&self) -> Vec<[usize; 4]> {
        match self {
            Case::Conv(_, d, _)
            | Case::BatchNorm { dims: d, .. }
            | Case::Relu(d)
            | Case::Shortcut(d, ..)
            | Case::AvgPool(d, ..)
            | Case::MaxPool(d, ..)
            | Case::GlobalAvg(d)
            | Case::Linear(d, _)
            | Case::Dropout(d, _) => vec![*d],
            Case::Concat(v) => v.clone(),
            Case::Sum(d, k) | Case::Max(d, k) | Case::MeanJoin(d, k, _) => vec![*d; *k],
        }
    }
    fn params(&self) -> Vec<usize> {
        match self {
            Case::Conv(c, _, bias) => {
                let w = c.weight_len();
                if *bias {
                    vec![w, c.out_ch]
                } else {
                    vec![w]
                }
            }
            Case::BatchNorm { dims, .. } => vec![dims[1], dims[1]],
            Case::Linear(d, o) => vec![o * d[1] * d[2] * d[3], *o],
            _ => vec![],
        }
    }
    /// Random inputs and parameters of the case's sizes.
    fn random_data(&self, rng: &mut ChaCha8Rng) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let xs = self
            .inputs()
            .iter()
            .map(|d| random(d.iter().product(), rng))
            .collect();
        let ps = self.params().iter().map(|&n| random(n, rng)).collect();
        (xs, ps)
    }
    fn train(&self) -> bool {
        !matches!(self, Case::BatchNorm { train: false, .. })
    }
    /// The op of the network crate this case runs, and whether a ReLU is fused into it.
    fn op(&self) -> (Op, bool) {
        match self {
            Case::Conv(c, _, bias) => (
                Op::Conv {
                    in_ch: c.in_ch,
                    out_ch: c.out_ch,
                    kernel: c.kernel,
                    stride: c.stride,
                    padding: c.padding,
                    bias: *bias,
                    groups: c.groups,
                },
                false,
            ),
            Case::BatchNorm { dims, relu, .. } => (Op::BatchNorm { channels: dims[1] }, *relu),
            Case::Relu(_) => (Op::Relu, false),
            Case::Concat(_) => (Op::Concat, false),
            Case::Sum(..) => (Op::Sum, false),
            Case::Max(..) => (Op::Max, false),
            Case::Shortcut(_, stride, out_ch) => (
                Op::ShortcutA {
                    stride: *stride,
                    out_ch: *out_ch,
                },
                false,
            ),
            Case::AvgPool(_, kernel, stride) => (
                Op::AvgPool {
                    kernel: *kernel,
                    stride: *stride,
                },
                false,
            ),
            Case::MaxPool(_, kernel, stride, padding) => (
                Op::MaxPool {
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                },
                false,
            ),
            Case::GlobalAvg(_) => (Op::GlobalAvgPool, false),
            Case::Linear(d, o) => (
                Op::Linear {
                    in_features: d[1] * d[2] * d[3],
                    out_features: *o,
                },
                false,
            ),
            Case::MeanJoin(_, _, p) => (
                Op::MeanJoin {
                    drop_path: sparsenet_net::op::Prob::new(*p).expect("a probability"),
                },
                false,
            ),
            Case::Dropout(_, p) => (
                Op::Dropout {
                    p: sparsenet_net::op::Prob::new(*p).expect("a probability"),
                },
                false,
            ),
        }
    }
}

fn cases() -> Vec<Case> {
    let conv = |in_ch, out_ch, kernel, stride, padding, hw: usize| {
        Case::Conv(
            ConvCfg {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
                groups: 1,
            },
            [3, in_ch, hw, hw],
            false,
        )
    };
    vec![
        conv(5, 4, 3, 1, 1, 8),
        conv(6, 7, 1, 1, 0, 8),
        conv(4, 6, 3, 2, 1, 9),
        conv(3, 4, 7, 2, 3, 16),
        conv(6, 5, 1, 2, 0, 8),
        conv(3, 8, 3, 1, 1, 6),
        conv(7, 2, 3, 1, 0, 7),
        conv(9, 3, 5, 1, 2, 6),
        // LeNet's 5×5 layer with its bias (cuDNN, then the bias kernels), and a biased 3×3.
        Case::Conv(
            ConvCfg {
                in_ch: 4,
                out_ch: 6,
                kernel: 5,
                stride: 1,
                padding: 0,
                groups: 1,
            },
            [3, 4, 12, 12],
            true,
        ),
        Case::Conv(
            ConvCfg {
                in_ch: 5,
                out_ch: 3,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 1,
            },
            [2, 5, 7, 7],
            true,
        ),
        // DPN's grouped 3×3 (4 groups) and a strided grouped one.
        Case::Conv(
            ConvCfg {
                in_ch: 8,
                out_ch: 8,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 4,
            },
            [3, 8, 7, 7],
            false,
        ),
        Case::Conv(
            ConvCfg {
                in_ch: 6,
                out_ch: 4,
                kernel: 3,
                stride: 2,
                padding: 1,
                groups: 2,
            },
            [2, 6, 9, 9],
            false,
        ),
        Case::BatchNorm {
            dims: [4, 5, 6, 6],
            relu: false,
            train: true,
        },
        Case::BatchNorm {
            dims: [4, 5, 6, 6],
            relu: true,
            train: true,
        },
        Case::BatchNorm {
            dims: [4, 5, 6, 6],
            relu: true,
            train: false,
        },
        Case::Relu([2, 3, 5, 5]),
        Case::Concat(vec![[2, 3, 4, 4], [2, 1, 4, 4], [2, 5, 4, 4]]),
        Case::Sum([2, 4, 5, 5], 3),
        Case::Max([2, 4, 5, 5], 3),
        Case::Shortcut([2, 4, 8, 8], 2, 8),
        Case::AvgPool([2, 3, 8, 8], 2, 2),
        Case::MaxPool([2, 3, 9, 9], 3, 2, 1),
        Case::GlobalAvg([3, 4, 7, 7]),
        Case::Linear([3, 6, 1, 1], 5),
        // An odd size, so the grid-stride loop's tail runs too.
        Case::Dropout([3, 7, 5, 11], 0.4),
        Case::MeanJoin([2, 4, 5, 5], 3, 0.5),
    ]
}

/// What one side of an op check produced.
struct OpResult {
    out: Vec<f32>,
    input_grads: Vec<Vec<f32>>,
    param_grads: Vec<Vec<f32>>,
    stats: Option<(Vec<f32>, Vec<f32>)>,
}

/// The CPU side, through the trainer's tape; the loss is `Σ out·weights` with random weights,
/// returned for the GPU side.
fn cpu_op(
    case: &Case,
    xs: &[Vec<f32>],
    ps: &[Vec<f32>],
    rng: &mut ChaCha8Rng,
) -> Result<(OpResult, Vec<f32>)> {
    let mut ctx = CpuBackend::<f32>::new(case.train(), true);
    let acts: Vec<Act<f32>> = case
        .inputs()
        .iter()
        .zip(xs)
        .map(|(d, v)| ctx.act(v.clone(), *d))
        .collect();
    let inputs: Vec<(usize, &Act<f32>)> = acts.iter().enumerate().collect();
    let params: Vec<Param<f32>> = ps
        .iter()
        .enumerate()
        .map(|(i, v)| Param::new(i, v.clone()))
        .collect();
    let mut stats = match case {
        Case::BatchNorm { dims, .. } => Some(bn_stats_for(dims[1])),
        _ => None,
    };
    let (op, relu) = case.op();
    let mut weights = Vec::new();
    let (out, mut grads) = op_gradients(
        &mut ctx,
        &op,
        relu,
        &inputs,
        &params,
        stats.as_mut(),
        |_, y| {
            weights = random(read(y).len(), rng);
            Ok(weights.clone())
        },
    )?;
    let r = OpResult {
        out: read(&out),
        input_grads: (0..acts.len())
            .map(|k| grads[k].take().unwrap_or_else(|| vec![0.0; xs[k].len()]))
            .collect(),
        param_grads: ctx.take_param_grads(&params),
        stats: stats.map(|s| (s.mean, s.var)),
    };
    Ok((r, weights))
}

/// Non-trivial running statistics, so that evaluation mode is tested with something.
fn bn_stats_for(c: usize) -> BnStats<f32> {
    BnStats {
        mean: (0..c).map(|k| 0.1 * k as f32 - 0.2).collect(),
        var: (0..c).map(|k| 0.5 + 0.25 * k as f32).collect(),
    }
}

fn gpu_op(
    kit: &Kit,
    case: &Case,
    xs: &[Vec<f32>],
    ps: &[Vec<f32>],
    weights: &[f32],
) -> Result<OpResult> {
    let flat: Vec<f32> = ps.concat();
    let pbuf = kit.upload(if flat.is_empty() { &[0.0] } else { &flat })?;
    let mut handles = Vec::new();
    let mut off = 0;
    for p in ps {
        handles.push(GParam { off, len: p.len() });
        off += p.len();
    }
    let mut stats = match case {
        Case::BatchNorm { dims, .. } => {
            let s = bn_stats_for(dims[1]);
            Some(GStats {
                mean: kit.upload(&s.mean)?,
                var: kit.upload(&s.var)?,
            })
        }
        _ => None,
    };
    let gbuf = kit.zeros(flat.len().max(1))?;
    let mut ctx = GpuCtx::new(kit, addr(&pbuf), addr(&gbuf), case.train(), true);
    let mut acts = Vec::new();
    for (d, v) in case.inputs().iter().zip(xs) {
        let buf = kit.upload(v)?;
        acts.push(ctx.new_act(buf, *d));
    }
    let inputs: Vec<(usize, &crate::gpu::GAct)> = acts.iter().enumerate().collect();
    let (op, relu) = case.op();
    let (out, mut grads) = op_gradients(
        &mut ctx,
        &op,
        relu,
        &inputs,
        &handles,
        stats.as_mut(),
        |_, _| kit.upload(weights),
    )?;
    let outv = kit.download(&out.buf)?;
    let mut input_grads = Vec::new();
    for (k, a) in acts.iter().enumerate() {
        input_grads.push(match grads[k].take() {
            Some(b) => kit.download(&b)?,
            None => vec![0.0; a.len()],
        });
    }
    let gflat = kit.download(&gbuf)?;
    let param_grads = handles
        .iter()
        .map(|h| gflat[h.off..h.off + h.len].to_vec())
        .collect();
    let stats = match stats {
        Some(s) => Some((kit.download(&s.mean)?, kit.download(&s.var)?)),
        None => None,
    };
    Ok(OpResult {
        out: outv,
        input_grads,
        param_grads,
        stats,
    })
}

/// Every op on random data, CPU against GPU: output, input and parameter gradients, running
/// statistics. `tol` is the relative tolerance (f32 rounding in another order: 1e-4 is ample
/// without TF32).
pub fn op_checks(kit: &Kit, tol: f64) -> Result<Vec<Comparison>> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    for case in cases() {
        let (xs, ps) = case.random_data(&mut rng);
        let (cpu, weights) = cpu_op(&case, &xs, &ps, &mut rng)?;
        let gpu = gpu_op(kit, &case, &xs, &ps, &weights)?;
        let label = case.label();
        let mut cmp = |what: String, a: &[f32], b: &[f32]| {
            out.push(Comparison {
                what,
                err: rel_diff(a, b),
                tol,
                floor: None,
            })
        };
        cmp(format!("{label}: output"), &cpu.out, &gpu.out);
        for (i, (a, b)) in cpu.input_grads.iter().zip(&gpu.input_grads).enumerate() {
            cmp(format!("{label}: grad input {i}"), a, b);
        }
        for (i, (a, b)) in cpu.param_grads.iter().zip(&gpu.param_grads).enumerate() {
            cmp(format!("{label}: grad param {i}"), a, b);
        }
        if let (Some(a), Some(b)) = (&cpu.stats, &gpu.stats) {
            cmp(format!("{label}: running mean"), &a.0, &b.0);
            cmp(format!("{label}: running var"), &a.1, &b.1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU half of every op check runs (no GPU needed) and yields gradients of the right
    /// sizes, so a failing check on a GPU machine is about the GPU.
    #[test]
    fn cpu_side_of_every_op_case() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for case in cases() {
            let (xs, ps) = case.random_data(&mut rng);
            let (r, w) = cpu_op(&case, &xs, &ps, &mut rng).unwrap();
            assert_eq!(r.out.len(), w.len(), "{}", case.label());
            let live: Vec<&Vec<f32>> = r
                .input_grads
                .iter()
                .filter(|g| g.iter().any(|v| *v != 0.0))
                .collect();
            for (g, x) in r.input_grads.iter().zip(&xs) {
                assert_eq!(g.len(), x.len(), "{}", case.label());
            }
            if let Case::MeanJoin(..) = case {
                // Drop-path may drop inputs (their gradient is zero), never all of them, and
                // every survivor receives the same share of the output's gradient.
                assert!(!live.is_empty(), "{}: every input dropped", case.label());
                assert!(
                    live.iter().all(|g| *g == live[0]),
                    "{}: survivors' gradients differ",
                    case.label()
                );
            } else {
                assert_eq!(
                    live.len(),
                    xs.len(),
                    "{}: zero input gradient",
                    case.label()
                );
            }
            for (g, p) in r.param_grads.iter().zip(&ps) {
                assert_eq!(g.len(), p.len(), "{}", case.label());
            }
        }
    }
}
