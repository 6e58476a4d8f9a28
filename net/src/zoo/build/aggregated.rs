//! DenseNet and SparseNet (Huang et al. 2017; Zhu et al. 2018) over any block pattern, with
//! every aggregation operator: concatenation, summation, mixed link, dual path, maximum.

use super::*;

/// What each node `j` of a block contributes to the layers that read it: a part that is reduced
/// element-wise (summed, or its maximum taken) and a part that is concatenated (either may be
/// absent), per the block's operator.
#[derive(Clone, Copy)]
pub(super) struct Streams {
    reduced: Option<NodeIndex>,
    cat: Option<NodeIndex>,
}

/// How a block's reduced stream combines its parts: data of the operator, so that a new
/// element-wise combine is a variant here and a builder method, not a new stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reduce {
    /// Element-wise sum (sum, mixed link, dual path).
    Sum,
    /// Element-wise maximum (max).
    Max,
}

impl Reduce {
    /// The reduction of `aggregate`'s reduced stream.
    fn of(aggregate: Aggregate) -> Reduce {
        match aggregate {
            Aggregate::Max => Reduce::Max,
            _ => Reduce::Sum,
        }
    }

    /// The name of the node that reduces.
    fn name(self) -> &'static str {
        match self {
            Reduce::Sum => "sum",
            Reduce::Max => "max",
        }
    }

    fn add(self, b: &mut NetBuilder, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, NetError> {
        match self {
            Reduce::Sum => b.sum(name, xs),
            Reduce::Max => b.max(name, xs),
        }
    }
}

/// Combine the sources' streams: the reduced parts combined by `reduce` (one node, or the
/// only one), then the concatenated parts appended after it, in slot order; the new nodes are
/// named `cat_name` and `reduced_name`.
pub(super) fn aggregate(
    b: &mut NetBuilder,
    (cat_name, reduced_name): (&str, &str),
    parts: &[Streams],
    reduce: Reduce,
    force_concat: bool,
) -> Result<NodeIndex, NetError> {
    let reduced: Vec<NodeIndex> = parts.iter().filter_map(|p| p.reduced).collect();
    let mut cat: Vec<NodeIndex> = Vec::new();
    match reduced.as_slice() {
        [] => {}
        [one] => cat.push(*one),
        _ => cat.push(reduce.add(b, reduced_name, &reduced)?),
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
pub(super) fn build_aggregated(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let blocks = spec.dense_blocks()?;
    let pattern = spec.block_pattern();
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = stem(&mut b, spec, false)?;
    let concat = spec.aggregate == Aggregate::Concat;
    let reduce = Reduce::of(spec.aggregate);
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
                let reduced = format!("out.{}", reduce.name());
                let names = ("out", if both { reduced.as_str() } else { "out" });
                x = aggregate(&mut b, names, &parts, reduce, concat)?;
                break;
            }
            let start = b.len();
            b.push_scope(format!("layer{l}"));
            let u = aggregate(&mut b, ("cat", reduce.name()), &parts, reduce, concat)?;
            let (sum_part, cat_part) = dense_layer(&mut b, spec, u, k, widths)?;
            b.pop_scope();
            outs.push(Streams {
                reduced: sum_part,
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
pub(super) fn block_input_streams(
    b: &mut NetBuilder,
    x: NodeIndex,
    aggregate: Aggregate,
    k: usize,
) -> Result<(Streams, (usize, usize)), NetError> {
    let c0 = b.shape(x).c;
    Ok(match aggregate {
        Aggregate::Concat => (
            Streams {
                reduced: None,
                cat: Some(x),
            },
            (0, k),
        ),
        Aggregate::Sum | Aggregate::Max => {
            // Summing needs k channels: project the block input once if it differs.
            let p = if c0 != k {
                b.conv("proj", x, k, 1, 1, 0)?
            } else {
                x
            };
            (
                Streams {
                    reduced: Some(p),
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
                    reduced: Some(p),
                    cat: Some(x),
                },
                (a, k),
            )
        }
        // The residual path has the block input's width; the dense path starts empty.
        Aggregate::Dual => (
            Streams {
                reduced: Some(x),
                cat: None,
            },
            (c0, k),
        ),
    })
}

/// One layer of a block on its aggregated input `u` (the layer's scope is open): BN-ReLU (with
/// the BC bottleneck, BN-ReLU-conv 1×1 to 4k first), then one 3×3 convolution per stream of
/// `widths` (summed, concatenated) — as one convolution with its output channels split.
pub(super) fn dense_layer(
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
pub(super) fn block_aggregation(aggregate: Aggregate) -> Aggregation {
    match aggregate {
        Aggregate::Concat => Aggregation::Concat,
        Aggregate::Sum => Aggregation::Sum,
        Aggregate::Mixed { .. } => Aggregation::Mixed,
        Aggregate::Dual => Aggregation::Dual,
        Aggregate::Max => Aggregation::Max,
    }
}
