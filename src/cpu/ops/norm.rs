//! Batch normalisation over channels: batch statistics and running-statistics updates in
//! training, running statistics in evaluation (as PyTorch: ε = 1e-5, momentum 0.1, unbiased
//! variance in the running estimate).

use anyhow::Result;
use rayon::prelude::*;

use crate::backend::{BnStats, NormOps, BN_EPS, BN_MOMENTUM};
use crate::cpu::{accumulate, c, Act, CpuBackend, Elem, Param};

/// Lanes of independent partial sums: a single accumulator is a chain of dependent additions
/// (one per ~4 cycles); eight let the compiler vectorise. The order is fixed, so results do not
/// depend on threads.
const LANES: usize = 8;

/// `Σ f(x)` with [`LANES`] partial sums.
fn lanes_sum<E: Elem>(xs: &[E], f: impl Fn(E) -> E) -> E {
    let mut acc = [E::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &x) in acc.iter_mut().zip(ch) {
            *a += f(x);
        }
    }
    let mut s = acc.iter().fold(E::zero(), |t, &a| t + a);
    for &x in rest {
        s += f(x);
    }
    s
}

/// Batch norm backward's first pass over one plane: where `mask = Some((a, b))` (a fused
/// ReLU), `g` zeroed in place wherever `a·x + b ≤ 0`; then (Σ g, Σ g·x). One read of `x` and
/// `g` and one write, in SIMD lanes (fixed order: lanes, then their sum, then the tail).
struct MaskedSums<'a, E> {
    x: &'a [E],
    g: &'a mut [E],
    mask: Option<(E, E)>,
}

impl<E: Elem> pulp::WithSimd for MaskedSums<'_, E> {
    type Output = (E, E);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, s: S) -> (E, E) {
        let l = E::width::<S>();
        let (mut sg, mut sgx) = (E::splat(s, E::zero()), E::splat(s, E::zero()));
        let split = self.x.len() / l * l;
        let (gv, gt) = self.g.split_at_mut(split);
        let (xv, xt) = self.x.split_at(split);
        let ab = self.mask.map(|(a, b)| (E::splat(s, a), E::splat(s, b)));
        for (gc, xc) in gv.chunks_exact_mut(l).zip(xv.chunks_exact(l)) {
            let (xx, mut gg) = (E::load::<S>(xc), E::load::<S>(gc));
            if let Some((a, b)) = ab {
                gg = E::where_positive(s, E::fma(s, a, xx, b), gg);
                E::store::<S>(gc, gg);
            }
            sg = E::vadd(s, sg, gg);
            sgx = E::fma(s, gg, xx, sgx);
        }
        let (mut tg, mut tgx) = (E::hsum(s, sg), E::hsum(s, sgx));
        for (d, &t) in gt.iter_mut().zip(xt) {
            if let Some((a, b)) = self.mask {
                if a * t + b <= E::zero() {
                    *d = E::zero();
                }
            }
            tg += *d;
            tgx += *d * t;
        }
        (tg, tgx)
    }
}

/// What a batch norm keeps for its backward pass: its input (a reference; a concatenation stays
/// lazy), the statistics it normalised with, and its mode.
pub struct NormSaved<E> {
    x: Option<Act<E>>,
    dims: [usize; 4],
    mean: Vec<E>,
    invstd: Vec<E>,
    relu: bool,
    train: bool,
}

impl<E: Elem> NormOps for CpuBackend<E> {
    type Stats = BnStats<E>;
    type NormSaved = NormSaved<E>;

    /// `y = γ·(x − μ)/√(σ² + ε) + β` per channel, followed by `max(y, 0)` when `relu` (the
    /// interpreter fuses a BN whose only reader is a ReLU: one pass and one buffer instead of two;
    /// the backward recomputes the ReLU mask from `x` rather than storing it).
    fn batch_norm(
        &mut self,
        x: &Act<E>,
        gamma: &Param<E>,
        beta: &Param<E>,
        stats: &mut BnStats<E>,
        relu: bool,
    ) -> Result<(Act<E>, NormSaved<E>)> {
        let [n, ch, h, w] = x.dims();
        let hw = h * w;
        let m = n * hw;
        let (g, b): (&[E], &[E]) = (&gamma.data, &beta.data);
        let eps = c::<E>(BN_EPS);
        let (mean, invstd): (Vec<E>, Vec<E>) = if self.train {
            // Per channel, two passes (mean, then squared deviations) for accuracy; channels of
            // an activation seen earlier in this pass (a concatenation repeats its sources) come
            // from `self.bn_stats`, bit for bit what the passes would give.
            let channel = |k: usize| {
                let mut s = E::zero();
                for i in 0..n {
                    s += lanes_sum(x.plane(i, k), |t| t);
                }
                let mu = s / c(m as f64);
                let mut v = E::zero();
                for i in 0..n {
                    v += lanes_sum(x.plane(i, k), |t| (t - mu) * (t - mu));
                }
                (mu, v / c(m as f64))
            };
            let mut per: Vec<(E, E)> = Vec::with_capacity(ch);
            for (id, chans) in x.parts() {
                let k0 = per.len();
                match self.bn_stats.get(&id) {
                    Some(st) if st.len() == chans => per.extend_from_slice(st),
                    _ => {
                        let st: Vec<(E, E)> =
                            (k0..k0 + chans).into_par_iter().map(channel).collect();
                        per.extend_from_slice(&st);
                        self.bn_stats.insert(id, st);
                    }
                }
            }
            let mom = c::<E>(BN_MOMENTUM);
            let unbias = if m > 1 {
                c::<E>(m as f64 / (m as f64 - 1.0))
            } else {
                E::one()
            };
            for (k, &(mu, var)) in per.iter().enumerate() {
                stats.mean[k] = (E::one() - mom) * stats.mean[k] + mom * mu;
                stats.var[k] = (E::one() - mom) * stats.var[k] + mom * var * unbias;
            }
            per.iter()
                .map(|&(mu, var)| (mu, E::one() / (var + eps).sqrt()))
                .unzip()
        } else {
            (
                stats.mean.clone(),
                stats
                    .var
                    .iter()
                    .map(|&v| E::one() / (v + eps).sqrt())
                    .collect(),
            )
        };
        let out = crate::cpu::par_filled(n * ch * hw, hw, |idx, o| {
            let k = idx % ch;
            let (mu, is, gk, bk) = (mean[k], invstd[k], g[k], b[k]);
            let xs = x.plane(idx / ch, k);
            if relu {
                for (y, &t) in o.iter_mut().zip(xs) {
                    let v = gk * (t - mu) * is + bk;
                    y.write(if v < E::zero() { E::zero() } else { v });
                }
            } else {
                for (y, &t) in o.iter_mut().zip(xs) {
                    y.write(gk * (t - mu) * is + bk);
                }
            }
        });
        let out = self.act(out, [n, ch, h, w]);
        let saved = NormSaved {
            x: self.record.then(|| x.clone()),
            dims: [n, ch, h, w],
            mean,
            invstd,
            relu,
            train: self.train,
        };
        Ok((out, saved))
    }

    /// The gradients of γ and β (added to theirs) and of the input (accumulated into `dx`; the
    /// output gradient's buffer is reused for it), from the output gradient `gy`.
    fn batch_norm_backward(
        &mut self,
        saved: NormSaved<E>,
        gamma: &Param<E>,
        beta: &Param<E>,
        mut gy: Vec<E>,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let NormSaved {
            x,
            dims: [n, ch, h, w],
            mean,
            invstd,
            relu,
            train,
        } = saved;
        let x = x.expect("batch norm backward after a recorded forward");
        let (hw, m) = (h * w, n * h * w);
        let (g, b): (&[E], &[E]) = (&gamma.data, &beta.data);
        // Per plane, in one pass of SIMD lanes: the fused ReLU's mask applied to gy in place (zero
        // where `a·x + b ≤ 0`), and Σ gy and Σ gy·x of the masked gy, from which Σ gy·x̂ =
        // invstd·(Σ gy·x − μ·Σ gy).
        let plane_sums: Vec<(E, E)> = gy
            .par_chunks_mut(hw)
            .enumerate()
            .map(|(idx, o)| {
                let k = idx % ch;
                let xs = x.plane(idx / ch, k);
                let mask = relu.then(|| (g[k] * invstd[k], b[k] - g[k] * invstd[k] * mean[k]));
                crate::cpu::simd::arch().dispatch(MaskedSums { x: xs, g: o, mask })
            })
            .collect();
        let mut sums = vec![(E::zero(), E::zero()); ch];
        for (idx, (sd, sdx)) in plane_sums.into_iter().enumerate() {
            let e = &mut sums[idx % ch];
            e.0 += sd;
            e.1 += sdx;
        }
        // (Σ gy, Σ gy·x̂) per channel.
        let sums: Vec<(E, E)> = sums
            .iter()
            .enumerate()
            .map(|(k, &(sd, sdx))| (sd, invstd[k] * (sdx - mean[k] * sd)))
            .collect();
        let mf = c::<E>(m as f64);
        // gx = γ·is/M·(M·d − Σd − x̂·Σd x̂) = A·d + C·x + B with per-channel constants.
        let coef: Vec<(E, E, E)> = (0..ch)
            .map(|k| {
                let a = g[k] * invstd[k];
                if train {
                    let (sb, sg) = sums[k];
                    let cc = -a / mf * sg * invstd[k];
                    (a, cc, -a / mf * sb - cc * mean[k])
                } else {
                    (a, E::zero(), E::zero())
                }
            })
            .collect();
        // Written over the output gradient's own buffer (already masked): no new allocation.
        gy.par_chunks_mut(hw).enumerate().for_each(|(idx, o)| {
            let (a, cc, bb) = coef[idx % ch];
            for (d, &t) in o.iter_mut().zip(x.plane(idx / ch, idx % ch)) {
                *d = a * *d + cc * t + bb;
            }
        });
        let gb: Vec<E> = sums.iter().map(|s| s.0).collect();
        let gg: Vec<E> = sums.iter().map(|s| s.1).collect();
        self.add_param_grad(gamma, &gg);
        self.add_param_grad(beta, &gb);
        accumulate(dx, gy);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::read;
    use crate::cpu::testutil::*;

    /// Batch norm written out directly (training mode).
    fn naive(x: &[f64], g: &[f64], b: &[f64], n: usize, ch: usize, hw: usize) -> Vec<f64> {
        let m = (n * hw) as f64;
        let mut out = vec![0.0; x.len()];
        for k in 0..ch {
            let idx: Vec<usize> = (0..n)
                .flat_map(|i| (0..hw).map(move |j| (i * ch + k) * hw + j))
                .collect();
            let mu = idx.iter().map(|&i| x[i]).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (x[i] - mu).powi(2)).sum::<f64>() / m;
            for &i in &idx {
                out[i] = g[k] * (x[i] - mu) / (var + BN_EPS).sqrt() + b[k];
            }
        }
        out
    }

    fn bn_op(ch: usize) -> sparsenet_net::Op {
        sparsenet_net::Op::BatchNorm { channels: ch }
    }

    #[test]
    fn masked_sums_match_the_formula_in_lanes_and_tail() {
        // 37 values: whole vectors and a tail for every instruction set, with and without the
        // mask, in f64 and f32.
        let x = rand_vec(37, 61);
        let g = rand_vec(37, 62);
        for mask in [None, Some((0.7, -0.1))] {
            let keep = |t: f64| mask.is_none_or(|(a, b)| a * t + b > 0.0);
            let gm: Vec<f64> = g
                .iter()
                .zip(&x)
                .map(|(&d, &t)| if keep(t) { d } else { 0.0 })
                .collect();
            let want = (
                gm.iter().sum::<f64>(),
                gm.iter().zip(&x).map(|(d, t)| d * t).sum::<f64>(),
            );
            let mut g64 = g.clone();
            let got = crate::cpu::simd::arch().dispatch(MaskedSums {
                x: &x,
                g: &mut g64,
                mask,
            });
            assert!((got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12);
            assert_eq!(g64, gm, "the masked gradient, in place");
            let (x32, mut g32): (Vec<f32>, Vec<f32>) = x
                .iter()
                .zip(&g)
                .map(|(&a, &b)| (a as f32, b as f32))
                .unzip();
            let mask32 = mask.map(|(a, b)| (a as f32, b as f32));
            let got = crate::cpu::simd::arch().dispatch(MaskedSums {
                x: &x32,
                g: &mut g32,
                mask: mask32,
            });
            assert!((got.0 as f64 - want.0).abs() < 1e-4 && (got.1 as f64 - want.1).abs() < 1e-4);
        }
    }

    #[test]
    fn train_forward_gradients_and_running_stats() {
        let (n, ch, h, w) = (3, 4, 2, 3);
        let xv = rand_vec(n * ch * h * w, 7);
        let gv = rand_vec(ch, 8);
        let bv = rand_vec(ch, 9);
        let mut stats = BnStats::new(ch);
        let ps = [gv.clone(), bv.clone()];
        let inputs = [(xv.clone(), [n, ch, h, w])];
        let run = run_op(
            &bn_op(ch),
            false,
            true,
            &inputs,
            &[0],
            &ps,
            Some(&mut stats),
            10,
        );
        let hw = h * w;
        assert!(rel_err(&run.out, &naive(&xv, &gv, &bv, n, ch, hw)) < 1e-12);
        // Running stats after one batch: 0.9·0 + 0.1·μ and 0.9·1 + 0.1·σ²·M/(M−1).
        let m = (n * h * w) as f64;
        let ch0: Vec<f64> = (0..n)
            .flat_map(|i| xv[i * ch * h * w..][..h * w].to_vec())
            .collect();
        let mu0 = ch0.iter().sum::<f64>() / m;
        let var0 = ch0.iter().map(|v| (v - mu0).powi(2)).sum::<f64>() / m;
        assert!((stats.mean[0] - 0.1 * mu0).abs() < 1e-12);
        assert!((stats.var[0] - (0.9 + 0.1 * var0 * m / (m - 1.0))).abs() < 1e-12);

        let r = &run.weights;
        let nx = numeric_grad(&xv, |xs| weighted_sum(&naive(xs, &gv, &bv, n, ch, hw), r));
        let ng = numeric_grad(&gv, |gs| weighted_sum(&naive(&xv, gs, &bv, n, ch, hw), r));
        let nb = numeric_grad(&bv, |bs| weighted_sum(&naive(&xv, &gv, bs, n, ch, hw), r));
        let gx = &run.input_grads[0];
        assert!(rel_err(gx, &nx) < 1e-7, "dx {}", rel_err(gx, &nx));
        assert!(rel_err(&run.param_grads[0], &ng) < 1e-7);
        assert!(rel_err(&run.param_grads[1], &nb) < 1e-7);
    }

    #[test]
    fn fused_relu_forward_and_gradients() {
        let (n, ch, hw) = (2, 3, 5);
        let xv = rand_vec(n * ch * hw, 21);
        let gv = rand_vec(ch, 22);
        let bv = rand_vec(ch, 23);
        let reference = |x: &[f64], g: &[f64], b: &[f64]| -> Vec<f64> {
            naive(x, g, b, n, ch, hw)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect()
        };
        let ps = [gv.clone(), bv.clone()];
        let inputs = [(xv.clone(), [n, ch, 1, hw])];
        let mut stats = BnStats::new(ch);
        let run = run_op(
            &bn_op(ch),
            true,
            true,
            &inputs,
            &[0],
            &ps,
            Some(&mut stats),
            24,
        );
        assert!(rel_err(&run.out, &reference(&xv, &gv, &bv)) < 1e-12);
        let r = &run.weights;
        let nx = numeric_grad(&xv, |v| weighted_sum(&reference(v, &gv, &bv), r));
        let ng = numeric_grad(&gv, |v| weighted_sum(&reference(&xv, v, &bv), r));
        let nb = numeric_grad(&bv, |v| weighted_sum(&reference(&xv, &gv, v), r));
        let gx = &run.input_grads[0];
        assert!(rel_err(gx, &nx) < 1e-6, "{}", rel_err(gx, &nx));
        assert!(rel_err(&run.param_grads[0], &ng) < 1e-6);
        assert!(rel_err(&run.param_grads[1], &nb) < 1e-6);
    }

    #[test]
    fn statistics_of_concatenated_sources_are_reused_bit_for_bit() {
        // Two concatenations sharing sources, normalised in one pass (the second reuses the
        // statistics of a and b) and each in a fresh pass: the same bits, and the cache holds
        // one entry per source.
        let (n, hw) = (3, 5);
        let src = |ch: usize, seed: u64| Act::new(rand_vec(n * ch * hw, seed), [n, ch, 1, hw]);
        let (a, b, c) = (src(2, 41), src(3, 42), src(1, 43));
        let bn = |ctx: &mut CpuBackend<f64>, x: &Act<f64>| {
            let ch = x.dims()[1];
            let (g, be) = (
                Param::new(0, rand_vec(ch, 44)),
                Param::new(1, rand_vec(ch, 45)),
            );
            read(
                &ctx.batch_norm(x, &g, &be, &mut BnStats::new(ch), true)
                    .unwrap()
                    .0,
            )
        };
        let mut shared = CpuBackend::new(true, false);
        let ab = Act::concat(&[&a, &b]);
        let abc = Act::concat(&[&a, &b, &c]);
        let y1 = bn(&mut shared, &ab);
        let y2 = bn(&mut shared, &abc);
        assert_eq!(shared.bn_stats.len(), 3, "one entry per source");
        let fresh = |x: &Act<f64>| bn(&mut CpuBackend::new(true, false), x);
        assert_eq!(y1, fresh(&ab));
        assert_eq!(y2, fresh(&abc));
        // …and both against the naive batch norm (then the ReLU).
        let g = rand_vec(6, 44);
        let be = rand_vec(6, 45);
        let want: Vec<f64> = naive(abc.values(), &g, &be, n, 6, hw)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        assert!(rel_err(&y2, &want) < 1e-12);
    }

    #[test]
    fn eval_uses_running_statistics_not_the_batch() {
        let x: Act<f64> = Act::new(vec![1.0, 3.0, 5.0, 7.0], [4, 1, 1, 1]);
        let g = Param::new(0, vec![2.0]);
        let b = Param::new(1, vec![0.5]);
        let mut stats = BnStats {
            mean: vec![1.0],
            var: vec![4.0],
        };
        let mut ctx = CpuBackend::new(false, false);
        let y = read(&ctx.batch_norm(&x, &g, &b, &mut stats, false).unwrap().0);
        // y = 2·(x − 1)/√(4 + ε) + 0.5 ≈ x − 1 + 0.5; the batch mean (4) plays no part.
        let want: Vec<f64> = [1.0, 3.0, 5.0, 7.0]
            .iter()
            .map(|v| 2.0 * (v - 1.0) / (4.0 + BN_EPS).sqrt() + 0.5)
            .collect();
        assert!(rel_err(&y, &want) < 1e-12);
        assert_eq!(
            stats.mean,
            vec![1.0],
            "evaluation must not update running statistics"
        );
        // Training mode on the same batch normalises by the batch instead.
        let mut ctx = CpuBackend::new(true, false);
        let yt = read(&ctx.batch_norm(&x, &g, &b, &mut stats, false).unwrap().0);
        assert!((yt.iter().sum::<f64>() / 4.0 - 0.5).abs() < 1e-12);
    }
}
