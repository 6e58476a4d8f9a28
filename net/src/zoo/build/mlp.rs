//! Multilayer perceptrons (LeNet-300-100 and the like).

use super::*;

/// A multilayer perceptron (LeNet-300-100 is `mlp` with hidden widths 300, 100).
pub(super) fn build_mlp(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.growth.is_empty() || spec.growth.contains(&0) {
        return Err(NetError::Spec(
            "an MLP needs its hidden widths, all positive (--hidden 300,100 for LeNet-300-100)"
                .into(),
        ));
    }
    if spec.depth != spec.growth.len() + 1 {
        return Err(NetError::Spec(format!(
            "an MLP of {} hidden layers has depth {} (its linear layers), not {}",
            spec.growth.len(),
            spec.growth.len() + 1,
            spec.depth
        )));
    }
    let mut b = NetBuilder::new(spec.input_shape());
    let x = b.input();
    let out = fc_stack(&mut b, x, &spec.growth, None, spec.classes);
    Ok(b.finish(out))
}
