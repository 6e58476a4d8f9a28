//! The device: the CUDA context, cuBLAS, the compiled kernels, memory and the launch
//! geometry ([`Grid`]). Kernels are launched through the typed wrappers of [`super::kernels`].

use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    ValidAsZeroBits,
};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::kernels::{DevPtr, Grid, Kernels, KERNEL_NAMES};
use super::libs;

pub(super) const KERNELS: &str = include_str!("kernels.cu");

/// Threads per block of the elementwise kernels (and of the per-channel reductions, whose
/// shared-memory tree in `kernels.cu` assumes 256).
pub(super) const THREADS: u32 = 256;

/// The device (its context and the one stream all work is queued on), cuBLAS, cuDNN when its
/// library loads, and the compiled kernels.
pub struct Kit {
    pub(super) ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    pub(super) blas: CudaBlas,
    /// cuDNN's convolutions, when `libcudnn` loads and `conv` asks for them.
    pub(super) cudnn: Option<super::dnn::Dnn>,
    funcs: HashMap<&'static str, CudaFunction>,
    /// The GPU's name (for reports).
    pub name: String,
    /// Whether cuBLAS may use TF32 tensor cores for f32 products (PyTorch's default for
    /// convolutions); false gives full f32 products.
    pub tf32: bool,
    /// How the convolutions run.
    pub conv: ConvEngine,
}

/// A driver error as text. (Not through cudarc's `Debug`, which asks the driver for the
/// message and panics if that fails too.)
pub(super) fn drv(e: cudarc::driver::DriverError) -> anyhow::Error {
    anyhow!("CUDA: {:?}", e.0)
}

/// The device address of a buffer (kernels take raw addresses so that one argument list can
/// point into the middle of a flat buffer). Event tracking is off (one stream does all the
/// work, in order), so the guard cudarc returns with the address has nothing to record.
pub(super) fn addr<T>(s: &CudaSlice<T>) -> DevPtr {
    let (ptr, _guard) = s.device_ptr(s.stream());
    DevPtr(ptr)
}

/// How the convolutions run on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvEngine {
    /// cuDNN (forward, backward data, backward filter; algorithms chosen per shape by cuDNN's
    /// own timing and cached), falling back to ours where cuDNN rejects a shape.
    Cudnn,
    /// Our im2col + cuBLAS products.
    Own,
}

impl ConvEngine {
    /// cuDNN when its library loads, ours otherwise (what `train --device cuda` uses; the
    /// environment variable `SPARSENET_CONV=own|cudnn` overrides it).
    pub fn auto() -> Result<Self> {
        match std::env::var("SPARSENET_CONV").ok().as_deref() {
            Some("own") => Ok(ConvEngine::Own),
            Some("cudnn") => Ok(ConvEngine::Cudnn),
            Some(other) => bail!("SPARSENET_CONV={other}: accepted values are own and cudnn"),
            None if libs::Lib::Cudnn.present() => Ok(ConvEngine::Cudnn),
            None => Ok(ConvEngine::Own),
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ConvEngine::Cudnn => "cudnn",
            ConvEngine::Own => "own",
        }
    }
}

impl Kit {
    /// Open GPU `ordinal`, compile the kernels and set up cuBLAS (and cuDNN for `conv`).
    pub fn new(ordinal: usize, tf32: bool, conv: ConvEngine) -> Result<Self> {
        // Every library is loaded at run time: say which one is missing and where it was looked
        // for, rather than let cudarc panic on the first call into it.
        libs::require(&[libs::Lib::Driver, libs::Lib::Nvrtc, libs::Lib::Cublas])?;
        // cudarc's constructor unwraps driver initialisation; check first for a clean error.
        // SAFETY: cuInit takes a flags value (0) and no pointers; it may be called more than once.
        unsafe { sys::cuInit(0) }.result().map_err(|e| {
            anyhow!(
                "no usable NVIDIA driver/GPU ({:?}); --device cuda needs one",
                e.0
            )
        })?;
        let count = CudaContext::device_count().map_err(drv)?;
        if ordinal as i32 >= count {
            bail!("GPU {ordinal} does not exist ({count} found)");
        }
        let ctx = CudaContext::new(ordinal).map_err(drv)?;
        // One stream, in order: cudarc's per-buffer events (for multi-stream safety) would only
        // add work to every launch.
        // SAFETY: all work of this context goes through `stream` below, so no buffer is used
        // by two streams and no cross-stream synchronisation is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        // Keep freed memory in the stream-ordered pool instead of returning it to the driver at
        // every synchronisation: the trainer frees and re-allocates the same sizes every step.
        // SAFETY: `pool` and `keep` are live locals whose addresses the driver writes or reads for
        // the duration of the calls; the device handle is the open context's.
        unsafe {
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
                == sys::CUresult::CUDA_SUCCESS
            {
                let mut keep: u64 = u64::MAX;
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    &mut keep as *mut u64 as *mut std::ffi::c_void,
                );
            }
        }
        let name = ctx.name().map_err(drv)?;
        let ptx = cudarc::nvrtc::compile_ptx(KERNELS)
            .map_err(|e| anyhow!("compiling the CUDA kernels with NVRTC: {e:?}"))?;
        let module = ctx.load_module(ptx).map_err(drv)?;
        let mut funcs = HashMap::new();
        for &f in KERNEL_NAMES {
            funcs.insert(f, module.load_function(f).map_err(drv)?);
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| anyhow!("cuBLAS: {e:?}"))?;
        let mode = if tf32 {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle belongs to the live CudaBlas above; the mode is a valid enum value.
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| anyhow!("cuBLAS math mode: {e:?}"))?;
        let cudnn = match conv {
            ConvEngine::Cudnn => {
                libs::require(&[libs::Lib::Cudnn])?;
                Some(super::dnn::Dnn::new(&stream, tf32)?)
            }
            ConvEngine::Own => None,
        };
        Ok(Kit {
            ctx,
            stream,
            blas,
            cudnn,
            funcs,
            name,
            tf32,
            conv,
        })
    }

    pub(super) fn func(&self, name: &str) -> &CudaFunction {
        self.funcs
            .get(name)
            .expect("every kernel is loaded with the module")
    }

    /// The typed launch wrappers of the module's kernels.
    pub(super) fn kernels(&self) -> Kernels<'_> {
        Kernels(self)
    }

    /// The launch configuration of `grid`. Only the wrappers of [`super::kernels`] use it, with
    /// argument lists that mirror each kernel's signature.
    pub(super) fn launch_config(&self, grid: Grid) -> LaunchConfig {
        let (grid_dim, threads) = match grid {
            // Grid-stride loops, so the grid is capped.
            Grid::Elems(n) => (
                (n.div_ceil(THREADS as usize).clamp(1, 65_535) as u32, 1, 1),
                THREADS,
            ),
            Grid::Blocks(blocks) => ((blocks, 1, 1), THREADS),
            // Plane-wise kernels (`PLANES`/`INNER` in kernels.cu): blocks sized to the plane (a
            // multiple of 32 up to 256 threads), so small feature maps do not leave most threads
            // idle.
            Grid::Planes {
                planes,
                inner,
                taps,
            } => {
                let threads = inner.next_multiple_of(32).clamp(32, THREADS as usize);
                (
                    (
                        inner.div_ceil(threads).clamp(1, 65_535) as u32,
                        planes.clamp(1, 65_535) as u32,
                        taps,
                    ),
                    threads as u32,
                )
            }
        };
        LaunchConfig {
            grid_dim,
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Uninitialised device memory (every caller overwrites all of it).
    pub(super) fn alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: uninitialised device memory; every caller writes all of it before reading (see
        // the doc line above).
        unsafe { self.stream.alloc::<f32>(n.max(1)) }.map_err(|e| oom(e, n))
    }

    /// Uninitialised device memory of another element type (every caller overwrites it).
    pub(super) fn alloc_of<T: DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        // SAFETY: as for `alloc`: every caller writes all of it before reading.
        unsafe { self.stream.alloc::<T>(n.max(1)) }.map_err(|e| oom(e, n))
    }

    pub(super) fn zeros(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(|e| oom(e, n))
    }

    /// Set every element of `s` to zero.
    pub(super) fn fill_zero<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        s: &mut CudaSlice<T>,
    ) -> Result<()> {
        self.stream.memset_zeros(s).map_err(drv)
    }

    /// Copy `src` into `dst` (device to device, `src.len()` elements).
    pub(super) fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>) -> Result<()> {
        self.stream.memcpy_dtod(src, dst).map_err(drv)
    }

    /// Row-major batched product `C_b = op(A_b)·op(B_b) (+ beta·C_b)` for b < batch, where
    /// `C` is m×n, `op(A)` m×k and `op(B)` k×n; `ld*` are the stored row lengths and `s*` the
    /// element strides between batch members (0 repeats a matrix). cuBLAS is column-major, so
    /// it computes `Cᵀ = op(B)ᵀ·op(A)ᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gemm(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        (a, lda, sa): (DevPtr, usize, usize),
        (b, ldb, sb): (DevPtr, usize, usize),
        (c, ldc, sc): (DevPtr, usize, usize),
        beta: f32,
        batch: usize,
    ) -> Result<()> {
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let alpha = 1.0f32;
        // SAFETY: callers pass addresses of live device buffers sized for `batch` products of
        // these shapes, leading dimensions and strides; the handle is this context's cuBLAS.
        unsafe {
            blas_result::sgemm_strided_batched(
                *self.blas.handle(),
                op(tb),
                op(ta),
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b.as_f32(),
                ldb as i32,
                sb as i64,
                a.as_f32(),
                lda as i32,
                sa as i64,
                &beta,
                c.as_f32_mut(),
                ldc as i32,
                sc as i64,
                batch as i32,
            )
        }
        .map_err(|e| anyhow!("cuBLAS gemm {m}×{n}×{k} (batch {batch}): {e:?}"))
    }

    /// Columns of `x` (`dims` = n, c, h, w) for a k×k convolution with stride `s` and padding
    /// `p` whose output is `out` = ho×wo: per image a [c·k², ho·wo] matrix.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn im2col(
        &self,
        x: DevPtr,
        dims: [usize; 4],
        k: usize,
        s: usize,
        p: usize,
        out: [usize; 2],
    ) -> Result<CudaSlice<f32>> {
        let [n, c, h, w] = dims;
        let len = n * c * k * k * out[0] * out[1];
        let col = self.alloc(len)?;
        let g = [h, w, k, s, p, out[0], out[1]].map(|v| v as i32);
        self.kernels().im2col(
            Grid::Planes {
                planes: n * c,
                inner: out[0] * out[1],
                taps: (k * k) as u32,
            },
            x,
            addr(&col),
            g[0],
            g[1],
            g[2],
            g[3],
            g[4],
            g[5],
            g[6],
            (n * c) as i64,
        )?;
        Ok(col)
    }

    /// Run `f`; when profiling (`SPARSENET_PROFILE`), synchronise around it and add its time to
    /// `label`.
    pub(super) fn timed<R>(&self, label: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
        if !crate::profile::enabled() {
            return f();
        }
        self.sync()?;
        let t0 = std::time::Instant::now();
        let r = f()?;
        self.sync()?;
        crate::profile::add(label, t0.elapsed().as_secs_f64());
        Ok(r)
    }

    /// Wait for all queued work.
    pub fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv)
    }

    /// Copy host data to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(v).map_err(|e| oom(e, v.len()))
    }

    /// Copy a device buffer to the host (waits for it).
    pub fn download<T: DeviceRepr>(&self, s: &CudaSlice<T>) -> Result<Vec<T>> {
        let v = self.stream.clone_dtoh(s).map_err(drv)?;
        self.sync()?;
        Ok(v)
    }
}

pub(super) fn oom(e: cudarc::driver::DriverError, n: usize) -> anyhow::Error {
    anyhow!(
        "CUDA: allocating {:.1} MB failed ({:?}); try a smaller --batch-size",
        n as f64 * 4.0 / 1e6,
        e.0
    )
}

impl Kit {
    pub(super) fn pool(&self) -> Option<sys::CUmemoryPool> {
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: the driver writes the pool handle into the live local `pool`.
        let r = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, self.ctx.cu_device()) };
        (r == sys::CUresult::CUDA_SUCCESS).then_some(pool)
    }

    /// Peak bytes in use in the device's allocation pool since the last reset, when the driver
    /// reports it.
    pub fn peak_memory(&self) -> Option<u64> {
        let pool = self.pool()?;
        let mut v: u64 = 0;
        // SAFETY: the attribute is a u64 and `v` a live u64 local the driver writes.
        let r = unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                &mut v as *mut u64 as *mut std::ffi::c_void,
            )
        };
        (r == sys::CUresult::CUDA_SUCCESS).then_some(v)
    }

    /// Return the pool's unused memory to the driver (after running out of memory, so that
    /// cuBLAS's own allocations find room).
    pub fn trim(&self) -> Result<()> {
        self.sync()?;
        if let Some(pool) = self.pool() {
            // SAFETY: `pool` is the device's default pool, valid while the context lives.
            unsafe { sys::cuMemPoolTrimTo(pool, 0) }
                .result()
                .map_err(drv)?;
        }
        Ok(())
    }

    /// Start a new peak-memory measurement.
    pub fn reset_peak(&self) {
        if let Some(pool) = self.pool() {
            let mut zero: u64 = 0;
            // SAFETY: the attribute is a u64 and `zero` a live u64 local the driver reads.
            unsafe {
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                    &mut zero as *mut u64 as *mut std::ffi::c_void,
                );
            }
        }
    }
}

/// Open GPU `ordinal` for the trainer (see [`Kit::new`]).
pub fn open(ordinal: usize, tf32: bool, conv: ConvEngine) -> Result<Rc<Kit>> {
    Ok(Rc::new(
        Kit::new(ordinal, tf32, conv).context("opening the GPU")?,
    ))
}

#[cfg(test)]
mod tests {
    /// NVRTC needs no GPU: the kernels compile wherever its library loads. Where it does not
    /// (a machine without CUDA), the test says so and passes, unless SPARSENET_REQUIRE_NVRTC is
    /// set, as `.ci/run` sets it after installing NVRTC 13 (scripts/gpu-libs.sh).
    #[test]
    fn kernels_compile_with_nvrtc() {
        if let Err(e) = super::libs::require(&[super::libs::Lib::Nvrtc]) {
            assert!(
                std::env::var_os("SPARSENET_REQUIRE_NVRTC").is_none(),
                "SPARSENET_REQUIRE_NVRTC is set: {e}"
            );
            eprintln!("skipped: {e}");
            return;
        }
        let ptx = cudarc::nvrtc::compile_ptx(super::KERNELS).expect("kernels compile");
        let _ = ptx;
    }
}
