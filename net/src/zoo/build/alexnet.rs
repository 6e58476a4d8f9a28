//! AlexNet (Krizhevsky et al. 2012), as torchvision builds it.

use super::*;

/// AlexNet as torchvision builds it: conv 64@11×11/4 (padding 2), max pool 3/2, conv 192@5×5,
/// max pool 3/2, conv 384, 256, 256 @3×3, max pool 3/2 (every convolution with bias and ReLU),
/// then dropout-fc 4096-ReLU, dropout-fc 4096-ReLU, fc (the adaptive 6×6 pooling is the identity
/// at 224×224 and is left out).
pub(super) fn build_alexnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth != 8 {
        return Err(NetError::Spec(format!(
            "depth {} is not AlexNet's: it has 8 layers (5 convolutions, 3 fully connected); give --depth 8 or --model alexnet",
            spec.depth
        )));
    }
    let mut b = NetBuilder::new(spec.input_shape());
    let too_small = |_| {
        NetError::Spec(format!(
            "AlexNet does not fit a {} input: it needs at least 63×63 (the paper's is 224×224)",
            spec.input_shape()
        ))
    };
    let mut x = b.input();
    let layers: [(usize, usize, usize, usize, bool); 5] = [
        (64, 11, 4, 2, true),
        (192, 5, 1, 2, true),
        (384, 3, 1, 1, false),
        (256, 3, 1, 1, false),
        (256, 3, 1, 1, true),
    ];
    for (i, (width, k, stride, pad, pool)) in layers.into_iter().enumerate() {
        let c = b
            .conv_with_bias(&format!("conv{}", i + 1), x, width, k, stride, pad)
            .map_err(too_small)?;
        x = b.relu(&format!("relu{}", i + 1), c);
        if pool {
            x = b
                .max_pool(&format!("pool{}", i + 1), x, 3, 2, 0)
                .map_err(too_small)?;
        }
    }
    // torchvision: dropout-fc-ReLU twice, then the classifier.
    Ok(torchvision_classifier(b, spec, x, &[true, true, false]))
}
