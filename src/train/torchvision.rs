//! Our names and torchvision's, for the networks torchvision builds the same way:
//! - the ImageNet ResNets (`resnet50`, `resnet101`, `resnet152`: bottlenecks with the stride on
//!   the 3×3 convolution, torchvision's "v1.5", as ours);
//! - the ImageNet DenseNet-BCs of growth 32 (`densenet121`, `densenet169`, `densenet201`: a
//!   7×7/2 stem of 64 channels, max pooling, BN-ReLU-conv 1×1 to 4k, BN-ReLU-conv 3×3 to k,
//!   transitions halving the channels, BN-ReLU and global pooling before the classifier).
//!
//! A map from our tensor names to theirs lets `torchvision.models.resnet50()` (or
//! `densenet121()`) load an export strictly, and `train --init-from … --key-map torchvision`
//! start from weights saved under torchvision's names. Both maps are checked by running
//! torchvision on an export (`tests/export_cli.rs`).
//!
//! Names are not the whole map for DenseNet: a layer of ours concatenates its inputs newest
//! first (`x_{ℓ−1}, …, x_1, x_0`, the aggregation order of the paper's `S(ℓ)`), torchvision's
//! oldest first (`torch.cat([x_0, x_1, …])`). The same function, with the channels of every
//! tensor that reads a concatenation ([`reorders`]: the first BN of a layer, the convolution
//! after it, the transitions, the head's BN and classifier) permuted.

use std::collections::HashMap;
use std::path::Path;

use super::checkpoint::{self, f32_bytes, f32_values, NamedTensor};
use crate::model::Model;

use petgraph::graph::NodeIndex;
use sparsenet_net::zoo::{Aggregate, Family, Layout, NetSpec};
use sparsenet_net::{NetGraph, Op};

/// A network torchvision builds with the same tensors: its constructor and the map from our
/// tensor names to its names.
#[derive(Clone, Copy, Debug)]
pub struct Twin {
    /// The constructor in `torchvision.models` (`resnet50`, `densenet121`, …).
    pub constructor: &'static str,
    /// torchvision's name for one of our tensor names, or None for a name outside the layout.
    pub rename: fn(&str) -> Option<String>,
    /// Whether torchvision concatenates a layer's inputs oldest first, the reverse of ours
    /// (DenseNet), so that the tensors reading a concatenation have their channels permuted.
    pub concat_reversed: bool,
}

/// What `--key-map torchvision` accepts, for its error message.
pub const TWINS: &str = "the ImageNet ResNets (resnet-50, -101, -152) and DenseNet-BCs of growth 32 (densenet-121, -169, -201)";

/// The torchvision network with `spec`'s tensors, if torchvision builds one.
pub fn twin(spec: &NetSpec) -> Option<Twin> {
    let plain = spec.aggregate == Aggregate::default()
        && spec.pattern.is_none()
        && spec.stem.is_none()
        && spec.head.is_none();
    if !plain || spec.layout != Layout::Imagenet {
        return None;
    }
    let (constructor, rename): (&'static str, fn(&str) -> Option<String>) =
        match (spec.family, spec.depth, spec.bc, spec.growth.as_slice()) {
            (Family::Res, 50, false, _) => ("resnet50", resnet_name),
            (Family::Res, 101, false, _) => ("resnet101", resnet_name),
            (Family::Res, 152, false, _) => ("resnet152", resnet_name),
            (Family::Dense, 121, true, [32]) => ("densenet121", densenet_name),
            (Family::Dense, 169, true, [32]) => ("densenet169", densenet_name),
            (Family::Dense, 201, true, [32]) => ("densenet201", densenet_name),
            _ => return None,
        };
    Some(Twin {
        constructor,
        rename,
        concat_reversed: spec.family == Family::Dense,
    })
}

/// How torchvision orders the channels of one of our tensors: along `dim`, torchvision's index
/// `i` holds our index `order[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reorder {
    /// The axis of the input channels (1 for a convolution's or linear layer's weight, 0 for a
    /// batch norm's vectors).
    pub dim: usize,
    /// Ours for each of theirs.
    pub order: Vec<usize>,
}

/// The tensors of `net` (by our name) whose input channels torchvision orders differently: those
/// that read a concatenation, directly or through per-channel operations (batch norm, ReLU,
/// pooling), when the twin concatenates in the reverse order. Empty otherwise.
pub fn reorders(net: &NetGraph, twin: &Twin) -> HashMap<String, Reorder> {
    let mut out = HashMap::new();
    if !twin.concat_reversed {
        return out;
    }
    for n in net.graph.node_indices() {
        let node = &net.graph[n];
        let tensors: &[(&str, usize)] = match node.op {
            Op::Conv { .. } => &[("weight", 1)],
            Op::Linear { .. } => &[("weight", 1)],
            Op::BatchNorm { .. } => &[
                ("weight", 0),
                ("bias", 0),
                ("running_mean", 0),
                ("running_var", 0),
            ],
            _ => continue,
        };
        let Some(order) = reversed_concat_order(net, n) else {
            continue;
        };
        for &(t, dim) in tensors {
            out.insert(
                format!("{}.{t}", node.name),
                Reorder {
                    dim,
                    order: order.clone(),
                },
            );
        }
    }
    out
}

/// For a node reading a concatenation (through per-channel operations): the channel order of
/// that concatenation with its inputs reversed, as our channel index for each of the reversed
/// order's. None when the node reads no concatenation.
fn reversed_concat_order(net: &NetGraph, node: NodeIndex) -> Option<Vec<usize>> {
    let mut x = *net.inputs(node).first()?;
    while matches!(
        net.graph[x].op,
        Op::BatchNorm { .. }
            | Op::Relu
            | Op::AvgPool { .. }
            | Op::MaxPool { .. }
            | Op::GlobalAvgPool
    ) {
        x = *net.inputs(x).first()?;
    }
    if net.graph[x].op != Op::Concat {
        return None;
    }
    // Our channels: the inputs' blocks in slot order; theirs: the same blocks, last first.
    let mut start = 0;
    let blocks: Vec<(usize, usize)> = net
        .inputs(x)
        .into_iter()
        .map(|i| {
            let c = net.graph[i].shape.c;
            start += c;
            (start - c, c)
        })
        .collect();
    Some(
        blocks
            .into_iter()
            .rev()
            .flat_map(|(s, c)| s..s + c)
            .collect(),
    )
}

/// The model's tensors (as [`checkpoint::model_tensors`] lists them) under torchvision's names and
/// in its channel order: what `torchvision.models.<constructor>()` loads.
pub fn tensors(model: &Model<f32>, twin: &Twin) -> anyhow::Result<Vec<NamedTensor>> {
    let reorders = reorders(&model.net, twin);
    checkpoint::model_tensors(model)
        .into_iter()
        .map(|(n, shape, b)| {
            let theirs = (twin.rename)(&n)
                .ok_or_else(|| anyhow::anyhow!("tensor {n} has no torchvision name"))?;
            let b = match reorders.get(&n) {
                Some(r) => f32_bytes(&to_theirs(&f32_values(&b), &shape, r)),
                None => b,
            };
            Ok((theirs, shape, b))
        })
        .collect()
}

/// Load a file of torchvision's names and channel orders into `model` (`train --init-from F
/// --key-map torchvision`), every tensor checked as [`checkpoint::load_into`] checks them.
pub fn load(file: &Path, model: &mut Model<f32>, twin: &Twin) -> anyhow::Result<()> {
    checkpoint::load_into_named(file, model, None, &twin.rename)?;
    let reorders = reorders(&model.net, twin);
    for (p, v) in model.params.iter().zip(model.values.iter_mut()) {
        if let Some(r) = reorders.get(&p.name) {
            *v = to_ours(v, &p.shape, r);
        }
    }
    for (i, st) in model.bn.iter_mut().enumerate() {
        if let Some(st) = st {
            let name = &model.net.graph[NodeIndex::new(i)].name;
            for (t, v) in [("running_mean", &mut st.mean), ("running_var", &mut st.var)] {
                if let Some(r) = reorders.get(&format!("{name}.{t}")) {
                    *v = to_ours(v, &[v.len()], r);
                }
            }
        }
    }
    Ok(())
}

/// `values` (of `shape`) in torchvision's channel order.
pub fn to_theirs(values: &[f32], shape: &[usize], r: &Reorder) -> Vec<f32> {
    permute(values, shape, r, true)
}

/// `values` (of `shape`, in torchvision's channel order) in ours: the inverse of [`to_theirs`].
pub fn to_ours(values: &[f32], shape: &[usize], r: &Reorder) -> Vec<f32> {
    permute(values, shape, r, false)
}

/// Move whole channels along `r.dim`: ours `r.order[i]` to theirs `i`, or back.
fn permute(values: &[f32], shape: &[usize], r: &Reorder, to_theirs: bool) -> Vec<f32> {
    let (outer, c, inner) = axes(shape, r);
    let mut out = vec![0.0; values.len()];
    for o in 0..outer {
        for (i, &ours) in r.order.iter().enumerate() {
            let (theirs, ours) = ((o * c + i) * inner, (o * c + ours) * inner);
            let (to, from) = if to_theirs {
                (theirs, ours)
            } else {
                (ours, theirs)
            };
            out[to..to + inner].copy_from_slice(&values[from..from + inner]);
        }
    }
    out
}

/// (elements before the axis, the axis, elements after it) of `shape` for `r`.
fn axes(shape: &[usize], r: &Reorder) -> (usize, usize, usize) {
    let c = shape[r.dim];
    assert_eq!(
        c,
        r.order.len(),
        "a reorder of {} channels on {shape:?}",
        r.order.len()
    );
    (
        shape[..r.dim].iter().product(),
        c,
        shape[r.dim + 1..].iter().product(),
    )
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

/// torchvision's name for one of our DenseNet-BC tensor names (`block2.layer5.1.conv.weight` →
/// `features.denseblock2.denselayer5.conv1.weight`, `transition1.bn.bias` →
/// `features.transition1.norm.bias`), or None for a name outside the DenseNet-BC layout. Both
/// number blocks and layers from 1, so the numbers pass through.
pub fn densenet_name(ours: &str) -> Option<String> {
    let (node, tensor) = ours.rsplit_once('.')?;
    let theirs = match node {
        "stem.conv" => "features.conv0".to_string(),
        "stem.bn" => "features.norm0".to_string(),
        "head.bn" => "features.norm5".to_string(),
        "head.fc" => "classifier".to_string(),
        _ => {
            let (scope, rest) = node.split_once('.')?;
            if let Some(t) = scope.strip_prefix("transition") {
                let t: usize = t.parse().ok().filter(|&t| t > 0)?;
                let part = match rest {
                    "bn" => "norm",
                    "conv" => "conv",
                    _ => return None,
                };
                format!("features.transition{t}.{part}")
            } else {
                let block: usize = scope
                    .strip_prefix("block")?
                    .parse()
                    .ok()
                    .filter(|&b| b > 0)?;
                let (layer, part) = rest.split_once('.')?;
                let layer: usize = layer
                    .strip_prefix("layer")?
                    .parse()
                    .ok()
                    .filter(|&l| l > 0)?;
                let part = match part {
                    "1.bn" => "norm1",
                    "1.conv" => "conv1",
                    "2.bn" => "norm2",
                    "2.conv" => "conv2",
                    _ => return None,
                };
                format!("features.denseblock{block}.denselayer{layer}.{part}")
            }
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
    fn densenet_names_map_to_torchvisions() {
        // torchvision's names as its `densenet121().state_dict()` lists them.
        for (ours, theirs) in [
            ("stem.conv.weight", "features.conv0.weight"),
            ("stem.bn.running_mean", "features.norm0.running_mean"),
            (
                "block1.layer1.1.bn.weight",
                "features.denseblock1.denselayer1.norm1.weight",
            ),
            (
                "block1.layer1.1.conv.weight",
                "features.denseblock1.denselayer1.conv1.weight",
            ),
            (
                "block3.layer24.2.bn.running_var",
                "features.denseblock3.denselayer24.norm2.running_var",
            ),
            (
                "block4.layer16.2.conv.weight",
                "features.denseblock4.denselayer16.conv2.weight",
            ),
            ("transition1.bn.bias", "features.transition1.norm.bias"),
            (
                "transition3.conv.weight",
                "features.transition3.conv.weight",
            ),
            ("head.bn.weight", "features.norm5.weight"),
            ("head.fc.weight", "classifier.weight"),
            ("head.fc.bias", "classifier.bias"),
        ] {
            assert_eq!(densenet_name(ours).as_deref(), Some(theirs), "{ours}");
        }
        for odd in [
            "stage1.unit1.conv1.weight",
            "block1.layer0.1.conv.weight",
            "block1.layer1.conv.weight",
            "transition0.bn.weight",
            "transition1.pool.weight",
            "block1.out",
        ] {
            assert_eq!(densenet_name(odd), None, "{odd}");
        }
    }

    #[test]
    fn the_tensors_reading_a_concatenation_are_reordered_oldest_first() {
        // A DenseNet-BC of 3 blocks × 1 layer, growth 4: block 1 reads the stem's 8 channels
        // (2k). Layer 1 reads them alone (no concatenation); the block's output concatenates
        // [layer 1 (4), x_0 (8)], which torchvision orders [x_0, layer 1].
        let spec = NetSpec::new(Family::Dense, Layout::Cifar, 10, &[4], true, 10);
        let net = sparsenet_net::zoo::build(&spec).unwrap();
        let twin = Twin {
            constructor: "test",
            rename: densenet_name,
            concat_reversed: true,
        };
        let r = reorders(&net, &twin);
        let want: Vec<usize> = (4..12).chain(0..4).collect();
        assert_eq!(
            r.get("transition1.bn.weight"),
            Some(&Reorder {
                dim: 0,
                order: want.clone()
            })
        );
        assert_eq!(r["transition1.bn.running_var"].order, want);
        assert_eq!(
            r.get("transition1.conv.weight"),
            Some(&Reorder {
                dim: 1,
                order: want
            })
        );
        assert!(!r.contains_key("block1.layer1.1.bn.weight"));
        assert!(!r.contains_key("block1.layer1.2.conv.weight"));
        assert!(!r.contains_key("transition1.conv.bias"));
        // The classifier reads the last block's output through BN, ReLU and global pooling.
        assert_eq!(r["head.fc.weight"].dim, 1);
        assert!(!r.contains_key("head.fc.bias"));
        // ResNet-like twins reorder nothing.
        let plain = Twin {
            concat_reversed: false,
            ..twin
        };
        assert!(reorders(&net, &plain).is_empty());
    }

    #[test]
    fn reordering_moves_whole_channels_and_back() {
        // A [2, 3, 2] tensor with channels (axis 1) reversed: value = 100·o + 10·c + r.
        let shape = [2, 3, 2];
        let v: Vec<f32> = (0..2)
            .flat_map(|o| {
                (0..3).flat_map(move |c| (0..2).map(move |r| (100 * o + 10 * c + r) as f32))
            })
            .collect();
        let r = Reorder {
            dim: 1,
            order: vec![2, 0, 1],
        };
        let t = to_theirs(&v, &shape, &r);
        assert_eq!(
            t,
            [20., 21., 0., 1., 10., 11., 120., 121., 100., 101., 110., 111.]
        );
        assert_eq!(to_ours(&t, &shape, &r), v);
    }

    #[test]
    fn a_file_in_torchvisions_names_and_order_loads_back_into_the_same_model() {
        // A DenseNet-BC with concatenations of two and three inputs (2 layers per block).
        let spec = NetSpec::new(Family::Dense, Layout::Cifar, 16, &[4], true, 10);
        let twin = Twin {
            constructor: "test",
            rename: densenet_name,
            concat_reversed: true,
        };
        let shape = sparsenet_net::Shape::new(3, 8, 8);
        let mut model = Model::<f32>::new(&spec, shape, 1).unwrap();
        for st in model.bn.iter_mut().flatten() {
            // Running statistics that differ per channel, so a lost permutation shows.
            for (i, (m, v)) in st.mean.iter_mut().zip(st.var.iter_mut()).enumerate() {
                *m = i as f32 * 0.01;
                *v = 1.0 + i as f32 * 0.02;
            }
        }
        let theirs = tensors(&model, &twin).unwrap();
        let ours = checkpoint::model_tensors(&model);
        // Some tensors really are permuted (else the round trip proves nothing).
        let moved = ours.iter().zip(&theirs).filter(|(a, b)| a.2 != b.2).count();
        assert!(moved >= 12, "{moved} tensors permuted");
        let file =
            std::env::temp_dir().join(format!("tv-roundtrip-{}.safetensors", std::process::id()));
        std::fs::write(&file, checkpoint::safetensors_bytes(&theirs, None).unwrap()).unwrap();
        let mut other = Model::<f32>::new(&spec, shape, 2).unwrap();
        load(&file, &mut other, &twin).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(checkpoint::model_tensors(&other), ours);
    }

    #[test]
    fn only_torchvisions_own_imagenet_rows_have_a_twin() {
        let spec = |m: &str| sparsenet_net::zoo::named(m).unwrap().spec(None);
        let ctor = |s: &NetSpec| twin(s).map(|t| t.constructor);
        assert_eq!(ctor(&spec("resnet-50")), Some("resnet50"));
        let mut r152 = spec("resnet-50");
        r152.depth = 152;
        assert_eq!(ctor(&r152), Some("resnet152"));
        let mut summed_dense = spec("resnet-50");
        summed_dense.bc = true;
        assert_eq!(ctor(&summed_dense), None);
        assert_eq!(ctor(&spec("densenet-121")), Some("densenet121"));
        assert_eq!(ctor(&spec("densenet-169")), Some("densenet169"));
        // torchvision builds no DenseNet-264, none of another growth, none without BC.
        let mut d = spec("densenet-121");
        d.depth = 264;
        assert_eq!(ctor(&d), None);
        let mut d = spec("densenet-121");
        d.growth = vec![24];
        assert_eq!(ctor(&d), None);
        let mut d = spec("densenet-121");
        d.bc = false;
        assert_eq!(ctor(&d), None);
        assert_eq!(ctor(&spec("resnet-56")), None);
        // Every tensor of the named rows has a torchvision name.
        for m in ["resnet-50", "densenet-121"] {
            let s = spec(m);
            let t = twin(&s).unwrap();
            let net = sparsenet_net::zoo::build(&s).unwrap();
            for n in net.graph.node_indices() {
                let node = &net.graph[n];
                for p in node.op.params() {
                    let name = format!("{}.{}", node.name, p.name);
                    assert!((t.rename)(&name).is_some(), "{m}: {name}");
                }
            }
        }
    }
}
