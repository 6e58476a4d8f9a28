//! A step of a model on the CPU: its parameters as [`Param`]s, a [`Ctx`], and the interpreter's
//! pass ([`Model::pass`]) on it.

use anyhow::Result;
use dfdx::prelude::*;

use super::{read, Act, Ctx, Elem, Param};
use crate::model::Model;

impl<E: Elem> Model<E>
where
    Cpu: Device<E>,
{
    /// The current parameter values as CPU parameters (index = position in [`Model::params`]).
    fn cpu_params(&self) -> Vec<Param<E>> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| Param::new(i, v.clone()))
            .collect()
    }

    /// The logits (`N × classes`, row-major) of a forward pass without a tape: batch statistics
    /// (and running-statistics updates) when `train`, running statistics otherwise.
    pub fn logits(&mut self, x: Vec<E>, n: usize, train: bool) -> Result<Vec<E>> {
        let mut ctx = Ctx::new(&Cpu::default(), train, false);
        let s = self.net.input_shape();
        let xt: Act<E> = ctx.act(x, [n, s.c, s.h, s.w]);
        let p = self.cpu_params();
        let mut bn = std::mem::take(&mut self.bn);
        let out = self.walk(&mut ctx, xt, &p, &mut bn);
        self.bn = bn;
        Ok(read(&out?.0))
    }

    /// Mean cross-entropy of `x` against `labels`, with the gradient of every parameter when
    /// `train` (batch statistics; running statistics updated). Returns (loss, correct, grads).
    pub fn step(
        &mut self,
        x: Vec<E>,
        labels: &[u8],
        train: bool,
    ) -> Result<(f64, usize, Vec<Vec<E>>)> {
        let mut ctx = Ctx::new(&Cpu::default(), train, train);
        let s = self.net.input_shape();
        let xt: Act<E> = ctx.act(x, [labels.len(), s.c, s.h, s.w]);
        let p = self.cpu_params();
        let mut bn = std::mem::take(&mut self.bn);
        let r = self.pass(&mut ctx, xt, labels, &p, &mut bn);
        self.bn = bn;
        let (_, loss, correct) = r?;
        let grads = if train {
            ctx.take_param_grads(&p)
        } else {
            Vec::new()
        };
        Ok((loss, correct, grads))
    }
}
