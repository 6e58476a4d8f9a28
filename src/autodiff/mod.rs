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
//! they are summed over readers are here only. Each op's part of the tape — what it keeps, how
//! its forward primitive is called, how its backward is — is in `ops/<op>.rs`, beside the same
//! file of the CPU (`cpu/ops/`) and GPU (`gpu/ops/`) backends.

use anyhow::{bail, Result};
use sparsenet_net::Op;

use crate::backend::{Backend, BackendCore};
use crate::profile;

mod ops;

/// The backward state of one recorded op: one variant per op, each defined beside its forward
/// dispatch and backward call in `autodiff/ops/<op>.rs`.
pub(crate) enum Step<B: Backend> {
    Conv(ops::conv::ConvStep<B>),
    BatchNorm(ops::norm::NormStep<B>),
    Relu(ops::combine::ReluStep<B>),
    Concat,
    Sum,
    Max(ops::combine::MaxStep<B>),
    ShortcutA(ops::pool::ShortcutStep),
    AvgPool(ops::pool::AvgPoolStep),
    MaxPool(ops::pool::MaxPoolStep<B>),
    GlobalAvgPool,
    Linear(ops::linear::LinearStep<B>),
    Dropout(ops::combine::DropoutStep),
    MeanJoin(ops::combine::MeanJoinStep),
    /// An op that passed its input through (dropout outside training).
    Identity,
}

impl<B: Backend> Step<B> {
    /// Its backward primitive, from the output gradient `dy`, into `g`'s slots.
    fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        match self {
            Step::Conv(s) => s.backward(b, dy, g),
            Step::BatchNorm(s) => s.backward(b, dy, g),
            Step::Relu(s) => s.backward(b, dy, g),
            Step::Concat => ops::combine::concat_backward(b, &dy, g),
            Step::Sum => ops::combine::sum_backward(b, &dy, g),
            Step::Max(s) => s.backward(b, dy, g),
            Step::ShortcutA(s) => s.backward(b, dy, g),
            Step::AvgPool(s) => s.backward(b, dy, g),
            Step::MaxPool(s) => s.backward(b, dy, g),
            Step::GlobalAvgPool => ops::pool::global_avg_pool_backward(b, dy, g),
            Step::Linear(s) => s.backward(b, dy, g),
            Step::Dropout(s) => s.backward(b, dy, g),
            Step::MeanJoin(s) => s.backward(b, dy, g),
            // The whole gradient to the one input: a sum's backward over one term.
            Step::Identity => ops::combine::sum_backward(b, &dy, g),
        }
    }
}

/// The gradient slots one recorded op's backward writes into: those of its inputs (the
/// gradients of activations several ops read are summed there, newest reader first).
pub(crate) struct Grads<'a, B: Backend> {
    slots: &'a mut GradSlots<B>,
    ins: &'a [(usize, [usize; 4])],
    wanted: &'a dyn Fn(usize) -> bool,
    /// Where the gradient of an input that needs none goes (the network input's).
    sink: Option<B::Grad>,
}

impl<'a, B: Backend> Grads<'a, B> {
    /// The inputs: activation ids and dimensions, in slot order (borrowed from the tape's
    /// entry, not from `self`, so slots can be taken while reading them).
    pub(crate) fn inputs(&self) -> &'a [(usize, [usize; 4])] {
        self.ins
    }

    /// The first input's dimensions and gradient slot (a throw-away one when it needs none):
    /// for ops of one input.
    pub(crate) fn first(&mut self) -> ([usize; 4], &mut Option<B::Grad>) {
        let (id, dims) = self.ins[0];
        if (self.wanted)(id) {
            (dims, &mut self.slots[id])
        } else {
            (dims, &mut self.sink)
        }
    }

    /// Input `k`'s gradient slot, or `None` when it needs none.
    pub(crate) fn slot(&mut self, k: usize) -> Option<&mut Option<B::Grad>> {
        let id = self.ins[k].0;
        (self.wanted)(id).then(|| &mut self.slots[id])
    }
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
    /// The step's key: each dropout layer draws its mask from it and its activation id.
    key: u64,
}

/// The gradient slots of a reverse pass, indexed by activation id.
pub type GradSlots<B> = Vec<Option<<B as BackendCore>::Grad>>;

/// One input of an op: its activation id and value.
pub type Input<'a, B> = (usize, &'a <B as BackendCore>::Act);

impl<B: Backend> Tape<B> {
    /// An empty tape for backend `b`: it records exactly when `b` keeps backward state.
    pub fn for_backend(b: &B) -> Self {
        Tape {
            entries: Vec::new(),
            recording: b.records(),
            key: 0,
        }
    }

    /// The same tape drawing its dropout masks from `key` (the training loop's step key).
    pub fn with_key(mut self, key: u64) -> Self {
        self.key = key;
        self
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
            Op::Concat | Op::Sum | Op::Max | Op::MeanJoin { .. } => xs.len().max(1),
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
        let Some(&(_, x)) = xs.first() else {
            bail!("the input node is not an op");
        };
        let (y, step) = match *op {
            Op::Input => bail!("the input node is not an op"),
            Op::Conv { .. } => ops::conv::forward(b, op, x, p)?,
            Op::BatchNorm { .. } => ops::norm::forward(b, x, p, stats, relu)?,
            Op::Relu => ops::combine::relu(b, x)?,
            Op::Concat => ops::combine::concat(b, xs)?,
            Op::Sum => ops::combine::sum(b, xs)?,
            Op::Max => ops::combine::max(b, xs)?,
            Op::ShortcutA { stride, out_ch } => ops::pool::shortcut_a(b, x, stride, out_ch)?,
            Op::AvgPool { kernel, stride } => ops::pool::avg_pool(b, x, kernel, stride)?,
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => ops::pool::max_pool(b, x, kernel, stride, padding)?,
            Op::GlobalAvgPool => ops::pool::global_avg_pool(b, x)?,
            Op::Linear { out_features, .. } => ops::linear::forward(b, x, p, out_features)?,
            Op::MeanJoin { drop_path } => ops::combine::mean_join(
                b,
                xs,
                drop_path.get(),
                crate::backend::layer_key(self.key, out),
            )?,
            Op::Dropout { p } => {
                ops::combine::dropout(b, x, p.get(), crate::backend::layer_key(self.key, out))?
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
            let mut g = Grads {
                slots: &mut grads,
                ins: &e.ins,
                wanted: &wanted,
                sink: None,
            };
            e.step.backward(b, dy, &mut g)?;
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
