//! The trainer's element types as SIMD lanes, through the `pulp` crate (the one `gemm` is built
//! on): the instruction set — AVX-512, AVX2 with FMA, or plain scalar code — is chosen once at
//! run time ([`arch`]), and a kernel written once over [`pulp::Simd`] is compiled for each.
//!
//! A kernel is a [`pulp::WithSimd`] whose `with_simd` (and everything it calls) is
//! `#[inline(always)]`, so that it is compiled with the chosen instruction set's features.

use pulp::bytemuck;
use pulp::Simd;

/// The instruction set of this machine, detected once; `SPARSENET_SIMD=avx2` or `=scalar`
/// asks for a lower one (to measure or check what a machine without AVX-512 would run; a set
/// the machine lacks falls back to the detected one).
pub fn arch() -> pulp::Arch {
    static ARCH: std::sync::OnceLock<pulp::Arch> = std::sync::OnceLock::new();
    *ARCH.get_or_init(|| match std::env::var("SPARSENET_SIMD").as_deref() {
        Ok("scalar") => pulp::Arch::Scalar,
        Ok("avx2") => pulp::x86::V3::try_new().map_or_else(pulp::Arch::new, pulp::Arch::V3),
        _ => pulp::Arch::new(),
    })
}

/// `f()` compiled for this machine's instruction set ([`arch`]), for plain loops over slices
/// that the compiler vectorises by itself (element-wise transforms): the closure and every
/// function it calls must be inlined into it (`#[inline(always)]`) for the wider vectors to
/// apply. The results are those of the same scalar operations, in the same order.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    struct Run<F>(F);
    impl<R, F: FnOnce() -> R> pulp::WithSimd for Run<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) -> R {
            (self.0)()
        }
    }
    arch().dispatch(Run(f))
}

/// Elements no wider a vector of any instruction set holds (16 `f32` in a 512-bit register):
/// buffers that kernels read or write a vector at a time are padded by this much.
pub const MAX_LANES: usize = 16;

/// An element type as the lanes of a SIMD vector of instruction set `S`.
pub trait Lanes: Copy + bytemuck::Pod {
    /// A vector of these elements for instruction set `S`.
    type V<S: Simd>: Copy + bytemuck::Pod;

    /// How many elements a vector of `S` holds.
    fn width<S: Simd>() -> usize;

    /// `v` in every lane.
    fn splat<S: Simd>(s: S, v: Self) -> Self::V<S>;

    /// The first [`Lanes::width`] elements of `x` (any alignment; panics if `x` is shorter).
    #[inline(always)]
    fn load<S: Simd>(x: &[Self]) -> Self::V<S> {
        bytemuck::pod_read_unaligned(bytemuck::cast_slice(&x[..Self::width::<S>()]))
    }

    /// The [`Lanes::width`] elements of `x` from `at`, without a bounds check (for the inner
    /// loops of kernels that check their buffers once, before the loops).
    ///
    /// # Safety
    /// `at + width` must not exceed `x.len()`.
    #[inline(always)]
    unsafe fn load_at<S: Simd>(x: &[Self], at: usize) -> Self::V<S> {
        debug_assert!(at + Self::width::<S>() <= x.len());
        // SAFETY: the caller guarantees the `width` elements from `at` lie inside `x`; the
        // vector is read unaligned and every bit pattern of it is valid (`Pod`).
        unsafe { x.as_ptr().add(at).cast::<Self::V<S>>().read_unaligned() }
    }

    /// `v` into the first [`Lanes::width`] elements of `x` (panics if `x` is shorter).
    #[inline(always)]
    fn store<S: Simd>(x: &mut [Self], v: Self::V<S>) {
        x[..Self::width::<S>()].copy_from_slice(bytemuck::cast_slice(std::slice::from_ref(&v)));
    }

    /// `a·b + c`, fused (one rounding) where the instruction set has FMA.
    fn fma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;

    /// The sum of the lanes (in the instruction set's fixed order).
    fn hsum<S: Simd>(s: S, v: Self::V<S>) -> Self;

    /// `a + b`.
    fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;

    /// `v` where `p > 0`, zero elsewhere.
    fn where_positive<S: Simd>(s: S, p: Self::V<S>, v: Self::V<S>) -> Self::V<S>;
}

macro_rules! lanes_impl {
    ($t:ty, $v:ident, $lanes:ident, $splat:ident, $fma:ident, $sum:ident, $add:ident, $gt:ident, $select:ident) => {
        impl Lanes for $t {
            type V<S: Simd> = S::$v;

            #[inline(always)]
            fn width<S: Simd>() -> usize {
                S::$lanes
            }
            #[inline(always)]
            fn splat<S: Simd>(s: S, v: Self) -> Self::V<S> {
                s.$splat(v)
            }
            #[inline(always)]
            fn fma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S> {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn hsum<S: Simd>(s: S, v: Self::V<S>) -> Self {
                s.$sum(v)
            }
            #[inline(always)]
            fn vadd<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
                s.$add(a, b)
            }
            #[inline(always)]
            fn where_positive<S: Simd>(s: S, p: Self::V<S>, v: Self::V<S>) -> Self::V<S> {
                let zero = s.$splat(0.0);
                s.$select(s.$gt(p, zero), v, zero)
            }
        }
    };
}
lanes_impl!(
    f32,
    f32s,
    F32_LANES,
    splat_f32s,
    mul_add_e_f32s,
    reduce_sum_f32s,
    add_f32s,
    greater_than_f32s,
    select_f32s
);
lanes_impl!(
    f64,
    f64s,
    F64_LANES,
    splat_f64s,
    mul_add_e_f64s,
    reduce_sum_f64s,
    add_f64s,
    greater_than_f64s,
    select_f64s
);

#[cfg(test)]
mod tests {
    use super::*;

    struct Dot<'a>(&'a [f32], &'a [f32]);
    impl pulp::WithSimd for Dot<'_> {
        type Output = f32;
        #[inline(always)]
        fn with_simd<S: Simd>(self, s: S) -> f32 {
            let l = f32::width::<S>();
            let mut acc = f32::splat(s, 0.0);
            for (a, b) in self.0.chunks_exact(l).zip(self.1.chunks_exact(l)) {
                acc = f32::fma(s, f32::load::<S>(a), f32::load::<S>(b), acc);
            }
            let mut out = vec![0.0f32; l];
            f32::store::<S>(&mut out, acc);
            assert_eq!(out.iter().sum::<f32>(), f32::hsum(s, acc));
            f32::hsum(s, acc)
        }
    }

    #[test]
    fn lanes_load_multiply_add_and_sum() {
        // Unaligned slices (offset 1) of small integers: every sum is exact.
        let a: Vec<f32> = (0..65).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = (0..65).map(|i| (i % 5) as f32 - 2.0).collect();
        let want: f32 = a[1..].iter().zip(&b[1..]).map(|(x, y)| x * y).sum();
        assert!(f32::width::<pulp::Scalar>() == 1);
        assert_eq!(arch().dispatch(Dot(&a[1..], &b[1..])), want);
        assert_eq!(pulp::Scalar.vectorize(Dot(&a[1..], &b[1..])), want);
    }
}
