//! The fully connected layer on the tape: it keeps its weight and bias and the backend's saved
//! input.

use anyhow::Result;

use crate::autodiff::{Grads, Step};
use crate::backend::Backend;

/// What a linear layer keeps for the reverse pass.
pub(crate) struct LinearStep<B: Backend> {
    w: B::Param,
    bias: B::Param,
    saved: B::LinearSaved,
}

/// The linear layer of weight and bias `p` on `x`.
pub(crate) fn forward<B: Backend>(
    b: &mut B,
    x: &B::Act,
    p: &[B::Param],
    out_features: usize,
) -> Result<(B::Act, Step<B>)> {
    let (y, saved) = b.linear(x, &p[0], &p[1], out_features)?;
    let (w, bias) = (p[0].clone(), p[1].clone());
    Ok((y, Step::Linear(LinearStep { w, bias, saved })))
}

impl<B: Backend> LinearStep<B> {
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let (_, dx) = g.first();
        b.linear_backward(self.saved, &self.w, &self.bias, dy, dx)
    }
}
