//! Batch norm on the tape (with the ReLU it may be fused with): it keeps γ, β and the backend's
//! saved state.

use anyhow::{bail, Result};

use crate::autodiff::{Grads, Step};
use crate::backend::Backend;

/// What a batch norm keeps for the reverse pass.
pub(crate) struct NormStep<B: Backend> {
    gamma: B::Param,
    beta: B::Param,
    saved: B::NormSaved,
}

/// Batch norm of `x` with γ, β (`p`) and the running statistics `stats`, followed by a ReLU
/// when `relu`.
pub(crate) fn forward<B: Backend>(
    b: &mut B,
    x: &B::Act,
    p: &[B::Param],
    stats: Option<&mut B::Stats>,
    relu: bool,
) -> Result<(B::Act, Step<B>)> {
    let Some(st) = stats else {
        bail!("batch norm without running statistics")
    };
    let (y, saved) = b.batch_norm(x, &p[0], &p[1], st, relu)?;
    let (gamma, beta) = (p[0].clone(), p[1].clone());
    Ok((y, Step::BatchNorm(NormStep { gamma, beta, saved })))
}

impl<B: Backend> NormStep<B> {
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let (_, dx) = g.first();
        b.batch_norm_backward(self.saved, &self.gamma, &self.beta, dy, dx)
    }
}
