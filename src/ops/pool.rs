//! Average, max and global pooling, and the parameter-free (option A) ResNet shortcut.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{add_grad, c, dims, read, take_grad, Act, Ctx, Ghost, Real};

fn out_size(size: usize, k: usize, s: usize, p: usize) -> usize {
    (size + 2 * p - k) / s + 1
}

/// Average pooling, `k×k` windows, stride `s`, no padding.
pub fn avg_pool<E: Real>(ctx: &mut Ctx<E>, x: &Act<E>, k: usize, s: usize) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, ch, h, w] = dims(x);
    let (ho, wo) = (out_size(h, k, s, 0), out_size(w, k, s, 0));
    let xv = read(x);
    let inv = c::<E>(1.0 / (k * k) as f64);
    let mut out = vec![E::zero(); n * ch * ho * wo];
    out.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, o)| {
            let src = &xv[plane * h * w..(plane + 1) * h * w];
            for y in 0..ho {
                for xo in 0..wo {
                    let mut acc = E::zero();
                    for i in 0..k {
                        for j in 0..k {
                            acc += src[(y * s + i) * w + xo * s + j];
                        }
                    }
                    o[y * wo + xo] = acc * inv;
                }
            }
        });
    let out = ctx.act(out, [n, ch, ho, wo]);
    if ctx.record {
        let (rx, ro) = (Ghost::of(x), Ghost::of(&out));
        ctx.backward("avg_pool.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let mut gx = vec![E::zero(); n * ch * h * w];
            gx.par_chunks_mut(h * w).enumerate().for_each(|(plane, g)| {
                let src = &gy[plane * ho * wo..(plane + 1) * ho * wo];
                for y in 0..ho {
                    for xo in 0..wo {
                        let d = src[y * wo + xo] * inv;
                        for i in 0..k {
                            for j in 0..k {
                                let t = &mut g[(y * s + i) * w + xo * s + j];
                                *t += d;
                            }
                        }
                    }
                }
            });
            add_grad(grads, &rx, &gx)
        });
    }
    out
}

/// Max pooling, `k×k` windows, stride `s`, padding `p` (padding never wins).
pub fn max_pool<E: Real>(ctx: &mut Ctx<E>, x: &Act<E>, k: usize, s: usize, p: usize) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, ch, h, w] = dims(x);
    let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
    let xv = read(x);
    let mut out = vec![E::zero(); n * ch * ho * wo];
    let mut arg = vec![0u32; n * ch * ho * wo];
    out.par_chunks_mut(ho * wo)
        .zip(arg.par_chunks_mut(ho * wo))
        .enumerate()
        .for_each(|(plane, (o, a))| {
            let src = &xv[plane * h * w..(plane + 1) * h * w];
            for y in 0..ho {
                for xo in 0..wo {
                    let mut best = E::neg_infinity();
                    let mut at = 0usize;
                    for i in 0..k {
                        for j in 0..k {
                            let iy = (y * s + i) as isize - p as isize;
                            let ix = (xo * s + j) as isize - p as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let idx = iy as usize * w + ix as usize;
                                if src[idx] > best {
                                    best = src[idx];
                                    at = idx;
                                }
                            }
                        }
                    }
                    o[y * wo + xo] = best;
                    a[y * wo + xo] = at as u32;
                }
            }
        });
    let out = ctx.act(out, [n, ch, ho, wo]);
    if ctx.record {
        let (rx, ro) = (Ghost::of(x), Ghost::of(&out));
        ctx.backward("max_pool.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let mut gx = vec![E::zero(); n * ch * h * w];
            gx.par_chunks_mut(h * w).enumerate().for_each(|(plane, g)| {
                for q in 0..ho * wo {
                    let i = plane * ho * wo + q;
                    let t = &mut g[arg[i] as usize];
                    *t += gy[i];
                }
            });
            add_grad(grads, &rx, &gx)
        });
    }
    out
}

/// Mean over each whole feature map: `N×C×H×W → N×C×1×1`.
pub fn global_avg_pool<E: Real>(ctx: &mut Ctx<E>, x: &Act<E>) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, ch, h, w] = dims(x);
    let hw = h * w;
    let xv = read(x);
    let inv = c::<E>(1.0 / hw as f64);
    let out: Vec<E> = xv
        .chunks(hw)
        .map(|p| p.iter().copied().sum::<E>() * inv)
        .collect();
    let out = ctx.act(out, [n, ch, 1, 1]);
    if ctx.record {
        let (rx, ro) = (Ghost::of(x), Ghost::of(&out));
        ctx.backward("global_avg_pool.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let gx: Vec<E> = gy
                .iter()
                .flat_map(|&d| std::iter::repeat_n(d * inv, hw))
                .collect();
            add_grad(grads, &rx, &gx)
        });
    }
    out
}

/// Option-A shortcut: every `stride`-th pixel, channels zero-padded to `out_ch`
/// (`(out_ch − C)/2` new channels before, the rest after).
pub fn shortcut_a<E: Real>(ctx: &mut Ctx<E>, x: &Act<E>, stride: usize, out_ch: usize) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, ch, h, w] = dims(x);
    assert!(out_ch >= ch, "shortcut_a: cannot reduce channels");
    let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
    let before = (out_ch - ch) / 2;
    let xv = read(x);
    let mut out = vec![E::zero(); n * out_ch * ho * wo];
    let map = move |i: usize, k: usize, y: usize, xo: usize| {
        (
            ((i * out_ch + before + k) * ho + y) * wo + xo,
            ((i * ch + k) * h + y * stride) * w + xo * stride,
        )
    };
    for i in 0..n {
        for k in 0..ch {
            for y in 0..ho {
                for xo in 0..wo {
                    let (o, s) = map(i, k, y, xo);
                    out[o] = xv[s];
                }
            }
        }
    }
    let out = ctx.act(out, [n, out_ch, ho, wo]);
    if ctx.record {
        let (rx, ro) = (Ghost::of(x), Ghost::of(&out));
        ctx.backward("shortcut_a.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let mut gx = vec![E::zero(); n * ch * h * w];
            for i in 0..n {
                for k in 0..ch {
                    for y in 0..ho {
                        for xo in 0..wo {
                            let (o, s) = map(i, k, y, xo);
                            gx[s] = gy[o];
                        }
                    }
                }
            }
            add_grad(grads, &rx, &gx)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    /// Check an op's input gradient against finite differences of `reference`.
    fn check(
        shape: (usize, usize, usize, usize),
        op: impl Fn(&mut Ctx<f64>, &Act<f64>) -> Act<f64>,
        reference: impl Fn(&[f64]) -> Vec<f64>,
    ) {
        let dev = Cpu::default();
        let xv = rand_vec(shape.0 * shape.1 * shape.2 * shape.3, 11);
        let x: Act<f64> = dev.tensor_from_vec(xv.clone(), shape);
        let mut ctx = Ctx::new(&dev, true, false);
        let got = read(&op(&mut ctx, &x));
        let want = reference(&xv);
        assert!(rel_err(&got, &want) < 1e-12, "forward");
        let r = rand_vec(want.len(), 12);
        let xc = x.clone();
        let g = analytic_grads(&dev, |ctx| op(ctx, &x), &r, &[&|gr| gr.get(&xc).as_vec()]);
        let num = numeric_grad(&xv, |xs| weighted_sum(&reference(xs), &r));
        assert!(
            rel_err(&g[0], &num) < 1e-7,
            "backward {}",
            rel_err(&g[0], &num)
        );
    }

    #[test]
    fn avg_pool_2x2() {
        // 1×1×4×4 → 2×2 means of 2×2 blocks, plus a 2-sample, 2-channel gradient check.
        check(
            (2, 2, 4, 4),
            |c, x| avg_pool(c, x, 2, 2),
            |x| {
                let mut out = Vec::new();
                for plane in x.chunks(16) {
                    for y in 0..2 {
                        for xo in 0..2 {
                            let s: f64 = (0..2)
                                .flat_map(|i| (0..2).map(move |j| (i, j)))
                                .map(|(i, j)| plane[(2 * y + i) * 4 + 2 * xo + j])
                                .sum();
                            out.push(s / 4.0);
                        }
                    }
                }
                out
            },
        );
    }

    #[test]
    fn max_pool_3x3_stride2_pad1() {
        check(
            (1, 2, 5, 5),
            |c, x| max_pool(c, x, 3, 2, 1),
            |x| {
                let mut out = Vec::new();
                for plane in x.chunks(25) {
                    for y in 0..3 {
                        for xo in 0..3 {
                            let mut m = f64::NEG_INFINITY;
                            for i in 0..3isize {
                                for j in 0..3isize {
                                    let (iy, ix) =
                                        (2 * y as isize + i - 1, 2 * xo as isize + j - 1);
                                    if (0..5).contains(&iy) && (0..5).contains(&ix) {
                                        m = m.max(plane[(iy * 5 + ix) as usize]);
                                    }
                                }
                            }
                            out.push(m);
                        }
                    }
                }
                out
            },
        );
    }

    #[test]
    fn global_pool_and_shortcut() {
        check((2, 3, 2, 2), global_avg_pool, |x| {
            x.chunks(4).map(|p| p.iter().sum::<f64>() / 4.0).collect()
        });
        // 1×2×4×4, stride 2, to 4 channels: one zero channel before, one after.
        check(
            (1, 2, 4, 4),
            |c, x| shortcut_a(c, x, 2, 4),
            |x| {
                let mut out = vec![0.0; 16];
                for k in 0..2 {
                    for y in 0..2 {
                        for xo in 0..2 {
                            out[((1 + k) * 2 + y) * 2 + xo] = x[(k * 4 + 2 * y) * 4 + 2 * xo];
                        }
                    }
                }
                out
            },
        );
    }
}
