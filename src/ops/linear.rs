//! Fully connected layer over the flattened input, with bias (weight `[out, in]`, as PyTorch).

use dfdx::prelude::*;

use super::gemm::Gemm;
use super::{add_grad, dims, read, take_grad, Act, Ctx, Ghost, Param, Real};

/// `y = x·Wᵀ + b` with `x` flattened to `N × (C·H·W)`; output `N×out×1×1`.
pub fn linear<E: Real>(
    ctx: &mut Ctx<E>,
    x: &Act<E>,
    w: &Param<E>,
    b: &Param<E>,
    out_features: usize,
) -> Act<E>
where
    Cpu: Device<E>,
{
    let [n, ch, h, wd] = dims(x);
    let f = ch * h * wd;
    assert_eq!(w.shape().0, out_features * f, "linear: weight size");
    let xv = read(x);
    let wv = read(w);
    let bv = read(b);
    let mut out: Vec<E> = (0..n).flat_map(|_| bv.iter().copied()).collect();
    Gemm::new(n, out_features, f)
        .b_transposed()
        .accumulating()
        .run(&mut out, &xv, &wv);
    let out = ctx.act(out, [n, out_features, 1, 1]);
    if ctx.record {
        let (rx, rw, rb, ro) = (Ghost::of(x), Ghost::of(w), Ghost::of(b), Ghost::of(&out));
        ctx.backward("linear.backward", move |grads| {
            let gy = take_grad(grads, &ro)?;
            let mut gw = vec![E::zero(); out_features * f];
            Gemm::new(out_features, f, n)
                .a_transposed()
                .run(&mut gw, &gy, &xv);
            let mut gx = vec![E::zero(); n * f];
            Gemm::new(n, f, out_features).run(&mut gx, &gy, &wv);
            let mut gb = vec![E::zero(); out_features];
            for row in gy.chunks(out_features) {
                for (a, &d) in gb.iter_mut().zip(row) {
                    *a += d;
                }
            }
            add_grad(grads, &rx, &gx)?;
            add_grad(grads, &rw, &gw)?;
            add_grad(grads, &rb, &gb)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    fn naive(x: &[f64], w: &[f64], b: &[f64], n: usize, f: usize, o: usize) -> Vec<f64> {
        let mut y = vec![0.0; n * o];
        for i in 0..n {
            for j in 0..o {
                y[i * o + j] = b[j] + (0..f).map(|p| x[i * f + p] * w[j * f + p]).sum::<f64>();
            }
        }
        y
    }

    #[test]
    fn forward_and_gradients() {
        let dev = Cpu::default();
        let (n, f, o) = (3, 2 * 2 * 2, 4);
        let (xv, wv, bv) = (rand_vec(n * f, 1), rand_vec(o * f, 2), rand_vec(o, 3));
        let x: Act<f64> = dev.tensor_from_vec(xv.clone(), (n, 2, 2, 2));
        let w: Param<f64> = dev.tensor_from_vec(wv.clone(), (o * f,));
        let b: Param<f64> = dev.tensor_from_vec(bv.clone(), (o,));
        let mut ctx = Ctx::new(&dev, true, false);
        let got = read(&linear(&mut ctx, &x, &w, &b, o));
        assert!(rel_err(&got, &naive(&xv, &wv, &bv, n, f, o)) < 1e-12);
        let r = rand_vec(n * o, 4);
        let (xc, wc, bc) = (x.clone(), w.clone(), b.clone());
        let g = analytic_grads(
            &dev,
            |ctx| linear(ctx, &x, &w, &b, o),
            &r,
            &[
                &|gr| gr.get(&xc).as_vec(),
                &|gr| gr.get(&wc).as_vec(),
                &|gr| gr.get(&bc).as_vec(),
            ],
        );
        let nx = numeric_grad(&xv, |v| weighted_sum(&naive(v, &wv, &bv, n, f, o), &r));
        let nw = numeric_grad(&wv, |v| weighted_sum(&naive(&xv, v, &bv, n, f, o), &r));
        let nb = numeric_grad(&bv, |v| weighted_sum(&naive(&xv, &wv, v, n, f, o), &r));
        assert!(
            rel_err(&g[0], &nx) < 1e-7 && rel_err(&g[1], &nw) < 1e-7 && rel_err(&g[2], &nb) < 1e-7
        );
    }
}
