//! Building a spec into a network DAG. Block wiring is never written here: DenseNet/SparseNet
//! blocks are read off the block DAG of [`Topology`] (layer `ℓ` concatenates the sources of node
//! `ℓ`'s incoming edges; the block output is node `L + 1` of the same pattern at depth `L + 1`),
//! and ResNet stages are read off the [`UnraveledResNet`] DAG (each unit's identity route and
//! residual route, summed). Stems and heads are shared helpers here ([`stem`], [`head`]); each
//! family is one file beside this one (as torchvision's `densenet.py`, `resnet.py`), its named
//! variants one line each in `zoo/table.rs`.

use petgraph::graph::NodeIndex;

use super::spec::{Aggregate, Family, Head, Layout, NetSpec};
use crate::count::{count, NetCount};
use crate::dag::{Aggregation, Block, BlockLayer, NetBuilder, NetGraph};
use crate::NetError;
use sparsenet_analysis::topology::{graph_inputs, Pattern, Topology};
use sparsenet_analysis::unraveled::{Route, UnitNode, UnraveledResNet};

mod aggregated;
mod alexnet;
mod dpn;
mod fractalnet;
mod lenet;
mod mixnet;
mod mlp;
mod resnet;
mod vgg;
mod wide_resnet;

use aggregated::*;
use alexnet::*;
use dpn::*;
use fractalnet::*;
use lenet::*;
use mixnet::*;
use mlp::*;
use resnet::*;
use vgg::*;
use wide_resnet::*;

/// Build the network DAG of a spec.
pub fn build(spec: &NetSpec) -> Result<NetGraph, NetError> {
    spec.check()?;
    match spec.family {
        Family::Sparse | Family::Dense => build_aggregated(spec),
        Family::Res | Family::Plain if spec.layout == Layout::Cifar => build_cifar_resnet(spec),
        Family::Preres if spec.layout == Layout::Cifar => build_preresnet(spec),
        Family::Res => build_imagenet_resnet(spec),
        Family::Wide => build_wide_resnet(spec),
        Family::Mlp => build_mlp(spec),
        Family::Lenet => build_lenet5(spec),
        Family::Vgg => build_vgg(spec),
        Family::Alexnet => build_alexnet(spec),
        Family::Fractal => build_fractalnet(spec),
        Family::Mixnet => build_mixnet(spec),
        Family::Dpn => build_dpn(spec),
        f => Err(NetError::Spec(format!(
            "family {} has no ImageNet layout here: use --layout cifar (zoo, train and study take --layout)",
            f.name()
        ))),
    }
}

/// Build and count.
pub fn build_and_count(spec: &NetSpec) -> Result<(NetGraph, NetCount), NetError> {
    let net = build(spec)?;
    let c = count(&net);
    Ok((net, c))
}

/// The stem. CIFAR: a 3×3 convolution to `width` channels, followed by BN-ReLU when
/// `post_activation` (the post-activation ResNet). ImageNet: 7×7 stride-2 convolution, BN-ReLU,
/// 3×3 stride-2 max pooling.
fn stem(b: &mut NetBuilder, spec: &NetSpec, post_activation: bool) -> Result<NodeIndex, NetError> {
    let width = spec.stem_channels();
    Ok(match spec.layout {
        Layout::Cifar | Layout::Mnist => {
            let c = b.conv("stem.conv", b.input(), width, 3, 1, 1)?;
            if post_activation {
                b.bn_relu("stem.", c)
            } else {
                c
            }
        }
        Layout::Imagenet => {
            let c = b.conv("stem.conv", b.input(), width, 7, 2, 3)?;
            let r = b.bn_relu("stem.", c);
            b.max_pool("stem.pool", r, 3, 2, 1)?
        }
    })
}

/// The classifier: BN-ReLU first when `pre_activation` (DenseNet, SparseNet, pre-activation
/// ResNet), the pooling of `kind`, then a linear layer to the spec's classes.
fn head(
    mut b: NetBuilder,
    spec: &NetSpec,
    x: NodeIndex,
    pre_activation: bool,
    kind: Head,
) -> Result<NetGraph, NetError> {
    let x = if pre_activation {
        b.bn_relu("head.", x)
    } else {
        x
    };
    let pooled = match kind {
        Head::Global => b.global_avg_pool("head.pool", x),
        Head::Paper => b.avg_pool("head.pool", x, 3, 2)?,
    };
    let fc = b.linear("head.fc", pooled, spec.classes);
    Ok(b.finish(fc))
}

/// A DenseNet transition between blocks: BN-ReLU, 1×1 convolution to `out` channels, 2×2
/// average pooling.
fn transition(b: &mut NetBuilder, x: NodeIndex, out: usize) -> Result<NodeIndex, NetError> {
    let r = b.bn_relu("", x);
    let conv = b.conv("conv", r, out, 1, 1, 0)?;
    b.avg_pool("pool", conv, 2, 2)
}

/// Fully connected layers of `widths` over the flattened input, each followed by a ReLU, then
/// the classifier (`fc1`, `fc2`, …, the last one `fc{n+1}`). With `dropout = (p, at)`, a
/// dropout layer reads the input of each `fc{i}` whose `at[i − 1]` is set.
fn fc_stack(
    b: &mut NetBuilder,
    mut x: NodeIndex,
    widths: &[usize],
    dropout: Option<(crate::op::Prob, &[bool])>,
    classes: usize,
) -> NodeIndex {
    // Dropout, where asked, on the input of fc{i + 1}.
    let drop = |b: &mut NetBuilder, x: NodeIndex, i: usize| match dropout {
        Some((p, at)) if at.get(i) == Some(&true) && p.get() > 0.0 => {
            b.dropout(&format!("drop{}", i + 1), x, p)
        }
        _ => x,
    };
    for (i, &w) in widths.iter().enumerate() {
        x = drop(b, x, i);
        let f = b.linear(&format!("fc{}", i + 1), x, w);
        x = b.relu(&format!("relu{}", i + 1), f);
    }
    let n = widths.len();
    x = drop(b, x, n);
    b.linear(&format!("fc{}", n + 1), x, classes)
}

/// VGG's and AlexNet's classifier (`classifier.fc1` … `fc3`): fully connected 4096, 4096 and the
/// classes, with the spec's dropout reading the inputs of the layers `dropout_at` marks.
fn torchvision_classifier(
    mut b: NetBuilder,
    spec: &NetSpec,
    x: NodeIndex,
    dropout_at: &[bool],
) -> NetGraph {
    b.push_scope("classifier");
    let drop = spec.dropout_p().map(|p| (p, dropout_at));
    let out = fc_stack(&mut b, x, &[4096, 4096], drop, spec.classes);
    b.pop_scope();
    b.finish(out)
}
