//! One pass on the GPU: device activations and parameters, and where the parameter gradients
//! go. The reverse pass itself is the trainer's one tape ([`crate::autodiff::Tape`]).

use anyhow::Result;
use cudarc::driver::CudaSlice;
use std::rc::Rc;

use super::kernels::DevPtr;
use super::kit::{addr, Kit};

/// An activation on the device.
#[derive(Clone)]
pub struct GAct {
    pub(super) buf: Rc<CudaSlice<f32>>,
    pub(super) dims: [usize; 4],
}

impl GAct {
    pub(super) fn len(&self) -> usize {
        self.dims.iter().product()
    }
    pub(super) fn addr(&self) -> DevPtr {
        addr(&self.buf)
    }
}

/// A parameter: a range of the flat parameter buffer (its gradient is the same range of the
/// flat gradient buffer).
#[derive(Clone, Copy, Debug)]
pub struct GParam {
    pub(super) off: usize,
    pub(super) len: usize,
}

/// Running statistics of one batch norm, on the device.
pub struct GStats {
    pub(super) mean: CudaSlice<f32>,
    pub(super) var: CudaSlice<f32>,
}

/// One forward pass on the GPU: the [`crate::backend::Backend`] the interpreter drives.
pub struct GpuCtx<'a> {
    pub(super) kit: &'a Kit,
    pub(super) params: DevPtr,
    /// The flat parameter-gradient buffer (backward primitives add into it).
    pub(super) grads: DevPtr,
    pub(super) train: bool,
    pub(super) record: bool,
}

impl<'a> GpuCtx<'a> {
    /// A forward pass over the flat parameter buffer at `params`, adding parameter gradients
    /// into the flat buffer at `grads`; `record` keeps the backward state (training).
    pub(super) fn new(
        kit: &'a Kit,
        params: DevPtr,
        grads: DevPtr,
        train: bool,
        record: bool,
    ) -> Self {
        GpuCtx {
            kit,
            params,
            grads,
            train,
            record,
        }
    }

    pub(super) fn new_act(&mut self, buf: CudaSlice<f32>, dims: [usize; 4]) -> GAct {
        GAct {
            buf: Rc::new(buf),
            dims,
        }
    }

    pub(super) fn param(&self, p: &GParam) -> DevPtr {
        self.params.at(p.off)
    }

    /// The address of a parameter's gradient.
    pub(super) fn param_grad(&self, p: &GParam) -> DevPtr {
        self.grads.at(p.off)
    }

    /// The gradient buffer in `dx` (`len` elements), created zeroed if it holds none yet: the
    /// backward kernels add into it.
    pub(super) fn slot(&self, dx: &mut Option<CudaSlice<f32>>, len: usize) -> Result<DevPtr> {
        if let Some(b) = dx {
            return Ok(addr(b));
        }
        let b = self.kit.zeros(len)?;
        let a = addr(&b);
        *dx = Some(b);
        Ok(a)
    }
}

impl GpuCtx<'_> {
    /// cuDNN's plan for this convolution, when the kit uses cuDNN and cuDNN has algorithms for
    /// the shape (otherwise our own convolution runs).
    pub(super) fn cudnn_plan(
        &self,
        x: [usize; 4],
        cfg: &crate::backend::ConvCfg,
    ) -> Result<Option<std::rc::Rc<super::dnn::Plan>>> {
        match &self.kit.cudnn {
            Some(d) => d.plan(super::dnn::ConvKey::new(x, cfg)),
            None => Ok(None),
        }
    }
}

pub(super) fn dims_of(x: &GAct) -> (usize, usize, usize, usize) {
    (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
}
