//! The loss on the CPU: dfdx's softmax cross-entropy (`cross_entropy_with_logits_loss`), on a
//! tape of its own whose only leaf is the logits, so the logits' gradient is dfdx's. This is the
//! one module that uses dfdx: the element types reach it through [`LossElem`], so no other
//! code carries dfdx's device bounds.

use anyhow::{bail, Result};
use dfdx::prelude::*;

use crate::backend::{Label, LossOps};
use crate::cpu::{read, Act, CpuBackend, Elem, Grad};

/// An element type whose cross-entropy dfdx computes (`f32` and `f64`).
pub trait LossElem: Sized {
    /// The mean softmax cross-entropy of `logits` (`n × classes`, row-major) against the one-hot
    /// `target`, and its gradient with respect to the logits when `grad`.
    fn cross_entropy(
        logits: Vec<Self>,
        target: Vec<Self>,
        n: usize,
        classes: usize,
        grad: bool,
    ) -> (f64, Option<Vec<Self>>);
}

macro_rules! dfdx_loss {
    ($($t:ty),*) => {$(
        impl LossElem for $t {
            fn cross_entropy(
                logits: Vec<$t>,
                target: Vec<$t>,
                n: usize,
                classes: usize,
                grad: bool,
            ) -> (f64, Option<Vec<$t>>) {
                let dev = Cpu::default();
                let target: Tensor<(usize, usize), $t, Cpu> = dev.tensor_from_vec(target, (n, classes));
                let leaf: Tensor<(usize, usize), $t, Cpu> = dev.tensor_from_vec(logits, (n, classes));
                let loss = cross_entropy_with_logits_loss(leaf.leaky_trace(), target);
                let mean = loss.array() as f64;
                (mean, grad.then(|| loss.backward().get(&leaf).as_vec()))
            }
        }
    )*};
}
dfdx_loss!(f32, f64);

impl<E: Elem> LossOps for CpuBackend<E> {
    type PendingLoss = (f64, usize);

    fn cross_entropy(
        &mut self,
        logits: &Act<E>,
        labels: &[Label],
    ) -> Result<(Option<Grad<E>>, (f64, usize))> {
        let [n, classes, h, w] = logits.dims();
        if n != labels.len() || h * w != 1 {
            bail!(
                "logits are {n}×{classes}×{h}×{w}, expected {}×classes×1×1",
                labels.len()
            );
        }
        let lv = read(logits);
        let correct = lv
            .chunks(classes)
            .zip(labels)
            .filter(|(row, &l)| {
                let best = row
                    .iter()
                    .enumerate()
                    .fold(0, |b, (k, v)| if *v > row[b] { k } else { b });
                best == l as usize
            })
            .count();
        let mut onehot = vec![E::zero(); n * classes];
        for (i, &l) in labels.iter().enumerate() {
            if l as usize >= classes {
                bail!("label {l} is not below the network's {classes} classes");
            }
            onehot[i * classes + l as usize] = E::one();
        }
        let (mean, dlogits) = E::cross_entropy(lv, onehot, n, classes, self.record);
        Ok((dlogits, (mean, correct)))
    }

    fn read_loss(&mut self, loss: (f64, usize)) -> Result<(f64, usize)> {
        Ok(loss)
    }
}
