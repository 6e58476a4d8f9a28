//! The column matrix of a convolution (im2col) and its adjoint (col2im), for one sample.

use super::ConvCfg;
use crate::ops::Real;

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

/// `col[(c·k + i)·k + j][y·wo + x] = x[c][y·s + i − p][x·s + j − p]` (0 outside).
pub(super) fn im2col<E: Real>(x: &[E], cfg: &ConvCfg, h: usize, w: usize, col: &mut [E]) {
    let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(w));
    for c in 0..cfg.in_ch {
        for i in 0..k {
            for j in 0..k {
                let row = &mut col[((c * k + i) * k + j) * ho * wo..][..ho * wo];
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

/// The adjoint of [`im2col`]: accumulate `col` back into `x`.
pub(super) fn col2im<E: Real>(col: &[E], cfg: &ConvCfg, h: usize, w: usize, x: &mut [E]) {
    let (k, s, p) = (cfg.kernel, cfg.stride, cfg.padding);
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(w));
    for c in 0..cfg.in_ch {
        for i in 0..k {
            for j in 0..k {
                let row = &col[((c * k + i) * k + j) * ho * wo..][..ho * wo];
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
