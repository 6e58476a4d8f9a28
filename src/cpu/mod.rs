//! The CPU backend ([`CpuBackend`]): every op's forward and backward primitive, computed with
//! our kernels on activations that ops read in place.
//!
//! Each op family implements its trait of [`crate::backend`] in its own file under [`ops`]
//! (`ops/conv/` the convolutions, `ops/norm.rs`, `ops/pool.rs`, `ops/combine.rs`,
//! `ops/linear.rs`, and `ops/loss.rs`, the one place dfdx is used: its cross-entropy). Shared
//! here: the activation type ([`Act`], concatenations lazy), parameters ([`Param`]), gradient
//! accumulation and the parallel fill; [`gemm`] and [`simd`] are the kernels' building blocks.
//!
//! Activations are our own shared buffers: a dfdx tensor offers no borrowed view of its
//! storage, so every op had to copy each input out before reading it (a DenseNet layer's whole
//! concatenated input, once per op), and dfdx's convolution and pooling need the `nightly`
//! feature and compile-time shapes. Each forward primitive returns its output and what its
//! backward primitive needs; the order of the reverse pass is the trainer's one tape
//! ([`crate::autodiff::Tape`]). Activation gradients are plain vectors; parameter gradients are
//! summed in [`CpuBackend`]. Ops are generic over `f32` (training) and `f64` (gradient checks
//! against finite differences).

pub mod gemm;
pub mod ops;
pub mod simd;

use std::sync::Arc;

use crate::backend::BackendCore;
pub use crate::real::{c, Real};

/// The element types of the CPU backend: [`Real`] numbers that our kernels can hold in SIMD
/// registers and whose cross-entropy the loss module can compute ([`ops::loss::LossElem`]).
pub trait Elem: Real + simd::Lanes + ops::loss::LossElem {}
impl<T: Real + simd::Lanes + ops::loss::LossElem> Elem for T {}

/// An activation: batch × channels × height × width, row-major, immutable and shared. Ops
/// read it in place, and a backward pass that needs an input keeps a reference to it, not a
/// copy (cloning an `Act` clones the reference).
///
/// A channel concatenation is lazy ([`Act::concat`]): it keeps its sources and is copied into
/// one buffer only when an op asks for all its values at once. Batch norm, the one reader of
/// every concatenation in DenseNet/SparseNet layers, reads it plane by plane from the sources
/// ([`Act::plane`]): a layer's growing input is then never copied at all (the copy was a write
/// and a read of the whole input per layer, and a buffer as large).
#[derive(Clone, Debug)]
pub struct Act<E> {
    data: Arc<Data<E>>,
    dims: [usize; 4],
    /// Unique in the process: names the activation in per-pass caches (an address could be
    /// reused after a free; an id is not).
    id: u64,
    /// For a concatenation: the activations its channels come from, in order, as (id,
    /// channels). Batch norm reuses their per-channel batch statistics, which do not depend
    /// on which concatenation a channel sits in.
    parts: Option<Arc<Vec<(u64, usize)>>>,
}

/// The values of an activation: one buffer, or (a lazy concatenation) the sources whose
/// channels it lists and a buffer filled on first use.
#[derive(Debug)]
struct Data<E> {
    values: std::sync::OnceLock<Arc<Vec<E>>>,
    sources: Vec<Act<E>>,
    /// Per channel of a concatenation: (index into `sources`, channel there).
    channels: Vec<(usize, usize)>,
}

/// The next activation id.
static NEXT_ACT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_id() -> u64 {
    NEXT_ACT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<E: Elem> Act<E> {
    /// `data` as an activation of dimensions `dims` (their product must be its length).
    pub fn new(data: Vec<E>, dims: [usize; 4]) -> Self {
        assert_eq!(
            data.len(),
            dims.iter().product::<usize>(),
            "activation size {dims:?}"
        );
        Act {
            data: Arc::new(Data {
                values: Arc::new(data).into(),
                sources: Vec::new(),
                channels: Vec::new(),
            }),
            dims,
            id: next_id(),
            parts: None,
        }
    }

    /// The channel concatenation of `xs` (same batch and spatial size), in order, without
    /// copying: see [`Act`]. A source that is itself an unfilled concatenation contributes
    /// its own sources.
    pub fn concat(xs: &[&Act<E>]) -> Self {
        let [n, _, h, w] = xs[0].dims;
        let mut sources: Vec<Act<E>> = Vec::new();
        for x in xs {
            let d = x.dims;
            assert_eq!((d[0], d[2], d[3]), (n, h, w), "concat: shapes");
            if x.data.values.get().is_none() {
                sources.extend(x.data.sources.iter().cloned());
            } else {
                sources.push((*x).clone());
            }
        }
        let channels: Vec<(usize, usize)> = sources
            .iter()
            .enumerate()
            .flat_map(|(s, a)| (0..a.dims[1]).map(move |k| (s, k)))
            .collect();
        let parts = xs.iter().flat_map(|x| x.parts()).collect();
        Act {
            dims: [n, channels.len(), h, w],
            data: Arc::new(Data {
                values: std::sync::OnceLock::new(),
                sources,
                channels,
            }),
            id: next_id(),
            parts: Some(Arc::new(parts)),
        }
    }

    /// Its channel blocks as (source id, channels): the sources of a concatenation, or itself.
    pub fn parts(&self) -> Vec<(u64, usize)> {
        match &self.parts {
            Some(p) => p.to_vec(),
            None => vec![(self.id, self.dims[1])],
        }
    }

    /// Its dimensions `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The `h·w` values of channel `k` of sample `i`, read from the source of a lazy
    /// concatenation without filling it.
    pub fn plane(&self, i: usize, k: usize) -> &[E] {
        let [_, ch, h, w] = self.dims;
        let hw = h * w;
        match self.data.values.get() {
            Some(v) => &v[(i * ch + k) * hw..][..hw],
            None => {
                let (s, kc) = self.data.channels[k];
                self.data.sources[s].plane(i, kc)
            }
        }
    }

    /// Its values (a lazy concatenation is filled first, once).
    pub fn values(&self) -> &[E] {
        self.shared_ref()
    }

    /// A reference to its values, for a backward pass to keep.
    pub fn shared(&self) -> Arc<Vec<E>> {
        Arc::clone(self.shared_ref())
    }

    fn shared_ref(&self) -> &Arc<Vec<E>> {
        self.data.values.get_or_init(|| {
            // Samples in parallel, one write of the output, no zero-fill first.
            let [n, ch, h, w] = self.dims;
            let hw = h * w;
            Arc::new(par_filled(n * ch * hw, ch * hw, |i, o| {
                for (k, dst) in o.chunks_mut(hw).enumerate() {
                    for (d, &s) in dst.iter_mut().zip(self.plane(i, k)) {
                        d.write(s);
                    }
                }
            }))
        })
    }
}

/// A parameter: its index in the model's parameter list (where its gradient goes) and its
/// values, a flat vector whose layout is the op's business (e.g. `[out, in, k, k]`).
#[derive(Clone, Debug)]
pub struct Param<E> {
    /// Index among the model's parameters.
    pub index: usize,
    /// The values.
    pub data: std::sync::Arc<Vec<E>>,
    /// A 3×3 weight arranged by tap for the direct convolution ([`Param::by_tap`]), made on
    /// first use and shared by the clones: repeated passes with the same parameters
    /// (inference) arrange it once.
    by_tap: Arc<std::sync::OnceLock<Vec<E>>>,
}

impl<E> Param<E> {
    /// Parameter `index` with values `data`.
    pub fn new(index: usize, data: Vec<E>) -> Self {
        Param {
            index,
            data: std::sync::Arc::new(data),
            by_tap: Arc::default(),
        }
    }

    /// This 3×3 convolution weight (`[out, in, 3, 3]`, `in` given) as `[in][tap][out]`, the
    /// direct kernel's layout, computed on the first call.
    pub fn by_tap(&self, cin: usize) -> &[E]
    where
        E: Copy,
    {
        self.by_tap.get_or_init(|| {
            let cout = self.data.len() / (cin * 9);
            ops::conv::direct::weights_by_tap(&self.data, cin, cout)
        })
    }
}

/// An activation's gradient: a flat vector in the activation's layout.
pub type Grad<E> = Vec<E>;

/// The CPU backend, for one pass: whether batch norm uses batch statistics (training) or
/// running statistics (evaluation), whether ops keep what their backward needs, and the
/// parameter gradients summed so far (indexed by [`Param::index`]).
pub struct CpuBackend<E: Elem> {
    /// Training mode (batch statistics) or evaluation mode (running statistics).
    pub train: bool,
    /// Whether to keep backward state at all (false for evaluation: saves memory and time).
    pub record: bool,
    /// Parameter gradients (empty until a backward primitive adds to one).
    pub param_grads: Vec<Vec<E>>,
    /// Per-channel batch statistics (mean, biased variance) of the activations batch norm has
    /// seen in this pass, by activation id: a DenseNet layer's input repeats every earlier
    /// output, whose statistics are then computed once per pass instead of once per reader.
    pub bn_stats: std::collections::HashMap<u64, Vec<(E, E)>>,
}

impl<E: Elem> CpuBackend<E> {
    /// A backend for one pass in training (`train`) or evaluation mode, keeping backward
    /// state when `record`.
    pub fn new(train: bool, record: bool) -> Self {
        CpuBackend {
            train,
            record,
            param_grads: Vec::new(),
            bn_stats: std::collections::HashMap::new(),
        }
    }

    /// Wrap data as an activation.
    pub fn act(&self, data: Vec<E>, shape: [usize; 4]) -> Act<E> {
        Act::new(data, shape)
    }

    /// Add `g` into the gradient of parameter `p`.
    pub fn add_param_grad(&mut self, p: &Param<E>, g: &[E]) {
        if self.param_grads.len() <= p.index {
            self.param_grads.resize_with(p.index + 1, Vec::new);
        }
        let slot = &mut self.param_grads[p.index];
        if slot.is_empty() {
            slot.resize(p.data.len(), E::zero());
        }
        for (a, &b) in slot.iter_mut().zip(g) {
            *a += b;
        }
    }

    /// The gradient of every parameter of `params` (zeros for one that received none).
    pub fn take_param_grads(&mut self, params: &[Param<E>]) -> Vec<Vec<E>> {
        let mut store = std::mem::take(&mut self.param_grads);
        params
            .iter()
            .map(|p| match store.get_mut(p.index) {
                Some(g) if !g.is_empty() => std::mem::take(g),
                _ => vec![E::zero(); p.data.len()],
            })
            .collect()
    }
}

impl<E: Elem> BackendCore for CpuBackend<E> {
    type Act = Act<E>;
    type Param = Param<E>;
    type Grad = Grad<E>;

    fn dims(&self, x: &Act<E>) -> [usize; 4] {
        x.dims()
    }
    fn records(&self) -> bool {
        self.record
    }
    fn training(&self) -> bool {
        self.train
    }
    fn zeros(&mut self, dims: [usize; 4]) -> anyhow::Result<Act<E>> {
        Ok(self.act(vec![E::zero(); dims.iter().product()], dims))
    }
}

/// Elements per parallel task of the element-wise gradient sums.
const ADD_CHUNK: usize = 1 << 15;

/// `d += g` element-wise, in parallel chunks (each element's sum is the same whatever the
/// threads).
fn add_into<E: Elem>(d: &mut [E], g: &[E]) {
    use rayon::prelude::*;
    d.par_chunks_mut(ADD_CHUNK)
        .zip(g.par_chunks(ADD_CHUNK))
        .for_each(|(d, g)| {
            for (a, &b) in d.iter_mut().zip(g) {
                *a += b;
            }
        });
}

/// `dx += g`, moving `g` in when `dx` holds nothing yet.
pub fn accumulate<E: Elem>(dx: &mut Option<Grad<E>>, g: Grad<E>) {
    match dx {
        None => *dx = Some(g),
        Some(d) => add_into(d, &g),
    }
}

/// `dx += g` from a borrowed gradient.
pub fn accumulate_from<E: Elem>(dx: &mut Option<Grad<E>>, g: &[E]) {
    match dx {
        None => {
            *dx = Some(par_filled(g.len(), ADD_CHUNK, |i, d| {
                for (a, &b) in d.iter_mut().zip(&g[i * ADD_CHUNK..]) {
                    a.write(b);
                }
            }))
        }
        Some(d) => add_into(d, g),
    }
}

/// A new vector of `len` values written in parallel chunks of `chunk` values by
/// `f(chunk index, chunk)`, which must write every element of its chunk. No zero-fill first:
/// with freed memory kept for reuse (`alloc`), a zeroed vector costs one more pass over memory.
pub fn par_filled<E: Elem>(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [std::mem::MaybeUninit<E>]) + Sync,
) -> Vec<E> {
    use rayon::prelude::*;
    let mut v: Vec<E> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| f(i, c));
    // SAFETY: the capacity is at least `len`, and `f` has initialised every element of
    // `[0, len)` (each chunk is written whole, as the contract above requires; the callers
    // write each element of their chunk exactly once, from a source of the same length).
    unsafe { v.set_len(len) };
    v
}

/// A copy of an activation's values (where an op or a test needs its own).
pub fn read<E: Elem>(a: &Act<E>) -> Vec<E> {
    a.values().to_vec()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Ops through the trainer's tape on the CPU, for gradient checks in f64.
    use super::*;
    pub use crate::testutil::*;

    /// What one op produced on the CPU through the tape: its output, the weights `r` of the
    /// loss `Σ out·r` it was differentiated for, and the gradients of every input tensor and
    /// parameter.
    pub struct OpRun {
        pub out: Vec<f64>,
        pub weights: Vec<f64>,
        pub input_grads: Vec<Vec<f64>>,
        pub param_grads: Vec<Vec<f64>>,
    }

    /// Run `op` (followed by a ReLU when `relu`) on the CPU in f64 through the trainer's tape —
    /// the analytic side of a check. `xs` are the distinct input tensors, `slots` which of them
    /// fills each input slot (so one tensor may be read twice); the loss weights are
    /// `rand_vec(len, seed)`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_op(
        op: &sparsenet_net::Op,
        relu: bool,
        train: bool,
        xs: &[(Vec<f64>, [usize; 4])],
        slots: &[usize],
        ps: &[Vec<f64>],
        stats: Option<&mut crate::backend::BnStats<f64>>,
        seed: u64,
    ) -> OpRun {
        let mut ctx = CpuBackend::<f64>::new(train, true);
        let acts: Vec<Act<f64>> = xs.iter().map(|(v, d)| ctx.act(v.clone(), *d)).collect();
        let inputs: Vec<(usize, &Act<f64>)> = slots.iter().map(|&k| (k, &acts[k])).collect();
        let params: Vec<Param<f64>> = ps
            .iter()
            .enumerate()
            .map(|(i, v)| Param::new(i, v.clone()))
            .collect();
        let mut weights = Vec::new();
        let (y, mut grads) =
            crate::autodiff::op_gradients(&mut ctx, op, relu, &inputs, &params, stats, |_, y| {
                weights = rand_vec(y.values().len(), seed);
                Ok(weights.clone())
            })
            .expect("op runs");
        OpRun {
            out: read(&y),
            weights,
            input_grads: (0..xs.len())
                .map(|k| grads[k].take().unwrap_or_else(|| vec![0.0; xs[k].0.len()]))
                .collect(),
            param_grads: ctx.take_param_grads(&params),
        }
    }
}
