//! Aggregations and the element-wise layers: n-ary channel concatenation, n-ary sum, ReLU,
//! dropout.
//!
//! Concatenation is one op over all inputs (one copy) rather than a chain of pairwise dfdx
//! `concat_along` calls, which would copy a DenseNet layer's growing input once per source.

use anyhow::Result;
use rayon::prelude::*;

use crate::backend::{CombineOps, DropMask};
use crate::cpu::{accumulate, read, Act, CpuBackend, Elem};

/// What a ReLU keeps: where it was active (empty when not recording).
pub struct ReluSaved(Vec<bool>);

impl<E: Elem> CombineOps for CpuBackend<E> {
    type ReluSaved = ReluSaved;

    /// `max(x, 0)`.
    fn relu(&mut self, x: &Act<E>) -> Result<(Act<E>, ReluSaved)> {
        let v: Vec<E> = x
            .values()
            .par_iter()
            .map(|&t| if t < E::zero() { E::zero() } else { t })
            .collect();
        let mask: Vec<bool> = if self.record {
            v.iter().map(|&t| t > E::zero()).collect()
        } else {
            Vec::new()
        };
        Ok((self.act(v, x.dims()), ReluSaved(mask)))
    }

    /// `dx += g` where the ReLU was active (the output gradient's buffer is reused).
    fn relu_backward(
        &mut self,
        saved: ReluSaved,
        mut g: Vec<E>,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let mask = saved.0;
        g.par_chunks_mut(1 << 15)
            .zip(mask.par_chunks(1 << 15))
            .for_each(|(gs, ms)| {
                for (d, &m) in gs.iter_mut().zip(ms) {
                    if !m {
                        *d = E::zero();
                    }
                }
            });
        accumulate(dx, g);
        Ok(())
    }

    /// `x·scale` where the mask keeps the element, 0 elsewhere: each element's draw depends on
    /// its index only, so the chunks run in any order on any number of threads.
    fn dropout(&mut self, x: &Act<E>, mask: DropMask) -> Result<Act<E>> {
        let scale: E = crate::real::c(mask.scale() as f64);
        let v: Vec<E> = x
            .values()
            .par_iter()
            .enumerate()
            .map(|(i, &t)| {
                if mask.keeps(i as u64) {
                    t * scale
                } else {
                    E::zero()
                }
            })
            .collect();
        Ok(self.act(v, x.dims()))
    }

    /// `dx += g·scale` where the mask kept the element (the output gradient's buffer is reused).
    fn dropout_backward(
        &mut self,
        mask: DropMask,
        mut g: Vec<E>,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let scale: E = crate::real::c(mask.scale() as f64);
        g.par_iter_mut().enumerate().for_each(|(i, d)| {
            *d = if mask.keeps(i as u64) {
                *d * scale
            } else {
                E::zero()
            };
        });
        accumulate(dx, g);
        Ok(())
    }

    /// Concatenate along channels, in order: lazily, without a copy (see [`Act::concat`]).
    fn concat(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        Ok(Act::concat(xs))
    }

    /// `dx += gy[:, offset .. offset + C]` for an input `x` (`N×C×H×W`) of a concatenation whose
    /// output has dimensions `y`.
    fn concat_backward(
        &mut self,
        gy: &Vec<E>,
        y: [usize; 4],
        offset: usize,
        x: [usize; 4],
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let [n, cx, h, w] = x;
        let (hw, total) = (h * w, y[1]);
        // Sample i's slice of the output gradient; samples in parallel (one core cannot saturate
        // memory bandwidth), each element written or added once.
        let row = |i: usize| &gy[(i * total + offset) * hw..][..cx * hw];
        match dx {
            None => {
                *dx = Some(crate::cpu::par_filled(n * cx * hw, cx * hw, |i, dst| {
                    for (a, &b) in dst.iter_mut().zip(row(i)) {
                        a.write(b);
                    }
                }));
            }
            Some(d) => {
                d.par_chunks_mut(cx * hw).enumerate().for_each(|(i, dst)| {
                    for (a, &b) in dst.iter_mut().zip(row(i)) {
                        *a += b;
                    }
                });
            }
        }
        Ok(())
    }

    /// `a · Σ xs`, element by element in input order (the same sum on any thread count).
    fn scaled_sum(&mut self, xs: &[&Act<E>], a: f32) -> Result<Act<E>> {
        let summed = self.sum(xs)?;
        let a: E = crate::real::c(a as f64);
        let v: Vec<E> = summed.values().par_iter().map(|&t| t * a).collect();
        Ok(self.act(v, summed.dims()))
    }

    /// `dx += a·g`.
    fn accumulate_scaled(
        &mut self,
        g: &Vec<E>,
        a: f32,
        _dims: [usize; 4],
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let a: E = crate::real::c(a as f64);
        accumulate(dx, g.par_iter().map(|&t| t * a).collect());
        Ok(())
    }

    /// Element-wise sum of same-shaped inputs.
    fn sum(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        let d = xs[0].dims();
        let mut out = read(xs[0]);
        for x in &xs[1..] {
            assert_eq!(x.dims(), d, "sum: shapes");
            for (a, &b) in out.iter_mut().zip(x.values()) {
                *a += b;
            }
        }
        Ok(self.act(out, d))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::testutil::*;

    use sparsenet_net::Op;

    #[test]
    fn concat_sum_relu_gradients() {
        let av = rand_vec(2 * 2 * 2, 1);
        let bv = rand_vec(2 * 3 * 2 * 2, 2);
        let cat_ref = |a: &[f64], b: &[f64]| -> Vec<f64> {
            (0..2)
                .flat_map(|i| {
                    a[i * 4..(i + 1) * 4]
                        .iter()
                        .chain(&b[i * 12..(i + 1) * 12])
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let inputs = [(av.clone(), [2, 1, 2, 2]), (bv.clone(), [2, 3, 2, 2])];
        let run = run_op(&Op::Concat, false, true, &inputs, &[0, 1], &[], None, 3);
        assert_eq!(run.out, cat_ref(&av, &bv));
        let r = &run.weights;
        let f = |a: &[f64], b: &[f64]| weighted_sum(&cat_ref(a, b), r);
        assert!(rel_err(&run.input_grads[0], &numeric_grad(&av, |v| f(v, &bv))) < 1e-7);
        assert!(rel_err(&run.input_grads[1], &numeric_grad(&bv, |v| f(&av, v))) < 1e-7);

        // The same tensor in two slots of a concatenation: both slices add into its gradient.
        let run = run_op(&Op::Concat, false, true, &inputs, &[0, 1, 0], &[], None, 5);
        let (r, per) = (&run.weights, 4 + 12 + 4);
        let want: Vec<f64> = (0..2)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .map(|(i, j)| r[i * per + j] + r[i * per + 16 + j])
            .collect();
        assert!(rel_err(&run.input_grads[0], &want) < 1e-12);

        let run = run_op(&Op::Relu, false, true, &inputs[1..], &[0], &[], None, 6);
        let relu_ref = |b: &[f64]| b.iter().map(|v| v.max(0.0)).collect::<Vec<_>>();
        assert_eq!(run.out, relu_ref(&bv));
        let num = numeric_grad(&bv, |v| weighted_sum(&relu_ref(v), &run.weights));
        assert!(rel_err(&run.input_grads[0], &num) < 1e-7);

        let a3: Vec<f64> = av.iter().map(|v| v * 3.0).collect();
        let inputs = [(av.clone(), [2, 1, 2, 2]), (a3, [2, 1, 2, 2])];
        let run = run_op(&Op::Sum, false, true, &inputs, &[0, 1, 0], &[], None, 4);
        let want_out: Vec<f64> = av.iter().map(|v| 5.0 * v).collect();
        assert!(rel_err(&run.out, &want_out) < 1e-12);
        // a appears twice in the sum: its gradient is 2·r.
        let want: Vec<f64> = run.weights.iter().map(|v| 2.0 * v).collect();
        assert!(rel_err(&run.input_grads[0], &want) < 1e-12);
        assert!(rel_err(&run.input_grads[1], &run.weights) < 1e-12);
    }

    /// The maximum of three inputs (one read twice): the values, and the gradient routed to
    /// the input that holds the maximum (by hand, and against finite differences).
    #[test]
    fn max_takes_the_largest_and_routes_its_gradient() {
        let dims = [2, 2, 2, 2];
        let (a, b, c) = (rand_vec(16, 11), rand_vec(16, 12), rand_vec(16, 13));
        let inputs = [(a.clone(), dims), (b.clone(), dims), (c.clone(), dims)];
        let max_ref = |a: &[f64], b: &[f64], c: &[f64]| -> Vec<f64> {
            (0..16).map(|i| a[i].max(b[i]).max(c[i])).collect()
        };
        let run = run_op(&Op::Max, false, true, &inputs, &[0, 1, 2, 0], &[], None, 7);
        let want = max_ref(&a, &b, &c);
        assert!(rel_err(&run.out, &want) < 1e-12);
        // The gradient goes where the maximum is (inputs are distinct random numbers).
        for i in 0..16 {
            let r = run.weights[i];
            let at = |v: &[f64]| if v[i] == want[i] { r } else { 0.0 };
            assert!((run.input_grads[0][i] - at(&a)).abs() < 1e-12, "a {i}");
            assert!((run.input_grads[1][i] - at(&b)).abs() < 1e-12, "b {i}");
            assert!((run.input_grads[2][i] - at(&c)).abs() < 1e-12, "c {i}");
        }
        let f = |a: &[f64], b: &[f64], c: &[f64]| weighted_sum(&max_ref(a, b, c), &run.weights);
        let num = numeric_grad(&b, |v| f(&a, v, &c));
        assert!(rel_err(&run.input_grads[1], &num) < 1e-7);
        // A single input passes through whole.
        let run = run_op(&Op::Max, false, true, &inputs[..1], &[0], &[], None, 8);
        assert_eq!(run.out, a);
        assert!(rel_err(&run.input_grads[0], &run.weights) < 1e-12);
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of the reference generator (Vigna's splitmix64.c) seeded with
        // 1234567: its k-th output is the output function of seed + k·γ, k = 1, 2, …
        let want: [u64; 3] = [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
        ];
        for (k, w) in want.iter().enumerate() {
            let z = 1234567u64.wrapping_add((k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert_eq!(crate::backend::splitmix64(z), *w, "output {}", k + 1);
        }
    }

    #[test]
    fn dropout_keeps_scales_and_passes_gradients_where_its_mask_says() {
        use crate::backend::{layer_key, DropMask};
        let p = 0.3;
        let op = Op::Dropout {
            p: sparsenet_net::op::Prob::new(p).unwrap(),
        };
        let dims = [4, 5, 6, 7];
        // Values away from 0, so a zero in the output is a dropped element.
        let xv: Vec<f64> = rand_vec(840, 11)
            .iter()
            .map(|v| v.signum() * (0.5 + v.abs()))
            .collect();
        let run = run_op(&op, false, true, &[(xv.clone(), dims)], &[0], &[], None, 12);
        // The tape names the output 1 and draws with key 0: the mask by its rule, element by
        // element.
        let mask = DropMask::new(p, layer_key(0, 1));
        let scale = 1.0 / (1.0 - p);
        let kept: Vec<bool> = (0..xv.len() as u64).map(|i| mask.keeps(i)).collect();
        let reference = |x: &[f64]| -> Vec<f64> {
            x.iter()
                .zip(&kept)
                .map(|(&v, &k)| if k { v * scale } else { 0.0 })
                .collect()
        };
        assert!(rel_err(&run.out, &reference(&xv)) < 1e-6, "forward");
        let dropped = kept.iter().filter(|k| !**k).count() as f64 / kept.len() as f64;
        // 840 draws of p = 0.3: σ ≈ 0.016; 4σ either side.
        assert!((dropped - p).abs() < 0.064, "dropped {dropped}");
        let num = numeric_grad(&xv, |v| weighted_sum(&reference(v), &run.weights));
        assert!(rel_err(&run.input_grads[0], &num) < 1e-6, "backward");
        // Evaluation mode: the identity, and its gradient the output's.
        let eval = run_op(
            &op,
            false,
            false,
            &[(xv.clone(), dims)],
            &[0],
            &[],
            None,
            12,
        );
        assert_eq!(eval.out, xv);
        assert_eq!(eval.input_grads[0], eval.weights);
        // Over many draws the keep rate is 1 − p.
        let big = DropMask::new(0.5, 99);
        let kept = (0..200_000u64).filter(|&i| big.keeps(i)).count() as f64 / 200_000.0;
        assert!((kept - 0.5).abs() < 0.005, "kept {kept}");
        // Another layer or step draws another mask.
        let other = DropMask::new(p, layer_key(0, 2));
        assert!((0..840u64).any(|i| other.keeps(i) != mask.keeps(i)));
    }

    #[test]
    fn dropout_draws_the_same_mask_on_any_thread_count() {
        let op = Op::Dropout {
            p: sparsenet_net::op::Prob::new(0.5).unwrap(),
        };
        let xv = rand_vec(3 * 64 * 32 * 32, 5);
        let dims = [3, 64, 32, 32];
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| run_op(&op, false, true, &[(xv.clone(), dims)], &[0], &[], None, 3))
        };
        let (one, four) = (on(1), on(4));
        assert_eq!(one.out, four.out);
        assert_eq!(one.input_grads, four.input_grads);
    }

    #[test]
    fn a_mean_join_averages_its_survivors_and_keeps_at_least_one() {
        use crate::backend::{join_survivors, layer_key};
        let dims = [2, 3, 4, 4];
        let xs: Vec<(Vec<f64>, [usize; 4])> =
            (0..4).map(|k| (rand_vec(96, 20 + k), dims)).collect();
        let op = |p: f64| Op::MeanJoin {
            drop_path: sparsenet_net::op::Prob::new(p).unwrap(),
        };
        // The tape names the output 4 (after the inputs 0..3) and draws with key 0.
        let kept = join_survivors(4, 0.5, layer_key(0, 4));
        let k = kept.iter().filter(|&&b| b).count();
        assert!(k >= 1);
        let mean = |vs: &[Vec<f64>]| -> Vec<f64> {
            (0..96)
                .map(|e| {
                    let s: f64 = (0..4).filter(|&i| kept[i]).map(|i| vs[i][e]).sum();
                    s / k as f64
                })
                .collect()
        };
        let vals: Vec<Vec<f64>> = xs.iter().map(|x| x.0.clone()).collect();
        let run = run_op(&op(0.5), false, true, &xs, &[0, 1, 2, 3], &[], None, 7);
        assert!(rel_err(&run.out, &mean(&vals)) < 1e-6);
        for i in 0..4 {
            if kept[i] {
                let num = numeric_grad(&vals[i], |v| {
                    let mut vs = vals.clone();
                    vs[i] = v.to_vec();
                    weighted_sum(&mean(&vs), &run.weights)
                });
                assert!(rel_err(&run.input_grads[i], &num) < 1e-6, "input {i}");
            } else {
                assert!(
                    run.input_grads[i].iter().all(|&g| g == 0.0),
                    "a dropped input"
                );
            }
        }
        // Evaluation: the plain mean of all four.
        let eval = run_op(&op(0.5), false, false, &xs, &[0, 1, 2, 3], &[], None, 7);
        let all: Vec<f64> = (0..96)
            .map(|e| vals.iter().map(|v| v[e]).sum::<f64>() / 4.0)
            .collect();
        assert!(rel_err(&eval.out, &all) < 1e-12);
        // Over many steps: each input kept with probability 1 − p, and never none.
        let (mut kept_total, steps) = (0usize, 20_000u64);
        for s in 0..steps {
            let keep = join_survivors(3, 0.9, layer_key(s, 1));
            assert!(keep.contains(&true), "step {s} kept nothing");
            kept_total += keep.iter().filter(|&&b| b).count();
        }
        // P(none of 3) = 0.729 at p = 0.9, then one is kept: E[kept] = 0.3 + 0.729.
        let mean_kept = kept_total as f64 / steps as f64;
        assert!((mean_kept - 1.029).abs() < 0.02, "mean kept {mean_kept}");
    }

    #[test]
    fn a_lazy_concatenation_reads_its_sources_and_fills_once() {
        use crate::cpu::Act;
        let (n, hw) = (2, 3);
        let src = |ch: usize, seed: u64| Act::new(rand_vec(n * ch * hw, seed), [n, ch, 1, hw]);
        let (a, b, c) = (src(2, 1), src(1, 2), src(3, 3));
        // A concatenation of an unfilled concatenation takes that one's sources.
        let ab = Act::concat(&[&a, &b]);
        let abc = Act::concat(&[&ab, &c]);
        assert_eq!(abc.dims(), [n, 6, 1, hw]);
        let src_plane = |i: usize, k: usize| -> Vec<f64> {
            match k {
                0 | 1 => a.plane(i, k).to_vec(),
                2 => b.plane(i, 0).to_vec(),
                _ => c.plane(i, k - 3).to_vec(),
            }
        };
        for i in 0..n {
            for k in 0..6 {
                assert_eq!(abc.plane(i, k), &src_plane(i, k)[..], "plane {i} {k}");
            }
        }
        // Filled on demand: the values are the planes in order, and stay the same buffer.
        let want: Vec<f64> = (0..n)
            .flat_map(|i| (0..6).flat_map(move |k| src_plane(i, k)))
            .collect();
        assert_eq!(abc.values(), &want[..]);
        assert!(std::sync::Arc::ptr_eq(&abc.shared(), &abc.shared()));
        // A filled concatenation is a source of its own.
        let abc_a = Act::concat(&[&abc, &a]);
        assert_eq!(abc_a.plane(1, 6), a.plane(1, 0));
        assert_eq!(abc_a.plane(1, 2), b.plane(1, 0));
    }
}
