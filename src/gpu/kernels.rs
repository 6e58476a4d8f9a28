//! Typed launch wrappers, one per kernel of `kernels.cu`, generated from its CUDA signatures
//! (`build.rs` writes the declaration list):
//! a launch with the wrong number or types of arguments does not compile. Device addresses are
//! [`DevPtr`]s, never bare integers, so a count cannot be passed where a buffer is expected.
//! `tests/gpu_launches.rs` checks the reading of the signatures.

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
                    // SAFETY: the argument list is the kernel's CUDA signature (declared from
                    // kernels.cu by build.rs, its reading checked by tests/gpu_launches.rs), and every pointer in it
                    // addresses a live device buffer of the size the kernel indexes.
                    unsafe { launch.launch(kit.launch_config(grid)) }
                        .map(|_| ())
                        .map_err(drv)
                }
            )*
        }
    };
}

// One wrapper per kernel of kernels.cu, declared from its CUDA signature by `build.rs`
// (`build/kernel_decls.rs`): `kernels! { fn im2col(x: DevPtr, col: DevPtr, h_: i32, …); … }`.
include!(concat!(env!("OUT_DIR"), "/kernel_decls.rs"));
