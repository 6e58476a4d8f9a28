//! Convolution on the tape: it keeps its configuration, its parameters and the backend's saved
//! input; its backward asks for the input gradient only when the input needs one (the images
//! do not).

use anyhow::Result;
use sparsenet_net::Op;

use crate::autodiff::{Grads, Step};
use crate::backend::{Backend, ConvCfg};

/// What a convolution keeps for the reverse pass.
pub(crate) struct ConvStep<B: Backend> {
    cfg: ConvCfg,
    w: B::Param,
    bias: Option<B::Param>,
    saved: B::ConvSaved,
}

/// `op` (an [`Op::Conv`]) on `x` with parameters `p` (weight, then bias when it has one).
pub(crate) fn forward<B: Backend>(
    b: &mut B,
    op: &Op,
    x: &B::Act,
    p: &[B::Param],
) -> Result<(B::Act, Step<B>)> {
    let cfg = ConvCfg::of(op).expect("a convolution");
    let bias = p.get(1).cloned();
    let (y, saved) = b.conv2d(x, &p[0], bias.as_ref(), cfg)?;
    let w = p[0].clone();
    Ok((
        y,
        Step::Conv(ConvStep {
            cfg,
            w,
            bias,
            saved,
        }),
    ))
}

impl<B: Backend> ConvStep<B> {
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let dx = g.slot(0);
        b.conv2d_backward(self.saved, &self.w, self.bias.as_ref(), self.cfg, dy, dx)
    }
}
