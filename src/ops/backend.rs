//! The CPU backend: the primitives of this module behind [`Backend`].

use anyhow::{bail, Result};
use dfdx::prelude::*;

use super::combine::{concat, concat_backward, relu, relu_backward, sum, sum_backward, ReluSaved};
use super::conv::{conv2d, conv2d_backward, ConvSaved};
use super::linear::{linear, linear_backward, LinearSaved};
use super::norm::{batch_norm, batch_norm_backward, BnStats, NormSaved};
use super::pool::{
    avg_pool, avg_pool_backward, global_avg_pool, global_avg_pool_backward, max_pool,
    max_pool_backward, shortcut_a, shortcut_a_backward, MaxPoolSaved,
};
use super::{read, Act, Ctx, Elem, Grad, Param};
use crate::backend::{Backend, ConvCfg};

/// The CPU backend: our kernels on dfdx activation tensors; dfdx's cross-entropy for the loss.
impl<E: Elem> Backend for Ctx<E>
where
    Cpu: Device<E>,
{
    type Act = Act<E>;
    type Param = Param<E>;
    type Stats = BnStats<E>;
    type Grad = Grad<E>;
    type ConvSaved = ConvSaved<E>;
    type NormSaved = NormSaved<E>;
    type ReluSaved = ReluSaved;
    type MaxPoolSaved = MaxPoolSaved;
    type LinearSaved = LinearSaved<E>;
    type PendingLoss = (f64, usize);

    fn dims(&self, x: &Act<E>) -> [usize; 4] {
        crate::ops::dims(x)
    }
    fn records(&self) -> bool {
        self.record
    }
    fn conv2d(&mut self, x: &Act<E>, w: &Param<E>, cfg: ConvCfg) -> Result<(Act<E>, ConvSaved<E>)> {
        Ok(conv2d(self, x, w, cfg))
    }
    fn conv2d_backward(
        &mut self,
        saved: ConvSaved<E>,
        w: &Param<E>,
        cfg: ConvCfg,
        dy: Grad<E>,
        dx: Option<&mut Option<Grad<E>>>,
    ) -> Result<()> {
        conv2d_backward(self, saved, w, cfg, dy, dx);
        Ok(())
    }
    fn batch_norm(
        &mut self,
        x: &Act<E>,
        gamma: &Param<E>,
        beta: &Param<E>,
        stats: &mut BnStats<E>,
        relu: bool,
    ) -> Result<(Act<E>, NormSaved<E>)> {
        Ok(batch_norm(self, x, gamma, beta, stats, relu))
    }
    fn batch_norm_backward(
        &mut self,
        saved: NormSaved<E>,
        gamma: &Param<E>,
        beta: &Param<E>,
        dy: Grad<E>,
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        batch_norm_backward(self, saved, gamma, beta, dy, dx);
        Ok(())
    }
    fn relu(&mut self, x: &Act<E>) -> Result<(Act<E>, ReluSaved)> {
        Ok(relu(self, x))
    }
    fn relu_backward(
        &mut self,
        saved: ReluSaved,
        dy: Grad<E>,
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        relu_backward(saved, dy, dx);
        Ok(())
    }
    fn zeros(&mut self, dims: [usize; 4]) -> Result<Act<E>> {
        Ok(self.act(vec![E::zero(); dims.iter().product()], dims))
    }
    fn concat(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        Ok(concat(self, xs))
    }
    fn concat_backward(
        &mut self,
        dy: &Grad<E>,
        y: [usize; 4],
        offset: usize,
        x: [usize; 4],
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        concat_backward(dy, y, offset, x, dx);
        Ok(())
    }
    fn sum(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        Ok(sum(self, xs))
    }
    fn accumulate(
        &mut self,
        g: &Grad<E>,
        _dims: [usize; 4],
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        sum_backward(g, dx);
        Ok(())
    }
    fn shortcut_a(&mut self, x: &Act<E>, stride: usize, out_ch: usize) -> Result<Act<E>> {
        Ok(shortcut_a(self, x, stride, out_ch))
    }
    fn shortcut_a_backward(
        &mut self,
        dy: Grad<E>,
        x: [usize; 4],
        stride: usize,
        out_ch: usize,
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        shortcut_a_backward(dy, x, stride, out_ch, dx);
        Ok(())
    }
    fn avg_pool(&mut self, x: &Act<E>, kernel: usize, stride: usize) -> Result<Act<E>> {
        Ok(avg_pool(self, x, kernel, stride))
    }
    fn avg_pool_backward(
        &mut self,
        dy: Grad<E>,
        x: [usize; 4],
        kernel: usize,
        stride: usize,
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        avg_pool_backward(dy, x, kernel, stride, dx);
        Ok(())
    }
    fn max_pool(
        &mut self,
        x: &Act<E>,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<(Act<E>, MaxPoolSaved)> {
        Ok(max_pool(self, x, kernel, stride, padding))
    }
    fn max_pool_backward(
        &mut self,
        saved: MaxPoolSaved,
        dy: Grad<E>,
        x: [usize; 4],
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        max_pool_backward(saved, dy, x, dx);
        Ok(())
    }
    fn global_avg_pool(&mut self, x: &Act<E>) -> Result<Act<E>> {
        Ok(global_avg_pool(self, x))
    }
    fn global_avg_pool_backward(
        &mut self,
        dy: Grad<E>,
        x: [usize; 4],
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        global_avg_pool_backward(dy, x, dx);
        Ok(())
    }
    fn linear(
        &mut self,
        x: &Act<E>,
        w: &Param<E>,
        bias: &Param<E>,
        out_features: usize,
    ) -> Result<(Act<E>, LinearSaved<E>)> {
        Ok(linear(self, x, w, bias, out_features))
    }
    fn linear_backward(
        &mut self,
        saved: LinearSaved<E>,
        w: &Param<E>,
        bias: &Param<E>,
        dy: Grad<E>,
        dx: &mut Option<Grad<E>>,
    ) -> Result<()> {
        linear_backward(self, saved, w, bias, dy, dx);
        Ok(())
    }

    /// dfdx's `cross_entropy_with_logits_loss` on a tape of its own (the logits are its only
    /// leaf), so the logits' gradient is dfdx's.
    fn cross_entropy(
        &mut self,
        logits: &Act<E>,
        labels: &[u8],
    ) -> Result<(Option<Grad<E>>, (f64, usize))> {
        let [n, classes, h, w] = crate::ops::dims(logits);
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
        let target: Tensor<(usize, usize), E, Cpu> = self.dev.tensor_from_vec(onehot, (n, classes));
        let leaf: Tensor<(usize, usize), E, Cpu> = self.dev.tensor_from_vec(lv, (n, classes));
        let loss = cross_entropy_with_logits_loss(leaf.leaky_trace(), target);
        let mean = loss.array().to_f64().unwrap_or(f64::NAN);
        let dlogits = self.record.then(|| loss.backward().get(&leaf).as_vec());
        Ok((dlogits, (mean, correct)))
    }
    fn read_loss(&mut self, loss: (f64, usize)) -> Result<(f64, usize)> {
        Ok(loss)
    }
}
