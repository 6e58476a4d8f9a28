//! Convolution on the GPU: cuDNN where it has a plan for the shape, else im2col and a cuBLAS product; bias by our kernels.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use super::Slot;
use crate::backend::{ConvCfg, ConvOps};
use crate::gpu::ctx::{dims_of, GAct, GParam, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

impl ConvOps for GpuCtx<'_> {
    type ConvSaved = GAct;

    fn conv2d(
        &mut self,
        x: &GAct,
        w: &GParam,
        bias: Option<&GParam>,
        cfg: ConvCfg,
    ) -> Result<(GAct, GAct)> {
        let (y, saved) = self.conv2d_unbiased(x, w, cfg)?;
        if let Some(b) = bias {
            let [_, o, ho, wo] = y.dims;
            if b.len != o {
                bail!("conv2d: bias has {} values, expected {o}", b.len);
            }
            let total = y.len();
            self.kit.kernels().add_channel_bias(
                Grid::Elems(total),
                y.addr(),
                self.param(b),
                o as i32,
                (ho * wo) as i32,
                total as i64,
            )?;
        }
        Ok((y, saved))
    }

    fn conv2d_backward(
        &mut self,
        xs: GAct,
        w: &GParam,
        bias: Option<&GParam>,
        cfg: ConvCfg,
        dy_buf: CudaSlice<f32>,
        dx: Option<&mut Slot>,
    ) -> Result<()> {
        if let Some(b) = bias {
            let (n, _, h, wd) = dims_of(&xs);
            let hw = cfg.out_size(h) * cfg.out_size(wd);
            self.kit.kernels().channel_bias_grad(
                Grid::Blocks(cfg.out_ch as u32),
                addr(&dy_buf),
                self.param_grad(b),
                n as i32,
                cfg.out_ch as i32,
                hw as i32,
            )?;
        }
        self.conv2d_backward_unbiased(xs, w, cfg, dy_buf, dx)
    }
}

/// The convolution without its bias: cuDNN's plan for the shape, else im2col and a product.
impl GpuCtx<'_> {
    fn conv2d_unbiased(&mut self, x: &GAct, w: &GParam, cfg: ConvCfg) -> Result<(GAct, GAct)> {
        let kit = self.kit;
        let (n, c, h, wd) = dims_of(x);
        if c != cfg.in_ch || w.len != cfg.weight_len() {
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
        if let Some(plan) = self.cudnn_plan(x.dims, &cfg)? {
            let dnn = kit.cudnn.as_ref().expect("a plan comes from cuDNN");
            kit.timed("conv2d.cudnn", || {
                dnn.forward(kit, &plan, x.addr(), wa, addr(&y))
            })?;
            return Ok((self.new_act(y, [n, o, ho, wo]), x.clone()));
        }
        let col = if pointwise {
            None
        } else {
            Some(kit.timed("conv2d.im2col", || {
                kit.im2col(x.addr(), [n, c, h, wd], k, s_, p_, [ho, wo])
            })?)
        };
        let cols = col.as_ref().map_or(x.addr(), addr);
        // Per group g (one group: the whole layer): rows g·cgkk.. of the columns are its input
        // channels' taps and rows g·og.. of W and y its output channels.
        // y_b[og, hw] = W_g[og, cgkk] · cols_b[cgkk, hw]
        let (g_n, og, cgkk) = group_sizes(&cfg);
        kit.timed("conv2d.gemm", || {
            for g in 0..g_n {
                kit.gemm(
                    (false, false),
                    (og, hw, cgkk),
                    (wa.at(g * og * cgkk), cgkk, 0),
                    (cols.at(g * cgkk * hw), hw, ckk * hw),
                    (addr(&y).at(g * og * hw), hw, o * hw),
                    0.0,
                    n,
                )?;
            }
            Ok(())
        })?;
        drop(col);
        Ok((self.new_act(y, [n, o, ho, wo]), x.clone()))
    }

    fn conv2d_backward_unbiased(
        &mut self,
        xs: GAct,
        w: &GParam,
        cfg: ConvCfg,
        dy_buf: CudaSlice<f32>,
        dx: Option<&mut Slot>,
    ) -> Result<()> {
        let kit = self.kit;
        let (n, c, h, wd) = dims_of(&xs);
        let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
        let (hw, ckk, o, k) = (ho * wo, c * cfg.kernel * cfg.kernel, cfg.out_ch, cfg.kernel);
        let pointwise = cfg.is_pointwise();
        let (s_, p_) = (cfg.stride, cfg.padding);
        let wa = self.param(w);
        // A narrowing stride-1 layer takes its input gradient as a convolution of dy with the
        // flipped kernel (padding k−1−p): columns of o·k² rows instead of c·k², and no col2im.
        let transposed = cfg.input_grad_by_transposed_conv();
        let dy = addr(&dy_buf);
        if let Some(plan) = self.cudnn_plan(xs.dims, &cfg)? {
            let dnn = kit.cudnn.as_ref().expect("a plan comes from cuDNN");
            kit.timed("conv2d.backward.cudnn", || {
                dnn.backward_filter(kit, &plan, xs.addr(), dy, self.param_grad(w))
            })?;
            if let Some(dx) = dx {
                let gx = self.slot(dx, xs.len())?;
                kit.timed("conv2d.backward.cudnn", || {
                    dnn.backward_data(kit, &plan, wa, dy, gx)
                })?;
            }
            return Ok(());
        }
        let (g_n, og, cgkk) = group_sizes(&cfg);
        let wlen = cfg.weight_len();
        // dW_g = Σ_b dy_b[og, hw] · cols_b[cgkk, hw]ᵀ per group: per image into `parts`, then
        // summed.
        kit.timed("conv2d.backward.weights", || {
            let col = if pointwise {
                None
            } else {
                Some(kit.im2col(xs.addr(), [n, c, h, wd], k, s_, p_, [ho, wo])?)
            };
            let cols = col.as_ref().map_or(xs.addr(), addr);
            let parts = kit.alloc(n * wlen)?;
            for g in 0..g_n {
                kit.gemm(
                    (false, true),
                    (og, cgkk, hw),
                    (dy.at(g * og * hw), hw, o * hw),
                    (cols.at(g * cgkk * hw), hw, ckk * hw),
                    (addr(&parts).at(g * og * cgkk), cgkk, wlen),
                    0.0,
                    n,
                )?;
            }
            kit.kernels().sum_batches_add(
                Grid::Elems(wlen),
                addr(&parts),
                self.param_grad(w),
                n as i32,
                wlen as i32,
            )
        })?;
        let Some(dx) = dx else {
            return Ok(());
        };
        let gx = self.slot(dx, xs.len())?;
        kit.timed("conv2d.backward.input", || {
            if pointwise {
                // dx_b[cg, hw] += W_gᵀ[cg, og] · dy_b[og, hw] per group
                for g in 0..g_n {
                    kit.gemm(
                        (true, false),
                        (cgkk, hw, og),
                        (wa.at(g * og * cgkk), cgkk, 0),
                        (dy.at(g * og * hw), hw, o * hw),
                        (gx.at(g * cgkk * hw), hw, c * hw),
                        1.0,
                        n,
                    )?;
                }
                Ok(())
            } else if transposed {
                let (okk, ihw) = (o * k * k, h * wd);
                let wf = kit.alloc(c * okk)?;
                kit.kernels().flip_weights(
                    Grid::Elems(c * okk),
                    wa,
                    addr(&wf),
                    o as i32,
                    c as i32,
                    k as i32,
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
                // dcol_b[cgkk, hw] = W_gᵀ[cgkk, og] · dy_b[og, hw] per group
                for g in 0..g_n {
                    kit.gemm(
                        (true, false),
                        (cgkk, hw, og),
                        (wa.at(g * og * cgkk), cgkk, 0),
                        (dy.at(g * og * hw), hw, o * hw),
                        (addr(&dcol).at(g * cgkk * hw), hw, ckk * hw),
                        0.0,
                        n,
                    )?;
                }
                let g = [h, wd, k, s_, p_, ho, wo].map(|v| v as i32);
                kit.kernels().col2im_add(
                    Grid::Planes {
                        planes: n * c,
                        inner: h * wd,
                        taps: 1,
                    },
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
                )
            }
        })
    }
}

/// `(groups, output channels per group, weight values per output channel)`: one group's
/// product is `og × cgkk` by `cgkk × hw` (`cgkk = in/g · k²`).
fn group_sizes(cfg: &ConvCfg) -> (usize, usize, usize) {
    let one = cfg.per_group();
    (
        cfg.groups.max(1),
        one.out_ch,
        one.in_ch * cfg.kernel * cfg.kernel,
    )
}
