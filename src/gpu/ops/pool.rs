//! Pooling and the option-A shortcut on the GPU, by our kernels.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use super::Slot;
use crate::backend::PoolOps;
use crate::gpu::ctx::{dims_of, GAct, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

/// What a max pooling keeps on the GPU: the arg-max of every window and the output map size.
pub struct GMaxSaved {
    arg: CudaSlice<i32>,
    ho: usize,
    wo: usize,
}

impl PoolOps for GpuCtx<'_> {
    type MaxPoolSaved = GMaxSaved;

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
        kit.kernels().shortcut_fwd(
            Grid::Elems(n * out_ch * ho * wo),
            x.addr(),
            addr(&y),
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            a8,
        )?;
        Ok(self.new_act(y, [n, out_ch, ho, wo]))
    }

    fn shortcut_a_backward(
        &mut self,
        dy_buf: CudaSlice<f32>,
        x: [usize; 4],
        stride: usize,
        out_ch: usize,
        dx: &mut Slot,
    ) -> Result<()> {
        let [n, c, h, w] = x;
        let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
        let before = (out_ch - c) / 2;
        let [a0, a1, a2, a3, a4, a5, a6, a7, a8] =
            [n, c, h, w, out_ch, before, stride, ho, wo].map(|v| v as i32);
        let gx = self.slot(dx, n * c * h * w)?;
        self.kit.kernels().shortcut_bwd(
            Grid::Elems(n * c * ho * wo),
            addr(&dy_buf),
            gx,
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            a8,
        )
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
        kit.kernels().avg_pool_fwd(
            Grid::Elems(n * c * ho * wo),
            x.addr(),
            addr(&y),
            planes,
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
        )?;
        Ok(self.new_act(y, [n, c, ho, wo]))
    }

    fn avg_pool_backward(
        &mut self,
        dy_buf: CudaSlice<f32>,
        x: [usize; 4],
        kernel: usize,
        stride: usize,
        dx: &mut Slot,
    ) -> Result<()> {
        let [n, c, h, w] = x;
        let (ho, wo) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
        let planes = (n * c) as i64;
        let [a0, a1, a2, a3, a4, a5] = [h, w, kernel, stride, ho, wo].map(|v| v as i32);
        let xlen = n * c * h * w;
        let gx = self.slot(dx, xlen)?;
        self.kit.kernels().avg_pool_bwd(
            Grid::Elems(xlen),
            addr(&dy_buf),
            gx,
            planes,
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
        )
    }

    fn max_pool(
        &mut self,
        x: &GAct,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<(GAct, GMaxSaved)> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let ho = (h + 2 * padding - kernel) / stride + 1;
        let wo = (w + 2 * padding - kernel) / stride + 1;
        let planes = (n * c) as i64;
        let out = n * c * ho * wo;
        let y = kit.alloc(out)?;
        // Uninitialised: max_pool_fwd writes every arg-max index before any read.
        let arg = kit.alloc_of::<i32>(out)?;
        kit.kernels().max_pool_fwd(
            Grid::Elems(out),
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
        )?;
        Ok((self.new_act(y, [n, c, ho, wo]), GMaxSaved { arg, ho, wo }))
    }

    fn max_pool_backward(
        &mut self,
        saved: GMaxSaved,
        dy_buf: CudaSlice<f32>,
        x: [usize; 4],
        dx: &mut Slot,
    ) -> Result<()> {
        let [n, c, h, w] = x;
        let GMaxSaved { arg, ho, wo } = saved;
        let out = n * c * ho * wo;
        let gx = self.slot(dx, n * c * h * w)?;
        self.kit.kernels().max_pool_bwd(
            Grid::Elems(out),
            addr(&dy_buf),
            addr(&arg),
            gx,
            (n * c) as i64,
            h as i32,
            w as i32,
            ho as i32,
            wo as i32,
        )
    }

    fn global_avg_pool(&mut self, x: &GAct) -> Result<GAct> {
        let kit = self.kit;
        let (n, c, h, w) = dims_of(x);
        let hw = h * w;
        let y = kit.alloc(n * c)?;
        kit.kernels().global_avg_fwd(
            Grid::Blocks((n * c) as u32),
            x.addr(),
            addr(&y),
            hw as i32,
        )?;
        Ok(self.new_act(y, [n, c, 1, 1]))
    }

    fn global_avg_pool_backward(
        &mut self,
        dy_buf: CudaSlice<f32>,
        x: [usize; 4],
        dx: &mut Slot,
    ) -> Result<()> {
        let [n, c, h, w] = x;
        let xlen = n * c * h * w;
        let gx = self.slot(dx, xlen)?;
        self.kit.kernels().global_avg_bwd(
            Grid::Elems(xlen),
            addr(&dy_buf),
            gx,
            (n * c) as i64,
            (h * w) as i32,
        )
    }
}
