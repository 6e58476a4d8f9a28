//! Concatenation, sum, ReLU and dropout on the GPU, by our kernels.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use super::Slot;
use crate::backend::{CombineOps, DropMask};
use crate::gpu::ctx::{dims_of, GAct, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

impl CombineOps for GpuCtx<'_> {
    type ReluSaved = GAct;

    fn relu(&mut self, x: &GAct) -> Result<(GAct, GAct)> {
        let kit = self.kit;
        let total = x.len();
        let y = kit.alloc(total)?;
        kit.kernels()
            .relu_fwd(Grid::Elems(total), x.addr(), addr(&y), total as i64)?;
        let y = self.new_act(y, x.dims);
        Ok((y.clone(), y))
    }

    fn relu_backward(&mut self, ys: GAct, dy_buf: CudaSlice<f32>, dx: &mut Slot) -> Result<()> {
        let total = ys.len();
        let gx = self.slot(dx, total)?;
        self.kit.kernels().relu_bwd(
            Grid::Elems(total),
            addr(&dy_buf),
            ys.addr(),
            gx,
            total as i64,
        )
    }

    fn dropout(&mut self, x: &GAct, mask: DropMask) -> Result<GAct> {
        let kit = self.kit;
        let total = x.len();
        let y = kit.alloc(total)?;
        kit.kernels().dropout_fwd(
            Grid::Elems(total),
            x.addr(),
            addr(&y),
            mask.key as i64,
            mask.threshold as i64,
            mask.scale(),
            total as i64,
        )?;
        Ok(self.new_act(y, x.dims))
    }

    fn dropout_backward(
        &mut self,
        mask: DropMask,
        dy_buf: CudaSlice<f32>,
        dx: &mut Slot,
    ) -> Result<()> {
        let total = dy_buf.len();
        let gx = self.slot(dx, total)?;
        self.kit.kernels().dropout_bwd(
            Grid::Elems(total),
            addr(&dy_buf),
            gx,
            mask.key as i64,
            mask.threshold as i64,
            mask.scale(),
            total as i64,
        )
    }

    fn scaled_sum(&mut self, xs: &[&GAct], a: f32) -> Result<GAct> {
        let y = self.sum(xs)?;
        let total = y.len();
        self.kit
            .kernels()
            .scale_by(Grid::Elems(total), y.addr(), a, total as i64)?;
        Ok(y)
    }

    fn accumulate_scaled(
        &mut self,
        g: &CudaSlice<f32>,
        a: f32,
        dims: [usize; 4],
        dx: &mut Slot,
    ) -> Result<()> {
        let total: usize = dims.iter().product();
        let gx = self.slot(dx, total)?;
        self.kit
            .kernels()
            .add_scaled(Grid::Elems(total), addr(g), gx, a, total as i64)
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
        let mut off = 0;
        for x in xs {
            let cs = x.dims[1];
            kit.kernels().copy_channels(
                Grid::Planes {
                    planes: n * cs,
                    inner: hw,
                    taps: 1,
                },
                x.addr(),
                addr(&y),
                cs as i32,
                ctot as i32,
                off as i32,
                hw as i32,
                (n * cs) as i64,
            )?;
            off += cs;
        }
        Ok(self.new_act(y, [n, ctot, h, w]))
    }

    fn concat_backward(
        &mut self,
        dy: &CudaSlice<f32>,
        y: [usize; 4],
        offset: usize,
        x: [usize; 4],
        dx: &mut Slot,
    ) -> Result<()> {
        let [n, cs, h, w] = x;
        let (hw, ctot) = (h * w, y[1]);
        let gx = self.slot(dx, n * cs * hw)?;
        self.kit.kernels().slice_channels_add(
            Grid::Planes {
                planes: n * cs,
                inner: hw,
                taps: 1,
            },
            addr(dy),
            gx,
            cs as i32,
            ctot as i32,
            offset as i32,
            hw as i32,
            (n * cs) as i64,
        )
    }

    fn sum(&mut self, xs: &[&GAct]) -> Result<GAct> {
        let kit = self.kit;
        let total = xs[0].len();
        if xs.iter().any(|x| x.dims != xs[0].dims) {
            bail!("sum: inputs differ in shape");
        }
        let mut y = kit.alloc(total)?;
        kit.copy(&xs[0].buf, &mut y)?;
        for x in &xs[1..] {
            kit.kernels()
                .add_into(Grid::Elems(total), x.addr(), addr(&y), total as i64)?;
        }
        Ok(self.new_act(y, xs[0].dims))
    }
}
