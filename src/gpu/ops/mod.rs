//! Every op of the network DAG on the GPU, one file per op family as on the CPU
//! (`cpu/ops/`): each implements its trait of [`crate::backend`] for [`GpuCtx`]; the tensor
//! types are here.

use anyhow::Result;
use cudarc::driver::CudaSlice;

use super::ctx::{GAct, GParam, GpuCtx};
use crate::backend::BackendCore;

mod combine;
mod conv;
mod linear;
mod loss;
mod norm;
mod pool;

/// An activation gradient's slot on the device.
type Slot = Option<CudaSlice<f32>>;

impl BackendCore for GpuCtx<'_> {
    type Act = GAct;
    type Param = GParam;
    type Grad = CudaSlice<f32>;

    fn dims(&self, x: &GAct) -> [usize; 4] {
        x.dims
    }

    fn records(&self) -> bool {
        self.record
    }

    fn training(&self) -> bool {
        self.train
    }

    fn fence(&mut self) -> Result<()> {
        self.kit.sync()
    }

    fn zeros(&mut self, dims: [usize; 4]) -> Result<GAct> {
        let buf = self.kit.zeros(dims.iter().product())?;
        Ok(self.new_act(buf, dims))
    }
}
