//! Aggregations and the activation: n-ary channel concatenation, n-ary sum, ReLU.
//!
//! Concatenation is one op over all inputs (one copy) rather than a chain of pairwise dfdx
//! `concat_along` calls, which would copy a DenseNet layer's growing input once per source.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{add_grad, dims, read, take_grad, Act, Ctx, Ghost, Real};

/// Concatenate along channels, in order.
pub fn concat<E: Real>(ctx: &mut Ctx<E>, xs: &[&Act<E>]) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, _, h, w] = dims(xs[0]);
    let hw = h * w;
    let chans: Vec<usize> = xs.iter().map(|x| dims(x)[1]).collect();
    let total: usize = chans.iter().sum();
    let vals: Vec<Vec<E>> = xs
        .iter()
        .map(|x| {
            let d = dims(x);
            assert_eq!((d[0], d[2], d[3]), (n, h, w), "concat: shapes");
            read(*x)
        })
        .collect();
    // Built by appending, sample by sample: one write of the output, no zero-fill first.
    let mut out = Vec::with_capacity(n * total * hw);
    for i in 0..n {
        for (v, &cx) in vals.iter().zip(&chans) {
            out.extend_from_slice(&v[i * cx * hw..(i + 1) * cx * hw]);
        }
    }
    let out = ctx.act(out, [n, total, h, w]);
    if ctx.record {
        let refs: Vec<Ghost<E>> = xs.iter().map(|x| Ghost::of(*x)).collect();
        let ro = Ghost::of(&out);
        ctx.backward("concat.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let mut off = 0;
            for (r, &cx) in refs.iter().zip(&chans) {
                let mut g = vec![E::zero(); n * cx * hw];
                for i in 0..n {
                    g[i * cx * hw..][..cx * hw]
                        .copy_from_slice(&gy[(i * total + off) * hw..][..cx * hw]);
                }
                add_grad(grads, r, &g)?;
                off += cx;
            }
            Ok(())
        });
    }
    out
}

/// Element-wise sum of same-shaped inputs.
pub fn sum<E: Real>(ctx: &mut Ctx<E>, xs: &[&Act<E>]) -> Act<E>
where
    Cpu: Device<E>,
{
    let d = dims(xs[0]);
    let mut out = read(xs[0]);
    for x in &xs[1..] {
        assert_eq!(dims(x), d, "sum: shapes");
        for (a, b) in out.iter_mut().zip(read(*x)) {
            *a += b;
        }
    }
    let out = ctx.act(out, d);
    if ctx.record {
        let refs: Vec<Ghost<E>> = xs.iter().map(|x| Ghost::of(*x)).collect();
        let ro = Ghost::of(&out);
        ctx.backward("sum.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            for r in &refs {
                add_grad(grads, r, &gy)?;
            }
            Ok(())
        });
    }
    out
}

/// `max(x, 0)`.
pub fn relu<E: Real>(ctx: &mut Ctx<E>, x: &Act<E>) -> Act<E>
where
    Cpu: Device<E>,
{
    let mut v = read(x);
    v.par_chunks_mut(1 << 15).for_each(|ch| {
        for t in ch {
            if *t < E::zero() {
                *t = E::zero();
            }
        }
    });
    let mask: Vec<bool> = if ctx.record {
        v.iter().map(|&t| t > E::zero()).collect()
    } else {
        Vec::new()
    };
    let out = ctx.act(v, dims(x));
    if ctx.record {
        let (rx, ro) = (Ghost::of(x), Ghost::of(&out));
        ctx.backward("relu.backward", move |grads| {
            let mut g = take_grad(grads, &ro)?;
            g.par_chunks_mut(1 << 15)
                .zip(mask.par_chunks(1 << 15))
                .for_each(|(gs, ms)| {
                    for (d, &m) in gs.iter_mut().zip(ms) {
                        if !m {
                            *d = E::zero();
                        }
                    }
                });
            add_grad(grads, &rx, &g)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn concat_sum_relu_gradients() {
        let dev = Cpu::default();
        let av = rand_vec(2 * 2 * 2, 1);
        let bv = rand_vec(2 * 3 * 2 * 2, 2);
        let a: Act<f64> = dev.tensor_from_vec(av.clone(), (2, 1, 2, 2));
        let b: Act<f64> = dev.tensor_from_vec(bv.clone(), (2, 3, 2, 2));
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
        let mut ctx = Ctx::new(&dev, true, false);
        assert_eq!(read(&concat(&mut ctx, &[&a, &b])), cat_ref(&av, &bv));
        let r = rand_vec(32, 3);
        let (ac, bc) = (a.clone(), b.clone());
        // relu(concat(a, b)) checks both ops' backward together.
        let g = analytic_grads(
            &dev,
            |ctx| {
                let c = concat(ctx, &[&a, &b]);
                relu(ctx, &c)
            },
            &r,
            &[&|gr| gr.get(&ac).as_vec(), &|gr| gr.get(&bc).as_vec()],
        );
        let f = |a: &[f64], b: &[f64]| {
            weighted_sum(
                &cat_ref(a, b).iter().map(|v| v.max(0.0)).collect::<Vec<_>>(),
                &r,
            )
        };
        assert!(rel_err(&g[0], &numeric_grad(&av, |v| f(v, &bv))) < 1e-7);
        assert!(rel_err(&g[1], &numeric_grad(&bv, |v| f(&av, v))) < 1e-7);

        let r2 = rand_vec(8, 4);
        let b2: Act<f64> = dev.tensor_from_vec(av.iter().map(|v| v * 3.0).collect(), (2, 1, 2, 2));
        let ac = a.clone();
        let g = analytic_grads(
            &dev,
            |ctx| sum(ctx, &[&a, &b2, &a]),
            &r2,
            &[&|gr| gr.get(&ac).as_vec()],
        );
        // a appears twice in the sum: its gradient is 2·r.
        let want: Vec<f64> = r2.iter().map(|v| 2.0 * v).collect();
        assert!(rel_err(&g[0], &want) < 1e-12);
    }
}
