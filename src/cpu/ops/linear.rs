//! Fully connected layer over the flattened input, with bias (weight `[out, in]`, as PyTorch).

use anyhow::Result;

use crate::backend::LinearOps;
use crate::cpu::gemm::Gemm;
use crate::cpu::{accumulate, Act, CpuBackend, Elem, Param};

/// What a linear layer keeps: its input, flattened (empty when not recording).
pub struct LinearSaved<E>(std::sync::Arc<Vec<E>>);

impl<E: Elem> LinearOps for CpuBackend<E> {
    type LinearSaved = LinearSaved<E>;

    /// `y = x·Wᵀ + b` with `x` flattened to `N × (C·H·W)`; output `N×out×1×1`.
    fn linear(
        &mut self,
        x: &Act<E>,
        w: &Param<E>,
        b: &Param<E>,
        out_features: usize,
    ) -> Result<(Act<E>, LinearSaved<E>)> {
        let [n, ch, h, wd] = x.dims();
        let f = ch * h * wd;
        assert_eq!(w.data.len(), out_features * f, "linear: weight size");
        let xv = x.shared();
        let mut out: Vec<E> = (0..n).flat_map(|_| b.data.iter().copied()).collect();
        Gemm::new(n, out_features, f)
            .b_transposed()
            .accumulating()
            .run(&mut out, &xv, &w.data);
        let out = self.act(out, [n, out_features, 1, 1]);
        Ok((
            out,
            LinearSaved(if self.record { xv } else { Default::default() }),
        ))
    }

    /// The gradients of the weight and bias (added to theirs) and of the input (accumulated into
    /// `dx`), from the output gradient `gy` (`N × out`).
    fn linear_backward(
        &mut self,
        saved: LinearSaved<E>,
        w: &Param<E>,
        b: &Param<E>,
        gy: Vec<E>,
        dx: &mut Option<Vec<E>>,
    ) -> Result<()> {
        let xv = saved.0;
        let out_features = b.data.len();
        let n = gy.len() / out_features;
        let f = xv.len() / n.max(1);
        let mut gw = vec![E::zero(); out_features * f];
        Gemm::new(out_features, f, n)
            .a_transposed()
            .run(&mut gw, &gy, &xv);
        let mut gx = vec![E::zero(); n * f];
        Gemm::new(n, f, out_features).run(&mut gx, &gy, &w.data);
        let mut gb = vec![E::zero(); out_features];
        for row in gy.chunks(out_features) {
            for (a, &d) in gb.iter_mut().zip(row) {
                *a += d;
            }
        }
        self.add_param_grad(w, &gw);
        self.add_param_grad(b, &gb);
        accumulate(dx, gx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::testutil::*;

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
        let (n, f, o) = (3, 2 * 2 * 2, 4);
        let (xv, wv, bv) = (rand_vec(n * f, 1), rand_vec(o * f, 2), rand_vec(o, 3));
        let op = sparsenet_net::Op::Linear {
            in_features: f,
            out_features: o,
        };
        let run = run_op(
            &op,
            false,
            true,
            &[(xv.clone(), [n, 2, 2, 2])],
            &[0],
            &[wv.clone(), bv.clone()],
            None,
            4,
        );
        assert!(rel_err(&run.out, &naive(&xv, &wv, &bv, n, f, o)) < 1e-12);
        let r = &run.weights;
        let nx = numeric_grad(&xv, |v| weighted_sum(&naive(v, &wv, &bv, n, f, o), r));
        let nw = numeric_grad(&wv, |v| weighted_sum(&naive(&xv, v, &bv, n, f, o), r));
        let nb = numeric_grad(&bv, |v| weighted_sum(&naive(&xv, &wv, v, n, f, o), r));
        let (gx, gw, gb) = (
            &run.input_grads[0],
            &run.param_grads[0],
            &run.param_grads[1],
        );
        assert!(rel_err(gx, &nx) < 1e-7 && rel_err(gw, &nw) < 1e-7 && rel_err(gb, &nb) < 1e-7);
    }
}
