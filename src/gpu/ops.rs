//! Every op of the network DAG on the GPU, forward and backward primitives: the [`Backend`]
//! the interpreter and the tape drive.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use super::ctx::{dims_of, GAct, GParam, GStats, GpuCtx};
use super::kernels::Grid;
use super::kit::addr;
use crate::backend::{Backend, ConvCfg};
use crate::ops::norm::{BN_EPS, BN_MOMENTUM};

/// What a batch norm keeps on the GPU: its input, the batch statistics it normalised with
/// (mean in `[0, c)`, `1/√(var + ε)` in `[c, 2c)`), and its mode.
pub struct GNormSaved {
    x: GAct,
    mi: CudaSlice<f32>,
    relu: bool,
    train: bool,
}

/// What a max pooling keeps on the GPU: the arg-max of every window and the output map size.
pub struct GMaxSaved {
    arg: CudaSlice<i32>,
    ho: usize,
    wo: usize,
}

/// The per-image losses and hit flags of a cross-entropy, read back after the reverse pass.
pub struct GLoss {
    loss: CudaSlice<f32>,
    hits: CudaSlice<i32>,
}

type Slot = Option<CudaSlice<f32>>;

impl Backend for GpuCtx<'_> {
    type Act = GAct;
    type Param = GParam;
    type Stats = GStats;
    type Grad = CudaSlice<f32>;
    type ConvSaved = GAct;
    type NormSaved = GNormSaved;
    type ReluSaved = GAct;
    type MaxPoolSaved = GMaxSaved;
    type LinearSaved = GAct;
    type PendingLoss = GLoss;

    fn dims(&self, x: &GAct) -> [usize; 4] {
        x.dims
    }

    fn records(&self) -> bool {
        self.record
    }

    fn fence(&mut self) -> Result<()> {
        self.kit.sync()
    }

    fn conv2d(&mut self, x: &GAct, w: &GParam, cfg: ConvCfg) -> Result<(GAct, GAct)> {
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
        Ok((self.new_act(y, [n, o, ho, wo]), x.clone()))
    }

    fn conv2d_backward(
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
            kit.kernels().sum_batches_add(
                Grid::Elems(o * ckk),
                addr(&parts),
                self.param_grad(w),
                n as i32,
                (o * ckk) as i32,
            )
        })?;
        let Some(dx) = dx else {
            return Ok(());
        };
        let gx = self.slot(dx, xs.len())?;
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

    fn zeros(&mut self, dims: [usize; 4]) -> Result<GAct> {
        let buf = self.kit.zeros(dims.iter().product())?;
        Ok(self.new_act(buf, dims))
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

    fn accumulate(&mut self, g: &CudaSlice<f32>, dims: [usize; 4], dx: &mut Slot) -> Result<()> {
        let total: usize = dims.iter().product();
        let gx = self.slot(dx, total)?;
        self.kit
            .kernels()
            .add_into(Grid::Elems(total), addr(g), gx, total as i64)
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

    fn cross_entropy(
        &mut self,
        logits: &GAct,
        labels: &[u8],
    ) -> Result<(Option<CudaSlice<f32>>, GLoss)> {
        let kit = self.kit;
        let [n, classes, h, w] = logits.dims;
        if n != labels.len() || h * w != 1 {
            bail!(
                "logits are {n}×{classes}×{h}×{w}, expected {}×classes×1×1",
                labels.len()
            );
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
            bail!("label {l} is not below the network's {classes} classes");
        }
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let labd = kit.upload(&lab)?;
        let loss = kit.alloc(n)?;
        let dz = kit.alloc(n * classes)?;
        // Uninitialised: softmax_xent writes every image's hit flag before the
        // copy back.
        let hits = kit.alloc_of::<i32>(n)?;
        kit.kernels().softmax_xent(
            Grid::Elems(n),
            logits.addr(),
            addr(&labd),
            addr(&loss),
            addr(&dz),
            addr(&hits),
            n as i32,
            classes as i32,
        )?;
        Ok((self.record.then_some(dz), GLoss { loss, hits }))
    }

    fn read_loss(&mut self, l: GLoss) -> Result<(f64, usize)> {
        let losses = self.kit.download(&l.loss)?;
        let hits = self.kit.download(&l.hits)?;
        let mean = losses.iter().map(|&v| v as f64).sum::<f64>() / losses.len().max(1) as f64;
        Ok((mean, hits.iter().filter(|&&h| h != 0).count()))
    }
}
