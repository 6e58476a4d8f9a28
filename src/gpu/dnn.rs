//! cuDNN 9 convolutions (forward, backward data, backward filter) on raw device addresses, so
//! that weights stay slices of the one flat parameter buffer.
//!
//! Per shape (batch, channels, size, kernel, stride, padding) a [`Plan`] holds the descriptors and
//! the algorithm of each direction, chosen once by cuDNN's own timing (`cudnnFind…Algorithm`,
//! the equivalent of PyTorch's `cudnn.benchmark = True`) among those whose workspace fits
//! [`WORKSPACE_LIMIT`], and cached. The workspace of each call comes from the stream-ordered
//! pool (allocated and freed on the stream, reused by the pool). TF32: the descriptors' math
//! type is `CUDNN_DEFAULT_MATH` (tensor cores allowed) when TF32 is on, `CUDNN_FMA_MATH` (full
//! f32) when off, as cuBLAS is set in [`super::kit::Kit::new`].

use anyhow::{anyhow, Result};
use cudarc::cudnn::{result, sys};
use cudarc::driver::CudaStream;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::kernels::DevPtr;
use super::kit::{addr, Kit};
use crate::backend::ConvCfg;

/// The largest workspace an algorithm may ask for (bytes).
pub const WORKSPACE_LIMIT: usize = 1 << 30;

/// A cuDNN status as an error.
fn dnn(what: &str, e: result::CudnnError) -> anyhow::Error {
    anyhow!("cuDNN {what}: {:?}", e.0)
}

/// The shape a plan is for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ConvKey {
    /// Input dimensions `[n, c, h, w]`.
    pub x: [usize; 4],
    /// Output channels, kernel, stride, padding.
    pub cfg: (usize, usize, usize, usize),
    /// Channel groups.
    pub groups: usize,
}

impl ConvKey {
    /// The key of `cfg` applied to an input of dimensions `x`.
    pub fn new(x: [usize; 4], cfg: &ConvCfg) -> Self {
        ConvKey {
            x,
            cfg: (cfg.out_ch, cfg.kernel, cfg.stride, cfg.padding),
            groups: cfg.groups.max(1),
        }
    }
}

/// Descriptors and algorithms for one shape.
pub struct Plan {
    x: sys::cudnnTensorDescriptor_t,
    y: sys::cudnnTensorDescriptor_t,
    w: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
    fwd: (sys::cudnnConvolutionFwdAlgo_t, usize),
    bwd_data: (sys::cudnnConvolutionBwdDataAlgo_t, usize),
    bwd_filter: (sys::cudnnConvolutionBwdFilterAlgo_t, usize),
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created by this plan and is destroyed once, here.
        unsafe {
            let _ = result::destroy_tensor_descriptor(self.x);
            let _ = result::destroy_tensor_descriptor(self.y);
            let _ = result::destroy_filter_descriptor(self.w);
            let _ = result::destroy_convolution_descriptor(self.conv);
        }
    }
}

/// The cuDNN handle on the kit's stream and the plans made so far.
pub struct Dnn {
    handle: sys::cudnnHandle_t,
    math: sys::cudnnMathType_t,
    plans: RefCell<HashMap<ConvKey, Option<Rc<Plan>>>>,
}

impl Drop for Dnn {
    fn drop(&mut self) {
        self.plans.borrow_mut().clear();
        // SAFETY: the handle was created in `new` and is destroyed once, after its plans.
        unsafe {
            let _ = result::destroy_handle(self.handle);
        }
    }
}

/// The first algorithm of cuDNN's timed list (fastest first) that ran and whose workspace fits
/// the limit.
fn fastest<A>(found: impl Iterator<Item = (A, sys::cudnnStatus_t, usize)>) -> Option<(A, usize)> {
    found
        .filter(|(_, status, ws)| {
            *status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && *ws <= WORKSPACE_LIMIT
        })
        .map(|(a, _, ws)| (a, ws))
        .next()
}

/// Results a `cudnnFind…Algorithm` call returns: `find(max, &mut count, results)` fills up to
/// `max` entries of a zeroed array; those filled, or an error for a failed call.
fn search<P: Copy>(
    err: impl Fn(result::CudnnError) -> anyhow::Error,
    find: impl FnOnce(std::ffi::c_int, *mut std::ffi::c_int, *mut P) -> sys::cudnnStatus_t,
) -> Result<Vec<P>> {
    const MAX: usize = 16;
    // SAFETY: the perf-result structs are plain C data (enums, integers, floats, arrays) for
    // which all-zero bytes are a valid value, as cuDNN's own examples initialise them.
    let mut r: Vec<P> = (0..MAX).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut count: std::ffi::c_int = 0;
    find(MAX as _, &mut count, r.as_mut_ptr())
        .result()
        .map_err(err)?;
    r.truncate((count.max(0) as usize).min(MAX));
    Ok(r)
}

impl Dnn {
    /// A cuDNN handle queued on `stream`.
    pub fn new(stream: &Arc<CudaStream>, tf32: bool) -> Result<Self> {
        result::version_check().map_err(|e| dnn("version", e))?;
        let handle = result::create_handle().map_err(|e| dnn("handle", e))?;
        // SAFETY: the handle is live; the stream is the kit's, which outlives it (the kit owns
        // both and drops this first).
        unsafe { result::set_stream(handle, stream.cu_stream() as sys::cudaStream_t) }
            .map_err(|e| dnn("stream", e))?;
        Ok(Dnn {
            handle,
            math: if tf32 {
                sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
            } else {
                sys::cudnnMathType_t::CUDNN_FMA_MATH
            },
            plans: RefCell::new(HashMap::new()),
        })
    }

    /// The plan for `key`, made on first use; `None` when cuDNN has no algorithm for the shape
    /// (the caller then uses our own convolution).
    pub fn plan(&self, key: ConvKey) -> Result<Option<Rc<Plan>>> {
        if let Some(p) = self.plans.borrow().get(&key) {
            return Ok(p.clone());
        }
        let p = self.make_plan(key)?.map(Rc::new);
        self.plans.borrow_mut().insert(key, p.clone());
        Ok(p)
    }

    fn make_plan(&self, key: ConvKey) -> Result<Option<Plan>> {
        let [n, c, h, w] = key.x;
        let (o, k, s, p) = key.cfg;
        let out = |v: usize| (v + 2 * p - k) / s + 1;
        let i = |v: usize| v as std::ffi::c_int;
        let f32t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let e = |what| move |err| dnn(what, err);
        let plan = Plan {
            x: result::create_tensor_descriptor().map_err(e("descriptor"))?,
            y: result::create_tensor_descriptor().map_err(e("descriptor"))?,
            w: result::create_filter_descriptor().map_err(e("descriptor"))?,
            conv: result::create_convolution_descriptor().map_err(e("descriptor"))?,
            fwd: (
                sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                0,
            ),
            bwd_data: (
                sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                0,
            ),
            bwd_filter: (
                sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                0,
            ),
        };
        // SAFETY: the descriptors were just created (and are destroyed by `Plan`'s Drop); the
        // dimensions are those of the tensors the plan will be used with.
        unsafe {
            result::set_tensor4d_descriptor(plan.x, nchw, f32t, [i(n), i(c), i(h), i(w)])
                .map_err(e("input"))?;
            result::set_tensor4d_descriptor(plan.y, nchw, f32t, [i(n), i(o), i(out(h)), i(out(w))])
                .map_err(e("output"))?;
            // A grouped filter is `[out, in/g, k, k]`; the group count goes on the convolution.
            let cg = c / key.groups;
            result::set_filter4d_descriptor(plan.w, f32t, nchw, [i(o), i(cg), i(k), i(k)])
                .map_err(e("filter"))?;
            result::set_convolution2d_descriptor(
                plan.conv,
                i(p),
                i(p),
                i(s),
                i(s),
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                f32t,
            )
            .map_err(e("convolution"))?;
            result::set_convolution_math_type(plan.conv, self.math).map_err(e("math type"))?;
            if key.groups > 1 {
                sys::cudnnSetConvolutionGroupCount(plan.conv, i(key.groups))
                    .result()
                    .map_err(e("group count"))?;
            }
        }
        let mut plan = plan;
        let h = self.handle;
        // SAFETY (the three searches): the handle and descriptors are live; cuDNN writes at most
        // `max` results into the array `search` hands it and their number into `count`.
        let fwd = search(e("forward search"), |max, count, r| unsafe {
            sys::cudnnFindConvolutionForwardAlgorithm(
                h, plan.x, plan.w, plan.conv, plan.y, max, count, r,
            )
        })?;
        let fwd = fastest(fwd.iter().map(|p| (p.algo, p.status, p.memory)));
        // SAFETY: as for the forward search.
        let bwd_data = search(e("backward-data search"), |max, count, r| unsafe {
            sys::cudnnFindConvolutionBackwardDataAlgorithm(
                h, plan.w, plan.y, plan.conv, plan.x, max, count, r,
            )
        })?;
        let bwd_data = fastest(bwd_data.iter().map(|p| (p.algo, p.status, p.memory)));
        // SAFETY: as for the forward search.
        let bwd_filter = search(e("backward-filter search"), |max, count, r| unsafe {
            sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                h, plan.x, plan.y, plan.conv, plan.w, max, count, r,
            )
        })?;
        let bwd_filter = fastest(bwd_filter.iter().map(|p| (p.algo, p.status, p.memory)));
        match (fwd, bwd_data, bwd_filter) {
            (Some(f), Some(d), Some(w)) => {
                plan.fwd = f;
                plan.bwd_data = d;
                plan.bwd_filter = w;
                Ok(Some(plan))
            }
            _ => Ok(None),
        }
    }

    /// A workspace of `bytes` from the stream-ordered pool (none for 0).
    fn workspace(kit: &Kit, bytes: usize) -> Result<Option<cudarc::driver::CudaSlice<u8>>> {
        (bytes > 0).then(|| kit.alloc_of::<u8>(bytes)).transpose()
    }

    /// `y = conv(x, w)` (overwritten).
    pub fn forward(&self, kit: &Kit, plan: &Plan, x: DevPtr, w: DevPtr, y: DevPtr) -> Result<()> {
        let ws = Self::workspace(kit, plan.fwd.1)?;
        let wsp = ws.as_ref().map_or(0, |b| addr(b).0);
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the addresses are live device buffers of the plan's shapes (the caller's
        // activation, weight slice and fresh output), the workspace has the algorithm's size.
        unsafe {
            result::convolution_forward(
                self.handle,
                &alpha as *const f32 as *const _,
                plan.x,
                x.0 as *const _,
                plan.w,
                w.0 as *const _,
                plan.conv,
                plan.fwd.0,
                wsp as *mut _,
                plan.fwd.1,
                &beta as *const f32 as *const _,
                plan.y,
                y.0 as *mut _,
            )
        }
        .map_err(|e| dnn("forward", e))
    }

    /// `dx += conv_transpose(dy, w)`.
    pub fn backward_data(
        &self,
        kit: &Kit,
        plan: &Plan,
        w: DevPtr,
        dy: DevPtr,
        dx: DevPtr,
    ) -> Result<()> {
        let ws = Self::workspace(kit, plan.bwd_data.1)?;
        let wsp = ws.as_ref().map_or(0, |b| addr(b).0);
        let (alpha, beta) = (1.0f32, 1.0f32);
        // SAFETY: as in `forward`; β = 1 adds into the existing input gradient.
        unsafe {
            result::convolution_backward_data(
                self.handle,
                &alpha as *const f32 as *const _,
                plan.w,
                w.0 as *const _,
                plan.y,
                dy.0 as *const _,
                plan.conv,
                plan.bwd_data.0,
                wsp as *mut _,
                plan.bwd_data.1,
                &beta as *const f32 as *const _,
                plan.x,
                dx.0 as *mut _,
            )
        }
        .map_err(|e| dnn("backward data", e))
    }

    /// `dw += Σ_batch dy ⋆ x`.
    pub fn backward_filter(
        &self,
        kit: &Kit,
        plan: &Plan,
        x: DevPtr,
        dy: DevPtr,
        dw: DevPtr,
    ) -> Result<()> {
        let ws = Self::workspace(kit, plan.bwd_filter.1)?;
        let wsp = ws.as_ref().map_or(0, |b| addr(b).0);
        let (alpha, beta) = (1.0f32, 1.0f32);
        // SAFETY: as in `forward`; β = 1 adds into the flat gradient buffer's slice.
        unsafe {
            result::convolution_backward_filter(
                self.handle,
                &alpha as *const f32 as *const _,
                plan.x,
                x.0 as *const _,
                plan.y,
                dy.0 as *const _,
                plan.conv,
                plan.bwd_filter.0,
                wsp as *mut _,
                plan.bwd_filter.1,
                &beta as *const f32 as *const _,
                plan.w,
                dw.0 as *mut _,
            )
        }
        .map_err(|e| dnn("backward filter", e))
    }
}
