//! "Same" stride-1 convolutions (every 3×3 layer of DenseNet/SparseNet) as k² shifted products
//! over a zero-padded input, forward and backward, for one sample.

use std::mem::MaybeUninit;

use super::direct::{self, Planes};
use super::ConvCfg;
use crate::ops::gemm::{Gemm, Strided};
use crate::ops::simd::{Lanes, MAX_LANES};
use crate::ops::Real;

/// "Same" convolution by shifted products, for one sample.
///
/// Pad the input once to `H'×W'` (`H' = h + 2p`, `W' = w + 2p`) and compute the output on a
/// "wide" grid of `h` rows of `W'` columns: with `q = y·W' + x`, input pixel (y + i, x + j) is
/// at `q + i·W' + j`, so kernel tap (i, j) is one product `W_ij (out×in) · X[:, q + i·W' + j]`
/// over strided views. The columns x ≥ w of the wide grid are discarded. Compared with im2col
/// this reads the input k² times instead of writing and reading a k²-times larger matrix:
/// layers with few output channels (growth 12) are limited by that memory traffic.
pub(super) struct Same {
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

impl Same {
    pub(super) fn new(cfg: &ConvCfg, h: usize, w: usize) -> Self {
        let (k, p) = (cfg.kernel, cfg.padding);
        let wp = w + 2 * p;
        Same {
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
    pub(super) fn wide_len(&self) -> usize {
        self.len
    }

    /// Whether the direct 3×3 kernels ([`direct`]) compute this convolution.
    pub(super) fn is_direct(&self) -> bool {
        self.k == 3
    }

    /// The padded layout of `channels` planes, for the direct kernels.
    fn planes(&self, channels: usize) -> Planes {
        Planes {
            channels,
            plane: self.plane,
            wp: self.wp,
        }
    }

    /// [`Same::pad`] into a buffer of the direct kernels' length for positions below `q_end`,
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
    pub(super) fn forward_direct<E: Real + Lanes>(
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

    /// View of the weight slice W[:, :, i, j] as an `out × in` matrix.
    fn weight(&self, cin: usize, i: usize, j: usize) -> Strided {
        Strided {
            offset: i * self.k + j,
            rs: cin * self.k * self.k,
            cs: self.k * self.k,
        }
    }

    pub(super) fn forward<E: Real>(&self, x: &[E], wv: &[E], cfg: &ConvCfg, out: &mut [E]) {
        E::with_scratch(cfg.in_ch * self.plane, cfg.out_ch * self.len, |xp, wide| {
            self.pad(x, cfg.in_ch, xp);
            for i in 0..self.k {
                for j in 0..self.k {
                    let first = i == 0 && j == 0;
                    Gemm::new(cfg.out_ch, self.len, cfg.in_ch)
                        .accumulating_if(!first)
                        .run_strided(
                            (wide, Strided::rows(0, self.len)),
                            (wv, self.weight(cfg.in_ch, i, j)),
                            (xp, self.tap(i, j)),
                        );
                }
            }
            for o in 0..cfg.out_ch {
                for y in 0..self.h {
                    out[(o * self.h + y) * self.w..][..self.w]
                        .copy_from_slice(&wide[o * self.len + y * self.wp..][..self.w]);
                }
            }
        });
    }

    /// [`Same::forward`] with the wide grid's columns cut into blocks computed in parallel
    /// (see `by_column_blocks`): for batches too small to occupy every core by samples.
    pub(super) fn forward_by_column_blocks<E: Real>(
        &self,
        x: &[E],
        wv: &[E],
        cfg: &ConvCfg,
        out: &mut [E],
    ) {
        let mut xp = vec![E::zero(); cfg.in_ch * self.plane];
        self.pad(x, cfg.in_ch, &mut xp);
        let mut wide = vec![E::zero(); cfg.out_ch * self.len];
        super::by_column_blocks(cfg.out_ch, self.len, &mut wide, |c0, bl, part| {
            for i in 0..self.k {
                for j in 0..self.k {
                    let mut tap = self.tap(i, j);
                    tap.offset += c0;
                    Gemm::new(cfg.out_ch, bl, cfg.in_ch)
                        .accumulating_if(i != 0 || j != 0)
                        .run_strided(
                            (part, Strided::rows(0, bl)),
                            (wv, self.weight(cfg.in_ch, i, j)),
                            (&xp, tap),
                        );
                }
            }
        });
        for o in 0..cfg.out_ch {
            for y in 0..self.h {
                out[(o * self.h + y) * self.w..][..self.w]
                    .copy_from_slice(&wide[o * self.len + y * self.wp..][..self.w]);
            }
        }
    }

    /// Accumulate the weight gradient of `samples` samples (`x`: their inputs back to back;
    /// `gout`: their output gradients) into `gw` and, if given (one sample only), write the
    /// input gradient into `gx`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward<E: Real + Lanes>(
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
            if self.is_direct() {
                let geo = self.planes(cfg.in_ch);
                let steps = (samples, x_step, g_step);
                direct::weight_grad(xps, geo, wide, cfg.out_ch, gstride, steps, gw);
            }
            if gx.is_some() {
                gxp.fill(E::zero());
            }
            for i in 0..self.k {
                for j in 0..self.k {
                    if !self.is_direct() {
                        // gW[:, :, i, j] += G (out×len) · X_ij^T (len×in), per sample.
                        for s in 0..samples {
                            let xt = Strided {
                                offset: s * x_step + i * self.wp + j,
                                rs: 1,
                                cs: self.plane,
                            };
                            Gemm::new(cfg.out_ch, cfg.in_ch, self.len)
                                .accumulating()
                                .run_strided(
                                    (gw, self.weight(cfg.in_ch, i, j)),
                                    (wide, Strided::rows(s * g_step, gstride)),
                                    (xps, xt),
                                );
                        }
                    }
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
