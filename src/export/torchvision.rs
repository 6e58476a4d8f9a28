//! Our names and torchvision's, for the networks torchvision builds the same way: the ImageNet
//! ResNets (`resnet50`, `resnet101`, `resnet152`: bottlenecks with the stride on the 3×3
//! convolution, torchvision's "v1.5", as ours). A map from our tensor names to theirs lets
//! `torchvision.models.resnet50()` load an export strictly, and `train --init-from … --key-map
//! torchvision` start from weights saved under torchvision's names. Checked by running
//! torchvision on an export (`tests/export_cli.rs`); DenseNet is not mapped, because no
//! DenseNet-121 checkpoint can be trained on the 28×28 data within reach to check it against.

use sparsenet_net::zoo::{Aggregate, Family, Layout, NetSpec};

/// The torchvision constructor that builds `spec`'s network with the same tensors, if any.
pub fn constructor(spec: &NetSpec) -> Option<String> {
    let plain = spec.aggregate == Aggregate::default()
        && spec.pattern.is_none()
        && spec.stem.is_none()
        && spec.head.is_none()
        && !spec.bc;
    match (spec.family, spec.layout, spec.depth) {
        (Family::Res, Layout::Imagenet, d @ (50 | 101 | 152)) if plain => {
            Some(format!("resnet{d}"))
        }
        _ => None,
    }
}

/// torchvision's name for one of our ResNet tensor names (`stage2.unit1.conv2.weight` →
/// `layer2.0.conv2.weight`), or None for a name outside the ResNet layout.
pub fn resnet_name(ours: &str) -> Option<String> {
    let (node, tensor) = ours.rsplit_once('.')?;
    let theirs = match node {
        "stem.conv" => "conv1".to_string(),
        "stem.bn" => "bn1".to_string(),
        "head.fc" => "fc".to_string(),
        _ => {
            let mut parts = node.splitn(3, '.');
            let stage: usize = parts.next()?.strip_prefix("stage")?.parse().ok()?;
            let unit: usize = parts.next()?.strip_prefix("unit")?.parse().ok()?;
            let layer = match parts.next()? {
                "shortcut.conv" => "downsample.0".to_string(),
                "shortcut.bn" => "downsample.1".to_string(),
                l if l.starts_with("conv") || l.starts_with("bn") => l.to_string(),
                _ => return None,
            };
            format!("layer{stage}.{}.{layer}", unit.checked_sub(1)?)
        }
    };
    Some(format!("{theirs}.{tensor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_names_map_to_torchvisions() {
        // torchvision's names as its `resnet50().state_dict()` lists them.
        for (ours, theirs) in [
            ("stem.conv.weight", "conv1.weight"),
            ("stem.bn.running_var", "bn1.running_var"),
            ("stage1.unit1.conv1.weight", "layer1.0.conv1.weight"),
            (
                "stage1.unit1.shortcut.conv.weight",
                "layer1.0.downsample.0.weight",
            ),
            (
                "stage1.unit1.shortcut.bn.bias",
                "layer1.0.downsample.1.bias",
            ),
            ("stage4.unit3.bn3.running_mean", "layer4.2.bn3.running_mean"),
            ("head.fc.bias", "fc.bias"),
        ] {
            assert_eq!(resnet_name(ours).as_deref(), Some(theirs), "{ours}");
        }
        for odd in [
            "block1.layer1.conv.weight",
            "stage1.unit0.conv1.weight",
            "stem",
        ] {
            assert_eq!(resnet_name(odd), None, "{odd}");
        }
    }

    #[test]
    fn only_the_imagenet_resnets_have_a_torchvision_twin() {
        let spec = |m: &str| sparsenet_net::zoo::named(m).unwrap().spec(None);
        assert_eq!(constructor(&spec("resnet-50")).as_deref(), Some("resnet50"));
        let mut r152 = spec("resnet-50");
        r152.depth = 152;
        assert_eq!(constructor(&r152).as_deref(), Some("resnet152"));
        let mut summed_dense = spec("resnet-50");
        summed_dense.bc = true;
        assert_eq!(constructor(&summed_dense), None);
        assert_eq!(constructor(&spec("densenet-121")), None);
        assert_eq!(constructor(&spec("resnet-56")), None);
    }
}
