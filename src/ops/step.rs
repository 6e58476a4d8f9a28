//! A step of a model on the CPU: its parameters as [`Param`]s, a [`Ctx`], and the interpreter's
//! pass ([`Model::pass`]) on it.

use anyhow::Result;
use dfdx::prelude::*;

use super::{read, Act, Ctx, Elem, Param};
use crate::model::Model;

/// Run `f` on a worker thread of rayon's pool (inline when already on one). A pass run from
/// outside the pool hands every op's parallel loop to the pool and sleeps until it is done:
/// hundreds of wake-ups per pass, measured at 10–17 % of a batch-1 ImageNet forward pass
/// (`benches/infer_latency.sh`). From a worker, the loops go to its own queue and it takes
/// part in them.
fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

impl<E: Elem> Model<E>
where
    Cpu: Device<E>,
{
    /// The current parameter values as CPU parameters (index = position in [`Model::params`]):
    /// a copy, for [`Model::logits_with`] to run many passes on without copying them again.
    pub fn cpu_params(&self) -> Vec<Param<E>> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| Param::new(i, v.clone()))
            .collect()
    }

    /// The logits (`N × classes`, row-major) of a forward pass without a tape: batch statistics
    /// (and running-statistics updates) when `train`, running statistics otherwise.
    pub fn logits(&mut self, x: Vec<E>, n: usize, train: bool) -> Result<Vec<E>> {
        let p = self.cpu_params();
        self.logits_with(&p, x, n, train)
    }

    /// [`Model::logits`] with the parameters `p` from [`Model::cpu_params`] (taken after the
    /// last change to the weights): repeated inference without copying the weights each time.
    pub fn logits_with(
        &mut self,
        p: &[Param<E>],
        x: Vec<E>,
        n: usize,
        train: bool,
    ) -> Result<Vec<E>> {
        on_worker(|| self.logits_here(p, x, n, train))
    }

    fn logits_here(&mut self, p: &[Param<E>], x: Vec<E>, n: usize, train: bool) -> Result<Vec<E>> {
        let mut ctx = Ctx::new(&Cpu::default(), train, false);
        let s = self.net.input_shape();
        let xt: Act<E> = ctx.act(x, [n, s.c, s.h, s.w]);
        let mut bn = std::mem::take(&mut self.bn);
        let out = self.walk(&mut ctx, xt, p, &mut bn);
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
        // Not moved onto a worker as `logits` is: on batch-64 training steps interleaved runs
        // showed no difference outside this machine's noise (the wake-ups are a small part of
        // a step whose ops are large).
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
