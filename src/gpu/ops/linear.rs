//! The fully connected layer on the GPU: a cuBLAS product and our bias kernels.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use super::Slot;
use crate::backend::LinearOps;
use crate::gpu::ctx::{GAct, GParam, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

impl LinearOps for GpuCtx<'_> {
    type LinearSaved = GAct;

    fn linear(
        &mut self,
        x: &GAct,
        w: &GParam,
        bias: &GParam,
        out_features: usize,
    ) -> Result<(GAct, GAct)> {
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
        kit.kernels().add_bias(
            Grid::Elems(n * out_features),
            addr(&y),
            ba,
            n as i32,
            out_features as i32,
        )?;
        Ok((self.new_act(y, [n, out_features, 1, 1]), x.clone()))
    }

    fn linear_backward(
        &mut self,
        xs: GAct,
        w: &GParam,
        bias: &GParam,
        dy_buf: CudaSlice<f32>,
        dx: &mut Slot,
    ) -> Result<()> {
        let kit = self.kit;
        let (n, out_features) = (xs.dims[0], bias.len);
        let inf = xs.len() / n;
        let wa = self.param(w);
        let dy = addr(&dy_buf);
        // dW[out, in] += dyᵀ · x; dx[n, in] += dy · W; db += Σ_n dy.
        kit.gemm(
            (true, false),
            (out_features, inf, n),
            (dy, out_features, 0),
            (xs.addr(), inf, 0),
            (self.param_grad(w), inf, 0),
            1.0,
            1,
        )?;
        let gx = self.slot(dx, xs.len())?;
        kit.gemm(
            (false, false),
            (n, inf, out_features),
            (dy, out_features, 0),
            (wa, inf, 0),
            (gx, inf, 0),
            1.0,
            1,
        )?;
        kit.kernels().bias_grad(
            Grid::Elems(out_features),
            dy,
            self.param_grad(bias),
            n as i32,
            out_features as i32,
        )
    }
}
