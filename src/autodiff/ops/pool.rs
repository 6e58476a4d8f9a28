//! Pooling and the option-A shortcut on the tape: they keep their window (or, max pooling, the
//! backend's arg-max); their backward reads the input's dimensions from the entry.

use anyhow::Result;

use crate::autodiff::{Grads, Step};
use crate::backend::Backend;

/// What an option-A shortcut keeps for the reverse pass.
pub(crate) struct ShortcutStep {
    stride: usize,
    out_ch: usize,
}

/// The option-A shortcut of `x`.
pub(crate) fn shortcut_a<B: Backend>(
    b: &mut B,
    x: &B::Act,
    stride: usize,
    out_ch: usize,
) -> Result<(B::Act, Step<B>)> {
    let y = b.shortcut_a(x, stride, out_ch)?;
    Ok((y, Step::ShortcutA(ShortcutStep { stride, out_ch })))
}

impl ShortcutStep {
    pub(crate) fn backward<B: Backend>(
        self,
        b: &mut B,
        dy: B::Grad,
        g: &mut Grads<'_, B>,
    ) -> Result<()> {
        let (x, dx) = g.first();
        b.shortcut_a_backward(dy, x, self.stride, self.out_ch, dx)
    }
}

/// What an average pooling keeps for the reverse pass.
pub(crate) struct AvgPoolStep {
    kernel: usize,
    stride: usize,
}

/// Average pooling of `x`.
pub(crate) fn avg_pool<B: Backend>(
    b: &mut B,
    x: &B::Act,
    kernel: usize,
    stride: usize,
) -> Result<(B::Act, Step<B>)> {
    let y = b.avg_pool(x, kernel, stride)?;
    Ok((y, Step::AvgPool(AvgPoolStep { kernel, stride })))
}

impl AvgPoolStep {
    pub(crate) fn backward<B: Backend>(
        self,
        b: &mut B,
        dy: B::Grad,
        g: &mut Grads<'_, B>,
    ) -> Result<()> {
        let (x, dx) = g.first();
        b.avg_pool_backward(dy, x, self.kernel, self.stride, dx)
    }
}

/// What a max pooling keeps for the reverse pass.
pub(crate) struct MaxPoolStep<B: Backend>(B::MaxPoolSaved);

/// Max pooling of `x`.
pub(crate) fn max_pool<B: Backend>(
    b: &mut B,
    x: &B::Act,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<(B::Act, Step<B>)> {
    let (y, saved) = b.max_pool(x, kernel, stride, padding)?;
    Ok((y, Step::MaxPool(MaxPoolStep(saved))))
}

impl<B: Backend> MaxPoolStep<B> {
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let (x, dx) = g.first();
        b.max_pool_backward(self.0, dy, x, dx)
    }
}

/// The mean of each feature map of `x`.
pub(crate) fn global_avg_pool<B: Backend>(b: &mut B, x: &B::Act) -> Result<(B::Act, Step<B>)> {
    Ok((b.global_avg_pool(x)?, Step::GlobalAvgPool))
}

/// Its backward: the mean's gradient spread over each map.
pub(crate) fn global_avg_pool_backward<B: Backend>(
    b: &mut B,
    dy: B::Grad,
    g: &mut Grads<'_, B>,
) -> Result<()> {
    let (x, dx) = g.first();
    b.global_avg_pool_backward(dy, x, dx)
}
