//! The runtime-shaped CNN operations, as custom dfdx operations.
//!
//! dfdx 0.13 (unmodified, from crates.io) provides the tensors, the autodiff tape and the loss;
//! its own convolution and pooling need the `nightly` feature and compile-time shapes, so these
//! ops are written here against its public API: each forward computes into a fresh tensor
//! (`tensor_from_vec`) and pushes one backward closure on a shared [`OwnedTape`]
//! (`Tape::add_backward_op`), which reads the output gradient and accumulates input and
//! parameter gradients through `Gradients::get_or_alloc_mut`, addressing tensors by `ghost()`.
//!
//! All activations are `N×C×H×W` tensors without a tape of their own ([`Act`]); the one shared
//! tape lives in [`Ctx`] and is put back on the logits before the loss. Ops are generic over
//! `f32` (training) and `f64` (gradient checks against finite differences).

pub mod backend;
pub mod combine;
pub mod conv;
pub mod gemm;
pub mod linear;
pub mod norm;
pub mod pool;

use dfdx::prelude::*;

/// The element types the ops support.
pub trait Real:
    Dtype + num_traits::Float + num_traits::FromPrimitive + Send + Sync + std::iter::Sum + 'static
where
    Cpu: Storage<Self>,
{
    /// The gradient buffer of the CPU device as a plain vector (dfdx does not export the
    /// buffer type's name, so the conversion is written per concrete type).
    fn slot(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self>;

    /// Run `f` with two scratch buffers of at least `a` and `b` elements, owned by the calling
    /// thread and reused across calls (their contents are stale: callers overwrite them). Fresh
    /// multi-megabyte buffers per call would fault their pages in every time.
    fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [Self], &mut [Self]) -> R) -> R;
}

macro_rules! scratch_impl {
    ($t:ty, $name:ident) => {
        thread_local! {
            static $name: std::cell::RefCell<(Vec<$t>, Vec<$t>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        impl Real for $t {
            fn slot(v: &mut <Cpu as Storage<$t>>::Vec) -> &mut Vec<$t> {
                v
            }
            fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [$t], &mut [$t]) -> R) -> R {
                $name.with(|cell| {
                    let mut bufs = cell.borrow_mut();
                    let (x, y) = &mut *bufs;
                    if x.len() < a {
                        x.resize(a, 0.0);
                    }
                    if y.len() < b {
                        y.resize(b, 0.0);
                    }
                    f(&mut x[..a], &mut y[..b])
                })
            }
        }
    };
}
scratch_impl!(f32, SCRATCH_F32);
scratch_impl!(f64, SCRATCH_F64);

/// An activation: batch × channels × height × width, no tape.
pub type Act<E> = Tensor<(usize, usize, usize, usize), E, Cpu>;

/// A parameter: a flat vector (its layout is the op's business, e.g. `[out, in, k, k]`).
pub type Param<E> = Tensor<(usize,), E, Cpu>;

/// The forward context: the device, the shared tape, and whether batch norm uses batch
/// statistics (training) or running statistics (evaluation).
pub struct Ctx<E: Real> {
    /// The CPU device.
    pub dev: Cpu,
    /// Every backward op of this forward pass, in order.
    pub tape: OwnedTape<E, Cpu>,
    /// Training mode (batch statistics) or evaluation mode (running statistics).
    pub train: bool,
    /// Whether to record backward ops at all (false for evaluation: saves memory and time).
    pub record: bool,
}

impl<E: Real> Ctx<E>
where
    Cpu: Device<E>,
{
    /// A context on `dev`.
    pub fn new(dev: &Cpu, train: bool, record: bool) -> Self {
        Ctx {
            dev: dev.clone(),
            tape: OwnedTape::default(),
            train,
            record,
        }
    }

    /// Wrap data as an activation.
    pub fn act(&self, data: Vec<E>, shape: [usize; 4]) -> Act<E> {
        self.dev
            .tensor_from_vec(data, (shape[0], shape[1], shape[2], shape[3]))
    }

    /// Push a backward op (no-op when not recording); `label` names it in the profile.
    pub fn backward<F>(&mut self, label: &'static str, op: F)
    where
        F: 'static + FnOnce(&mut Gradients<E, Cpu>) -> Result<(), CpuError>,
    {
        if !self.record {
            return;
        }
        if profile::enabled() {
            self.tape.add_backward_op(move |g| {
                let t = std::time::Instant::now();
                let r = op(g);
                profile::add(label, t.elapsed().as_secs_f64());
                r
            });
        } else {
            self.tape.add_backward_op(op);
        }
    }

    /// Take the tape out (leaving an empty one), to put it on the logits.
    pub fn take_tape(&mut self) -> OwnedTape<E, Cpu> {
        std::mem::take(&mut self.tape)
    }
}

/// Seconds spent per op, when the environment variable `SPARSENET_PROFILE` is set (read once).
pub mod profile {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    static ENABLED: OnceLock<bool> = OnceLock::new();

    thread_local! {
        static TIMES: RefCell<BTreeMap<String, f64>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Whether profiling is on.
    pub fn enabled() -> bool {
        *ENABLED.get_or_init(|| std::env::var_os("SPARSENET_PROFILE").is_some())
    }

    /// Add `secs` to `key` (this thread's table: forward and backward run on the caller's thread).
    pub fn add(key: &str, secs: f64) {
        TIMES.with(|t| *t.borrow_mut().entry(key.to_string()).or_insert(0.0) += secs);
    }

    /// This thread's table so far.
    pub fn report() -> BTreeMap<String, f64> {
        TIMES.with(|t| t.borrow().clone())
    }

    /// Empty this thread's table.
    pub fn reset() {
        TIMES.with(|t| t.borrow_mut().clear());
    }
}

/// The dimensions of an activation.
pub fn dims<E: Real>(a: &Act<E>) -> [usize; 4] {
    let s = a.shape();
    [s.0, s.1, s.2, s.3]
}

/// Copy a tensor's values out (dfdx offers no borrowed view of its storage).
pub fn read<S: Shape, E: Real, T>(t: &Tensor<S, E, Cpu, T>) -> Vec<E>
where
    Cpu: Device<E>,
{
    let mut v = vec![E::zero(); t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// Take the gradient of a tensor out of `grads`: its producing op is the last reader, since
/// backward ops run in reverse creation order and each tensor is produced by exactly one op.
pub fn take_grad<E: Real>(
    grads: &mut Gradients<E, Cpu>,
    t: &impl GradRef<E>,
) -> Result<Vec<E>, CpuError>
where
    Cpu: Device<E>,
{
    t.take(grads)
}

/// Add `src` into the gradient of a tensor.
pub fn add_grad<E: Real>(
    grads: &mut Gradients<E, Cpu>,
    t: &impl GradRef<E>,
    src: &[E],
) -> Result<(), CpuError>
where
    Cpu: Device<E>,
{
    t.add(grads, src)
}

/// Something whose gradient can be addressed: a tensor or its ghost. (dfdx keeps its
/// `Tensorlike` trait private, so the two cases are spelled out here.)
pub trait GradRef<E: Real> {
    /// Remove and return the gradient (zeros if none was written).
    fn take(&self, grads: &mut Gradients<E, Cpu>) -> Result<Vec<E>, CpuError>;
    /// Accumulate into the gradient.
    fn add(&self, grads: &mut Gradients<E, Cpu>, src: &[E]) -> Result<(), CpuError>;
}

type TakeFn<E> = Box<dyn Fn(&mut Gradients<E, Cpu>) -> Result<Vec<E>, CpuError>>;
type AddFn<E> = Box<dyn Fn(&mut Gradients<E, Cpu>, &[E]) -> Result<(), CpuError>>;

/// A handle on a tensor's gradient slot that does not keep the tensor's data alive.
pub struct Ghost<E: Real> {
    take: TakeFn<E>,
    add: AddFn<E>,
}

impl<E: Real> Ghost<E>
where
    Cpu: Device<E>,
{
    /// The ghost of `t`.
    pub fn of<S: Shape + 'static>(t: &Tensor<S, E, Cpu>) -> Self {
        let g1 = t.ghost();
        let g2 = t.ghost();
        Ghost {
            take: Box::new(move |grads| {
                let g = grads.get_or_alloc_mut(&g1)?;
                Ok(std::mem::take(E::slot(g)))
            }),
            add: Box::new(move |grads, src| {
                let g = E::slot(grads.get_or_alloc_mut(&g2)?);
                for (a, b) in g.iter_mut().zip(src) {
                    *a += *b;
                }
                Ok(())
            }),
        }
    }
}

impl<E: Real> GradRef<E> for Ghost<E> {
    fn take(&self, grads: &mut Gradients<E, Cpu>) -> Result<Vec<E>, CpuError> {
        (self.take)(grads)
    }
    fn add(&self, grads: &mut Gradients<E, Cpu>, src: &[E]) -> Result<(), CpuError> {
        (self.add)(grads, src)
    }
}

/// `E` from an `f64` constant.
pub fn c<E: Real>(v: f64) -> E {
    E::from_f64(v).expect("representable constant")
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Finite-difference gradient checks in f64.
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random values in [-1, 1).
    pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    /// `Σ out·weights` as a scalar: the loss whose gradient the checks compare.
    pub fn weighted_sum(out: &[f64], weights: &[f64]) -> f64 {
        out.iter().zip(weights).map(|(a, b)| a * b).sum()
    }

    /// Central finite difference of `f` at every coordinate of `x`.
    pub fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-6;
        let mut xs = x.to_vec();
        (0..x.len())
            .map(|i| {
                let orig = xs[i];
                xs[i] = orig + h;
                let up = f(&xs);
                xs[i] = orig - h;
                let down = f(&xs);
                xs[i] = orig;
                (up - down) / (2.0 * h)
            })
            .collect()
    }

    /// Largest relative error, scaled by the largest gradient magnitude.
    pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().chain(b).fold(1e-12f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0.0, f64::max)
    }

    /// Reads one tensor's gradient.
    pub type GradOf<'a> = &'a dyn Fn(&Gradients<f64, Cpu>) -> Vec<f64>;

    /// Run `op` with a tape, weight the output by `weights`, and return the gradients of every
    /// tensor in `wrt` (by the tape) — the analytic side of a check.
    pub fn analytic_grads(
        dev: &Cpu,
        op: impl FnOnce(&mut Ctx<f64>) -> Act<f64>,
        weights: &[f64],
        wrt: &[GradOf<'_>],
    ) -> Vec<Vec<f64>> {
        let mut ctx = Ctx::<f64>::new(dev, true, true);
        let out = op(&mut ctx);
        let s = out.shape().num_elements();
        assert_eq!(s, weights.len());
        let w = dev.tensor_from_vec(weights.to_vec(), *out.shape());
        let traced = out.put_tape(ctx.take_tape());
        let loss = (traced * w).sum::<Rank0, _>();
        let grads = loss.backward();
        wrt.iter().map(|f| f(&grads)).collect()
    }
}
