//! Building a spec into a network DAG. Block wiring is never written here: DenseNet/SparseNet
//! blocks are read off the block DAG of [`Topology`] (layer `ℓ` concatenates the sources of node
//! `ℓ`'s incoming edges; the block output is node `L + 1` of the same pattern at depth `L + 1`),
//! and ResNet stages are read off the [`UnraveledResNet`] DAG (each unit's identity route and
//! residual route, summed). Stems and heads are shared helpers ([`stem`], [`head`]).

use petgraph::graph::NodeIndex;

use super::spec::{Aggregate, Family, Head, Layout, NetSpec};
use crate::count::{count, NetCount};
use crate::dag::{Aggregation, Block, BlockLayer, NetBuilder, NetGraph};
use crate::NetError;
use sparsenet_analysis::topology::{graph_inputs, Pattern, Topology};
use sparsenet_analysis::unraveled::{Route, UnitNode, UnraveledResNet};

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

/// What each node `j` of a block contributes to the layers that read it: a part that is summed
/// and a part that is concatenated (either may be absent), per the block's operator.
#[derive(Clone, Copy)]
struct Streams {
    sum: Option<NodeIndex>,
    cat: Option<NodeIndex>,
}

/// Combine the sources' streams: the summed parts added (one node, or the only one), then the
/// concatenated parts appended after it, in slot order; the new nodes are named `cat_name` and
/// `sum_name`.
fn aggregate(
    b: &mut NetBuilder,
    (cat_name, sum_name): (&str, &str),
    parts: &[Streams],
    force_concat: bool,
) -> Result<NodeIndex, NetError> {
    let sums: Vec<NodeIndex> = parts.iter().filter_map(|p| p.sum).collect();
    let mut cat: Vec<NodeIndex> = Vec::new();
    match sums.as_slice() {
        [] => {}
        [one] => cat.push(*one),
        _ => cat.push(b.sum(sum_name, &sums)?),
    }
    cat.extend(parts.iter().filter_map(|p| p.cat));
    // Concatenation keeps its node even over one input (the names and counts of DenseNet and
    // SparseNet are as they always were); the other operators pass a single input through.
    if cat.len() == 1 && !force_concat {
        return Ok(cat[0]);
    }
    b.concat(cat_name, &cat)
}

/// DenseNet / SparseNet: stem, blocks wired by the topology DAG, transitions, head. The block's
/// operator ([`Aggregate`]) decides what each layer's output feeds: the concatenated stream
/// (concat), the summed stream (sum), or a split between them (mixed, dual).
fn build_aggregated(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let blocks = spec.dense_blocks()?;
    let pattern = spec.block_pattern();
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = stem(&mut b, spec, false)?;
    let concat = spec.aggregate == Aggregate::Concat;
    for (bi, &layers) in blocks.iter().enumerate() {
        let k = spec.growth_of(bi);
        b.push_scope(format!("block{}", bi + 1));
        // Node L+1 of the depth-(L+1) block DAG is the block's output aggregation.
        let topo = Topology::new(pattern.clone(), layers + 1)?;
        let g = topo.graph()?;
        let block_input = x;
        let (input, widths) = block_input_streams(&mut b, x, spec.aggregate, k)?;
        let mut outs: Vec<Streams> = vec![input];
        let mut record = Vec::new();
        let name = b.scope();
        for l in 1..=layers + 1 {
            let sources: Vec<usize> = graph_inputs(&g, NodeIndex::new(l))
                .into_iter()
                .map(|n| g[n])
                .collect();
            let parts: Vec<Streams> = sources.iter().map(|&s| outs[s]).collect();
            if l == layers + 1 {
                let both = parts.iter().any(|p| p.cat.is_some()) && !concat;
                let names = ("out", if both { "out.sum" } else { "out" });
                x = aggregate(&mut b, names, &parts, concat)?;
                break;
            }
            let start = b.len();
            b.push_scope(format!("layer{l}"));
            let u = aggregate(&mut b, ("cat", "sum"), &parts, concat)?;
            let (sum_part, cat_part) = dense_layer(&mut b, spec, u, k, widths)?;
            b.pop_scope();
            outs.push(Streams {
                sum: sum_part,
                cat: cat_part,
            });
            let mut nodes: Vec<NodeIndex> = cat_part.into_iter().chain(sum_part).collect();
            let output = nodes.remove(0);
            record.push(BlockLayer {
                output,
                also: nodes,
                first_conv: b
                    .first_conv_since(start)
                    .expect("a layer has a convolution"),
                sources,
            });
        }
        b.record_block(Block {
            name,
            input: block_input,
            aggregation: block_aggregation(spec.aggregate),
            layers: record,
            view: topo.block_dag()?,
        });
        b.pop_scope();
        if bi + 1 < blocks.len() {
            b.push_scope(format!("transition{}", bi + 1));
            let c = b.shape(x).c;
            x = transition(&mut b, x, if spec.bc { c / 2 } else { c })?;
            b.pop_scope();
        }
    }
    head(b, spec, x, true, spec.head_kind())
}

/// What the block input `x` feeds into a block's summed and concatenated streams under
/// `aggregate`, and the widths (summed, concatenated) of each layer's output: `concat` reads the
/// input as is, `sum` and `mixed` project it to the summed width once if it differs (a 1×1
/// convolution, `proj`), `dual` sums it whole and starts the dense path empty.
fn block_input_streams(
    b: &mut NetBuilder,
    x: NodeIndex,
    aggregate: Aggregate,
    k: usize,
) -> Result<(Streams, (usize, usize)), NetError> {
    let c0 = b.shape(x).c;
    Ok(match aggregate {
        Aggregate::Concat => (
            Streams {
                sum: None,
                cat: Some(x),
            },
            (0, k),
        ),
        Aggregate::Sum => {
            // Summing needs k channels: project the block input once if it differs.
            let p = if c0 != k {
                b.conv("proj", x, k, 1, 1, 0)?
            } else {
                x
            };
            (
                Streams {
                    sum: Some(p),
                    cat: None,
                },
                (k, 0),
            )
        }
        Aggregate::Mixed { sum: a } => {
            let p = if c0 != a {
                b.conv("proj", x, a, 1, 1, 0)?
            } else {
                x
            };
            (
                Streams {
                    sum: Some(p),
                    cat: Some(x),
                },
                (a, k),
            )
        }
        // The residual path has the block input's width; the dense path starts empty.
        Aggregate::Dual => (
            Streams {
                sum: Some(x),
                cat: None,
            },
            (c0, k),
        ),
    })
}

/// One layer of a block on its aggregated input `u` (the layer's scope is open): BN-ReLU (with
/// the BC bottleneck, BN-ReLU-conv 1×1 to 4k first), then one 3×3 convolution per stream of
/// `widths` (summed, concatenated) — as one convolution with its output channels split.
fn dense_layer(
    b: &mut NetBuilder,
    spec: &NetSpec,
    u: NodeIndex,
    k: usize,
    widths: (usize, usize),
) -> Result<(Option<NodeIndex>, Option<NodeIndex>), NetError> {
    let r = if spec.bc {
        let r1 = b.bn_relu("1.", u);
        let c1 = b.conv("1.conv", r1, 4 * k, 1, 1, 0)?;
        b.bn_relu("2.", c1)
    } else {
        b.bn_relu("", u)
    };
    let conv_name = if spec.bc { "2.conv" } else { "conv" };
    // One convolution per stream (as one convolution with its output channels split).
    let (ws, wc) = widths;
    let sum_part = if ws > 0 {
        let n = if wc > 0 {
            format!("{conv_name}.sum")
        } else {
            conv_name.to_string()
        };
        Some(b.conv(&n, r, ws, 3, 1, 1)?)
    } else {
        None
    };
    let cat_part = if wc > 0 {
        let n = if ws > 0 {
            format!("{conv_name}.cat")
        } else {
            conv_name.to_string()
        };
        Some(b.conv(&n, r, wc, 3, 1, 1)?)
    } else {
        None
    };
    Ok((sum_part, cat_part))
}

/// How a block built with `aggregate` combines what its layers read, as the network DAG
/// records it.
fn block_aggregation(aggregate: Aggregate) -> Aggregation {
    match aggregate {
        Aggregate::Concat => Aggregation::Concat,
        Aggregate::Sum => Aggregation::Sum,
        Aggregate::Mixed { .. } => Aggregation::Mixed,
        Aggregate::Dual => Aggregation::Dual,
    }
}

/// CIFAR ResNet (He et al. 2015, 6n+2, option-A shortcuts) and its plain counterpart.
fn build_cifar_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 8 || !(spec.depth - 2).is_multiple_of(6) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a CIFAR {}net: depth − 2 must be a positive multiple of 6, e.g. 20, 32, 44, 56, 110, 1202",
            spec.depth,
            spec.family.name()
        )));
    }
    let units = (spec.depth - 2) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    let stem_width = spec.stem_channels();
    let mut x = stem(&mut b, spec, true)?;
    for (si, width) in [stem_width, 2 * stem_width, 4 * stem_width]
        .into_iter()
        .enumerate()
    {
        b.push_scope(format!("stage{}", si + 1));
        let first_stride = if si == 0 { 1 } else { 2 };
        // The residual function of one basic unit: conv-BN-ReLU-conv-BN.
        let residual =
            |b: &mut NetBuilder, x: NodeIndex, stride: usize| -> Result<NodeIndex, NetError> {
                let c1 = b.conv("conv1", x, width, 3, stride, 1)?;
                let n1 = b.bn("bn1", c1);
                let r1 = b.relu("relu1", n1);
                let c2 = b.conv("conv2", r1, width, 3, 1, 1)?;
                Ok(b.bn("bn2", c2))
            };
        if spec.family == Family::Plain {
            // Plain: the chain pattern; layer ℓ takes x_{ℓ−1} only.
            let topo = Topology::new(Pattern::Plain, units)?;
            let g = topo.graph()?;
            let mut outs = vec![x];
            let mut record = Vec::new();
            let name = b.scope();
            for l in 1..=units {
                let start = b.len();
                b.push_scope(format!("unit{l}"));
                let src = graph_inputs(&g, NodeIndex::new(l))[0];
                let f = residual(&mut b, outs[g[src]], if l == 1 { first_stride } else { 1 })?;
                outs.push(b.relu("relu", f));
                b.pop_scope();
                record.push(BlockLayer {
                    output: f,
                    also: Vec::new(),
                    first_conv: b.first_conv_since(start).expect("a unit has a convolution"),
                    sources: vec![g[src]],
                });
            }
            b.record_block(Block {
                name,
                input: outs[0],
                aggregation: Aggregation::Chain,
                layers: record,
                view: Topology::new(Pattern::Plain, units + 1)?.block_dag()?,
            });
            x = outs[units];
        } else {
            x = interpret_unraveled(
                &mut b,
                x,
                units,
                |b, input, unit| residual(b, input, if unit == 1 { first_stride } else { 1 }),
                |b, input, unit| {
                    let s = b.shape(input);
                    Ok(if unit == 1 && (first_stride != 1 || s.c != width) {
                        b.shortcut_a("shortcut", input, first_stride, width)
                    } else {
                        input
                    })
                },
                true,
            )?;
        }
        b.pop_scope();
    }
    head(b, spec, x, false, Head::Global)
}

/// Walk the unraveled ResNet DAG of `units` units: a `Residual(i)` node becomes `residual`
/// applied to its input state, a `State(i)` node sums its incoming routes (identity routes go
/// through `shortcut`), followed by ReLU when `post_relu` (the original, post-activation ResNet).
fn interpret_unraveled<'a>(
    b: &mut NetBuilder,
    input: NodeIndex,
    units: usize,
    mut residual: impl FnMut(&mut NetBuilder, NodeIndex, usize) -> Result<NodeIndex, NetError> + 'a,
    mut shortcut: impl FnMut(&mut NetBuilder, NodeIndex, usize) -> Result<NodeIndex, NetError> + 'a,
    post_relu: bool,
) -> Result<NodeIndex, NetError> {
    let r = UnraveledResNet::new(units);
    let name = b.scope();
    let mut record = Vec::new();
    let mut built: Vec<Option<NodeIndex>> = vec![None; r.graph.node_count()];
    built[r.input().index()] = Some(input);
    let order = petgraph::algo::toposort(&r.graph, None).map_err(|_| {
        NetError::Spec("the unraveled ResNet has a cycle (impossible by construction)".into())
    })?;
    for n in order {
        if n == r.input() {
            continue;
        }
        let incoming: Vec<(NodeIndex, Route)> = r
            .graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .map(|e| {
                use petgraph::visit::EdgeRef;
                (e.source(), *e.weight())
            })
            .collect();
        let node = match r.graph[n] {
            UnitNode::Residual(i) => {
                let start = b.len();
                b.push_scope(format!("unit{i}"));
                let src = built[incoming[0].0.index()].expect("topological order");
                let y = residual(b, src, i)?;
                b.pop_scope();
                // Unit i's residual branch reads the state after unit i − 1.
                record.push(BlockLayer {
                    output: y,
                    also: Vec::new(),
                    first_conv: b.first_conv_since(start).expect("a unit has a convolution"),
                    sources: vec![i - 1],
                });
                y
            }
            UnitNode::State(i) => {
                b.push_scope(format!("unit{i}"));
                let mut terms = Vec::new();
                // Residual route first, identity second: the order of `x + F(x)` is irrelevant
                // to the sum but fixed for reproducible node names.
                for (src, route) in incoming.iter().rev() {
                    let v = built[src.index()].expect("topological order");
                    terms.push(match route {
                        Route::Identity => shortcut(b, v, i)?,
                        Route::Residual => v,
                    });
                }
                let s = b.sum("add", &terms)?;
                let y = if post_relu { b.relu("relu", s) } else { s };
                b.pop_scope();
                y
            }
        };
        built[n.index()] = Some(node);
    }
    record.sort_by_key(|l| l.sources[0]);
    // Unit i reads x_0 + F_1 + … + F_{i−1}: in the aggregation view, every earlier node.
    b.record_block(Block {
        name,
        input,
        aggregation: Aggregation::Sum,
        layers: record,
        view: Topology::new(Pattern::Res, units + 1)?.block_dag()?,
    });
    Ok(built[r.output().index()].expect("output built"))
}

/// Pre-activation bottleneck ResNet for CIFAR (He et al. 2016, 9n+2): planes 16/32/64 with
/// expansion 4 (stage widths 64/128/256), projection shortcut at each stage's first unit.
fn build_preresnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 11 || !(spec.depth - 2).is_multiple_of(9) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a CIFAR pre-activation bottleneck ResNet: depth − 2 must be a positive multiple of 9, e.g. 164, 1001",
            spec.depth
        )));
    }
    let units = (spec.depth - 2) / 9;
    let mut b = NetBuilder::new(spec.input_shape());
    let stem_width = spec.stem_channels();
    let mut x = stem(&mut b, spec, false)?;
    for (si, planes) in [stem_width, 2 * stem_width, 4 * stem_width]
        .into_iter()
        .enumerate()
    {
        b.push_scope(format!("stage{}", si + 1));
        let stride = if si == 0 { 1 } else { 2 };
        x = interpret_unraveled(
            &mut b,
            x,
            units,
            |b, input, unit| {
                let s = if unit == 1 { stride } else { 1 };
                let r1 = b.bn_relu("1.", input);
                let c1 = b.conv("1.conv", r1, planes, 1, 1, 0)?;
                let r2 = b.bn_relu("2.", c1);
                let c2 = b.conv("2.conv", r2, planes, 3, s, 1)?;
                let r3 = b.bn_relu("3.", c2);
                b.conv("3.conv", r3, 4 * planes, 1, 1, 0)
            },
            |b, input, unit| {
                if unit == 1 {
                    b.conv("shortcut", input, 4 * planes, 1, stride, 0)
                } else {
                    Ok(input)
                }
            },
            false,
        )?;
        b.pop_scope();
    }
    head(b, spec, x, true, Head::Global)
}

/// ImageNet bottleneck ResNet (He et al. 2015; torchvision layout, stride on the 3×3).
fn build_imagenet_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let stages: &[usize] = match spec.depth {
        50 => &[3, 4, 6, 3],
        101 => &[3, 4, 23, 3],
        152 => &[3, 8, 36, 3],
        d => {
            return Err(NetError::Spec(format!(
                "depth {d} is not an ImageNet ResNet layout: accepted 50, 101, 152"
            )))
        }
    };
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = stem(&mut b, spec, true)?;
    for (si, &units) in stages.iter().enumerate() {
        let planes = spec.stem_channels() << si;
        let stride = if si == 0 { 1 } else { 2 };
        b.push_scope(format!("stage{}", si + 1));
        x = interpret_unraveled(
            &mut b,
            x,
            units,
            |b, input, unit| {
                let s = if unit == 1 { stride } else { 1 };
                let c1 = b.conv("conv1", input, planes, 1, 1, 0)?;
                let n1 = b.bn("bn1", c1);
                let r1 = b.relu("relu1", n1);
                let c2 = b.conv("conv2", r1, planes, 3, s, 1)?;
                let n2 = b.bn("bn2", c2);
                let r2 = b.relu("relu2", n2);
                let c3 = b.conv("conv3", r2, 4 * planes, 1, 1, 0)?;
                Ok(b.bn("bn3", c3))
            },
            |b, input, unit| {
                if unit == 1 {
                    let c = b.conv("shortcut.conv", input, 4 * planes, 1, stride, 0)?;
                    Ok(b.bn("shortcut.bn", c))
                } else {
                    Ok(input)
                }
            },
            true,
        )?;
        b.pop_scope();
    }
    head(b, spec, x, false, Head::Global)
}

/// Wide ResNet for CIFAR (Zagoruyko & Komodakis 2016; the authors' code): WRN-D-K has
/// `n = (D − 4)/6` pre-activation basic blocks per stage at widths 16K, 32K, 64K (strides 1, 2,
/// 2) after a 3×3 stem of 16. A block is BN-ReLU-conv 3×3-(dropout)-BN-ReLU-conv 3×3; where the
/// width or stride changes (a stage's first block, unless its input already has the width) the
/// shortcut is a 1×1 convolution of the *pre-activated* input, as in the authors' code, and
/// the identity otherwise. Head: BN-ReLU, global average pooling (the authors' 8×8 pool at
/// 32×32), linear.
fn build_wide_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 10 || !(spec.depth - 4).is_multiple_of(6) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a Wide ResNet: depth − 4 must be a positive multiple of 6, e.g. 16, 22, 28, 40",
            spec.depth
        )));
    }
    let widen = match spec.growth.as_slice() {
        [k] if *k > 0 => *k,
        _ => {
            return Err(NetError::Spec(
                "a Wide ResNet takes one widening factor K (--widen K, e.g. 8 for WRN-16-8)".into(),
            ))
        }
    };
    let units = (spec.depth - 4) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = stem(&mut b, spec, false)?;
    let dropout = spec.dropout_p().filter(|p| p.get() > 0.0);
    for (si, width) in [16 * widen, 32 * widen, 64 * widen].into_iter().enumerate() {
        b.push_scope(format!("stage{}", si + 1));
        let stride = if si == 0 { 1 } else { 2 };
        let projects = stride != 1 || b.shape(x).c != width;
        // The pre-activated input of a projecting unit, which its shortcut reads too.
        let preact = std::cell::Cell::new(None);
        x = interpret_unraveled(
            &mut b,
            x,
            units,
            |b, input, unit| {
                let s = if unit == 1 { stride } else { 1 };
                let r1 = b.bn_relu("1.", input);
                if unit == 1 && projects {
                    preact.set(Some(r1));
                }
                let c1 = b.conv("1.conv", r1, width, 3, s, 1)?;
                let r2 = b.bn_relu("2.", c1);
                let r2 = match dropout {
                    Some(p) => b.dropout("dropout", r2, p),
                    None => r2,
                };
                b.conv("2.conv", r2, width, 3, 1, 1)
            },
            |b, input, unit| {
                if unit == 1 && projects {
                    let r = preact.get().expect("the residual branch is built first");
                    b.conv("shortcut", r, width, 1, stride, 0)
                } else {
                    Ok(input)
                }
            },
            false,
        )?;
        b.pop_scope();
    }
    head(b, spec, x, true, Head::Global)
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

/// A multilayer perceptron (LeNet-300-100 is `mlp` with hidden widths 300, 100).
fn build_mlp(spec: &NetSpec) -> Result<NetGraph, NetError> {
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

/// LeNet-5 as Caffe's `lenet_train_test.prototxt` defines it, the network of Han et al.'s
/// pruning table: conv 20@5×5, max pool 2/2, conv 50@5×5, max pool 2/2, fc 500, ReLU, fc (no
/// ReLU after the convolutions, as there). `growth` may replace the widths 20, 50, 500.
fn build_lenet5(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth != 5 {
        return Err(NetError::Spec(format!(
            "depth {} is not LeNet-5's: give --depth 5 or --model lenet-5",
            spec.depth
        )));
    }
    let [c1, c2, f1] = match spec.growth.as_slice() {
        [] => [20, 50, 500],
        [a, b, c] if *a > 0 && *b > 0 && *c > 0 => [*a, *b, *c],
        _ => {
            return Err(NetError::Spec(
                "LeNet-5 takes three widths (conv1, conv2, fc1; default 20, 50, 500) or none"
                    .into(),
            ))
        }
    };
    let mut b = NetBuilder::new(spec.input_shape());
    let x = b.conv_with_bias("conv1", b.input(), c1, 5, 1, 0)?;
    let x = b.max_pool("pool1", x, 2, 2, 0)?;
    let x = b.conv_with_bias("conv2", x, c2, 5, 1, 0)?;
    let x = b.max_pool("pool2", x, 2, 2, 0)?;
    let out = fc_stack(&mut b, x, &[f1], None, spec.classes);
    Ok(b.finish(out))
}

/// VGG without batch norm as torchvision builds it: 3×3 convolutions with bias and ReLU in five
/// groups of widths 64, 128, 256, 512, 512, each closed by a 2×2 max pool; then fc 4096-ReLU-
/// dropout, fc 4096-ReLU-dropout, fc (torchvision's adaptive 7×7 pooling is the identity at
/// 224×224, the layout's input, and is left out).
fn build_vgg(spec: &NetSpec) -> Result<NetGraph, NetError> {
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

/// AlexNet as torchvision builds it: conv 64@11×11/4 (padding 2), max pool 3/2, conv 192@5×5,
/// max pool 3/2, conv 384, 256, 256 @3×3, max pool 3/2 (every convolution with bias and ReLU),
/// then dropout-fc 4096-ReLU, dropout-fc 4096-ReLU, fc (the adaptive 6×6 pooling is the identity
/// at 224×224 and is left out).
fn build_alexnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
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

/// FractalNet for CIFAR (Larsson, Maire & Shakhnarovich 2017): `B` fractal blocks of `C`
/// columns, read off [`fractal_block`]'s DAG (each convolution reads the mean join of its
/// sources; a join shared by several readers is one node, so one drop-path draw), every
/// convolution a 3×3 conv-BN-ReLU unit of the block's width (64, 128, 256, 512, 512, then 512),
/// a 2×2 max pool after each block, and a linear classifier over what is left (1×1×512 at
/// 32×32 with five blocks).
fn build_fractalnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    use sparsenet_analysis::fractal::{fractal_block, MAX_COLUMNS};
    let columns = match spec.growth.as_slice() {
        [c] if (1..=MAX_COLUMNS).contains(c) => *c,
        _ => {
            return Err(NetError::Spec(format!(
                "a FractalNet takes its columns C, 1 to {MAX_COLUMNS} (--columns 3 --blocks 5 for FractalNet-21)"
            )))
        }
    };
    let per_block = 1usize << (columns - 1);
    if spec.depth < per_block + 1 || !(spec.depth - 1).is_multiple_of(per_block) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit FractalNet blocks of {columns} columns: depth − 1 must be a positive multiple of {per_block} (the deepest column's convolutions per block); give --blocks B instead",
            spec.depth
        )));
    }
    let blocks = (spec.depth - 1) / per_block;
    let drop_path = spec
        .drop_path
        .unwrap_or_else(|| crate::op::Prob::new(0.15).expect("a probability"));
    let dag = fractal_block(columns)?;
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = b.input();
    for bi in 0..blocks {
        let width = [64, 128, 256, 512, 512].get(bi).copied().unwrap_or(512);
        b.push_scope(format!("block{}", bi + 1));
        let name = b.scope();
        let block_input = x;
        let mut outs = vec![x];
        let mut joins: std::collections::HashMap<Vec<usize>, NodeIndex> = Default::default();
        let mut record = Vec::new();
        let mut join = |b: &mut NetBuilder, sources: &[usize], outs: &[NodeIndex]| {
            let mut key = sources.to_vec();
            key.sort_unstable();
            if let Some(&n) = joins.get(&key) {
                return Ok(n);
            }
            let ins: Vec<NodeIndex> = key.iter().map(|&s| outs[s]).collect();
            let label: Vec<String> = key.iter().map(|s| s.to_string()).collect();
            let n = b.mean_join(&format!("join{}", label.join("_")), &ins, drop_path)?;
            joins.insert(key, n);
            Ok::<_, NetError>(n)
        };
        let layers = dag.depth() - 1;
        for l in 1..=layers {
            let sources = dag.sources(l).to_vec();
            let u = join(&mut b, &sources, &outs)?;
            b.push_scope(format!("conv{l}"));
            let c = b.conv("conv", u, width, 3, 1, 1)?;
            let r = b.bn_relu("", c);
            b.pop_scope();
            outs.push(r);
            record.push(BlockLayer {
                output: r,
                also: Vec::new(),
                first_conv: c,
                sources,
            });
        }
        x = join(&mut b, dag.sources(layers + 1), &outs)?;
        b.record_block(Block {
            name,
            input: block_input,
            aggregation: Aggregation::Mean,
            layers: record,
            view: dag.clone(),
        });
        x = b.max_pool("pool", x, 2, 2, 0).map_err(|_| {
            NetError::Spec(format!(
                "{blocks} FractalNet blocks (a 2×2 pool after each) do not fit a {} input: use fewer blocks (4 at 28×28) or a larger input",
                spec.input_shape()
            ))
        })?;
        b.pop_scope();
    }
    let fc = b.linear("fc", x, spec.classes);
    Ok(b.finish(fc))
}

/// Mixed Link Networks for CIFAR as the authors' code builds them (`models/cifar/mixnet.py`):
/// depth `6n + 4`, a 3×3 stem of `max(2k₂, k₁)` channels, three blocks of `n` units joined by
/// transitions (BN-ReLU-conv 1×1 to `max(⌊C/2⌋, k₁)`, 2×2 average pooling), BN-ReLU, global
/// average pooling, linear. A unit has two bottleneck branches on its input `x` of `C`
/// channels, each BN-ReLU-conv 1×1 to `4k`-BN-ReLU-conv 3×3 to `k`: the inner link `i` (k₁) is
/// *added* onto the last k₁ channels of `x`, the outer link `o` (k₂) *concatenated*:
/// `[x[: C−k₁], x[C−k₁:] + i, o]`.
///
/// With k₁ = k₂ (every published MixNet) the last k₁ channels of a unit's input are the
/// previous unit's outer link, so the state is a list of pieces and no channel is ever sliced:
/// the block input (stem or transition output) is the only piece that is cut, and it is built
/// as two convolutions (`….a`, `….b`: the first `C − k₁` and the last k₁ output channels of the
/// authors' single one — the same function and parameters).
fn build_mixnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 10 || !(spec.depth - 4).is_multiple_of(6) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a MixNet: depth − 4 must be a positive multiple of 6, e.g. 100, 190, 250",
            spec.depth
        )));
    }
    let k = match spec.growth.as_slice() {
        [k] | [k, _] if *k > 0 && spec.growth.iter().all(|g| g == k) => *k,
        _ => {
            return Err(NetError::Spec(
                "a MixNet takes k₁ = k₂ (--growth K, e.g. 12 for MixNet-100; every published MixNet has equal inner and outer widths, and unequal ones would cut channels of a piece)".into(),
            ))
        }
    };
    let units = (spec.depth - 4) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    // The block input, built as its first C − k and its last k channels.
    let split = |b: &mut NetBuilder,
                 name: &str,
                 x: NodeIndex,
                 width: usize,
                 kernel: usize,
                 pool: bool|
     -> Result<Vec<NodeIndex>, NetError> {
        let mut parts = Vec::new();
        for (suffix, w) in [("a", width - k), ("b", k)] {
            if w == 0 {
                continue;
            }
            let c = b.conv(&format!("{name}{suffix}"), x, w, kernel, 1, kernel / 2)?;
            parts.push(if pool {
                b.avg_pool(&format!("{name}{suffix}.pool"), c, 2, 2)?
            } else {
                c
            });
        }
        Ok(parts)
    };
    let stem_width = (2 * k).max(k);
    let input = b.input();
    let mut pieces = split(&mut b, "stem.conv.", input, stem_width, 3, false)?;
    for bi in 0..3 {
        b.push_scope(format!("block{}", bi + 1));
        for u in 1..=units {
            b.push_scope(format!("{u}"));
            let x = b.concat("in", &pieces)?;
            let branch = |b: &mut NetBuilder, name: &str| -> Result<NodeIndex, NetError> {
                let r = b.bn_relu(&format!("{name}.1."), x);
                let c = b.conv(&format!("{name}.1.conv"), r, 4 * k, 1, 1, 0)?;
                let r = b.bn_relu(&format!("{name}.2."), c);
                b.conv(&format!("{name}.2.conv"), r, k, 3, 1, 1)
            };
            let inner = branch(&mut b, "inner")?;
            let outer = branch(&mut b, "outer")?;
            let last = pieces.pop().expect("a unit's input has pieces");
            let added = b.sum("add", &[last, inner])?;
            pieces.push(added);
            pieces.push(outer);
            b.pop_scope();
        }
        b.pop_scope();
        if bi < 2 {
            let x = b.concat(&format!("trans{}.in", bi + 1), &pieces)?;
            let c = b.shape(x).c;
            let r = b.bn_relu(&format!("trans{}.", bi + 1), x);
            let width = (c / 2).max(k);
            pieces = split(&mut b, &format!("trans{}.conv.", bi + 1), r, width, 1, true)?;
        }
    }
    let x = b.concat("out", &pieces)?;
    head(b, spec, x, true, Head::Global)
}

/// One DPN configuration: stem width, bottleneck width k_R of the first stage, groups G,
/// units per stage, dense increments per stage, and whether it is a small (DPN-68) network
/// (3×3 stem, residual widths 64·2^s instead of 256·2^s).
struct DpnConfig {
    depth: usize,
    stem: usize,
    k_r: usize,
    groups: usize,
    units: [usize; 4],
    inc: [usize; 4],
    small: bool,
}

/// The published DPNs (Chen et al. 2017, Table 1; the small DPN-68 of the authors' release).
#[rustfmt::skip]
const DPNS: &[DpnConfig] = &[
    DpnConfig { depth: 68,  stem: 10,  k_r: 128, groups: 32, units: [3, 4, 12, 3], inc: [16, 32, 32, 64],   small: true },
    DpnConfig { depth: 92,  stem: 64,  k_r: 96,  groups: 32, units: [3, 4, 20, 3], inc: [16, 32, 24, 128],  small: false },
    DpnConfig { depth: 98,  stem: 96,  k_r: 160, groups: 40, units: [3, 6, 20, 3], inc: [16, 32, 32, 128],  small: false },
    DpnConfig { depth: 107, stem: 128, k_r: 200, groups: 50, units: [4, 8, 20, 3], inc: [20, 64, 64, 128],  small: false },
    DpnConfig { depth: 131, stem: 128, k_r: 160, groups: 40, units: [4, 8, 28, 3], inc: [16, 32, 32, 128],  small: false },
];

/// Dual Path Networks for ImageNet (Chen et al. 2017): a stem (7×7 stride-2 convolution, 3×3
/// for DPN-68, BN-ReLU, 3×3 stride-2 max pooling), four stages of units, BN-ReLU on the last
/// concatenation, global average pooling, linear. Stage s has residual width `bw = 256·2^s`
/// (`64·2^s` for DPN-68), bottleneck width `r = k_R·2^s` and dense increment `inc_s`. A unit
/// reads `x = [res ; dense]` and computes BN-ReLU-conv 1×1 to r, BN-ReLU-grouped conv 3×3 (G
/// groups; stride 2 in the first unit of stages 2–4), BN-ReLU-conv 1×1 to `bw + inc`, whose
/// first `bw` channels are added to `res` and last `inc` concatenated to `dense`. A stage's
/// first unit first projects its input (BN-ReLU-conv 1×1, with the unit's stride) to the new
/// `res` (bw) and `dense` (2·inc). A convolution whose output is cut into a residual and a
/// dense part is built as two (`…res`, `…dense`): the same function and parameters.
fn build_dpn(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let cfg = DPNS.iter().find(|c| c.depth == spec.depth).ok_or_else(|| {
        let depths: Vec<String> = DPNS.iter().map(|c| c.depth.to_string()).collect();
        NetError::Spec(format!(
            "depth {} is not a published DPN: accepted {}",
            spec.depth,
            depths.join(", ")
        ))
    })?;
    if !spec.growth.is_empty() {
        return Err(NetError::Spec(
            "a DPN's widths come with its depth (68, 92, 98, 107, 131): leave out the widths"
                .into(),
        ));
    }
    let mut b = NetBuilder::new(spec.input_shape());
    let (k, pad) = if cfg.small { (3, 1) } else { (7, 3) };
    let c = b.conv("stem.conv", b.input(), cfg.stem, k, 2, pad)?;
    let r = b.bn_relu("stem.", c);
    let stem = b.max_pool("stem.pool", r, 3, 2, 1)?;
    let base = if cfg.small { 64 } else { 256 };
    // (res, dense); before the first unit the stem's output alone.
    let mut state: Option<(NodeIndex, NodeIndex)> = None;
    for (s, (&units, &inc)) in cfg.units.iter().zip(&cfg.inc).enumerate() {
        b.push_scope(format!("stage{}", s + 1));
        let (bw, r_width) = (base << s, (cfg.k_r * (base << s)) / base);
        for u in 1..=units {
            b.push_scope(format!("{u}"));
            let x = match state {
                None => stem,
                Some((res, dense)) => b.concat("in", &[res, dense])?,
            };
            let stride = if u == 1 && s > 0 { 2 } else { 1 };
            let (res, dense) = match state {
                Some(st) if u > 1 => st,
                _ => {
                    let p = b.bn_relu("proj.", x);
                    (
                        b.conv("proj.res", p, bw, 1, stride, 0)?,
                        b.conv("proj.dense", p, 2 * inc, 1, stride, 0)?,
                    )
                }
            };
            let a = b.bn_relu("a.", x);
            let a = b.conv("a.conv", a, r_width, 1, 1, 0)?;
            let g = b.bn_relu("b.", a);
            let g = b.grouped_conv("b.conv", g, r_width, [3, stride, 1], cfg.groups)?;
            let c = b.bn_relu("c.", g);
            let out_res = b.conv("c.res", c, bw, 1, 1, 0)?;
            let out_dense = b.conv("c.dense", c, inc, 1, 1, 0)?;
            state = Some((
                b.sum("res", &[res, out_res])?,
                b.concat("dense", &[dense, out_dense])?,
            ));
            b.pop_scope();
        }
        b.pop_scope();
    }
    let (res, dense) = state.expect("a DPN has units");
    let x = b.concat("out", &[res, dense])?;
    head(b, spec, x, true, Head::Global)
}
