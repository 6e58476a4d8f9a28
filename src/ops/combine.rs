//! Aggregations and the activation: n-ary channel concatenation, n-ary sum, ReLU.
//!
//! Concatenation is one op over all inputs (one copy) rather than a chain of pairwise dfdx
//! `concat_along` calls, which would copy a DenseNet layer's growing input once per source.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{accumulate, accumulate_from, dims, read, Act, Ctx, Elem};

/// Concatenate along channels, in order.
pub fn concat<E: Elem>(ctx: &mut Ctx<E>, xs: &[&Act<E>]) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, _, h, w] = dims(xs[0]);
    let hw = h * w;
    let chans: Vec<usize> = xs.iter().map(|x| dims(x)[1]).collect();
    let total: usize = chans.iter().sum();
    let vals: Vec<&[E]> = xs
        .iter()
        .map(|x| {
            let d = dims(x);
            assert_eq!((d[0], d[2], d[3]), (n, h, w), "concat: shapes");
            x.values()
        })
        .collect();
    // Samples in parallel, one write of the output, no zero-fill first.
    let out = super::par_filled(n * total * hw, total * hw, |i, o| {
        let mut at = 0;
        for (v, &cx) in vals.iter().zip(&chans) {
            for (d, &s) in o[at..at + cx * hw]
                .iter_mut()
                .zip(&v[i * cx * hw..(i + 1) * cx * hw])
            {
                d.write(s);
            }
            at += cx * hw;
        }
    });
    let parts = xs.iter().flat_map(|x| x.parts()).collect();
    ctx.act(out, [n, total, h, w]).with_parts(parts)
}

/// `dx += gy[:, offset .. offset + C]` for an input `x` (`N×C×H×W`) of a concatenation whose
/// output has dimensions `y`.
pub fn concat_backward<E: Elem>(
    gy: &[E],
    y: [usize; 4],
    offset: usize,
    x: [usize; 4],
    dx: &mut Option<Vec<E>>,
) {
    let [n, cx, h, w] = x;
    let (hw, total) = (h * w, y[1]);
    // Sample i's slice of the output gradient; samples in parallel (one core cannot saturate
    // memory bandwidth), each element written or added once.
    let row = |i: usize| &gy[(i * total + offset) * hw..][..cx * hw];
    match dx {
        None => {
            *dx = Some(super::par_filled(n * cx * hw, cx * hw, |i, dst| {
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
}

/// Element-wise sum of same-shaped inputs.
pub fn sum<E: Elem>(ctx: &mut Ctx<E>, xs: &[&Act<E>]) -> Act<E>
where
    Cpu: Device<E>,
{
    let d = dims(xs[0]);
    let mut out = read(xs[0]);
    for x in &xs[1..] {
        assert_eq!(dims(x), d, "sum: shapes");
        for (a, &b) in out.iter_mut().zip(x.values()) {
            *a += b;
        }
    }
    ctx.act(out, d)
}

/// What a ReLU keeps: where it was active (empty when not recording).
pub struct ReluSaved(Vec<bool>);

/// `max(x, 0)`.
pub fn relu<E: Elem>(ctx: &mut Ctx<E>, x: &Act<E>) -> (Act<E>, ReluSaved)
where
    Cpu: Device<E>,
{
    let v: Vec<E> = x
        .values()
        .par_iter()
        .map(|&t| if t < E::zero() { E::zero() } else { t })
        .collect();
    let mask: Vec<bool> = if ctx.record {
        v.iter().map(|&t| t > E::zero()).collect()
    } else {
        Vec::new()
    };
    (ctx.act(v, dims(x)), ReluSaved(mask))
}

/// `dx += g` where the ReLU was active (the output gradient's buffer is reused).
pub fn relu_backward<E: Elem>(saved: ReluSaved, mut g: Vec<E>, dx: &mut Option<Vec<E>>) {
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
}

/// `dx += g` (the backward of a sum, for each of its inputs).
pub fn sum_backward<E: Elem>(g: &[E], dx: &mut Option<Vec<E>>) {
    accumulate_from(dx, g);
}

#[cfg(test)]
mod tests {
    use crate::ops::testutil::*;

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
}
