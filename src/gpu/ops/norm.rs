//! Batch norm on the GPU (with the fused ReLU), by our kernels.

use anyhow::Result;
use cudarc::driver::CudaSlice;

use super::Slot;
use crate::backend::{NormOps, BN_EPS, BN_MOMENTUM};
use crate::gpu::ctx::{dims_of, GAct, GParam, GStats, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

/// What a batch norm keeps on the GPU: its input, the batch statistics it normalised with
/// (mean in `[0, c)`, `1/√(var + ε)` in `[c, 2c)`), and its mode.
pub struct GNormSaved {
    x: GAct,
    mi: CudaSlice<f32>,
    relu: bool,
    train: bool,
}

impl NormOps for GpuCtx<'_> {
    type Stats = GStats;
    type NormSaved = GNormSaved;

    fn batch_norm(
        &mut self,
        x: &GAct,
        gamma: &GParam,
        beta: &GParam,
        stats: &mut GStats,
        relu: bool,
    ) -> Result<(GAct, GNormSaved)> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let (hw, total) = (h * w, x.len());
        // Batch statistics: mean in [0, c), 1/√(var + ε) in [c, 2c).
        let mi = kit.alloc(2 * c)?;
        if self.train {
            kit.kernels().bn_stats(
                Grid::Blocks(c as u32),
                x.addr(),
                addr(&mi),
                addr(&stats.mean),
                addr(&stats.var),
                n as i32,
                c as i32,
                hw as i32,
                BN_EPS as f32,
                BN_MOMENTUM as f32,
            )?;
        } else {
            kit.kernels().bn_eval_stats(
                Grid::Elems(c),
                addr(&stats.mean),
                addr(&stats.var),
                addr(&mi),
                c as i32,
                BN_EPS as f32,
            )?;
        }
        let (ga, ba) = (self.param(gamma), self.param(beta));
        let y = kit.alloc(total)?;
        kit.kernels().bn_apply(
            Grid::Planes {
                planes: n * c,
                inner: hw,
                taps: 1,
            },
            x.addr(),
            addr(&y),
            addr(&mi),
            ga,
            ba,
            c as i32,
            hw as i32,
            (n * c) as i64,
            relu as i32,
        )?;
        let saved = GNormSaved {
            x: x.clone(),
            mi,
            relu,
            train: self.train,
        };
        Ok((self.new_act(y, [n, c, h, w]), saved))
    }

    fn batch_norm_backward(
        &mut self,
        saved: GNormSaved,
        gamma: &GParam,
        beta: &GParam,
        dy_buf: CudaSlice<f32>,
        dx: &mut Slot,
    ) -> Result<()> {
        let kit = self.kit;
        let GNormSaved {
            x: xs,
            mi,
            relu,
            train,
        } = saved;
        let (n, c, h, w) = dims_of(&xs);
        let (hw, total) = (h * w, xs.len());
        let (ga, ba) = (self.param(gamma), self.param(beta));
        let flags = relu as i32 | (train as i32) << 1;
        let dy = addr(&dy_buf);
        let sums = kit.alloc(2 * c)?;
        let (dg, db) = (self.param_grad(gamma), self.param_grad(beta));
        kit.kernels().bn_backward_sums(
            Grid::Blocks(c as u32),
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
        )?;
        let gx = self.slot(dx, total)?;
        kit.kernels().bn_backward_apply(
            Grid::Planes {
                planes: n * c,
                inner: hw,
                taps: 1,
            },
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
        )
    }
}
