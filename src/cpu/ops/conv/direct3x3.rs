//! 3×3, stride-1 convolutions with padding 1 — every 3×3 layer of DenseNet, SparseNet and the
//! CIFAR ResNets — by the direct SIMD kernels of `direct.rs` over a zero-padded copy of the
//! sample ([`Padded`]). The weight gradient is the direct kernel's; the input gradient of a
//! narrowing layer (`out < in`) is the direct forward kernel again on the flipped, transposed
//! weight ([`ConvCfg::input_grad_by_transposed_conv`]), and that of a widening one is added up
//! tap by tap as k² shifted products over the padded layout.

use std::mem::MaybeUninit;

use super::direct::{self, Planes};
use super::{as_uninit, flip_transpose, zeroed, ConvCfg};
use crate::cpu::gemm::{Gemm, Strided};
use crate::cpu::simd::{Lanes, MAX_LANES};
use crate::cpu::{Elem, Param, Real};

/// The zero-padded layout of one sample for a 3×3 "same" convolution.
///
/// Pad the input once to `H'×W'` (`H' = h + 2p`, `W' = w + 2p`) and compute the output on a
/// "wide" grid of `h` rows of `W'` columns: with `q = y·W' + x`, input pixel (y + i, x + j) is
/// at `q + i·W' + j`, so kernel tap (i, j) is one product `W_ij (out×in) · X[:, q + i·W' + j]`
/// over strided views. The columns x ≥ w of the wide grid are discarded. Compared with im2col
/// this reads the input k² times instead of writing and reading a k²-times larger matrix:
/// layers with few output channels (growth 12) are limited by that memory traffic. The direct
/// kernels compute every tap of an output tile in registers over this layout.
struct Padded {
    k: usize,
    p: usize,
    h: usize,
    w: usize,
    /// Padded row length W'.
    wp: usize,
    /// Padded plane H'·W' (+ k of slack so the last taps of the discarded columns stay in bounds).
    plane: usize,
    /// Wide output length h·W'.
    len: usize,
}

impl Padded {
    fn new(cfg: &ConvCfg, h: usize, w: usize) -> Self {
        let (k, p) = (cfg.kernel, cfg.padding);
        let wp = w + 2 * p;
        Padded {
            k,
            p,
            h,
            w,
            wp,
            plane: (h + 2 * p) * wp + k,
            len: h * wp,
        }
    }

    /// Copy a sample into the zero-padded layout (only the border is zeroed: the scratch
    /// buffer is reused and its interior is overwritten).
    fn pad<E: Real>(&self, x: &[E], channels: usize, xp: &mut [E]) {
        let (p, w, wp) = (self.p, self.w, self.wp);
        for c in 0..channels {
            let plane = &mut xp[c * self.plane..(c + 1) * self.plane];
            plane[..p * wp].fill(E::zero());
            for y in 0..self.h {
                let row = &mut plane[(y + p) * wp..(y + p + 1) * wp];
                row[..p].fill(E::zero());
                row[p..p + w].copy_from_slice(&x[(c * self.h + y) * w..][..w]);
                row[p + w..].fill(E::zero());
            }
            plane[(self.h + p) * wp..].fill(E::zero());
        }
    }

    /// Positions of the wide output grid (`h·W'`).
    fn wide_len(&self) -> usize {
        self.len
    }

    /// The padded layout of `channels` planes, for the direct kernels.
    fn planes(&self, channels: usize) -> Planes {
        Planes {
            channels,
            plane: self.plane,
            wp: self.wp,
        }
    }

    /// [`Padded::pad`] into a buffer of the direct kernels' length for positions below `q_end`,
    /// the slack after the last plane zeroed (it is read, into positions that are discarded or
    /// multiplied by zero, and must hold no stale NaN).
    fn pad_for_direct<E: Real>(&self, x: &[E], channels: usize, q_end: usize, xp: &mut [E]) {
        self.pad(x, channels, xp);
        let end = self.planes(channels).needed(q_end);
        xp[channels * self.plane..end].fill(E::zero());
    }

    /// The wide grid's kept columns (`channels` rows of `len`) into `out` (`channels × h × w`).
    fn unwide<E: Real>(&self, wide: &[E], channels: usize, out: &mut [MaybeUninit<E>]) {
        for o in 0..channels {
            for y in 0..self.h {
                let src = &wide[o * self.len + y * self.wp..][..self.w];
                for (d, &v) in out[(o * self.h + y) * self.w..][..self.w]
                    .iter_mut()
                    .zip(src)
                {
                    d.write(v);
                }
            }
        }
    }

    /// A 3×3 layer by the direct kernel: `x` (`cin × h × w`) convolved with the weights `wt`
    /// (from [`direct::weights_by_tap`]) into `out` (`cout × h × w`, written whole). With
    /// `blocks`, the positions are cut into column blocks computed in parallel (for batches too
    /// small to occupy every core; the kernel sums each output in the same order either way).
    fn forward_direct<E: Real + Lanes>(
        &self,
        x: &[E],
        wt: &[E],
        (cin, cout): (usize, usize),
        blocks: bool,
        out: &mut [MaybeUninit<E>],
    ) {
        let geo = self.planes(cin);
        E::with_scratch(geo.needed(self.len), cout * self.len, |xp, wide| {
            self.pad_for_direct(x, cin, self.len, xp);
            let xp: &[E] = xp;
            if blocks {
                super::by_column_blocks(cout, self.len, wide, |c0, bl, part| {
                    direct::forward(xp, geo, wt, cout, part, bl, c0..c0 + bl)
                });
            } else {
                direct::forward(xp, geo, wt, cout, wide, self.len, 0..self.len);
            }
            self.unwide(wide, cout, out);
        });
    }

    /// View of the padded input shifted by tap (i, j), as a `channels × len` matrix.
    fn tap(&self, i: usize, j: usize) -> Strided {
        Strided {
            offset: i * self.wp + j,
            rs: self.plane,
            cs: 1,
        }
    }

    /// Accumulate the weight gradient of `samples` samples (`x`: their inputs back to back;
    /// `gout`: their output gradients) into `gw` and, if given (one sample only), write the
    /// input gradient into `gx`.
    #[allow(clippy::too_many_arguments)]
    fn backward<E: Real + Lanes>(
        &self,
        x: &[E],
        gout: &[E],
        samples: usize,
        wv: &[E],
        cfg: &ConvCfg,
        gw: &mut [E],
        gx: Option<&mut [E]>,
    ) {
        assert!(
            gx.is_none() || samples == 1,
            "an input gradient for one sample at a time"
        );
        // The output gradients on the wide grid, rows padded to a whole number of vectors.
        let gstride = self.len.div_ceil(MAX_LANES) * MAX_LANES;
        let (in_sz, out_sz) = (cfg.in_ch * self.h * self.w, cfg.out_ch * self.h * self.w);
        let x_step = self.planes(cfg.in_ch).needed(gstride);
        let g_step = cfg.out_ch * gstride;
        let gx_len = if gx.is_some() {
            cfg.in_ch * self.plane
        } else {
            0
        };
        E::with_scratch(samples * x_step + gx_len, samples * g_step, |buf, wide| {
            let (xps, gxp) = buf.split_at_mut(samples * x_step);
            for s in 0..samples {
                let xs = &x[s * in_sz..][..in_sz];
                self.pad_for_direct(xs, cfg.in_ch, gstride, &mut xps[s * x_step..][..x_step]);
                // Zero in the discarded columns and the padding: the direct kernel sums there.
                let gs = &gout[s * out_sz..][..out_sz];
                for o in 0..cfg.out_ch {
                    let row = &mut wide[s * g_step + o * gstride..][..gstride];
                    for y in 0..self.h {
                        let r = &mut row[y * self.wp..][..self.wp];
                        r[..self.w].copy_from_slice(&gs[(o * self.h + y) * self.w..][..self.w]);
                        r[self.w..].fill(E::zero());
                    }
                    row[self.len..].fill(E::zero());
                }
            }
            let geo = self.planes(cfg.in_ch);
            let steps = (samples, x_step, g_step);
            direct::weight_grad(xps, geo, wide, cfg.out_ch, gstride, steps, gw);
            if gx.is_some() {
                gxp.fill(E::zero());
            }
            for i in 0..self.k {
                for j in 0..self.k {
                    if gx.is_some() {
                        // gX[:, q + i·W' + j] += W_ij^T (in×out) · G (out×len)
                        let wt = Strided {
                            offset: i * self.k + j,
                            rs: self.k * self.k,
                            cs: cfg.in_ch * self.k * self.k,
                        };
                        Gemm::new(cfg.in_ch, self.len, cfg.out_ch)
                            .accumulating()
                            .run_strided(
                                (gxp, self.tap(i, j)),
                                (wv, wt),
                                (wide, Strided::rows(0, gstride)),
                            );
                    }
                }
            }
            if let Some(gx) = gx {
                for c in 0..cfg.in_ch {
                    for y in 0..self.h {
                        let src = c * self.plane + (y + self.p) * self.wp + self.p;
                        gx[(c * self.h + y) * self.w..][..self.w]
                            .copy_from_slice(&gxp[src..src + self.w]);
                    }
                }
            }
        });
    }
}

/// Wide-grid positions ([`Padded::wide_len`]) up to which the weight gradient sums a whole chunk
/// of samples in one pass of the direct kernel: a small plane's row is only a few vectors long,
/// and adding up the lanes once per sample would cost as much as the row.
const GROUPED_PLANE: usize = 512;

/// A 3×3 "same" layer for inputs of `h×w`, with its weight (and, for a narrowing layer's input
/// gradient, the flipped, transposed weight by tap).
pub(super) struct Direct3x3<'a, E> {
    cfg: ConvCfg,
    layout: Padded,
    weight: &'a Param<E>,
    /// The input gradient is a 3×3 "same" convolution of the output gradient.
    transposed: bool,
    /// Its layout (the output's size, which is the input's).
    t_layout: Padded,
    /// Its weight by tap (empty unless an input gradient is to be computed that way).
    t_by_tap: Vec<E>,
}

impl<'a, E: Elem> Direct3x3<'a, E> {
    pub(super) fn new(
        cfg: ConvCfg,
        h: usize,
        w: usize,
        weight: &'a Param<E>,
        input_grad: bool,
    ) -> Self {
        let transposed = cfg.input_grad_by_transposed_conv();
        let t_by_tap = if transposed && input_grad {
            direct::weights_by_tap(&flip_transpose(&weight.data, &cfg), cfg.out_ch, cfg.in_ch)
        } else {
            Vec::new()
        };
        Direct3x3 {
            cfg,
            layout: Padded::new(&cfg, h, w),
            weight,
            transposed,
            t_layout: Padded::new(&cfg.transposed(), cfg.out_size(h), cfg.out_size(w)),
            t_by_tap,
        }
    }

    /// One sample's output, by column blocks when `blocks` (the kernel sums each output in the
    /// same order either way).
    pub(super) fn forward(&self, x: &[E], out: &mut [E], blocks: bool) {
        let (cin, cout) = (self.cfg.in_ch, self.cfg.out_ch);
        let by_tap = self.weight.by_tap(cin);
        // SAFETY: `forward_direct` only writes initialised values through the view.
        let out = unsafe { as_uninit(out) };
        self.layout
            .forward_direct(x, by_tap, (cin, cout), blocks, out);
    }

    /// A narrowing layer's input gradient of one sample: the transposed convolution by the
    /// direct kernel, written whole into `dst`.
    fn transposed_dx(&self, gi: &[E], dst: &mut [MaybeUninit<E>]) {
        let (cin, cout) = (self.cfg.in_ch, self.cfg.out_ch);
        self.t_layout
            .forward_direct(gi, &self.t_by_tap, (cout, cin), false, dst);
    }

    /// The weight gradient of a chunk of samples and, when asked, their input gradients. Small
    /// planes sum the chunk's weight gradient in one pass of the kernel (where the input
    /// gradient, if any, comes from the transposed convolution); larger ones go sample by
    /// sample.
    pub(super) fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        mut gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        let cfg = &self.cfg;
        let wv: &[E] = &self.weight.data;
        let hw = self.layout.h * self.layout.w;
        let (in_sz, out_sz) = (cfg.in_ch * hw, cfg.out_ch * hw);
        if self.layout.wide_len() <= GROUPED_PLANE && (self.transposed || gx.is_none()) {
            self.layout.backward(x, gy, samples, wv, cfg, gw, None);
            if let Some(gx) = gx {
                for s in 0..samples {
                    let gi = &gy[s * out_sz..][..out_sz];
                    self.transposed_dx(gi, &mut gx[s * in_sz..][..in_sz]);
                }
            }
            return;
        }
        for s in 0..samples {
            let (xi, gi) = (&x[s * in_sz..][..in_sz], &gy[s * out_sz..][..out_sz]);
            match gx.as_deref_mut().map(|g| &mut g[s * in_sz..][..in_sz]) {
                // A narrowing layer: the input gradient by the transposed convolution writes
                // it once instead of accumulating k² times.
                Some(dst) if self.transposed => {
                    self.layout.backward(xi, gi, 1, wv, cfg, gw, None);
                    self.transposed_dx(gi, dst);
                }
                dst => self
                    .layout
                    .backward(xi, gi, 1, wv, cfg, gw, dst.map(zeroed)),
            }
        }
    }
}
