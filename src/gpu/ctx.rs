//! One pass on the GPU: device activations and parameters, and the tape of backward steps that
//! [`super::ops`] records.

use anyhow::Result;
use cudarc::driver::CudaSlice;
use std::collections::HashMap;
use std::rc::Rc;

use super::kernels::DevPtr;
use super::kit::{addr, Kit};

/// An activation on the device.
#[derive(Clone)]
pub struct GAct {
    /// Identity on the tape (its gradient's key).
    pub(super) id: usize,
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

/// Gradients during the backward pass: one buffer per activation (created zeroed on first
/// use, freed once its producer has consumed it) and the flat parameter gradient.
pub struct Grads {
    pub(super) acts: HashMap<usize, CudaSlice<f32>>,
    pub(super) params: DevPtr,
}

impl Grads {
    /// The gradient buffer of activation `id` (`len` elements), zeroed on first use.
    pub(super) fn acc(&mut self, kit: &Kit, id: usize, len: usize) -> Result<DevPtr> {
        if let Some(b) = self.acts.get(&id) {
            return Ok(addr(b));
        }
        let b = kit.zeros(len)?;
        let a = addr(&b);
        self.acts.insert(id, b);
        Ok(a)
    }
    /// The address of a parameter's gradient.
    pub(super) fn param(&self, p: GParam) -> DevPtr {
        self.params.at(p.off)
    }
}

pub(super) type BackOp = Box<dyn FnOnce(&Kit, &mut Grads) -> Result<()>>;

/// One forward pass on the GPU: the [`Backend`] the interpreter drives.
pub struct GpuCtx<'a> {
    pub(super) kit: &'a Kit,
    pub(super) params: DevPtr,
    pub(super) tape: Vec<BackOp>,
    pub(super) next_id: usize,
    pub(super) train: bool,
    pub(super) record: bool,
}

impl<'a> GpuCtx<'a> {
    /// A forward pass over the flat parameter buffer at `params`; `record` keeps the backward
    /// steps (training).
    pub(super) fn new(kit: &'a Kit, params: DevPtr, train: bool, record: bool) -> Self {
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
    pub(super) fn run_backward(self, g: &mut Grads) -> Result<()> {
        for op in self.tape.into_iter().rev() {
            op(self.kit, g)?;
        }
        Ok(())
    }

    pub(super) fn new_act(&mut self, buf: CudaSlice<f32>, dims: [usize; 4]) -> GAct {
        self.next_id += 1;
        GAct {
            id: self.next_id,
            buf: Rc::new(buf),
            dims,
        }
    }

    pub(super) fn param(&self, p: &GParam) -> DevPtr {
        self.params.at(p.off)
    }

    /// Record the backward step of output `out` (skipped when its gradient never arrives);
    /// `label` names it in the profile (`SPARSENET_PROFILE`, which synchronises around it).
    pub(super) fn backward(
        &mut self,
        label: &'static str,
        out: &GAct,
        f: impl FnOnce(&Kit, &mut Grads, DevPtr) -> Result<()> + 'static,
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

pub(super) fn dims_of(x: &GAct) -> (usize, usize, usize, usize) {
    (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
}
