//! The trainer on an NVIDIA GPU (feature `cuda`): a [`Backend`] for the DAG interpreter whose
//! ops are our own kernels (`kernels.cu`, compiled by NVRTC at start-up) plus cuBLAS products,
//! through cudarc — the CUDA layer dfdx's `cuda` feature is built on.
//!
//! Why not dfdx's CUDA tensors directly: dfdx 0.13 puts its convolution and pooling behind the
//! `nightly` feature (a nightly compiler), and its CUDA storage is crate-private, so custom ops
//! cannot reach device memory. The GPU path therefore mirrors the CPU one: the same
//! [`Model::walk`] over the zoo's DAG, a tape of backward closures, the same initialisation,
//! loss and optimiser rules, with every tensor on the device.
//!
//! Per training step the batch (images and labels) goes to the device once; the forward pass,
//! the loss, the backward pass and the optimiser update run there, and only the per-image losses
//! and hits come back. Parameters, gradients and optimiser state are single flat buffers (one
//! optimiser launch per step); the host copy in [`Model::values`] is refreshed by
//! [`GpuTrainer::download`] before checkpoints.

pub mod check;

use anyhow::{anyhow, bail, Context, Result};
use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    sys, CudaDevice, CudaFunction, CudaSlice, DevicePtr, LaunchAsync, LaunchConfig,
};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::ConvCfg;
use crate::model::Model;
use crate::ops::norm::{BN_EPS, BN_MOMENTUM};
use crate::optim::{Config as OptConfig, Kind as OptKind, State, ADAM};

const MODULE: &str = "sparsenet";
const KERNELS: &str = include_str!("kernels.cu");
const KERNEL_NAMES: &[&str] = &[
    "im2col",
    "flip_weights",
    "col2im_add",
    "sum_batches_add",
    "bn_stats",
    "bn_eval_stats",
    "bn_apply",
    "bn_backward_sums",
    "bn_backward_apply",
    "relu_fwd",
    "relu_bwd",
    "add_into",
    "copy_channels",
    "slice_channels_add",
    "shortcut_fwd",
    "shortcut_bwd",
    "avg_pool_fwd",
    "avg_pool_bwd",
    "max_pool_fwd",
    "max_pool_bwd",
    "global_avg_fwd",
    "global_avg_bwd",
    "add_bias",
    "bias_grad",
    "softmax_xent",
    "sgd_update",
    "adam_update",
];

/// Threads per block of the elementwise kernels (and of the per-channel reductions, whose
/// shared-memory tree in `kernels.cu` assumes 256).
const THREADS: u32 = 256;

/// The device, cuBLAS and the compiled kernels.
pub struct Kit {
    dev: Arc<CudaDevice>,
    blas: CudaBlas,
    /// The GPU's name (for reports).
    pub name: String,
    /// Whether cuBLAS may use TF32 tensor cores for f32 products (PyTorch's default for
    /// convolutions); false gives full f32 products.
    pub tf32: bool,
}

/// A driver error as text. (Not through cudarc's `Debug`, which asks the driver for the
/// message and panics if that fails too.)
fn drv(e: cudarc::driver::DriverError) -> anyhow::Error {
    anyhow!("CUDA: {:?}", e.0)
}

/// The device address of a buffer (kernels take raw addresses so that one argument list can
/// point into the middle of a flat buffer).
fn addr<T>(s: &CudaSlice<T>) -> u64 {
    *s.device_ptr()
}

impl Kit {
    /// Open GPU `ordinal`, compile the kernels and set up cuBLAS.
    pub fn new(ordinal: usize, tf32: bool) -> Result<Self> {
        // cudarc's constructor unwraps driver initialisation; check first for a clean error.
        unsafe { sys::cuInit(0) }.result().map_err(|e| {
            anyhow!(
                "no usable NVIDIA driver/GPU ({:?}); --device cuda needs one",
                e.0
            )
        })?;
        let count = CudaDevice::count().map_err(drv)?;
        if ordinal as i32 >= count {
            bail!("GPU {ordinal} does not exist ({count} found)");
        }
        let dev = CudaDevice::new(ordinal).map_err(drv)?;
        // Keep freed memory in the stream-ordered pool instead of returning it to the driver at
        // every synchronisation: the trainer frees and re-allocates the same sizes every step.
        unsafe {
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            if sys::cuDeviceGetDefaultMemPool(&mut pool, *dev.cu_device())
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
        let name = unsafe {
            let mut buf = [0i8; 256];
            sys::cuDeviceGetName(buf.as_mut_ptr(), 256, *dev.cu_device());
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        let ptx = cudarc::nvrtc::compile_ptx(KERNELS)
            .map_err(|e| anyhow!("compiling the CUDA kernels with NVRTC: {e:?}"))?;
        dev.load_ptx(ptx, MODULE, KERNEL_NAMES).map_err(drv)?;
        let blas = CudaBlas::new(dev.clone()).map_err(|e| anyhow!("cuBLAS: {e:?}"))?;
        let mode = if tf32 {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| anyhow!("cuBLAS math mode: {e:?}"))?;
        Ok(Kit {
            dev,
            blas,
            name,
            tf32,
        })
    }

    fn func(&self, name: &str) -> CudaFunction {
        self.dev
            .get_func(MODULE, name)
            .expect("kernel loaded with the module")
    }

    /// Launch `name` over `n` elements (grid-stride loops, so the grid is capped).
    fn launch<P>(&self, name: &str, n: usize, params: P) -> Result<()>
    where
        CudaFunction: LaunchAsync<P>,
    {
        let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
        self.launch_blocks(name, blocks, params)
    }

    /// Launch `name` with `blocks` blocks of [`THREADS`].
    fn launch_blocks<P>(&self, name: &str, blocks: u32, params: P) -> Result<()>
    where
        CudaFunction: LaunchAsync<P>,
    {
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        unsafe { self.func(name).launch(cfg, params) }.map_err(drv)
    }

    /// Launch a plane-wise kernel (`PLANES`/`INNER` in kernels.cu): `planes` planes of `inner`
    /// elements, `taps` along z. Blocks are sized to the plane (a multiple of 32 up to 256
    /// threads), so small feature maps do not leave most threads idle.
    fn launch_planes<P>(
        &self,
        name: &str,
        planes: usize,
        inner: usize,
        taps: u32,
        params: P,
    ) -> Result<()>
    where
        CudaFunction: LaunchAsync<P>,
    {
        let threads = inner.next_multiple_of(32).clamp(32, THREADS as usize);
        let cfg = LaunchConfig {
            grid_dim: (
                inner.div_ceil(threads).clamp(1, 65_535) as u32,
                planes.clamp(1, 65_535) as u32,
                taps,
            ),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        unsafe { self.func(name).launch(cfg, params) }.map_err(drv)
    }

    /// Uninitialised device memory (every caller overwrites all of it).
    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        unsafe { self.dev.alloc::<f32>(n.max(1)) }.map_err(|e| oom(e, n))
    }

    fn zeros(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.dev.alloc_zeros::<f32>(n.max(1)).map_err(|e| oom(e, n))
    }

    /// Row-major batched product `C_b = op(A_b)·op(B_b) (+ beta·C_b)` for b < batch, where
    /// `C` is m×n, `op(A)` m×k and `op(B)` k×n; `ld*` are the stored row lengths and `s*` the
    /// element strides between batch members (0 repeats a matrix). cuBLAS is column-major, so
    /// it computes `Cᵀ = op(B)ᵀ·op(A)ᵀ`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        (a, lda, sa): (u64, usize, usize),
        (b, ldb, sb): (u64, usize, usize),
        (c, ldc, sc): (u64, usize, usize),
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
        unsafe {
            blas_result::sgemm_strided_batched(
                *self.blas.handle(),
                op(tb),
                op(ta),
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b as *const f32,
                ldb as i32,
                sb as i64,
                a as *const f32,
                lda as i32,
                sa as i64,
                &beta,
                c as *mut f32,
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
    fn im2col(
        &self,
        x: u64,
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
        self.launch_planes(
            "im2col",
            n * c,
            out[0] * out[1],
            (k * k) as u32,
            (
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
            ),
        )?;
        Ok(col)
    }

    /// Run `f`; when profiling (`SPARSENET_PROFILE`), synchronise around it and add its time to
    /// `label`.
    fn timed<R>(&self, label: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
        if !crate::ops::profile::enabled() {
            return f();
        }
        self.sync()?;
        let t0 = std::time::Instant::now();
        let r = f()?;
        self.sync()?;
        crate::ops::profile::add(label, t0.elapsed().as_secs_f64());
        Ok(r)
    }

    /// Wait for all queued work.
    pub fn sync(&self) -> Result<()> {
        self.dev.synchronize().map_err(drv)
    }

    /// Copy host data to a new device buffer.
    pub fn upload(&self, v: &[f32]) -> Result<CudaSlice<f32>> {
        self.dev.htod_sync_copy(v).map_err(|e| oom(e, v.len()))
    }

    /// Copy a device buffer to the host.
    pub fn download(&self, s: &CudaSlice<f32>) -> Result<Vec<f32>> {
        self.dev.dtoh_sync_copy(s).map_err(drv)
    }
}

fn oom(e: cudarc::driver::DriverError, n: usize) -> anyhow::Error {
    anyhow!(
        "CUDA: allocating {:.1} MB failed ({:?}); try a smaller --batch-size",
        n as f64 * 4.0 / 1e6,
        e.0
    )
}

/// An activation on the device.
#[derive(Clone)]
pub struct GAct {
    /// Identity on the tape (its gradient's key).
    id: usize,
    buf: Rc<CudaSlice<f32>>,
    dims: [usize; 4],
}

impl GAct {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }
    fn addr(&self) -> u64 {
        addr(&self.buf)
    }
}

/// A parameter: a range of the flat parameter buffer (its gradient is the same range of the
/// flat gradient buffer).
#[derive(Clone, Copy, Debug)]
pub struct GParam {
    off: usize,
    len: usize,
}

/// Running statistics of one batch norm, on the device.
pub struct GStats {
    mean: CudaSlice<f32>,
    var: CudaSlice<f32>,
}

/// Gradients during the backward pass: one buffer per activation (created zeroed on first
/// use, freed once its producer has consumed it) and the flat parameter gradient.
pub struct Grads {
    acts: HashMap<usize, CudaSlice<f32>>,
    params: u64,
}

impl Grads {
    /// The gradient buffer of activation `id` (`len` elements), zeroed on first use.
    fn acc(&mut self, kit: &Kit, id: usize, len: usize) -> Result<u64> {
        if let Some(b) = self.acts.get(&id) {
            return Ok(addr(b));
        }
        let b = kit.zeros(len)?;
        let a = addr(&b);
        self.acts.insert(id, b);
        Ok(a)
    }
    /// The address of a parameter's gradient.
    fn param(&self, p: GParam) -> u64 {
        self.params + 4 * p.off as u64
    }
}

type BackOp = Box<dyn FnOnce(&Kit, &mut Grads) -> Result<()>>;

/// One forward pass on the GPU: the [`Backend`] the interpreter drives.
pub struct GpuCtx<'a> {
    kit: &'a Kit,
    params: u64,
    tape: Vec<BackOp>,
    next_id: usize,
    train: bool,
    record: bool,
}

impl<'a> GpuCtx<'a> {
    /// A forward pass over the flat parameter buffer at `params`; `record` keeps the backward
    /// steps (training).
    fn new(kit: &'a Kit, params: u64, train: bool, record: bool) -> Self {
        GpuCtx {
            kit,
            params,
            tape: Vec::new(),
            next_id: 0,
            train,
            record,
        }
    }

    /// Run the recorded backward steps, newest first, from the output gradients in `g`.
    fn run_backward(self, g: &mut Grads) -> Result<()> {
        for op in self.tape.into_iter().rev() {
            op(self.kit, g)?;
        }
        Ok(())
    }

    fn new_act(&mut self, buf: CudaSlice<f32>, dims: [usize; 4]) -> GAct {
        self.next_id += 1;
        GAct {
            id: self.next_id,
            buf: Rc::new(buf),
            dims,
        }
    }

    fn param(&self, p: &GParam) -> u64 {
        self.params + 4 * p.off as u64
    }

    /// Record the backward step of output `out` (skipped when its gradient never arrives);
    /// `label` names it in the profile (`SPARSENET_PROFILE`, which synchronises around it).
    fn backward(
        &mut self,
        label: &'static str,
        out: &GAct,
        f: impl FnOnce(&Kit, &mut Grads, u64) -> Result<()> + 'static,
    ) {
        if !self.record {
            return;
        }
        let id = out.id;
        self.tape.push(Box::new(move |kit: &Kit, g: &mut Grads| {
            match g.acts.remove(&id) {
                Some(dy) => {
                    let profiling = crate::ops::profile::enabled();
                    if profiling {
                        kit.sync()?;
                    }
                    let t0 = std::time::Instant::now();
                    let r = f(kit, g, addr(&dy));
                    if profiling {
                        kit.sync()?;
                        crate::ops::profile::add(label, t0.elapsed().as_secs_f64());
                    }
                    // Freed (stream-ordered) after the kernels that read it.
                    drop(dy);
                    r
                }
                None => Ok(()),
            }
        }));
    }
}

fn dims_of(x: &GAct) -> (usize, usize, usize, usize) {
    (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
}

impl Backend for GpuCtx<'_> {
    type Act = GAct;
    type Param = GParam;
    type Stats = GStats;

    fn dims(&self, x: &GAct) -> [usize; 4] {
        x.dims
    }

    fn fence(&mut self) -> Result<()> {
        self.kit.sync()
    }

    fn conv2d(&mut self, x: &GAct, w: &GParam, cfg: ConvCfg, x_grad: bool) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, wd) = dims_of(x);
        if c != cfg.in_ch || w.len != cfg.out_ch * c * cfg.kernel * cfg.kernel {
            bail!(
                "conv2d: input has {c} channels, the layer expects {}",
                cfg.in_ch
            );
        }
        let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
        let (hw, ckk, o, k) = (ho * wo, c * cfg.kernel * cfg.kernel, cfg.out_ch, cfg.kernel);
        let pointwise = cfg.is_pointwise();
        let (s_, p_) = (cfg.stride, cfg.padding);
        let y = kit.alloc(n * o * hw)?;
        let wa = self.param(w);
        let col = if pointwise {
            None
        } else {
            Some(kit.timed("conv2d.im2col", || {
                kit.im2col(x.addr(), [n, c, h, wd], k, s_, p_, [ho, wo])
            })?)
        };
        let cols = col.as_ref().map_or(x.addr(), addr);
        // y_b[o, hw] = W[o, ckk] · cols_b[ckk, hw]
        kit.timed("conv2d.gemm", || {
            kit.gemm(
                (false, false),
                (o, hw, ckk),
                (wa, ckk, 0),
                (cols, hw, ckk * hw),
                (addr(&y), hw, o * hw),
                0.0,
                n,
            )
        })?;
        drop(col);
        let y = self.new_act(y, [n, o, ho, wo]);
        let (xs, wg) = (x.clone(), *w);
        // A narrowing stride-1 layer takes its input gradient as a convolution of dy with the
        // flipped kernel (padding k−1−p): columns of o·k² rows instead of c·k², and no col2im.
        let transposed = cfg.input_grad_by_transposed_conv();
        self.backward("conv2d.backward", &y, move |kit, g, dy| {
            // dW = Σ_b dy_b[o, hw] · cols_bᵀ: per image into `parts`, then summed.
            kit.timed("conv2d.backward.weights", || {
                let col = if pointwise {
                    None
                } else {
                    Some(kit.im2col(xs.addr(), [n, c, h, wd], k, s_, p_, [ho, wo])?)
                };
                let cols = col.as_ref().map_or(xs.addr(), addr);
                let parts = kit.alloc(n * o * ckk)?;
                kit.gemm(
                    (false, true),
                    (o, ckk, hw),
                    (dy, hw, o * hw),
                    (cols, hw, ckk * hw),
                    (addr(&parts), ckk, o * ckk),
                    0.0,
                    n,
                )?;
                kit.launch(
                    "sum_batches_add",
                    o * ckk,
                    (addr(&parts), g.param(wg), n as i32, (o * ckk) as i32),
                )
            })?;
            if !x_grad {
                return Ok(());
            }
            let gx = g.acc(kit, xs.id, xs.len())?;
            kit.timed("conv2d.backward.input", || {
                if pointwise {
                    // dx_b[c, hw] += Wᵀ[c, o] · dy_b[o, hw]
                    kit.gemm(
                        (true, false),
                        (c, hw, o),
                        (wa, c, 0),
                        (dy, hw, o * hw),
                        (gx, hw, c * hw),
                        1.0,
                        n,
                    )
                } else if transposed {
                    let (okk, ihw) = (o * k * k, h * wd);
                    let wf = kit.alloc(c * okk)?;
                    kit.launch(
                        "flip_weights",
                        c * okk,
                        (wa, addr(&wf), o as i32, c as i32, k as i32),
                    )?;
                    let col = kit.im2col(dy, [n, o, ho, wo], k, 1, k - 1 - p_, [h, wd])?;
                    // dx_b[c, hw] += W̃[c, o·k²] · col(dy)_b[o·k², hw]
                    kit.gemm(
                        (false, false),
                        (c, ihw, okk),
                        (addr(&wf), okk, 0),
                        (addr(&col), ihw, okk * ihw),
                        (gx, ihw, c * ihw),
                        1.0,
                        n,
                    )
                } else {
                    let dcol = kit.alloc(n * ckk * hw)?;
                    kit.gemm(
                        (true, false),
                        (ckk, hw, o),
                        (wa, ckk, 0),
                        (dy, hw, o * hw),
                        (addr(&dcol), hw, ckk * hw),
                        0.0,
                        n,
                    )?;
                    let g = [h, wd, k, s_, p_, ho, wo].map(|v| v as i32);
                    kit.launch_planes(
                        "col2im_add",
                        n * c,
                        h * wd,
                        1,
                        (
                            addr(&dcol),
                            gx,
                            g[0],
                            g[1],
                            g[2],
                            g[3],
                            g[4],
                            g[5],
                            g[6],
                            (n * c) as i64,
                        ),
                    )
                }
            })
        });
        Ok(y)
    }

    fn batch_norm(
        &mut self,
        x: &GAct,
        gamma: &GParam,
        beta: &GParam,
        stats: &mut GStats,
        relu: bool,
    ) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let (hw, total) = (h * w, x.len());
        // Batch statistics: mean in [0, c), 1/√(var + ε) in [c, 2c).
        let mi = kit.alloc(2 * c)?;
        if self.train {
            kit.launch_blocks(
                "bn_stats",
                c as u32,
                (
                    x.addr(),
                    addr(&mi),
                    addr(&stats.mean),
                    addr(&stats.var),
                    n as i32,
                    c as i32,
                    hw as i32,
                    BN_EPS as f32,
                    BN_MOMENTUM as f32,
                ),
            )?;
        } else {
            kit.launch(
                "bn_eval_stats",
                c,
                (
                    addr(&stats.mean),
                    addr(&stats.var),
                    addr(&mi),
                    c as i32,
                    BN_EPS as f32,
                ),
            )?;
        }
        let (ga, ba) = (self.param(gamma), self.param(beta));
        let y = kit.alloc(total)?;
        kit.launch_planes(
            "bn_apply",
            n * c,
            hw,
            1,
            (
                x.addr(),
                addr(&y),
                addr(&mi),
                ga,
                ba,
                c as i32,
                hw as i32,
                (n * c) as i64,
                relu as i32,
            ),
        )?;
        let y = self.new_act(y, [n, c, h, w]);
        let (xs, gp, bp) = (x.clone(), *gamma, *beta);
        let flags = relu as i32 | (self.train as i32) << 1;
        self.backward("batch_norm.backward", &y, move |kit, g, dy| {
            let sums = kit.alloc(2 * c)?;
            let (dg, db) = (g.param(gp), g.param(bp));
            kit.launch_blocks(
                "bn_backward_sums",
                c as u32,
                (
                    dy,
                    xs.addr(),
                    addr(&mi),
                    ga,
                    ba,
                    addr(&sums),
                    dg,
                    db,
                    n as i32,
                    c as i32,
                    hw as i32,
                    relu as i32,
                ),
            )?;
            let gx = g.acc(kit, xs.id, total)?;
            kit.launch_planes(
                "bn_backward_apply",
                n * c,
                hw,
                1,
                (
                    dy,
                    xs.addr(),
                    addr(&mi),
                    ga,
                    ba,
                    addr(&sums),
                    gx,
                    c as i32,
                    hw as i32,
                    (n * c) as i64,
                    flags,
                ),
            )
        });
        Ok(y)
    }

    fn relu(&mut self, x: &GAct) -> Result<GAct> {
        let kit = self.kit;
        let total = x.len();
        let y = kit.alloc(total)?;
        kit.launch("relu_fwd", total, (x.addr(), addr(&y), total as i64))?;
        let y = self.new_act(y, x.dims);
        let (xid, ys) = (x.id, y.clone());
        self.backward("relu.backward", &y, move |kit, g, dy| {
            let gx = g.acc(kit, xid, total)?;
            kit.launch("relu_bwd", total, (dy, ys.addr(), gx, total as i64))
        });
        Ok(y)
    }

    fn concat(&mut self, xs: &[&GAct]) -> Result<GAct> {
        let kit = self.kit;
        let (n, _, h, w) = dims_of(xs[0]);
        if xs
            .iter()
            .any(|x| x.dims[0] != n || x.dims[2] != h || x.dims[3] != w)
        {
            bail!("concat: inputs differ in batch or spatial size");
        }
        let ctot: usize = xs.iter().map(|x| x.dims[1]).sum();
        let hw = h * w;
        let y = kit.alloc(n * ctot * hw)?;
        let mut parts = Vec::new();
        let mut off = 0;
        for x in xs {
            let cs = x.dims[1];
            kit.launch_planes(
                "copy_channels",
                n * cs,
                hw,
                1,
                (
                    x.addr(),
                    addr(&y),
                    cs as i32,
                    ctot as i32,
                    off as i32,
                    hw as i32,
                    (n * cs) as i64,
                ),
            )?;
            parts.push((x.id, cs, off));
            off += cs;
        }
        let y = self.new_act(y, [n, ctot, h, w]);
        self.backward("concat.backward", &y, move |kit, g, dy| {
            for (id, cs, off) in parts {
                let gx = g.acc(kit, id, n * cs * hw)?;
                kit.launch_planes(
                    "slice_channels_add",
                    n * cs,
                    hw,
                    1,
                    (
                        dy,
                        gx,
                        cs as i32,
                        ctot as i32,
                        off as i32,
                        hw as i32,
                        (n * cs) as i64,
                    ),
                )?;
            }
            Ok(())
        });
        Ok(y)
    }

    fn sum(&mut self, xs: &[&GAct]) -> Result<GAct> {
        let kit = self.kit;
        let total = xs[0].len();
        if xs.iter().any(|x| x.dims != xs[0].dims) {
            bail!("sum: inputs differ in shape");
        }
        let mut y = kit.alloc(total)?;
        kit.dev.dtod_copy(&*xs[0].buf, &mut y).map_err(drv)?;
        for x in &xs[1..] {
            kit.launch("add_into", total, (x.addr(), addr(&y), total as i64))?;
        }
        let y = self.new_act(y, xs[0].dims);
        let ids: Vec<usize> = xs.iter().map(|x| x.id).collect();
        self.backward("sum.backward", &y, move |kit, g, dy| {
            for id in ids {
                let gx = g.acc(kit, id, total)?;
                kit.launch("add_into", total, (dy, gx, total as i64))?;
            }
            Ok(())
        });
        Ok(y)
    }

    fn shortcut_a(&mut self, x: &GAct, stride: usize, out_ch: usize) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        if out_ch < c {
            bail!("shortcut_a: cannot reduce {c} channels to {out_ch}");
        }
        let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
        let before = (out_ch - c) / 2;
        let args = [n, c, h, w, out_ch, before, stride, ho, wo].map(|v| v as i32);
        let y = kit.alloc(n * out_ch * ho * wo)?;
        let [a0, a1, a2, a3, a4, a5, a6, a7, a8] = args;
        kit.launch(
            "shortcut_fwd",
            n * out_ch * ho * wo,
            (x.addr(), addr(&y), a0, a1, a2, a3, a4, a5, a6, a7, a8),
        )?;
        let y = self.new_act(y, [n, out_ch, ho, wo]);
        let (xid, xlen) = (x.id, x.len());
        self.backward("shortcut_a.backward", &y, move |kit, g, dy| {
            let gx = g.acc(kit, xid, xlen)?;
            kit.launch(
                "shortcut_bwd",
                n * c * ho * wo,
                (dy, gx, a0, a1, a2, a3, a4, a5, a6, a7, a8),
            )
        });
        Ok(y)
    }

    fn avg_pool(&mut self, x: &GAct, kernel: usize, stride: usize) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        if h < kernel || w < kernel {
            bail!("avg_pool: {kernel}×{kernel} window on a {h}×{w} map");
        }
        let (ho, wo) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
        let planes = (n * c) as i64;
        let g4 = [h, w, kernel, stride, ho, wo].map(|v| v as i32);
        let [a0, a1, a2, a3, a4, a5] = g4;
        let y = kit.alloc(n * c * ho * wo)?;
        kit.launch(
            "avg_pool_fwd",
            n * c * ho * wo,
            (x.addr(), addr(&y), planes, a0, a1, a2, a3, a4, a5),
        )?;
        let y = self.new_act(y, [n, c, ho, wo]);
        let (xid, xlen) = (x.id, x.len());
        self.backward("avg_pool.backward", &y, move |kit, g, dy| {
            let gx = g.acc(kit, xid, xlen)?;
            kit.launch(
                "avg_pool_bwd",
                xlen,
                (dy, gx, planes, a0, a1, a2, a3, a4, a5),
            )
        });
        Ok(y)
    }

    fn max_pool(&mut self, x: &GAct, kernel: usize, stride: usize, padding: usize) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let ho = (h + 2 * padding - kernel) / stride + 1;
        let wo = (w + 2 * padding - kernel) / stride + 1;
        let planes = (n * c) as i64;
        let out = n * c * ho * wo;
        let y = kit.alloc(out)?;
        let arg = unsafe { kit.dev.alloc::<i32>(out.max(1)) }.map_err(|e| oom(e, out))?;
        kit.launch(
            "max_pool_fwd",
            out,
            (
                x.addr(),
                addr(&y),
                addr(&arg),
                planes,
                h as i32,
                w as i32,
                kernel as i32,
                stride as i32,
                padding as i32,
                ho as i32,
                wo as i32,
            ),
        )?;
        let y = self.new_act(y, [n, c, ho, wo]);
        let (xid, xlen) = (x.id, x.len());
        self.backward("max_pool.backward", &y, move |kit, g, dy| {
            let gx = g.acc(kit, xid, xlen)?;
            kit.launch(
                "max_pool_bwd",
                out,
                (
                    dy,
                    addr(&arg),
                    gx,
                    planes,
                    h as i32,
                    w as i32,
                    ho as i32,
                    wo as i32,
                ),
            )
        });
        Ok(y)
    }

    fn global_avg_pool(&mut self, x: &GAct) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let hw = h * w;
        let y = kit.alloc(n * c)?;
        kit.launch_blocks(
            "global_avg_fwd",
            (n * c) as u32,
            (x.addr(), addr(&y), hw as i32),
        )?;
        let y = self.new_act(y, [n, c, 1, 1]);
        let (xid, xlen) = (x.id, x.len());
        self.backward("global_avg_pool.backward", &y, move |kit, g, dy| {
            let gx = g.acc(kit, xid, xlen)?;
            kit.launch("global_avg_bwd", xlen, (dy, gx, (n * c) as i64, hw as i32))
        });
        Ok(y)
    }

    fn linear(&mut self, x: &GAct, w: &GParam, bias: &GParam, out_features: usize) -> Result<GAct> {
        let kit = self.kit;
        let n = x.dims[0];
        let inf = x.len() / n;
        if w.len != inf * out_features {
            bail!(
                "linear: {inf} input features, the layer expects {}",
                w.len / out_features
            );
        }
        let (wa, ba) = (self.param(w), self.param(bias));
        let y = kit.alloc(n * out_features)?;
        // y[n, out] = x[n, in] · Wᵀ
        kit.gemm(
            (false, true),
            (n, out_features, inf),
            (x.addr(), inf, 0),
            (wa, inf, 0),
            (addr(&y), out_features, 0),
            0.0,
            1,
        )?;
        kit.launch(
            "add_bias",
            n * out_features,
            (addr(&y), ba, n as i32, out_features as i32),
        )?;
        let y = self.new_act(y, [n, out_features, 1, 1]);
        let (xs, wp, bp) = (x.clone(), *w, *bias);
        self.backward("linear.backward", &y, move |kit, g, dy| {
            // dW[out, in] += dyᵀ · x; dx[n, in] += dy · W; db += Σ_n dy.
            kit.gemm(
                (true, false),
                (out_features, inf, n),
                (dy, out_features, 0),
                (xs.addr(), inf, 0),
                (g.param(wp), inf, 0),
                1.0,
                1,
            )?;
            let gx = g.acc(kit, xs.id, xs.len())?;
            kit.gemm(
                (false, false),
                (n, inf, out_features),
                (dy, out_features, 0),
                (wa, inf, 0),
                (gx, inf, 0),
                1.0,
                1,
            )?;
            kit.launch(
                "bias_grad",
                out_features,
                (dy, g.param(bp), n as i32, out_features as i32),
            )
        });
        Ok(y)
    }
}

/// A model's parameters, batch-norm statistics and optimiser state on the GPU, and the
/// training step over them.
pub struct GpuTrainer {
    /// The device.
    pub kit: Rc<Kit>,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    handles: Vec<GParam>,
    stats: Vec<Option<GStats>>,
    moment1: CudaSlice<f32>,
    moment2: Option<CudaSlice<f32>>,
    /// Optimiser updates taken (mirrors [`State::steps`]).
    pub steps: u64,
}

/// What one step returns: mean loss and number of correct predictions.
#[derive(Clone, Copy, Debug)]
pub struct StepResult {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Images whose arg-max logit is the label.
    pub correct: usize,
}

impl GpuTrainer {
    /// Upload `model`'s parameters and statistics and the optimiser `state`.
    pub fn new(kit: Rc<Kit>, model: &Model<f32>, opt: &OptConfig, state: &State) -> Result<Self> {
        let mut handles = Vec::new();
        let mut flat = Vec::new();
        for v in &model.values {
            handles.push(GParam {
                off: flat.len(),
                len: v.len(),
            });
            flat.extend_from_slice(v);
        }
        let params = kit.upload(&flat)?;
        let grads = kit.zeros(flat.len())?;
        let stats = model
            .bn
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| {
                        Ok(GStats {
                            mean: kit.upload(&s.mean)?,
                            var: kit.upload(&s.var)?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let flatten = |v: &[Vec<f32>]| -> Vec<f32> {
            if v.is_empty() {
                vec![0.0; flat.len()]
            } else {
                v.concat()
            }
        };
        let moment1 = kit.upload(&flatten(&state.m))?;
        let moment2 = match opt.kind {
            OptKind::Adam => Some(kit.upload(&flatten(&state.v))?),
            OptKind::Sgd => None,
        };
        Ok(GpuTrainer {
            kit,
            params,
            grads,
            handles,
            stats,
            moment1,
            moment2,
            steps: state.steps,
        })
    }

    /// Forward (and, when `train`, backward) on one batch: the images go to the device once.
    /// Training mode uses batch statistics and updates the running ones; the parameter
    /// gradients are left in the flat gradient buffer for [`GpuTrainer::update`].
    pub fn step(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[u8],
        train: bool,
    ) -> Result<StepResult> {
        let (loss, correct, _) = self.run(model, x, labels, train, false)?;
        Ok(StepResult { loss, correct })
    }

    /// Logits of a forward pass (batch statistics when `train`; running statistics updated
    /// then, as in a training step). For agreement checks.
    pub fn logits(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[u8],
        train: bool,
    ) -> Result<Vec<f32>> {
        Ok(self.run(model, x, labels, train, true)?.2)
    }

    fn run(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[u8],
        train: bool,
        want_logits: bool,
    ) -> Result<(f64, usize, Vec<f32>)> {
        let s = model.net.input_shape();
        let n = labels.len();
        if x.len() != n * s.c * s.h * s.w {
            bail!("batch of {} values is not {n} images of {}", x.len(), s);
        }
        let classes = model.net.classes();
        let kit: &Kit = &self.kit;
        let xd = kit.upload(x)?;
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let labd = kit.dev.htod_sync_copy(&lab).map_err(drv)?;
        let mut ctx = GpuCtx::new(kit, addr(&self.params), train, train);
        let input = ctx.new_act(xd, [n, s.c, s.h, s.w]);
        let logits = model.walk(&mut ctx, input, &self.handles, &mut self.stats)?;
        if logits.len() != n * classes {
            bail!("the network's output is not {n}×{classes}");
        }
        let loss = kit.alloc(n)?;
        let dz = kit.alloc(n * classes)?;
        let hits = unsafe { kit.dev.alloc::<i32>(n) }.map_err(drv)?;
        kit.launch(
            "softmax_xent",
            n,
            (
                logits.addr(),
                addr(&labd),
                addr(&loss),
                addr(&dz),
                addr(&hits),
                n as i32,
                classes as i32,
            ),
        )?;
        let lv = if want_logits {
            kit.download(&logits.buf)?
        } else {
            Vec::new()
        };
        if train {
            kit.dev.memset_zeros(&mut self.grads).map_err(drv)?;
            let mut g = Grads {
                acts: HashMap::from([(logits.id, dz)]),
                params: addr(&self.grads),
            };
            drop(logits);
            ctx.run_backward(&mut g)?;
        }
        let losses = kit.download(&loss)?;
        let hits = kit.dev.dtoh_sync_copy(&hits).map_err(drv)?;
        let mean = losses.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
        Ok((mean, hits.iter().filter(|&&h| h != 0).count(), lv))
    }

    /// The parameter gradients of the last training step, per parameter (for checks).
    pub fn gradients(&self) -> Result<Vec<Vec<f32>>> {
        let flat = self.kit.download(&self.grads)?;
        Ok(self
            .handles
            .iter()
            .map(|h| flat[h.off..h.off + h.len].to_vec())
            .collect())
    }

    /// One optimiser update of every parameter from the last step's gradients (PyTorch's
    /// rules, as [`crate::optim::update`]), in one launch over the flat buffers.
    pub fn update(&mut self, cfg: &OptConfig, lr: f32) -> Result<()> {
        self.steps += 1;
        let n = self.handles.iter().map(|h| h.len).sum::<usize>();
        let (w, g, m) = (addr(&self.params), addr(&self.grads), addr(&self.moment1));
        match (cfg.kind, &self.moment2) {
            (OptKind::Sgd, _) => self.kit.launch(
                "sgd_update",
                n,
                (
                    w,
                    g,
                    m,
                    n as i64,
                    lr,
                    cfg.momentum,
                    cfg.weight_decay,
                    cfg.nesterov as i32,
                    (self.steps == 1) as i32,
                ),
            ),
            (OptKind::Adam, Some(v)) => {
                let (c1, c2) = ADAM.bias_corrections(self.steps);
                self.kit.launch(
                    "adam_update",
                    n,
                    (
                        w,
                        g,
                        m,
                        addr(v),
                        n as i64,
                        lr,
                        cfg.weight_decay,
                        c1,
                        c2,
                        ADAM.beta1,
                        ADAM.beta2,
                        ADAM.eps,
                    ),
                )
            }
            (OptKind::Adam, None) => bail!("Adam state missing on the device"),
        }
    }

    /// Copy parameters, running statistics and optimiser state back into the host copies
    /// (before a checkpoint or an evaluation on the CPU).
    pub fn download(&self, model: &mut Model<f32>, state: &mut State) -> Result<()> {
        let split = |flat: Vec<f32>| -> Vec<Vec<f32>> {
            self.handles
                .iter()
                .map(|h| flat[h.off..h.off + h.len].to_vec())
                .collect()
        };
        model.values = split(self.kit.download(&self.params)?);
        for (host, dev) in model.bn.iter_mut().zip(&self.stats) {
            if let (Some(h), Some(d)) = (host.as_mut(), dev.as_ref()) {
                h.mean = self.kit.download(&d.mean)?;
                h.var = self.kit.download(&d.var)?;
            }
        }
        state.m = split(self.kit.download(&self.moment1)?);
        if let Some(v) = &self.moment2 {
            state.v = split(self.kit.download(v)?);
        }
        state.steps = self.steps;
        Ok(())
    }

    /// Peak device memory of the allocation pool (bytes) since [`Kit::reset_peak`].
    pub fn peak_memory(&self) -> Option<u64> {
        self.kit.peak_memory()
    }
}

impl Kit {
    fn pool(&self) -> Option<sys::CUmemoryPool> {
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let r = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, *self.dev.cu_device()) };
        (r == sys::CUresult::CUDA_SUCCESS).then_some(pool)
    }

    /// Peak bytes in use in the device's allocation pool since the last reset, when the driver
    /// reports it.
    pub fn peak_memory(&self) -> Option<u64> {
        let pool = self.pool()?;
        let mut v: u64 = 0;
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
pub fn open(ordinal: usize, tf32: bool) -> Result<Rc<Kit>> {
    Ok(Rc::new(Kit::new(ordinal, tf32).context("opening the GPU")?))
}

#[cfg(test)]
mod tests {
    /// NVRTC needs no GPU: the kernels must compile wherever the `cuda` build links.
    #[test]
    fn kernels_compile_with_nvrtc() {
        let ptx = cudarc::nvrtc::compile_ptx(super::KERNELS).expect("kernels compile");
        let _ = ptx;
    }
}
