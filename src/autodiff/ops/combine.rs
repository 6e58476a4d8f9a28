//! The aggregations and the activation on the tape: concatenation and sum keep nothing (their
//! backward needs only the inputs' dimensions, which every entry records), the ReLU keeps the
//! backend's mask.

use anyhow::Result;

use crate::autodiff::{Grads, Input, Step};
use crate::backend::{Backend, DropMask};

/// What a ReLU keeps for the reverse pass.
pub(crate) struct ReluStep<B: Backend>(B::ReluSaved);

/// `max(x, 0)`.
pub(crate) fn relu<B: Backend>(b: &mut B, x: &B::Act) -> Result<(B::Act, Step<B>)> {
    let (y, saved) = b.relu(x)?;
    Ok((y, Step::Relu(ReluStep(saved))))
}

impl<B: Backend> ReluStep<B> {
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let (_, dx) = g.first();
        b.relu_backward(self.0, dy, dx)
    }
}

/// What a dropout keeps for the reverse pass: its mask's rule (the mask itself is recomputed).
pub(crate) struct DropoutStep(DropMask);

/// Dropout in training (drop probability `p`, mask drawn with `key`); the identity otherwise.
pub(crate) fn dropout<B: Backend>(
    b: &mut B,
    x: &B::Act,
    p: f64,
    key: u64,
) -> Result<(B::Act, Step<B>)> {
    if !b.training() || p == 0.0 {
        return Ok((x.clone(), Step::Identity));
    }
    let mask = DropMask::new(p, key);
    Ok((b.dropout(x, mask)?, Step::Dropout(DropoutStep(mask))))
}

impl DropoutStep {
    pub(crate) fn backward<B: Backend>(
        self,
        b: &mut B,
        dy: B::Grad,
        g: &mut Grads<'_, B>,
    ) -> Result<()> {
        let (_, dx) = g.first();
        b.dropout_backward(self.0, dy, dx)
    }
}

/// What a mean join keeps: which inputs survived drop-path and the scale of the survivors.
pub(crate) struct MeanJoinStep {
    kept: Vec<bool>,
    scale: f32,
}

/// The mean of the surviving inputs (every input outside training).
pub(crate) fn mean_join<B: Backend>(
    b: &mut B,
    xs: &[Input<'_, B>],
    drop_path: f64,
    key: u64,
) -> Result<(B::Act, Step<B>)> {
    let kept = if b.training() && drop_path > 0.0 {
        crate::backend::join_survivors(xs.len(), drop_path, key)
    } else {
        vec![true; xs.len()]
    };
    let refs: Vec<&B::Act> = xs
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|(x, _)| x.1)
        .collect();
    let scale = 1.0 / refs.len() as f32;
    let y = b.scaled_sum(&refs, scale)?;
    Ok((y, Step::MeanJoin(MeanJoinStep { kept, scale })))
}

impl MeanJoinStep {
    pub(crate) fn backward<B: Backend>(
        self,
        b: &mut B,
        dy: B::Grad,
        g: &mut Grads<'_, B>,
    ) -> Result<()> {
        let ins = g.inputs();
        for (k, &(_, d)) in ins.iter().enumerate() {
            if !self.kept[k] {
                continue;
            }
            if let Some(dx) = g.slot(k) {
                b.accumulate_scaled(&dy, self.scale, d, dx)?;
            }
        }
        Ok(())
    }
}

/// What an element-wise maximum keeps: the ReLU mask of each step of its fold.
pub(crate) struct MaxStep<B: Backend> {
    masks: Vec<B::ReluSaved>,
}

/// The element-wise maximum of `xs`, from the primitives every backend has (so a backend
/// needs nothing for it): the fold `m₁ = x₀`, `mᵢ₊₁ = mᵢ + relu(xᵢ − mᵢ)`. It equals the
/// maximum up to the rounding of one subtraction and one addition per input; at a tie the
/// gradient goes to the earlier input (the ReLU's derivative at 0 is 0).
pub(crate) fn max<B: Backend>(b: &mut B, xs: &[Input<'_, B>]) -> Result<(B::Act, Step<B>)> {
    let mut m = xs[0].1.clone();
    let mut masks = Vec::with_capacity(xs.len().saturating_sub(1));
    for &(_, x) in &xs[1..] {
        let neg = b.scaled_sum(&[&m], -1.0)?;
        let d = b.sum(&[x, &neg])?;
        let (r, mask) = b.relu(&d)?;
        m = b.sum(&[&m, &r])?;
        masks.push(mask);
    }
    Ok((m, Step::Max(MaxStep { masks })))
}

impl<B: Backend> MaxStep<B> {
    /// Back through the fold, newest step first: `dmᵢ = dmᵢ₊₁ − dd`, `dxᵢ += dd` with `dd` the
    /// ReLU's backward of `dmᵢ₊₁`; `dx₀ += dm₁`.
    pub(crate) fn backward(self, b: &mut B, dy: B::Grad, g: &mut Grads<'_, B>) -> Result<()> {
        let dims = g.inputs()[0].1;
        let mut dm = dy;
        for (i, mask) in self.masks.into_iter().enumerate().rev() {
            let mut before: Option<B::Grad> = None;
            b.accumulate(&dm, dims, &mut before)?;
            let mut dd: Option<B::Grad> = None;
            b.relu_backward(mask, dm, &mut dd)?;
            if let Some(dd) = dd {
                if let Some(dx) = g.slot(i + 1) {
                    b.accumulate(&dd, dims, dx)?;
                }
                b.accumulate_scaled(&dd, -1.0, dims, &mut before)?;
            }
            dm = before.expect("the step's gradient was copied in");
        }
        if let Some(dx) = g.slot(0) {
            b.accumulate(&dm, dims, dx)?;
        }
        Ok(())
    }
}

/// The channel concatenation of `xs`, in order.
pub(crate) fn concat<B: Backend>(b: &mut B, xs: &[Input<'_, B>]) -> Result<(B::Act, Step<B>)> {
    let refs: Vec<&B::Act> = xs.iter().map(|x| x.1).collect();
    Ok((b.concat(&refs)?, Step::Concat))
}

/// Each input's slice of the output gradient, to the inputs that need one.
pub(crate) fn concat_backward<B: Backend>(
    b: &mut B,
    dy: &B::Grad,
    g: &mut Grads<'_, B>,
) -> Result<()> {
    let ins = g.inputs();
    let channels: usize = ins.iter().map(|i| i.1[1]).sum();
    let [n, _, h, w] = ins[0].1;
    let mut offset = 0;
    for (k, &(_, d)) in ins.iter().enumerate() {
        if let Some(dx) = g.slot(k) {
            b.concat_backward(dy, [n, channels, h, w], offset, d, dx)?;
        }
        offset += d[1];
    }
    Ok(())
}

/// The elementwise sum of `xs`.
pub(crate) fn sum<B: Backend>(b: &mut B, xs: &[Input<'_, B>]) -> Result<(B::Act, Step<B>)> {
    let refs: Vec<&B::Act> = xs.iter().map(|x| x.1).collect();
    Ok((b.sum(&refs)?, Step::Sum))
}

/// The whole output gradient, to every input that needs one.
pub(crate) fn sum_backward<B: Backend>(
    b: &mut B,
    dy: &B::Grad,
    g: &mut Grads<'_, B>,
) -> Result<()> {
    let ins = g.inputs();
    for (k, &(_, d)) in ins.iter().enumerate() {
        if let Some(dx) = g.slot(k) {
            b.accumulate(dy, d, dx)?;
        }
    }
    Ok(())
}
