//! "Same" stride-1 convolutions (every 3×3 layer of DenseNet/SparseNet) as k² shifted products
//! over a zero-padded input, forward and backward, for one sample.

use super::ConvCfg;
use crate::ops::gemm::{Gemm, Strided};
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

    /// Accumulate this sample's weight gradient into `gw` and, if given, write its input
    /// gradient into `gx`.
    pub(super) fn backward<E: Real>(
        &self,
        x: &[E],
        gout: &[E],
        wv: &[E],
        cfg: &ConvCfg,
        gw: &mut [E],
        gx: Option<&mut [E]>,
    ) {
        let gx_len = if gx.is_some() {
            cfg.in_ch * self.plane
        } else {
            0
        };
        E::with_scratch(
            cfg.in_ch * self.plane + gx_len,
            cfg.out_ch * self.len,
            |buf, wide| {
                let (xp, gxp) = buf.split_at_mut(cfg.in_ch * self.plane);
                self.pad(x, cfg.in_ch, xp);
                // The output gradient on the wide grid, zero in the discarded columns.
                for o in 0..cfg.out_ch {
                    for y in 0..self.h {
                        let row = &mut wide[o * self.len + y * self.wp..][..self.wp];
                        row[..self.w].copy_from_slice(&gout[(o * self.h + y) * self.w..][..self.w]);
                        row[self.w..].fill(E::zero());
                    }
                }
                if gx.is_some() {
                    gxp.fill(E::zero());
                }
                for i in 0..self.k {
                    for j in 0..self.k {
                        // gW[:, :, i, j] += G (out×len) · X_ij^T (len×in)
                        let xt = Strided {
                            offset: i * self.wp + j,
                            rs: 1,
                            cs: self.plane,
                        };
                        Gemm::new(cfg.out_ch, cfg.in_ch, self.len)
                            .accumulating()
                            .run_strided(
                                (gw, self.weight(cfg.in_ch, i, j)),
                                (wide, Strided::rows(0, self.len)),
                                (xp, xt),
                            );
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
                                    (wide, Strided::rows(0, self.len)),
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
            },
        );
    }
}
