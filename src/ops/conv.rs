//! 2-D convolution (k×k, stride, zero padding, no bias) by im2col + gemm, per sample in
//! parallel.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::gemm::{matmul, matmul_strided, Strided};
use super::{add_grad, dims, read, take_grad, Act, Ctx, Ghost, Param, Real};

/// Shape of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvCfg {
    /// Input channels.
    pub in_ch: usize,
    /// Output channels.
    pub out_ch: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub padding: usize,
}

impl ConvCfg {
    /// Output height/width for an input of `size`.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Stride 1 with "same" padding and an odd kernel larger than 1 (every 3×3 layer of
    /// DenseNet/SparseNet): computed as k² shifted products over a padded input.
    fn same(&self) -> bool {
        self.kernel > 1 && self.stride == 1 && 2 * self.padding + 1 == self.kernel
    }
}

/// "Same" convolution by shifted products, for one sample.
///
/// Pad the input once to `H'×W'` (`H' = h + 2p`, `W' = w + 2p`) and compute the output on a
/// "wide" grid of `h` rows of `W'` columns: with `q = y·W' + x`, input pixel (y + i, x + j) is
/// at `q + i·W' + j`, so kernel tap (i, j) is one product `W_ij (out×in) · X[:, q + i·W' + j]`
/// over strided views. The columns x ≥ w of the wide grid are discarded. Compared with im2col
/// this reads the input k² times instead of writing and reading a k²-times larger matrix:
/// layers with few output channels (growth 12) are limited by that memory traffic.
struct Same {
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
    fn new(cfg: &ConvCfg, h: usize, w: usize) -> Self {
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

    fn forward<E: Real>(&self, x: &[E], wv: &[E], cfg: &ConvCfg, out: &mut [E]) {
        E::with_scratch(cfg.in_ch * self.plane, cfg.out_ch * self.len, |xp, wide| {
            self.pad(x, cfg.in_ch, xp);
            for i in 0..self.k {
                for j in 0..self.k {
                    let first = i == 0 && j == 0;
                    matmul_strided(
                        wide,
                        Strided::rows(0, self.len),
                        wv,
                        self.weight(cfg.in_ch, i, j),
                        xp,
                        self.tap(i, j),
                        cfg.out_ch,
                        self.len,
                        cfg.in_ch,
                        !first,
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

    /// Accumulate this sample's weight gradient into `gw` and, if given, write its input
    /// gradient into `gx`.
    fn backward<E: Real>(
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
                        matmul_strided(
                            gw,
                            self.weight(cfg.in_ch, i, j),
                            wide,
                            Strided::rows(0, self.len),
                            xp,
                            xt,
                            cfg.out_ch,
                            cfg.in_ch,
                            self.len,
                            true,
                        );
                        if gx.is_some() {
                            // gX[:, q + i·W' + j] += W_ij^T (in×out) · G (out×len)
                            let wt = Strided {
                                offset: i * self.k + j,
                                rs: self.k * self.k,
                                cs: cfg.in_ch * self.k * self.k,
                            };
                            matmul_strided(
                                gxp,
                                self.tap(i, j),
                                wv,
                                wt,
                                wide,
                                Strided::rows(0, self.len),
                                cfg.in_ch,
                                self.len,
                                cfg.out_ch,
                                true,
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

/// Samples per backward chunk: partial weight gradients are summed per fixed chunk and then in
/// chunk order, so results do not depend on the number of threads.
const CHUNKS: usize = 8;

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
fn im2col<E: Real>(x: &[E], cfg: &ConvCfg, h: usize, w: usize, col: &mut [E]) {
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
fn col2im<E: Real>(col: &[E], cfg: &ConvCfg, h: usize, w: usize, x: &mut [E]) {
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

/// Convolve `x` (`N×in×H×W`) with `w` (`[out, in, k, k]`). `x_grad` says whether `x` needs a
/// gradient (not for the network input).
pub fn conv2d<E: Real>(
    ctx: &mut Ctx<E>,
    x: &Act<E>,
    w: &Param<E>,
    cfg: ConvCfg,
    x_grad: bool,
) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, cin, h, wd] = dims(x);
    assert_eq!(cin, cfg.in_ch, "conv2d: input channels");
    assert_eq!(
        w.shape().0,
        cfg.out_ch * cin * cfg.kernel * cfg.kernel,
        "conv2d: weight size"
    );
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
    let (hw, ckk) = (ho * wo, cin * cfg.kernel * cfg.kernel);
    let xv = read(x);
    let wv = read(w);
    let mut out = vec![E::zero(); n * cfg.out_ch * hw];
    let in_sz = cin * h * wd;
    out.par_chunks_mut(cfg.out_ch * hw)
        .enumerate()
        .for_each(|(i, o)| {
            let xi = &xv[i * in_sz..(i + 1) * in_sz];
            if cfg.pointwise() {
                matmul(o, &wv, xi, cfg.out_ch, hw, ckk, false, false, false, 1);
            } else if cfg.same() {
                Same::new(&cfg, h, wd).forward(xi, &wv, &cfg, o);
            } else {
                E::with_scratch(ckk * hw, 0, |col, _| {
                    im2col(xi, &cfg, h, wd, col);
                    matmul(o, &wv, col, cfg.out_ch, hw, ckk, false, false, false, 1);
                });
            }
        });
    let out = ctx.act(out, [n, cfg.out_ch, ho, wo]);
    if ctx.record {
        let (gx_ref, gw_ref, go_ref) = (Ghost::of(x), Ghost::of(w), Ghost::of(&out));
        ctx.backward("conv.backward", move |grads| {
            let gout = take_grad(grads, &go_ref)?;
            let per = n.div_ceil(CHUNKS).max(1);
            let chunks = n.div_ceil(per);
            let mut gx = if x_grad {
                vec![E::zero(); n * in_sz]
            } else {
                Vec::new()
            };
            let slots: Vec<Option<&mut [E]>> = if x_grad {
                gx.chunks_mut(per * in_sz).map(Some).collect()
            } else {
                (0..chunks).map(|_| None).collect()
            };
            // With stride 1 the input gradient is itself a convolution: of the output gradient
            // with the flipped, transposed kernel and padding k − 1 − p. Its column matrix has
            // out·k² rows instead of in·k², far smaller when a layer narrows its input (every
            // DenseNet/SparseNet 3×3 conv), and it needs no col2im scatter.
            let transposed = !cfg.pointwise()
                && cfg.stride == 1
                && cfg.padding < cfg.kernel
                && cfg.out_ch < cfg.in_ch;
            let k = cfg.kernel;
            let tcfg = ConvCfg {
                in_ch: cfg.out_ch,
                out_ch: cfg.in_ch,
                kernel: k,
                stride: 1,
                padding: k - 1 - cfg.padding.min(k - 1),
            };
            let wt: Vec<E> = if transposed {
                let mut t = vec![E::zero(); wv.len()];
                for o in 0..cfg.out_ch {
                    for c in 0..cfg.in_ch {
                        for i in 0..k {
                            for j in 0..k {
                                t[((c * cfg.out_ch + o) * k + (k - 1 - i)) * k + (k - 1 - j)] =
                                    wv[((o * cfg.in_ch + c) * k + i) * k + j];
                            }
                        }
                    }
                }
                t
            } else {
                Vec::new()
            };
            let tk = cfg.out_ch * k * k;
            // Input gradient of one sample by the transposed convolution (`gcol` is scratch).
            let transposed_dx = |gi: &[E], dst: &mut [E], gcol: &mut [E]| {
                im2col(gi, &tcfg, ho, wo, gcol);
                matmul(
                    dst,
                    &wt,
                    gcol,
                    cfg.in_ch,
                    h * wd,
                    tk,
                    false,
                    false,
                    false,
                    1,
                );
            };
            let partial: Vec<Vec<E>> = slots
                .into_par_iter()
                .enumerate()
                .map(|(chunk, mut gxc)| {
                    let mut gw = vec![E::zero(); cfg.out_ch * ckk];
                    let col_len = if cfg.pointwise() { 0 } else { ckk * hw };
                    let gcol_len = match (x_grad, cfg.pointwise(), transposed) {
                        (true, false, true) => tk * h * wd,
                        (true, false, false) => ckk * hw,
                        _ => 0,
                    };
                    if cfg.same() {
                        let same = Same::new(&cfg, h, wd);
                        for i in chunk * per..((chunk + 1) * per).min(n) {
                            let xi = &xv[i * in_sz..(i + 1) * in_sz];
                            let gi = &gout[i * cfg.out_ch * hw..(i + 1) * cfg.out_ch * hw];
                            let dst = gxc
                                .as_deref_mut()
                                .map(|g| &mut g[(i - chunk * per) * in_sz..][..in_sz]);
                            match dst {
                                // A narrowing layer: the input gradient by the transposed
                                // convolution writes it once instead of accumulating k² times.
                                Some(dst) if transposed => {
                                    same.backward(xi, gi, &wv, &cfg, &mut gw, None);
                                    E::with_scratch(tk * h * wd, 0, |gcol, _| {
                                        transposed_dx(gi, dst, gcol)
                                    });
                                }
                                dst => same.backward(xi, gi, &wv, &cfg, &mut gw, dst),
                            }
                        }
                        return gw;
                    }
                    E::with_scratch(col_len, gcol_len, |col, gcol| {
                        for i in chunk * per..((chunk + 1) * per).min(n) {
                            let xi = &xv[i * in_sz..(i + 1) * in_sz];
                            let gi = &gout[i * cfg.out_ch * hw..(i + 1) * cfg.out_ch * hw];
                            let src: &[E] = if cfg.pointwise() {
                                xi
                            } else {
                                im2col(xi, &cfg, h, wd, col);
                                col
                            };
                            matmul(&mut gw, gi, src, cfg.out_ch, ckk, hw, false, true, true, 1);
                            if let Some(gxc) = gxc.as_deref_mut() {
                                let dst = &mut gxc[(i - chunk * per) * in_sz..][..in_sz];
                                if cfg.pointwise() {
                                    matmul(
                                        dst, &wv, gi, ckk, hw, cfg.out_ch, true, false, false, 1,
                                    );
                                } else if transposed {
                                    transposed_dx(gi, dst, gcol);
                                } else {
                                    matmul(
                                        gcol, &wv, gi, ckk, hw, cfg.out_ch, true, false, false, 1,
                                    );
                                    col2im(gcol, &cfg, h, wd, dst);
                                }
                            }
                        }
                    });
                    gw
                })
                .collect();
            let mut gw = vec![E::zero(); cfg.out_ch * ckk];
            for p in &partial {
                for (a, b) in gw.iter_mut().zip(p) {
                    *a += *b;
                }
            }
            add_grad(grads, &gw_ref, &gw)?;
            if x_grad {
                add_grad(grads, &gx_ref, &gx)?;
            }
            Ok(())
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    /// Direct 7-loop convolution.
    fn naive(x: &[f64], w: &[f64], n: usize, h: usize, wd: usize, cfg: &ConvCfg) -> Vec<f64> {
        let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
        let k = cfg.kernel;
        let mut out = vec![0.0; n * cfg.out_ch * ho * wo];
        for b in 0..n {
            for o in 0..cfg.out_ch {
                for y in 0..ho {
                    for xo in 0..wo {
                        let mut s = 0.0;
                        for c in 0..cfg.in_ch {
                            for i in 0..k {
                                for j in 0..k {
                                    let iy = (y * cfg.stride + i) as isize - cfg.padding as isize;
                                    let ix = (xo * cfg.stride + j) as isize - cfg.padding as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd
                                    {
                                        s += x[((b * cfg.in_ch + c) * h + iy as usize) * wd
                                            + ix as usize]
                                            * w[((o * cfg.in_ch + c) * k + i) * k + j];
                                    }
                                }
                            }
                        }
                        out[((b * cfg.out_ch + o) * ho + y) * wo + xo] = s;
                    }
                }
            }
        }
        out
    }

    fn check(cfg: ConvCfg, n: usize, h: usize, wd: usize) {
        let dev = Cpu::default();
        let xv = rand_vec(n * cfg.in_ch * h * wd, 3);
        let wv = rand_vec(cfg.out_ch * cfg.in_ch * cfg.kernel * cfg.kernel, 4);
        let x: Act<f64> = dev.tensor_from_vec(xv.clone(), (n, cfg.in_ch, h, wd));
        let w: Param<f64> = dev.tensor_from_vec(wv.clone(), (wv.len(),));
        // Forward against the naive loops.
        let mut ctx = Ctx::new(&dev, true, false);
        let got = read(&conv2d(&mut ctx, &x, &w, cfg, true));
        let want = naive(&xv, &wv, n, h, wd, &cfg);
        assert!(rel_err(&got, &want) < 1e-12, "{cfg:?} forward");
        // Gradients against finite differences of Σ out·r.
        let r = rand_vec(want.len(), 5);
        let (xc, wc) = (x.clone(), w.clone());
        let grads = analytic_grads(
            &dev,
            |ctx| conv2d(ctx, &x, &w, cfg, true),
            &r,
            &[&|g| g.get(&xc).as_vec(), &|g| g.get(&wc).as_vec()],
        );
        let nx = numeric_grad(&xv, |xs| weighted_sum(&naive(xs, &wv, n, h, wd, &cfg), &r));
        let nw = numeric_grad(&wv, |ws| weighted_sum(&naive(&xv, ws, n, h, wd, &cfg), &r));
        assert!(
            rel_err(&grads[0], &nx) < 1e-7,
            "{cfg:?} dx {}",
            rel_err(&grads[0], &nx)
        );
        assert!(
            rel_err(&grads[1], &nw) < 1e-7,
            "{cfg:?} dw {}",
            rel_err(&grads[1], &nw)
        );
    }

    #[test]
    fn conv3x3_padded() {
        check(
            ConvCfg {
                in_ch: 3,
                out_ch: 4,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            2,
            5,
            6,
        );
    }

    #[test]
    fn same_convolutions_by_shifted_products() {
        check(
            ConvCfg {
                in_ch: 3,
                out_ch: 5,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            3,
            4,
            6,
        );
        check(
            ConvCfg {
                in_ch: 2,
                out_ch: 3,
                kernel: 5,
                stride: 1,
                padding: 2,
            },
            2,
            6,
            5,
        );
        check(
            ConvCfg {
                in_ch: 7,
                out_ch: 2,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            1,
            1,
            1,
        );
    }

    #[test]
    fn conv_narrowing_uses_the_transposed_input_gradient() {
        // out < in, stride 1: the input gradient goes through the transposed-convolution path.
        check(
            ConvCfg {
                in_ch: 6,
                out_ch: 2,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            2,
            5,
            4,
        );
        check(
            ConvCfg {
                in_ch: 5,
                out_ch: 3,
                kernel: 3,
                stride: 1,
                padding: 0,
            },
            1,
            6,
            5,
        );
        check(
            ConvCfg {
                in_ch: 4,
                out_ch: 1,
                kernel: 5,
                stride: 1,
                padding: 2,
            },
            2,
            5,
            5,
        );
    }

    #[test]
    fn conv_strided_and_pointwise_and_7x7() {
        check(
            ConvCfg {
                in_ch: 2,
                out_ch: 3,
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            3,
            7,
            6,
        );
        check(
            ConvCfg {
                in_ch: 5,
                out_ch: 2,
                kernel: 1,
                stride: 1,
                padding: 0,
            },
            9,
            4,
            4,
        );
        check(
            ConvCfg {
                in_ch: 2,
                out_ch: 2,
                kernel: 7,
                stride: 2,
                padding: 3,
            },
            1,
            9,
            9,
        );
        check(
            ConvCfg {
                in_ch: 2,
                out_ch: 3,
                kernel: 1,
                stride: 2,
                padding: 0,
            },
            2,
            5,
            5,
        );
    }
}
