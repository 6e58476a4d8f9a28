//! The trainer's reverse pass, written once for every backend.
//!
//! While the interpreter ([`crate::model::Model::walk`]) runs the network forward, [`Tape::apply`]
//! maps each node's [`Op`] to the backend's forward primitive and, when the backend records,
//! keeps one [`Entry`]: which activations the op read and wrote, and what its backward primitive
//! needs (the backend's `…Saved` state and parameter handles). [`Tape::backward`] then walks the
//! entries newest first: it takes the gradient of each entry's output (an op whose output
//! received no gradient is skipped), calls the op's backward primitive, and lets the backend
//! accumulate the input gradients into one slot per activation (several readers of one
//! activation add into the same slot, newest reader first). Parameter gradients go to the
//! backend's own store, addressed by the parameter handles.
//!
//! What differs between devices — how a convolution's filter gradient is computed, where a
//! buffer lives — is in the backends; the order of the pass, which gradients are kept and how
//! they are summed over readers are here only.

use anyhow::{bail, Result};
use sparsenet_net::Op;

use crate::backend::{Backend, ConvCfg};
use crate::profile;

/// The backward state of one recorded op.
enum Step<B: Backend> {
    Conv {
        cfg: ConvCfg,
        w: B::Param,
        saved: B::ConvSaved,
    },
    BatchNorm {
        gamma: B::Param,
        beta: B::Param,
        saved: B::NormSaved,
    },
    Relu(B::ReluSaved),
    Concat,
    Sum,
    ShortcutA {
        stride: usize,
        out_ch: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    MaxPool(B::MaxPoolSaved),
    GlobalAvgPool,
    Linear {
        w: B::Param,
        bias: B::Param,
        saved: B::LinearSaved,
    },
}

/// One recorded op: the activation it wrote, the ones it read (ids and dimensions), and its
/// backward state.
pub struct Entry<B: Backend> {
    kind: &'static str,
    out: usize,
    ins: Vec<(usize, [usize; 4])>,
    step: Step<B>,
}

/// The ops of one forward pass, in the order they ran. Activations are named by ids the caller
/// chooses (the interpreter uses node indices).
pub struct Tape<B: Backend> {
    entries: Vec<Entry<B>>,
    recording: bool,
}

/// The gradient slots of a reverse pass, indexed by activation id.
pub type GradSlots<B> = Vec<Option<<B as Backend>::Grad>>;

/// One input of an op: its activation id and value.
pub type Input<'a, B> = (usize, &'a <B as Backend>::Act);

impl<B: Backend> Tape<B> {
    /// An empty tape for backend `b`: it records exactly when `b` keeps backward state.
    pub fn for_backend(b: &B) -> Self {
        Tape {
            entries: Vec::new(),
            recording: b.records(),
        }
    }

    /// Number of recorded ops.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Run `op` on `xs` with `b`'s forward primitive (followed by a ReLU when `relu`, for a
    /// batch norm whose only reader is one), naming the output `out`; when recording, keep
    /// what the backward primitive needs. `p` holds the op's parameters in [`Op::params`]
    /// order and `stats` a batch norm's running statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        b: &mut B,
        op: &Op,
        relu: bool,
        out: usize,
        xs: &[Input<'_, B>],
        p: &[B::Param],
        stats: Option<&mut B::Stats>,
    ) -> Result<B::Act> {
        let want = match op {
            Op::Input => 0,
            Op::Concat | Op::Sum => xs.len().max(1),
            _ => 1,
        };
        if xs.len() != want || p.len() != op.params().len() {
            bail!(
                "{} takes {want} input(s) and {} parameter(s), given {} and {}",
                op.kind(),
                op.params().len(),
                xs.len(),
                p.len()
            );
        }
        let x = |k: usize| xs[k].1;
        let (y, step) = match *op {
            Op::Input => bail!("the input node is not an op"),
            Op::Conv { .. } => {
                let cfg = ConvCfg::of(op).expect("a convolution");
                let (y, saved) = b.conv2d(x(0), &p[0], cfg)?;
                let w = p[0].clone();
                (y, Step::Conv { cfg, w, saved })
            }
            Op::BatchNorm { .. } => {
                let Some(st) = stats else {
                    bail!("batch norm without running statistics")
                };
                let (y, saved) = b.batch_norm(x(0), &p[0], &p[1], st, relu)?;
                let (gamma, beta) = (p[0].clone(), p[1].clone());
                (y, Step::BatchNorm { gamma, beta, saved })
            }
            Op::Relu => {
                let (y, saved) = b.relu(x(0))?;
                (y, Step::Relu(saved))
            }
            Op::Concat => {
                let refs: Vec<&B::Act> = xs.iter().map(|x| x.1).collect();
                (b.concat(&refs)?, Step::Concat)
            }
            Op::Sum => {
                let refs: Vec<&B::Act> = xs.iter().map(|x| x.1).collect();
                (b.sum(&refs)?, Step::Sum)
            }
            Op::ShortcutA { stride, out_ch } => (
                b.shortcut_a(x(0), stride, out_ch)?,
                Step::ShortcutA { stride, out_ch },
            ),
            Op::AvgPool { kernel, stride } => (
                b.avg_pool(x(0), kernel, stride)?,
                Step::AvgPool { kernel, stride },
            ),
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                let (y, saved) = b.max_pool(x(0), kernel, stride, padding)?;
                (y, Step::MaxPool(saved))
            }
            Op::GlobalAvgPool => (b.global_avg_pool(x(0))?, Step::GlobalAvgPool),
            Op::Linear { out_features, .. } => {
                let (y, saved) = b.linear(x(0), &p[0], &p[1], out_features)?;
                let (w, bias) = (p[0].clone(), p[1].clone());
                (y, Step::Linear { w, bias, saved })
            }
        };
        if self.recording {
            self.entries.push(Entry {
                kind: op.kind(),
                out,
                ins: xs.iter().map(|&(id, a)| (id, b.dims(a))).collect(),
                step,
            });
        }
        Ok(y)
    }

    /// The reverse pass from `dy`, the gradient of activation `out`. `wanted(id)` says whether
    /// activation `id` needs a gradient (the network input does not); returns the gradient
    /// slots of every activation that still holds one afterwards (those no recorded op
    /// produced: the inputs), indexed by id. Parameter gradients are in the backend's store.
    pub fn backward(
        self,
        b: &mut B,
        out: usize,
        dy: B::Grad,
        wanted: impl Fn(usize) -> bool,
    ) -> Result<GradSlots<B>> {
        let ids = self
            .entries
            .iter()
            .flat_map(|e| std::iter::once(e.out).chain(e.ins.iter().map(|i| i.0)))
            .chain([out])
            .max()
            .map_or(0, |m| m + 1);
        let mut grads: Vec<Option<B::Grad>> = (0..ids).map(|_| None).collect();
        grads[out] = Some(dy);
        let profiling = profile::enabled();
        for e in self.entries.into_iter().rev() {
            let Some(dy) = grads[e.out].take() else {
                continue;
            };
            if profiling {
                b.fence()?;
            }
            let t0 = std::time::Instant::now();
            let mut sink = None;
            let (x0, x0_dims) = e.ins[0];
            let want0 = wanted(x0);
            let slot0 = if want0 { &mut grads[x0] } else { &mut sink };
            match e.step {
                Step::Conv { cfg, w, saved } => {
                    b.conv2d_backward(saved, &w, cfg, dy, want0.then_some(slot0))?
                }
                Step::BatchNorm { gamma, beta, saved } => {
                    b.batch_norm_backward(saved, &gamma, &beta, dy, slot0)?
                }
                Step::Relu(saved) => b.relu_backward(saved, dy, slot0)?,
                Step::ShortcutA { stride, out_ch } => {
                    b.shortcut_a_backward(dy, x0_dims, stride, out_ch, slot0)?
                }
                Step::AvgPool { kernel, stride } => {
                    b.avg_pool_backward(dy, x0_dims, kernel, stride, slot0)?
                }
                Step::MaxPool(saved) => b.max_pool_backward(saved, dy, x0_dims, slot0)?,
                Step::GlobalAvgPool => b.global_avg_pool_backward(dy, x0_dims, slot0)?,
                Step::Linear { w, bias, saved } => {
                    b.linear_backward(saved, &w, &bias, dy, slot0)?
                }
                Step::Concat => {
                    let channels: usize = e.ins.iter().map(|i| i.1[1]).sum();
                    let [n, _, h, w] = x0_dims;
                    let mut offset = 0;
                    for &(id, d) in &e.ins {
                        if wanted(id) {
                            b.concat_backward(&dy, [n, channels, h, w], offset, d, &mut grads[id])?;
                        }
                        offset += d[1];
                    }
                }
                Step::Sum => {
                    for &(id, d) in &e.ins {
                        if wanted(id) {
                            b.accumulate(&dy, d, &mut grads[id])?;
                        }
                    }
                }
            }
            if profiling {
                b.fence()?;
                profile::add(&format!("{}.backward", e.kind), t0.elapsed().as_secs_f64());
            }
        }
        Ok(grads)
    }
}

/// One op alone through the tape, for op-level checks on any backend: forward on `xs`
/// (activation ids chosen by the caller; one may be read twice), then the reverse pass from
/// the output gradient that `dy` makes from the output. Returns the output and every input
/// activation's gradient slot, indexed by id; parameter gradients are in the backend's store.
#[allow(clippy::too_many_arguments)]
pub fn op_gradients<B: Backend>(
    b: &mut B,
    op: &Op,
    relu: bool,
    xs: &[Input<'_, B>],
    p: &[B::Param],
    stats: Option<&mut B::Stats>,
    dy: impl FnOnce(&mut B, &B::Act) -> Result<B::Grad>,
) -> Result<(B::Act, GradSlots<B>)> {
    let out = xs.iter().map(|x| x.0).max().map_or(0, |m| m + 1);
    let mut tape = Tape::for_backend(b);
    let y = tape.apply(b, op, relu, out, xs, p, stats)?;
    let g = dy(b, &y)?;
    let grads = tape.backward(b, out, g, |_| true)?;
    Ok((y, grads))
}
