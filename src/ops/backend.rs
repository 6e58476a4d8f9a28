//! The CPU backend: the ops of this module on the shared dfdx tape, behind [`Backend`].

use anyhow::Result;
use dfdx::prelude::*;

use super::combine::{concat, relu, sum};
use super::conv::conv2d;
use super::linear::linear;
use super::norm::{batch_norm, BnStats};
use super::pool::{avg_pool, global_avg_pool, max_pool, shortcut_a};
use super::{Act, Ctx, Param, Real};
use crate::backend::{Backend, ConvCfg};

/// The CPU backend: the ops of [`crate::ops`] on the shared dfdx tape.
impl<E: Real> Backend for Ctx<E>
where
    Cpu: Device<E>,
{
    type Act = Act<E>;
    type Param = Param<E>;
    type Stats = BnStats<E>;
    fn dims(&self, x: &Act<E>) -> [usize; 4] {
        crate::ops::dims(x)
    }
    fn conv2d(&mut self, x: &Act<E>, w: &Param<E>, cfg: ConvCfg, x_grad: bool) -> Result<Act<E>> {
        Ok(conv2d(self, x, w, cfg, x_grad))
    }
    fn batch_norm(
        &mut self,
        x: &Act<E>,
        gamma: &Param<E>,
        beta: &Param<E>,
        stats: &mut BnStats<E>,
        relu: bool,
    ) -> Result<Act<E>> {
        Ok(batch_norm(self, x, gamma, beta, stats, relu))
    }
    fn relu(&mut self, x: &Act<E>) -> Result<Act<E>> {
        Ok(relu(self, x))
    }
    fn concat(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        Ok(concat(self, xs))
    }
    fn sum(&mut self, xs: &[&Act<E>]) -> Result<Act<E>> {
        Ok(sum(self, xs))
    }
    fn shortcut_a(&mut self, x: &Act<E>, stride: usize, out_ch: usize) -> Result<Act<E>> {
        Ok(shortcut_a(self, x, stride, out_ch))
    }
    fn avg_pool(&mut self, x: &Act<E>, kernel: usize, stride: usize) -> Result<Act<E>> {
        Ok(avg_pool(self, x, kernel, stride))
    }
    fn max_pool(
        &mut self,
        x: &Act<E>,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Act<E>> {
        Ok(max_pool(self, x, kernel, stride, padding))
    }
    fn global_avg_pool(&mut self, x: &Act<E>) -> Result<Act<E>> {
        Ok(global_avg_pool(self, x))
    }
    fn linear(
        &mut self,
        x: &Act<E>,
        w: &Param<E>,
        bias: &Param<E>,
        out_features: usize,
    ) -> Result<Act<E>> {
        Ok(linear(self, x, w, bias, out_features))
    }
}
