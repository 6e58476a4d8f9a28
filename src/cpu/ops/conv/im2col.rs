//! Convolutions of any other shape (strided layers, the 7×7 stem, kernels other than 1×1 and
//! 3×3): the column matrix of a sample (im2col) and one product, and its adjoint (col2im) for
//! the input gradient.

use std::mem::MaybeUninit;

use super::{weight_product, zeroed, ConvCfg, PRODUCT_COLUMNS};
use crate::cpu::gemm::Gemm;
use crate::cpu::{Elem, Real};

/// An im2col layer for inputs of `h×w`, with its weight.
pub(super) struct Im2col<'a, E> {
    cfg: ConvCfg,
    h: usize,
    w: usize,
    /// Output positions `ho·wo`.
    hw: usize,
    weight: &'a [E],
}

impl<'a, E: Elem> Im2col<'a, E> {
    pub(super) fn new(cfg: ConvCfg, h: usize, w: usize, weight: &'a [E]) -> Self {
        let hw = cfg.out_size(h) * cfg.out_size(w);
        Im2col {
            cfg,
            h,
            w,
            hw,
            weight,
        }
    }

    /// Rows of the column matrix: `in·k²`.
    fn ckk(&self) -> usize {
        self.cfg.in_ch * self.cfg.kernel * self.cfg.kernel
    }

    /// One sample's output `W (out × in·k²) · col (in·k² × ho·wo)`, by column blocks of the
    /// column matrix when `blocks`.
    pub(super) fn forward(&self, x: &[E], out: &mut [E], blocks: bool) {
        let (hw, ckk) = (self.hw, self.ckk());
        let dims = (self.cfg.out_ch, ckk, hw);
        if blocks {
            // Its own buffer, not the thread's scratch: the column blocks read it from other
            // threads of the pool.
            let mut col = vec![E::zero(); ckk * hw];
            im2col(x, &self.cfg, self.h, self.w, &mut col, hw);
            weight_product(self.weight, &col, dims, out, true);
        } else {
            E::with_scratch(ckk * hw, 0, |col, _| {
                im2col(x, &self.cfg, self.h, self.w, col, hw);
                weight_product(self.weight, col, dims, out, false);
            });
        }
    }

    /// Per group of samples side by side: `gW += gy · colᵀ`, and, when asked,
    /// `gx = col2im(Wᵀ · gy)`, with `col` and `gy` the group's column matrices and output
    /// gradients set side by side ([`PRODUCT_COLUMNS`]).
    pub(super) fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        mut gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        let (o, hw, ckk) = (self.cfg.out_ch, self.hw, self.ckk());
        let in_sz = self.cfg.in_ch * self.h * self.w;
        let group = (PRODUCT_COLUMNS / hw).clamp(1, samples.max(1));
        let cols = group * hw;
        let gcol_len = if gx.is_some() { ckk * cols } else { 0 };
        E::with_scratch(ckk * cols, gcol_len + o * cols, |col, rest| {
            let (gcol, gys) = rest.split_at_mut(gcol_len);
            for s0 in (0..samples).step_by(group) {
                let g = group.min(samples - s0);
                let ld = g * hw;
                for s in 0..g {
                    let xi = &x[(s0 + s) * in_sz..][..in_sz];
                    im2col(xi, &self.cfg, self.h, self.w, &mut col[s * hw..], ld);
                }
                // One sample's gradient is already `o × hw`; a group's rows are gathered.
                let gi: &[E] = if g == 1 {
                    &gy[s0 * o * hw..][..o * hw]
                } else {
                    for s in 0..g {
                        let src = &gy[(s0 + s) * o * hw..][..o * hw];
                        for (r, row) in src.chunks(hw).enumerate() {
                            gys[r * ld + s * hw..][..hw].copy_from_slice(row);
                        }
                    }
                    &gys[..o * ld]
                };
                Gemm::new(o, ckk, ld)
                    .b_transposed()
                    .accumulating()
                    .run(gw, gi, col);
                if let Some(gx) = gx.as_deref_mut() {
                    Gemm::new(ckk, ld, o)
                        .a_transposed()
                        .run(gcol, self.weight, gi);
                    for s in 0..g {
                        let dst = zeroed(&mut gx[(s0 + s) * in_sz..][..in_sz]);
                        col2im(&gcol[s * hw..], &self.cfg, self.h, self.w, dst, ld);
                    }
                }
            }
        });
    }
}

/// Output columns `xo` whose input column `xo·s + j − p` lies inside `0..w`.
fn valid_cols(w: usize, wo: usize, s: usize, j: usize, p: usize) -> (usize, usize) {
    // xo·s + j ≥ p  ⇔  xo ≥ ⌈(p − j)/s⌉;  xo·s + j − p ≤ w − 1  ⇔  xo ≤ ⌊(w − 1 + p − j)/s⌋.
    let lo = if p > j { (p - j).div_ceil(s) } else { 0 };
    let hi = if w + p > j {
        ((w - 1 + p - j) / s + 1).min(wo)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// `col[((c·k + i)·k + j)·ld + y·wo + x] = x[c][y·s + i − p][x·s + j − p]` (0 outside): the
/// column matrix, its rows `ld ≥ ho·wo` apart (a group's matrices side by side).
pub(super) fn im2col<E: Real>(
    x: &[E],
    cfg: &ConvCfg,
    h: usize,
    w: usize,
    col: &mut [E],
    ld: usize,
) {
    let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(w));
    for c in 0..cfg.in_ch {
        for i in 0..k {
            for j in 0..k {
                let row = &mut col[((c * k + i) * k + j) * ld..][..ho * wo];
                let (lo, hi) = valid_cols(w, wo, s, j, p);
                for y in 0..ho {
                    let dst = &mut row[y * wo..(y + 1) * wo];
                    let iy = (y * s + i) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        dst.fill(E::zero());
                        continue;
                    }
                    let src = &x[(c * h + iy as usize) * w..][..w];
                    dst[..lo].fill(E::zero());
                    dst[hi..].fill(E::zero());
                    if lo < hi {
                        let first = lo * s + j - p;
                        if s == 1 {
                            dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                        } else {
                            for (d, v) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(s))
                            {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: accumulate `col` (rows `ld` apart) back into `x`.
pub(super) fn col2im<E: Real>(
    col: &[E],
    cfg: &ConvCfg,
    h: usize,
    w: usize,
    x: &mut [E],
    ld: usize,
) {
    let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(w));
    for c in 0..cfg.in_ch {
        for i in 0..k {
            for j in 0..k {
                let row = &col[((c * k + i) * k + j) * ld..][..ho * wo];
                let (lo, hi) = valid_cols(w, wo, s, j, p);
                if lo >= hi {
                    continue;
                }
                for y in 0..ho {
                    let iy = (y * s + i) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut x[(c * h + iy as usize) * w..][..w];
                    let first = lo * s + j - p;
                    let src = &row[y * wo + lo..y * wo + hi];
                    if s == 1 {
                        for (d, v) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += *v;
                        }
                    } else {
                        for (d, v) in dst[first..].iter_mut().step_by(s).zip(src) {
                            *d += *v;
                        }
                    }
                }
            }
        }
    }
}
