//! Average, max and global pooling, and the parameter-free (option A) ResNet shortcut.

use anyhow::Result;
use rayon::prelude::*;

use crate::backend::PoolOps;
use crate::cpu::{accumulate, c, Act, CpuBackend, Elem};

fn out_size(size: usize, k: usize, s: usize, p: usize) -> usize {
    (size + 2 * p - k) / s + 1
}

/// What a max pooling keeps: the arg-max of every window.
pub struct MaxPoolSaved(Vec<u32>);

/// The shortcut's index map: (output index, input index) of sample `i`, channel `k`, output
/// pixel `(y, xo)`.
fn shortcut_map(
    x: [usize; 4],
    stride: usize,
    out_ch: usize,
) -> impl Fn(usize, usize, usize, usize) -> (usize, usize) {
    let [_, ch, h, w] = x;
    let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
    let before = (out_ch - ch) / 2;
    move |i, k, y, xo| {
        (
            ((i * out_ch + before + k) * ho + y) * wo + xo,
            ((i * ch + k) * h + y * stride) * w + xo * stride,
        )
    }
}

impl<E: Elem> PoolOps for CpuBackend<E> {
    type MaxPoolSaved = MaxPoolSaved;

    /// Option-A shortcut: every `stride`-th pixel, channels zero-padded to `out_ch`
    /// (`(out_ch − C)/2` new channels before, the rest after).
    fn shortcut_a(&mut self, x: &Act<E>, stride: usize, out_ch: usize) -> Result<Act<E>> {
        let [n, ch, h, w] = x.dims();
        assert!(out_ch >= ch, "shortcut_a: cannot reduce channels");
        let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
        let xv = x.values();
        let mut out = vec![E::zero(); n * out_ch * ho * wo];
        let map = shortcut_map([n, ch, h, w], stride, out_ch);
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
        Ok(self.act(out, [n, out_ch, ho, wo]))
    }

    /// The input gradient of [`shortcut_a`] for an input of dimensions `x`.
    fn shortcut_a_backward(
        &mut self,
        gy: Vec<E>,
        x: [usize; 4],
        stride: usize,
        out_ch: usize,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let [n, ch, h, w] = x;
        let map = shortcut_map(x, stride, out_ch);
        let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
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
        accumulate(dx, gx);
        Ok(())
    }

    /// Average pooling, `k×k` windows, stride `s`, no padding.
    fn avg_pool(&mut self, x: &Act<E>, k: usize, s: usize) -> Result<Act<E>> {
        let [n, ch, h, w] = x.dims();
        let (ho, wo) = (out_size(h, k, s, 0), out_size(w, k, s, 0));
        let xv = x.values();
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
        Ok(self.act(out, [n, ch, ho, wo]))
    }

    /// The input gradient of [`avg_pool`] for an input of dimensions `x`.
    fn avg_pool_backward(
        &mut self,
        gy: Vec<E>,
        x: [usize; 4],
        k: usize,
        s: usize,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let [n, ch, h, w] = x;
        let (ho, wo) = (out_size(h, k, s, 0), out_size(w, k, s, 0));
        let inv = c::<E>(1.0 / (k * k) as f64);
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
        accumulate(dx, gx);
        Ok(())
    }

    /// Max pooling, `k×k` windows, stride `s`, padding `p` (padding never wins).
    fn max_pool(
        &mut self,
        x: &Act<E>,
        k: usize,
        s: usize,
        p: usize,
    ) -> Result<(Act<E>, MaxPoolSaved)> {
        let [n, ch, h, w] = x.dims();
        let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
        let xv = x.values();
        let mut out = vec![E::zero(); n * ch * ho * wo];
        // The arg-max only when a backward pass will need it.
        let mut arg = vec![0u32; if self.record { n * ch * ho * wo } else { 0 }];
        // The taps of output row/column `o` that fall inside the input (padding never wins).
        let span = |o: usize, len: usize| {
            let lo = (o * s).saturating_sub(p);
            let hi = (o * s + k).saturating_sub(p).min(len);
            lo..hi
        };
        let plane = |plane: usize, o: &mut [E], mut a: Option<&mut [u32]>| {
            let src = &xv[plane * h * w..(plane + 1) * h * w];
            for y in 0..ho {
                let rows = span(y, h);
                for xo in 0..wo {
                    let cols = span(xo, w);
                    let mut best = E::neg_infinity();
                    let mut at = 0usize;
                    // Selects, not branches: on real activations the larger tap is unpredictable.
                    for iy in rows.clone() {
                        for (ix, &v) in src[iy * w..][cols.clone()].iter().enumerate() {
                            let gt = v > best;
                            best = if gt { v } else { best };
                            at = if gt { iy * w + cols.start + ix } else { at };
                        }
                    }
                    o[y * wo + xo] = best;
                    if let Some(a) = a.as_deref_mut() {
                        a[y * wo + xo] = at as u32;
                    }
                }
            }
        };
        if self.record {
            out.par_chunks_mut(ho * wo)
                .zip(arg.par_chunks_mut(ho * wo))
                .enumerate()
                .for_each(|(i, (o, a))| plane(i, o, Some(a)));
        } else {
            out.par_chunks_mut(ho * wo)
                .enumerate()
                .for_each(|(i, o)| plane(i, o, None));
        }
        let out = self.act(out, [n, ch, ho, wo]);
        Ok((out, MaxPoolSaved(arg)))
    }

    /// The input gradient of [`max_pool`] (each window's gradient to its arg-max) for an input of
    /// dimensions `x`.
    fn max_pool_backward(
        &mut self,
        saved: MaxPoolSaved,
        gy: Vec<E>,
        x: [usize; 4],
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let [n, ch, h, w] = x;
        let arg = saved.0;
        let plane_out = arg.len() / (n * ch).max(1);
        let mut gx = vec![E::zero(); n * ch * h * w];
        gx.par_chunks_mut(h * w).enumerate().for_each(|(plane, g)| {
            for q in 0..plane_out {
                let i = plane * plane_out + q;
                let t = &mut g[arg[i] as usize];
                *t += gy[i];
            }
        });
        accumulate(dx, gx);
        Ok(())
    }

    /// Mean over each whole feature map: `N×C×H×W → N×C×1×1`.
    fn global_avg_pool(&mut self, x: &Act<E>) -> Result<Act<E>> {
        let [n, ch, h, w] = x.dims();
        let hw = h * w;
        let xv = x.values();
        let inv = c::<E>(1.0 / hw as f64);
        let out: Vec<E> = xv
            .chunks(hw)
            .map(|p| p.iter().copied().sum::<E>() * inv)
            .collect();
        Ok(self.act(out, [n, ch, 1, 1]))
    }

    /// The input gradient of [`global_avg_pool`] for an input of dimensions `x`.
    fn global_avg_pool_backward(
        &mut self,
        gy: Vec<E>,
        x: [usize; 4],
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let hw = x[2] * x[3];
        let inv = c::<E>(1.0 / hw as f64);
        let gx: Vec<E> = gy
            .iter()
            .flat_map(|&d| std::iter::repeat_n(d * inv, hw))
            .collect();
        accumulate(dx, gx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::testutil::*;

    use sparsenet_net::Op;

    /// Check an op's output and input gradient (through the trainer's tape) against
    /// `reference` and finite differences of it.
    fn check(shape: [usize; 4], op: Op, reference: impl Fn(&[f64]) -> Vec<f64>) {
        let xv = rand_vec(shape.iter().product(), 11);
        let run = run_op(
            &op,
            false,
            true,
            &[(xv.clone(), shape)],
            &[0],
            &[],
            None,
            12,
        );
        let want = reference(&xv);
        assert!(rel_err(&run.out, &want) < 1e-12, "forward");
        let num = numeric_grad(&xv, |xs| weighted_sum(&reference(xs), &run.weights));
        let g = &run.input_grads[0];
        assert!(rel_err(g, &num) < 1e-7, "backward {}", rel_err(g, &num));
    }

    #[test]
    fn avg_pool_2x2() {
        // 1×1×4×4 → 2×2 means of 2×2 blocks, plus a 2-sample, 2-channel gradient check.
        check(
            [2, 2, 4, 4],
            Op::AvgPool {
                kernel: 2,
                stride: 2,
            },
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
            [1, 2, 5, 5],
            Op::MaxPool {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
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
        check([2, 3, 2, 2], Op::GlobalAvgPool, |x| {
            x.chunks(4).map(|p| p.iter().sum::<f64>() / 4.0).collect()
        });
        // 1×2×4×4, stride 2, to 4 channels: one zero channel before, one after.
        check(
            [1, 2, 4, 4],
            Op::ShortcutA {
                stride: 2,
                out_ch: 4,
            },
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
