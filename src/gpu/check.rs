//! Does the GPU compute what the CPU computes? Op by op and network by network, from the same
//! weights and inputs: forward outputs, every gradient and the batch-norm running statistics,
//! then a few SGD steps side by side. Also the GPU training benchmark.

use anyhow::{bail, Result};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use sparsenet_net::zoo::NetSpec;
use sparsenet_net::Shape;

use super::kit::addr;
use super::{GAct, GParam, GStats, GpuCtx, GpuTrainer, Grads, Kit};
use crate::backend::Backend;
use crate::backend::ConvCfg;
use crate::model::Model;
use crate::ops::norm::BnStats;
use crate::ops::{read, Act, Ctx, Param};
use crate::optim::{self, Config as OptConfig, Kind as OptKind, State};

/// One compared quantity.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// What was compared, e.g. `conv 3×3 s1 p1: grad w`.
    pub what: String,
    /// Largest absolute difference divided by the largest magnitude of either side.
    pub err: f64,
    /// The tolerance it must meet.
    pub tol: f64,
    /// For training quantities: the same difference between two CPU runs whose inputs differ
    /// by one part in a million (how much rounding alone moves it).
    pub floor: Option<f64>,
}

impl Comparison {
    /// Whether it meets its tolerance (NaN never does).
    pub fn ok(&self) -> bool {
        self.err <= self.tol
    }
}

/// `max |a − b| / max(|a|, |b|)` over the two vectors (0 for two zero vectors; infinite when
/// the lengths differ or a value is not finite).
pub fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = a
        .iter()
        .chain(b)
        .fold(0f64, |m, &v| m.max((v as f64).abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    if scale == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// One op under test, with its input shapes and parameter sizes.
#[derive(Clone, Debug)]
enum Case {
    Conv(ConvCfg, [usize; 4]),
    BatchNorm {
        dims: [usize; 4],
        relu: bool,
        train: bool,
    },
    Relu([usize; 4]),
    Concat(Vec<[usize; 4]>),
    Sum([usize; 4], usize),
    Shortcut([usize; 4], usize, usize),
    AvgPool([usize; 4], usize, usize),
    MaxPool([usize; 4], usize, usize, usize),
    GlobalAvg([usize; 4]),
    Linear([usize; 4], usize),
}

impl Case {
    fn label(&self) -> String {
        match self {
            Case::Conv(c, d) => format!(
                "conv {k}×{k} s{} p{} {}→{} on {}×{}",
                c.stride,
                c.padding,
                c.in_ch,
                c.out_ch,
                d[2],
                d[3],
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
            Case::Shortcut(_, s, o) => format!("shortcut A s{s} → {o}"),
            Case::AvgPool(_, k, s) => format!("avg pool {k}/{s}"),
            Case::MaxPool(_, k, s, p) => format!("max pool {k}/{s} p{p}"),
            Case::GlobalAvg(_) => "global avg pool".into(),
            Case::Linear(_, o) => format!("linear → {o}"),
        }
    }
    fn inputs(&self) -> Vec<[usize; 4]> {
        match self {
            Case::Conv(_, d)
            | Case::BatchNorm { dims: d, .. }
            | Case::Relu(d)
            | Case::Shortcut(d, ..)
            | Case::AvgPool(d, ..)
            | Case::MaxPool(d, ..)
            | Case::GlobalAvg(d)
            | Case::Linear(d, _) => vec![*d],
            Case::Concat(v) => v.clone(),
            Case::Sum(d, k) => vec![*d; *k],
        }
    }
    fn params(&self) -> Vec<usize> {
        match self {
            Case::Conv(c, _) => vec![c.out_ch * c.in_ch * c.kernel * c.kernel],
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
    fn apply<B: Backend>(
        &self,
        b: &mut B,
        xs: &[B::Act],
        p: &[B::Param],
        st: &mut Option<B::Stats>,
    ) -> Result<B::Act> {
        let refs: Vec<&B::Act> = xs.iter().collect();
        match self {
            Case::Conv(c, _) => b.conv2d(&xs[0], &p[0], *c, true),
            Case::BatchNorm { relu, .. } => {
                b.batch_norm(&xs[0], &p[0], &p[1], st.as_mut().expect("stats"), *relu)
            }
            Case::Relu(_) => b.relu(&xs[0]),
            Case::Concat(_) => b.concat(&refs),
            Case::Sum(..) => b.sum(&refs),
            Case::Shortcut(_, s, o) => b.shortcut_a(&xs[0], *s, *o),
            Case::AvgPool(_, k, s) => b.avg_pool(&xs[0], *k, *s),
            Case::MaxPool(_, k, s, p) => b.max_pool(&xs[0], *k, *s, *p),
            Case::GlobalAvg(_) => b.global_avg_pool(&xs[0]),
            Case::Linear(_, o) => b.linear(&xs[0], &p[0], &p[1], *o),
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
            },
            [3, in_ch, hw, hw],
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
        Case::Shortcut([2, 4, 8, 8], 2, 8),
        Case::AvgPool([2, 3, 8, 8], 2, 2),
        Case::MaxPool([2, 3, 9, 9], 3, 2, 1),
        Case::GlobalAvg([3, 4, 7, 7]),
        Case::Linear([3, 6, 1, 1], 5),
    ]
}

/// What one side of an op check produced.
struct OpResult {
    out: Vec<f32>,
    input_grads: Vec<Vec<f32>>,
    param_grads: Vec<Vec<f32>>,
    stats: Option<(Vec<f32>, Vec<f32>)>,
}

/// The CPU side; the loss is `Σ out·weights` with random weights, returned for the GPU side.
fn cpu_op(
    case: &Case,
    xs: &[Vec<f32>],
    ps: &[Vec<f32>],
    rng: &mut ChaCha8Rng,
) -> Result<(OpResult, Vec<f32>)> {
    let dev = Cpu::default();
    let acts: Vec<Act<f32>> = case
        .inputs()
        .iter()
        .zip(xs)
        .map(|(d, v)| dev.tensor_from_vec(v.clone(), (d[0], d[1], d[2], d[3])))
        .collect();
    let params: Vec<Param<f32>> = ps
        .iter()
        .map(|v| dev.tensor_from_vec(v.clone(), (v.len(),)))
        .collect();
    let mut stats = match case {
        Case::BatchNorm { dims, .. } => Some(bn_stats_for(dims[1])),
        _ => None,
    };
    let mut ctx = Ctx::<f32>::new(&dev, case.train(), true);
    let out = case.apply(&mut ctx, &acts, &params, &mut stats)?;
    let outv = read(&out);
    let weights = random(outv.len(), rng);
    let w = dev.tensor_from_vec(weights.clone(), *out.shape());
    let loss = (out.put_tape(ctx.take_tape()) * w).sum::<Rank0, _>();
    let grads = loss.backward();
    let r = OpResult {
        out: outv,
        input_grads: acts.iter().map(|a| grads.get(a).as_vec()).collect(),
        param_grads: params.iter().map(|p| grads.get(p).as_vec()).collect(),
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
    let mut ctx = GpuCtx::new(kit, addr(&pbuf), case.train(), true);
    let mut acts = Vec::new();
    for (d, v) in case.inputs().iter().zip(xs) {
        let buf = kit.upload(v)?;
        acts.push(ctx.new_act(buf, *d));
    }
    let out: GAct = case.apply(&mut ctx, &acts, &handles, &mut stats)?;
    let outv = kit.download(&out.buf)?;
    let gbuf = kit.zeros(flat.len())?;
    let mut g = Grads {
        acts: HashMap::from([(out.id, kit.upload(weights)?)]),
        params: addr(&gbuf),
    };
    ctx.run_backward(&mut g)?;
    let mut input_grads = Vec::new();
    for a in &acts {
        input_grads.push(match g.acts.get(&a.id) {
            Some(b) => kit.download(b)?,
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

/// What a few training steps produced, on either device.
struct Trajectory {
    /// Logits of a forward pass (training mode) from the initial weights.
    logits: Vec<f32>,
    /// Every parameter's gradient in the first step.
    grads: Vec<Vec<f32>>,
    /// Running means and variances after the first step (all batch norms, concatenated).
    stats: (Vec<f32>, Vec<f32>),
    /// The loss of every step.
    losses: Vec<f32>,
    /// All parameters after the last update.
    params: Vec<f32>,
}

fn sgd() -> OptConfig {
    OptConfig {
        kind: OptKind::Sgd,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    }
}

/// Learning rate of the side-by-side steps.
const CHECK_LR: f32 = 0.05;

fn all_stats(m: &Model<f32>) -> (Vec<f32>, Vec<f32>) {
    let (mut mean, mut var) = (Vec::new(), Vec::new());
    for s in m.bn.iter().flatten() {
        mean.extend_from_slice(&s.mean);
        var.extend_from_slice(&s.var);
    }
    (mean, var)
}

fn cpu_trajectory(
    spec: &NetSpec,
    input: Shape,
    batches: &[(Vec<f32>, Vec<u8>)],
) -> Result<Trajectory> {
    let dev = Cpu::default();
    let opt = sgd();
    let n = batches[0].1.len();
    let logits = Model::<f32>::new(spec, input, 3)?.logits(&dev, batches[0].0.clone(), n, true)?;
    let mut m = Model::<f32>::new(spec, input, 3)?;
    let sizes: Vec<usize> = m.values.iter().map(|v| v.len()).collect();
    let mut st = State::new(&opt, &sizes);
    let (mut grads0, mut stats, mut losses) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
    for (i, (x, y)) in batches.iter().enumerate() {
        let (l, _, g) = m.step(&dev, x.clone(), y, true)?;
        losses.push(l as f32);
        if i == 0 {
            stats = all_stats(&m);
            grads0 = g.clone();
        }
        optim::update(&opt, &mut st, CHECK_LR, &mut m.values, &g);
    }
    Ok(Trajectory {
        logits,
        grads: grads0,
        stats,
        losses,
        params: m.values.concat(),
    })
}

fn gpu_trajectory(
    kit: &Rc<Kit>,
    spec: &NetSpec,
    input: Shape,
    batches: &[(Vec<f32>, Vec<u8>)],
) -> Result<Trajectory> {
    let opt = sgd();
    let host = Model::<f32>::new(spec, input, 3)?;
    let (x0, y0) = &batches[0];
    let logits = GpuTrainer::new(kit.clone(), &host, &opt, &State::new(&opt, &[]))?
        .logits(&host, x0, y0, true)?;
    let mut copy = Model::<f32>::new(spec, input, 3)?;
    let mut st = State::new(&opt, &[]);
    let mut gpu = GpuTrainer::new(kit.clone(), &host, &opt, &st)?;
    let (mut grads0, mut stats, mut losses) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
    for (i, (x, y)) in batches.iter().enumerate() {
        let r = gpu.step(&host, x, y, true)?;
        losses.push(r.loss as f32);
        if i == 0 {
            grads0 = gpu.gradients()?;
            gpu.download(&mut copy, &mut st)?;
            stats = all_stats(&copy);
        }
        gpu.update(&opt, CHECK_LR)?;
    }
    gpu.download(&mut copy, &mut st)?;
    Ok(Trajectory {
        logits,
        grads: grads0,
        stats,
        losses,
        params: copy.values.concat(),
    })
}

/// A whole network, CPU against GPU from the same initialisation and batches: logits
/// (training mode), every parameter gradient and the running statistics of the first step, the
/// losses of `steps` SGD steps and the parameters after them.
///
/// Training amplifies rounding differences (ReLU masks flip, near-constant channels divide by
/// a tiny deviation), so beside each GPU–CPU difference stands a floor: the same difference
/// between two CPU runs whose inputs differ by one part in a million. A quantity passes when
/// it is within `tol` (scaled per quantity) or within 10× its floor.
pub fn network_check(
    kit: &Rc<Kit>,
    name: &str,
    spec: &NetSpec,
    input: Shape,
    batch: usize,
    steps: usize,
    tol: f64,
) -> Result<Vec<Comparison>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let classes = spec.classes;
    let per = input.c * input.h * input.w;
    let batches: Vec<(Vec<f32>, Vec<u8>)> = (0..steps.max(1))
        .map(|_| {
            let x = random(batch * per, &mut rng);
            let y = (0..batch)
                .map(|_| rng.gen_range(0..classes) as u8)
                .collect();
            (x, y)
        })
        .collect();
    let nudged: Vec<(Vec<f32>, Vec<u8>)> = batches
        .iter()
        .map(|(x, y)| {
            let x = x
                .iter()
                .map(|v| v * (1.0 + 1e-6 * rng.gen_range(-1.0f32..1.0)))
                .collect();
            (x, y.clone())
        })
        .collect();
    let cpu = cpu_trajectory(spec, input, &batches)?;
    let twin = cpu_trajectory(spec, input, &nudged)?;
    let gpu = gpu_trajectory(kit, spec, input, &batches)?;
    let mut out = Vec::new();
    let mut cmp = |what: String, pick: &dyn Fn(&Trajectory) -> Vec<f32>, t: f64| {
        let (c, w, g) = (pick(&cpu), pick(&twin), pick(&gpu));
        let floor = rel_diff(&c, &w);
        out.push(Comparison {
            what: format!("{name}: {what}"),
            err: rel_diff(&c, &g),
            tol: t.max(10.0 * floor),
            floor: Some(floor),
        });
    };
    cmp("logits".into(), &|t| t.logits.clone(), tol);
    cmp(
        "gradients (all parameters)".into(),
        &|t| t.grads.concat(),
        10.0 * tol,
    );
    cmp(
        "running means after one step".into(),
        &|t| t.stats.0.clone(),
        10.0 * tol,
    );
    cmp(
        "running variances after one step".into(),
        &|t| t.stats.1.clone(),
        10.0 * tol,
    );
    let k = batches.len();
    cmp(
        format!("losses of {k} SGD steps"),
        &|t| t.losses.clone(),
        10.0 * tol,
    );
    cmp(
        format!("parameters after {k} SGD steps"),
        &|t| t.params.clone(),
        10.0 * tol,
    );
    // The parameter tensor whose gradient differs most, against its own floor.
    let names: Vec<String> = Model::<f32>::new(spec, input, 3)?
        .params
        .into_iter()
        .map(|p| p.name)
        .collect();
    let worst = (0..names.len())
        .map(|i| (rel_diff(&cpu.grads[i], &gpu.grads[i]), i))
        .fold((0.0, 0), |m, e| if e.0 > m.0 { e } else { m })
        .1;
    cmp(
        format!("worst single gradient ({})", names[worst]),
        &|t| t.grads[worst].clone(),
        100.0 * tol,
    );
    Ok(out)
}

/// Training throughput on the GPU.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bench {
    /// Model name.
    pub model: String,
    /// Images per step.
    pub batch: usize,
    /// Median seconds of a full step (upload, forward, loss, backward, SGD update).
    pub median_step_s: f64,
    /// `batch / median_step_s`.
    pub images_per_sec: f64,
    /// Peak device memory of the pool (bytes), when reported.
    pub peak_bytes: Option<u64>,
    /// Whether TF32 tensor-core products were allowed.
    pub tf32: bool,
}

/// Median step time over `steps` steps after `warmup` untimed ones, on one random batch held on the
/// host (so each step uploads it, as training does).
pub fn bench(
    kit: &Rc<Kit>,
    name: &str,
    spec: &NetSpec,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<Bench> {
    let input = spec.input_shape();
    kit.sync()?;
    kit.reset_peak();
    let model = Model::<f32>::new(spec, input, 0)?;
    let opt = OptConfig {
        kind: OptKind::Sgd,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    };
    let sizes: Vec<usize> = model.values.iter().map(|v| v.len()).collect();
    let mut gpu = GpuTrainer::new(kit.clone(), &model, &opt, &State::new(&opt, &sizes))?;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random(batch * input.c * input.h * input.w, &mut rng);
    let y: Vec<u8> = (0..batch)
        .map(|_| rng.gen_range(0..spec.classes) as u8)
        .collect();
    let mut times = Vec::new();
    for i in 0..steps + warmup {
        let t = Instant::now();
        let r = gpu.step(&model, &x, &y, true)?;
        gpu.update(&opt, 0.1)?;
        kit.sync()?;
        if !r.loss.is_finite() {
            bail!("{name}: the loss became {} in the benchmark", r.loss);
        }
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    Ok(Bench {
        model: name.to_string(),
        batch,
        median_step_s: med,
        images_per_sec: batch as f64 / med,
        peak_bytes: gpu.peak_memory(),
        tf32: kit.tf32,
    })
}

/// Whether an error is the device running out of memory (from the allocator or cuBLAS).
pub fn is_out_of_memory(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("OUT_OF_MEMORY") || s.contains("ALLOC_FAILED")
}

/// The largest power-of-two batch (from `start`, at most `cap`) whose training step runs
/// without running out of device memory.
pub fn largest_batch(kit: &Rc<Kit>, spec: &NetSpec, start: usize, cap: usize) -> Result<usize> {
    let mut ok = 0;
    let mut b = start;
    while b <= cap {
        match bench(kit, "probe", spec, b, 1, 1) {
            Ok(_) => ok = b,
            Err(e) if is_out_of_memory(&e) => break,
            Err(e) => return Err(e),
        }
        b *= 2;
    }
    kit.trim()?;
    if ok == 0 {
        bail!("even a batch of {start} does not fit");
    }
    Ok(ok)
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
            for (g, x) in r.input_grads.iter().zip(&xs) {
                assert_eq!(g.len(), x.len(), "{}", case.label());
                assert!(
                    g.iter().any(|v| *v != 0.0),
                    "{}: zero input gradient",
                    case.label()
                );
            }
            for (g, p) in r.param_grads.iter().zip(&ps) {
                assert_eq!(g.len(), p.len(), "{}", case.label());
            }
        }
    }

    #[test]
    fn relative_difference() {
        assert_eq!(rel_diff(&[1.0, -2.0], &[1.0, -2.0]), 0.0);
        assert!((rel_diff(&[1.0, -2.0], &[1.0, -1.0]) - 0.5).abs() < 1e-12);
        assert_eq!(rel_diff(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(rel_diff(&[f32::NAN], &[1.0]), f64::INFINITY);
        assert_eq!(rel_diff(&[0.0], &[0.0]), 0.0);
    }
}
