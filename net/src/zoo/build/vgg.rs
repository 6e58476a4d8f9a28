//! VGG (Simonyan and Zisserman 2015), as torchvision builds it.

use super::*;

/// VGG without batch norm as torchvision builds it: 3×3 convolutions with bias and ReLU in five
/// groups of widths 64, 128, 256, 512, 512, each closed by a 2×2 max pool; then fc 4096-ReLU-
/// dropout, fc 4096-ReLU-dropout, fc (torchvision's adaptive 7×7 pooling is the identity at
/// 224×224, the layout's input, and is left out).
pub(super) fn build_vgg(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let per_group: [usize; 5] = match spec.depth {
        11 => [1, 1, 2, 2, 2],
        13 => [2, 2, 2, 2, 2],
        16 => [2, 2, 3, 3, 3],
        19 => [2, 2, 4, 4, 4],
        d => {
            return Err(NetError::Spec(format!(
                "depth {d} is not a VGG configuration: accepted 11, 13, 16, 19"
            )))
        }
    };
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = b.input();
    let mut layer = 0;
    for (g, (&convs, width)) in per_group.iter().zip([64, 128, 256, 512, 512]).enumerate() {
        for _ in 0..convs {
            layer += 1;
            let c = b.conv_with_bias(&format!("conv{layer}"), x, width, 3, 1, 1)?;
            x = b.relu(&format!("relu{layer}"), c);
        }
        x = b.max_pool(&format!("pool{}", g + 1), x, 2, 2, 0).map_err(|_| {
            NetError::Spec(format!(
                "VGG's five 2×2 poolings do not fit a {} input: VGG needs at least 32×32 (the paper's is 224×224)",
                spec.input_shape()
            ))
        })?;
    }
    // torchvision: fc-ReLU-dropout twice, then the classifier: dropout reads fc2's and fc3's
    // inputs.
    Ok(torchvision_classifier(b, spec, x, &[false, true, true]))
}
