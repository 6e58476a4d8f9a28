//! ResNet (He et al. 2016): the CIFAR ResNets and plain networks read off the unraveled ResNet
//! DAG, the pre-activation ResNets, and the ImageNet ResNets.

use super::*;

/// CIFAR ResNet (He et al. 2015, 6n+2, option-A shortcuts) and its plain counterpart.
pub(super) fn build_cifar_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
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
pub(super) fn interpret_unraveled<'a>(
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
pub(super) fn build_preresnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
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
pub(super) fn build_imagenet_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
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
