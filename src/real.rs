//! The element types of the trainer's numbers.

/// The element types the trainer supports: `f32` for training, `f64` for gradient checks.
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + Send
    + Sync
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + std::fmt::Debug
    + 'static
{
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

/// `E` from an `f64` constant.
pub fn c<E: Real>(v: f64) -> E {
    E::from_f64(v).expect("representable constant")
}
