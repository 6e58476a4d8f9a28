//! Typed launch wrappers, one per kernel of `kernels.cu`, generated from one declaration list:
//! a launch with the wrong number or types of arguments does not compile. Device addresses are
//! [`DevPtr`]s, never bare integers, so a count cannot be passed where a buffer is expected.
//! `tests/gpu_launches.rs` checks the declarations against the CUDA signatures (both are text).

use anyhow::Result;
use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::kit::{drv, Kit};

/// A device address (of `f32` or `i32` elements), as a kernel receives it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevPtr(pub u64);

// SAFETY: `DevPtr` is `repr(transparent)` over `u64`, which cudarc already passes to kernels;
// the kernels declare these parameters as 64-bit pointers.
unsafe impl DeviceRepr for DevPtr {}

impl DevPtr {
    /// The address `elems` 4-byte elements further on (a parameter's slice of a flat buffer).
    pub fn at(self, elems: usize) -> DevPtr {
        DevPtr(self.0 + 4 * elems as u64)
    }

    /// As a host-side pointer type for cuBLAS.
    pub fn as_f32(self) -> *const f32 {
        self.0 as *const f32
    }

    /// As a mutable host-side pointer type for cuBLAS.
    pub fn as_f32_mut(self) -> *mut f32 {
        self.0 as *mut f32
    }
}

/// The launch geometry of a kernel (see `kernels.cu`: grid-stride loops, fixed-size blocks for
/// the per-channel reductions, or plane-wise kernels).
#[derive(Clone, Copy, Debug)]
pub enum Grid {
    /// Enough blocks of 256 threads for this many elements (grid-stride loops cap the grid).
    Elems(usize),
    /// This many blocks of 256 threads.
    Blocks(u32),
    /// `planes` planes of `inner` elements, `taps` along z.
    Planes {
        /// Planes (grid y).
        planes: usize,
        /// Elements per plane.
        inner: usize,
        /// Taps (grid z).
        taps: u32,
    },
}

/// The kernels of the module, each a method taking its launch geometry and its arguments.
pub struct Kernels<'a>(pub(super) &'a Kit);

macro_rules! kernels {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {
        /// Every kernel's name, in declaration order (what the module loads).
        pub const KERNEL_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Kernels<'_> {
            $(
                #[doc = concat!("Launch `", stringify!($name), "` (see `kernels.cu`).")]
                // The argument list mirrors the CUDA signature, however long it is.
                #[allow(clippy::too_many_arguments)]
                pub fn $name(&self, grid: Grid, $($arg: $ty),*) -> Result<()> {
                    let kit = self.0;
                    let mut launch = kit.stream.launch_builder(kit.func(stringify!($name)));
                    $( launch.arg(&$arg); )*
                    // SAFETY: the argument list mirrors the kernel's CUDA signature (checked
                    // against kernels.cu by tests/gpu_launches.rs), and every pointer in it
                    // addresses a live device buffer of the size the kernel indexes.
                    unsafe { launch.launch(kit.launch_config(grid)) }
                        .map(|_| ())
                        .map_err(drv)
                }
            )*
        }
    };
}

kernels! {
    fn im2col(x: DevPtr, col: DevPtr, h: i32, w: i32, k_: i32, s_: i32, p_: i32, ho: i32, wo: i32, planes: i64);
    fn col2im_add(col: DevPtr, x: DevPtr, h: i32, w: i32, k_: i32, s_: i32, p_: i32, ho: i32, wo: i32, planes: i64);
    fn flip_weights(w: DevPtr, wf: DevPtr, o_: i32, c_: i32, k_: i32);
    fn sum_batches_add(parts: DevPtr, out: DevPtr, b_: i32, len: i32);
    fn bn_stats(x: DevPtr, mi: DevPtr, run_mean: DevPtr, run_var: DevPtr, n_: i32, c_: i32, hw: i32, eps: f32, momentum: f32);
    fn bn_eval_stats(run_mean: DevPtr, run_var: DevPtr, mi: DevPtr, c_: i32, eps: f32);
    fn bn_apply(x: DevPtr, y: DevPtr, mi: DevPtr, gamma: DevPtr, beta: DevPtr, c_: i32, hw: i32, planes: i64, relu: i32);
    fn bn_backward_sums(dy: DevPtr, x: DevPtr, mi: DevPtr, gamma: DevPtr, beta: DevPtr, sums: DevPtr, dgamma: DevPtr, dbeta: DevPtr, n_: i32, c_: i32, hw: i32, relu: i32);
    fn bn_backward_apply(dy: DevPtr, x: DevPtr, mi: DevPtr, gamma: DevPtr, beta: DevPtr, sums: DevPtr, dx: DevPtr, c_: i32, hw: i32, planes: i64, flags: i32);
    fn relu_fwd(x: DevPtr, y: DevPtr, total: i64);
    fn relu_bwd(dy: DevPtr, y: DevPtr, dx: DevPtr, total: i64);
    fn dropout_fwd(x: DevPtr, y: DevPtr, key: i64, threshold: i64, scale: f32, total: i64);
    fn dropout_bwd(dy: DevPtr, dx: DevPtr, key: i64, threshold: i64, scale: f32, total: i64);
    fn add_into(x: DevPtr, y: DevPtr, total: i64);
    fn add_scaled(x: DevPtr, y: DevPtr, a: f32, total: i64);
    fn mask_grad(keep: DevPtr, y: DevPtr, total: i64);
    fn scale_by(x: DevPtr, a: f32, total: i64);
    fn copy_channels(src: DevPtr, dst: DevPtr, cs: i32, cd: i32, off: i32, hw: i32, planes: i64);
    fn slice_channels_add(ddst: DevPtr, dsrc: DevPtr, cs: i32, cd: i32, off: i32, hw: i32, planes: i64);
    fn shortcut_fwd(x: DevPtr, y: DevPtr, n_: i32, c_: i32, h: i32, w: i32, co: i32, before: i32, s_: i32, ho: i32, wo: i32);
    fn shortcut_bwd(dy: DevPtr, dx: DevPtr, n_: i32, c_: i32, h: i32, w: i32, co: i32, before: i32, s_: i32, ho: i32, wo: i32);
    fn avg_pool_fwd(x: DevPtr, y: DevPtr, planes: i64, h: i32, w: i32, k_: i32, s_: i32, ho: i32, wo: i32);
    fn avg_pool_bwd(dy: DevPtr, dx: DevPtr, planes: i64, h: i32, w: i32, k_: i32, s_: i32, ho: i32, wo: i32);
    fn max_pool_fwd(x: DevPtr, y: DevPtr, arg: DevPtr, planes: i64, h: i32, w: i32, k_: i32, s_: i32, p_: i32, ho: i32, wo: i32);
    fn max_pool_bwd(dy: DevPtr, arg: DevPtr, dx: DevPtr, planes: i64, h: i32, w: i32, ho: i32, wo: i32);
    fn global_avg_fwd(x: DevPtr, y: DevPtr, hw: i32);
    fn global_avg_bwd(dy: DevPtr, dx: DevPtr, planes: i64, hw: i32);
    fn add_bias(y: DevPtr, b_: DevPtr, n_: i32, f_: i32);
    fn bias_grad(dy: DevPtr, db: DevPtr, n_: i32, f_: i32);
    fn softmax_xent(z: DevPtr, labels: DevPtr, loss: DevPtr, dz: DevPtr, correct: DevPtr, n_: i32, k_: i32);
    fn sgd_update(w: DevPtr, g: DevPtr, b_: DevPtr, n_: i64, lr: f32, momentum: f32, wd: f32, nesterov: i32, first: i32);
    fn adam_update(w: DevPtr, g: DevPtr, m: DevPtr, v: DevPtr, n_: i64, lr: f32, wd: f32, c1: f32, c2: f32, b1: f32, b2: f32, eps: f32);
    fn add_channel_bias(y: DevPtr, b_: DevPtr, c_: i32, hw: i32, total: i64);
    fn channel_bias_grad(dy: DevPtr, db: DevPtr, n_: i32, c_: i32, hw: i32);
}
