//! The architecture zoo: network families as small specs, named variants as one line of data.
//!
//! A [`NetSpec`] is built into a [`NetGraph`] by [`build`]. Block wiring is never written here:
//! DenseNet/SparseNet blocks are read off the block DAG of [`Topology`] (layer `ℓ` concatenates
//! the sources of node `ℓ`'s incoming edges; the block output is node `L + 1` of the same pattern
//! at depth `L + 1`), and ResNet stages are read off the [`UnraveledResNet`] DAG (each unit's
//! identity route and residual route, summed). Conventions follow the reference implementations;
//! see the README's zoo section for which stem and head each named model uses.

use petgraph::graph::NodeIndex;
use std::fmt;

use crate::count::{count, NetCount};
use crate::net::{NetBuilder, NetGraph, Shape};
use crate::topology::{graph_inputs, Pattern, Topology};
use crate::unraveled::{Route, UnitNode, UnraveledResNet};
use crate::AnalysisError;

/// A network family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// SparseNet: concatenation at exponential (or custom) offsets.
    Sparse,
    /// DenseNet: concatenation of every earlier output.
    Dense,
    /// ResNet: CIFAR basic units with parameter-free shortcuts, or ImageNet bottlenecks.
    Res,
    /// Pre-activation bottleneck ResNet (He et al. 2016), CIFAR.
    Preres,
    /// The CIFAR ResNet without shortcuts.
    Plain,
}

impl Family {
    /// Parse `sparse|dense|res|preres|plain`.
    pub fn parse(s: &str) -> Result<Self, AnalysisError> {
        match s {
            "sparse" => Ok(Family::Sparse),
            "dense" => Ok(Family::Dense),
            "res" => Ok(Family::Res),
            "preres" => Ok(Family::Preres),
            "plain" => Ok(Family::Plain),
            _ => Err(AnalysisError::Spec(format!(
                "unknown family '{s}': accepted sparse, dense, res, preres, plain"
            ))),
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Sparse => "sparse",
            Family::Dense => "dense",
            Family::Res => "res",
            Family::Preres => "preres",
            Family::Plain => "plain",
        }
    }
}

/// The dataset a network is laid out for (stem, number of blocks, input size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// 32×32 inputs, three blocks / stages.
    Cifar,
    /// 224×224 inputs, four blocks / stages.
    Imagenet,
}

impl Dataset {
    /// Parse `cifar|imagenet`.
    pub fn parse(s: &str) -> Result<Self, AnalysisError> {
        match s {
            "cifar" => Ok(Dataset::Cifar),
            "imagenet" => Ok(Dataset::Imagenet),
            _ => Err(AnalysisError::Spec(format!(
                "unknown dataset '{s}': accepted cifar, imagenet"
            ))),
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Cifar => "cifar",
            Dataset::Imagenet => "imagenet",
        }
    }

    /// The paper's input shape.
    pub fn input(&self) -> Shape {
        match self {
            Dataset::Cifar => Shape::new(3, 32, 32),
            Dataset::Imagenet => Shape::new(3, 224, 224),
        }
    }
}

/// The classifier of DenseNet/SparseNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// BN-ReLU-global average pool-Linear(C).
    Global,
    /// BN-ReLU-average pool 3×3 stride 2 (7×7 → 3×3 at 224×224)-Linear(9·C): the head that
    /// reproduces the paper's ImageNet SparseNet counts.
    Paper,
}

impl Head {
    /// Parse `global|paper`.
    pub fn parse(s: &str) -> Result<Self, AnalysisError> {
        match s {
            "global" => Ok(Head::Global),
            "paper" => Ok(Head::Paper),
            _ => Err(AnalysisError::Spec(format!(
                "unknown head '{s}': accepted global, paper"
            ))),
        }
    }
}

/// A whole-network specification.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSpec {
    /// Family.
    pub family: Family,
    /// Layout (stem, blocks).
    pub dataset: Dataset,
    /// Depth in the family's convention (e.g. 100 for DenseNet-BC-100, 121 for DenseNet-121).
    pub depth: usize,
    /// Growth rate per block (one value is used for every block); unused for ResNets.
    pub growth: Vec<usize>,
    /// Bottleneck + compression (DenseNet-BC / SparseNet-BC).
    pub bc: bool,
    /// Sparse pattern: `Sparse { base }` or `Custom { offsets }` (default base 2).
    pub pattern: Option<Pattern>,
    /// Output classes.
    pub classes: usize,
    /// Stem channels; `None` = the family's convention ([`NetSpec::stem_channels`]).
    pub stem: Option<usize>,
    /// Classifier head of DenseNet/SparseNet; `None` = the family's convention.
    pub head: Option<Head>,
    /// Input shape; `None` = the dataset's (the trainer sets it from the data).
    pub input: Option<Shape>,
}

impl NetSpec {
    /// A spec with the family's conventions for everything optional.
    pub fn new(
        family: Family,
        dataset: Dataset,
        depth: usize,
        growth: &[usize],
        bc: bool,
        classes: usize,
    ) -> Self {
        NetSpec {
            family,
            dataset,
            depth,
            growth: growth.to_vec(),
            bc,
            pattern: None,
            classes,
            stem: None,
            head: None,
            input: None,
        }
    }

    /// The input shape used.
    pub fn input_shape(&self) -> Shape {
        self.input.unwrap_or_else(|| self.dataset.input())
    }

    /// Growth of block `b` (0-based).
    pub fn growth_of(&self, b: usize) -> usize {
        *self.growth.get(b).or(self.growth.last()).unwrap_or(&0)
    }

    /// Stem channels: given, or the convention — CIFAR DenseNet non-BC 16 (DenseNet paper),
    /// DenseNet-BC and SparseNet `2·k₁`; ImageNet DenseNet `2·k₁` (64 at k = 32), ImageNet
    /// SparseNet `k₁` (reproduces the paper); ResNets 16 (CIFAR) / 64 (ImageNet).
    pub fn stem_channels(&self) -> usize {
        if let Some(s) = self.stem {
            return s;
        }
        let k = self.growth_of(0);
        match (self.family, self.dataset) {
            (Family::Dense, Dataset::Cifar) if !self.bc => 16,
            (Family::Dense, _) => 2 * k,
            (Family::Sparse, Dataset::Cifar) => 2 * k,
            (Family::Sparse, Dataset::Imagenet) => k,
            (_, Dataset::Cifar) => 16,
            (_, Dataset::Imagenet) => 64,
        }
    }

    /// Head: given, or `Paper` for ImageNet SparseNet and `Global` otherwise.
    pub fn head_kind(&self) -> Head {
        self.head.unwrap_or(match (self.family, self.dataset) {
            (Family::Sparse, Dataset::Imagenet) => Head::Paper,
            _ => Head::Global,
        })
    }

    /// The block pattern of a DenseNet/SparseNet.
    pub fn block_pattern(&self) -> Pattern {
        match self.family {
            Family::Dense => Pattern::Dense,
            _ => self.pattern.clone().unwrap_or(Pattern::Sparse { base: 2 }),
        }
    }

    /// Layers per block of a DenseNet/SparseNet, validating the depth.
    pub fn dense_blocks(&self) -> Result<Vec<usize>, AnalysisError> {
        match self.dataset {
            Dataset::Cifar => {
                let step = if self.bc { 6 } else { 3 };
                if self.depth < 4 + step || !(self.depth - 4).is_multiple_of(step) {
                    return Err(AnalysisError::Spec(format!(
                        "depth {} does not fit a CIFAR {}{}: depth − 4 must be a positive multiple of {step} ({}), e.g. {}",
                        self.depth,
                        self.family.name(),
                        if self.bc { "-BC" } else { "" },
                        if self.bc { "two convolutions per layer, three blocks" } else { "three blocks" },
                        if self.bc { "40, 100, 190, 250" } else { "40, 100" },
                    )));
                }
                let l = (self.depth - 4) / step;
                Ok(vec![l; 3])
            }
            Dataset::Imagenet => match self.depth {
                121 => Ok(vec![6, 12, 24, 16]),
                169 => Ok(vec![6, 12, 32, 32]),
                201 => Ok(vec![6, 12, 48, 32]),
                264 => Ok(vec![6, 12, 64, 48]),
                d => Err(AnalysisError::Spec(format!(
                    "depth {d} is not an ImageNet {} layout: accepted 121, 169, 201, 264",
                    self.family.name()
                ))),
            },
        }
    }

    fn check(&self) -> Result<(), AnalysisError> {
        if self.classes == 0 {
            return Err(AnalysisError::Spec(
                "classes 0: a classifier needs at least 1 class".into(),
            ));
        }
        if matches!(self.family, Family::Sparse | Family::Dense) {
            if self.growth.is_empty() || self.growth.contains(&0) {
                return Err(AnalysisError::Spec(
                    "growth must be positive: give k or one k per block, e.g. 24 or 16,32,64"
                        .into(),
                ));
            }
            let blocks = self.dense_blocks()?.len();
            if self.growth.len() != 1 && self.growth.len() != blocks {
                return Err(AnalysisError::Spec(format!(
                    "{} growth rates for {blocks} blocks: give one k, or one per block",
                    self.growth.len()
                )));
            }
        }
        if self.stem == Some(0) {
            return Err(AnalysisError::Spec("stem channels must be positive".into()));
        }
        Ok(())
    }
}

impl fmt::Display for NetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g: Vec<String> = self.growth.iter().map(|k| k.to_string()).collect();
        match self.family {
            Family::Sparse | Family::Dense => {
                write!(
                    f,
                    "{}net{}-{}-{}",
                    self.family.name(),
                    if self.bc { "-bc" } else { "" },
                    self.depth,
                    g.join("-")
                )?;
                match &self.pattern {
                    Some(p) if *p != (Pattern::Sparse { base: 2 }) => write!(f, " [{p}]")?,
                    _ => {}
                }
                write!(f, " ({}, {} classes)", self.dataset.name(), self.classes)
            }
            _ => write!(
                f,
                "{}net-{} ({}, {} classes)",
                self.family.name(),
                self.depth,
                self.dataset.name(),
                self.classes
            ),
        }
    }
}

/// Build the network DAG of a spec.
pub fn build(spec: &NetSpec) -> Result<NetGraph, AnalysisError> {
    spec.check()?;
    match spec.family {
        Family::Sparse | Family::Dense => build_aggregated(spec),
        Family::Res | Family::Plain if spec.dataset == Dataset::Cifar => build_cifar_resnet(spec),
        Family::Preres if spec.dataset == Dataset::Cifar => build_preresnet(spec),
        Family::Res => build_imagenet_resnet(spec),
        f => Err(AnalysisError::Spec(format!(
            "family {} has no ImageNet layout here: use --dataset cifar",
            f.name()
        ))),
    }
}

/// Build and count.
pub fn build_and_count(spec: &NetSpec) -> Result<(NetGraph, NetCount), AnalysisError> {
    let net = build(spec)?;
    let c = count(&net);
    Ok((net, c))
}

/// DenseNet / SparseNet: stem, blocks wired by the topology DAG, transitions, head.
fn build_aggregated(spec: &NetSpec) -> Result<NetGraph, AnalysisError> {
    let blocks = spec.dense_blocks()?;
    let pattern = spec.block_pattern();
    let mut b = NetBuilder::new(spec.input_shape());
    let stem = spec.stem_channels();
    let mut x = match spec.dataset {
        Dataset::Cifar => b.conv("stem.conv", b.input(), stem, 3, 1, 1)?,
        Dataset::Imagenet => {
            let c = b.conv("stem.conv", b.input(), stem, 7, 2, 3)?;
            let r = b.bn_relu("stem.", c);
            b.max_pool("stem.pool", r, 3, 2, 1)?
        }
    };
    for (bi, &layers) in blocks.iter().enumerate() {
        let k = spec.growth_of(bi);
        b.push_scope(format!("block{}", bi + 1));
        // Node L+1 of the depth-(L+1) block DAG is the block's output aggregation.
        let topo = Topology::new(pattern.clone(), layers + 1)?;
        let g = topo.graph()?;
        let mut outs: Vec<NodeIndex> = vec![x];
        for l in 1..=layers + 1 {
            let ins: Vec<NodeIndex> = graph_inputs(&g, NodeIndex::new(l))
                .into_iter()
                .map(|n| outs[g[n]])
                .collect();
            if l == layers + 1 {
                x = b.concat("out", &ins)?;
                break;
            }
            b.push_scope(format!("layer{l}"));
            let cat = b.concat("cat", &ins)?;
            let y = if spec.bc {
                let r1 = b.bn_relu("1.", cat);
                let c1 = b.conv("1.conv", r1, 4 * k, 1, 1, 0)?;
                let r2 = b.bn_relu("2.", c1);
                b.conv("2.conv", r2, k, 3, 1, 1)?
            } else {
                let r = b.bn_relu("", cat);
                b.conv("conv", r, k, 3, 1, 1)?
            };
            b.pop_scope();
            outs.push(y);
        }
        b.pop_scope();
        if bi + 1 < blocks.len() {
            b.push_scope(format!("transition{}", bi + 1));
            let c = b.shape(x).c;
            let out = if spec.bc { c / 2 } else { c };
            let r = b.bn_relu("", x);
            let conv = b.conv("conv", r, out, 1, 1, 0)?;
            x = b.avg_pool("pool", conv, 2, 2)?;
            b.pop_scope();
        }
    }
    let r = b.bn_relu("head.", x);
    let pooled = match spec.head_kind() {
        Head::Global => b.global_avg_pool("head.pool", r),
        Head::Paper => b.avg_pool("head.pool", r, 3, 2)?,
    };
    let fc = b.linear("head.fc", pooled, spec.classes);
    Ok(b.finish(fc))
}

/// CIFAR ResNet (He et al. 2015, 6n+2, option-A shortcuts) and its plain counterpart.
fn build_cifar_resnet(spec: &NetSpec) -> Result<NetGraph, AnalysisError> {
    if spec.depth < 8 || !(spec.depth - 2).is_multiple_of(6) {
        return Err(AnalysisError::Spec(format!(
            "depth {} does not fit a CIFAR {}net: depth − 2 must be a positive multiple of 6, e.g. 20, 32, 44, 56, 110, 1202",
            spec.depth,
            spec.family.name()
        )));
    }
    let units = (spec.depth - 2) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    let stem = spec.stem_channels();
    let c = b.conv("stem.conv", b.input(), stem, 3, 1, 1)?;
    let bn = b.bn("stem.bn", c);
    let mut x = b.relu("stem.relu", bn);
    for (si, width) in [stem, 2 * stem, 4 * stem].into_iter().enumerate() {
        b.push_scope(format!("stage{}", si + 1));
        let first_stride = if si == 0 { 1 } else { 2 };
        // The residual function of one basic unit: conv-BN-ReLU-conv-BN.
        let residual =
            |b: &mut NetBuilder, x: NodeIndex, stride: usize| -> Result<NodeIndex, AnalysisError> {
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
            for l in 1..=units {
                b.push_scope(format!("unit{l}"));
                let src = graph_inputs(&g, NodeIndex::new(l))[0];
                let f = residual(&mut b, outs[g[src]], if l == 1 { first_stride } else { 1 })?;
                outs.push(b.relu("relu", f));
                b.pop_scope();
            }
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
    let pooled = b.global_avg_pool("head.pool", x);
    let fc = b.linear("head.fc", pooled, spec.classes);
    Ok(b.finish(fc))
}

/// Walk the unraveled ResNet DAG of `units` units: a `Residual(i)` node becomes `residual`
/// applied to its input state, a `State(i)` node sums its incoming routes (identity routes go
/// through `shortcut`), followed by ReLU when `post_relu` (the original, post-activation ResNet).
fn interpret_unraveled<'a>(
    b: &mut NetBuilder,
    input: NodeIndex,
    units: usize,
    mut residual: impl FnMut(&mut NetBuilder, NodeIndex, usize) -> Result<NodeIndex, AnalysisError> + 'a,
    mut shortcut: impl FnMut(&mut NetBuilder, NodeIndex, usize) -> Result<NodeIndex, AnalysisError> + 'a,
    post_relu: bool,
) -> Result<NodeIndex, AnalysisError> {
    let r = UnraveledResNet::new(units);
    let mut built: Vec<Option<NodeIndex>> = vec![None; r.graph.node_count()];
    built[r.input().index()] = Some(input);
    let order = petgraph::algo::toposort(&r.graph, None).map_err(|_| {
        AnalysisError::Spec("the unraveled ResNet has a cycle (impossible by construction)".into())
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
                b.push_scope(format!("unit{i}"));
                let src = built[incoming[0].0.index()].expect("topological order");
                let y = residual(b, src, i)?;
                b.pop_scope();
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
    Ok(built[r.output().index()].expect("output built"))
}

/// Pre-activation bottleneck ResNet for CIFAR (He et al. 2016, 9n+2): planes 16/32/64 with
/// expansion 4 (stage widths 64/128/256), projection shortcut at each stage's first unit.
fn build_preresnet(spec: &NetSpec) -> Result<NetGraph, AnalysisError> {
    if spec.depth < 11 || !(spec.depth - 2).is_multiple_of(9) {
        return Err(AnalysisError::Spec(format!(
            "depth {} does not fit a CIFAR pre-activation bottleneck ResNet: depth − 2 must be a positive multiple of 9, e.g. 164, 1001",
            spec.depth
        )));
    }
    let units = (spec.depth - 2) / 9;
    let mut b = NetBuilder::new(spec.input_shape());
    let stem = spec.stem_channels();
    let mut x = b.conv("stem.conv", b.input(), stem, 3, 1, 1)?;
    for (si, planes) in [stem, 2 * stem, 4 * stem].into_iter().enumerate() {
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
    let r = b.bn_relu("head.", x);
    let pooled = b.global_avg_pool("head.pool", r);
    let fc = b.linear("head.fc", pooled, spec.classes);
    Ok(b.finish(fc))
}

/// ImageNet bottleneck ResNet (He et al. 2015; torchvision layout, stride on the 3×3).
fn build_imagenet_resnet(spec: &NetSpec) -> Result<NetGraph, AnalysisError> {
    let stages: &[usize] = match spec.depth {
        50 => &[3, 4, 6, 3],
        101 => &[3, 4, 23, 3],
        152 => &[3, 8, 36, 3],
        d => {
            return Err(AnalysisError::Spec(format!(
                "depth {d} is not an ImageNet ResNet layout: accepted 50, 101, 152"
            )))
        }
    };
    let mut b = NetBuilder::new(spec.input_shape());
    let stem = spec.stem_channels();
    let c = b.conv("stem.conv", b.input(), stem, 7, 2, 3)?;
    let r = b.bn_relu("stem.", c);
    let mut x = b.max_pool("stem.pool", r, 3, 2, 1)?;
    for (si, &units) in stages.iter().enumerate() {
        let planes = stem << si;
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
    let pooled = b.global_avg_pool("head.pool", x);
    let fc = b.linear("head.fc", pooled, spec.classes);
    Ok(b.finish(fc))
}

/// A named model: one line of data.
#[derive(Clone, Copy, Debug)]
pub struct Named {
    /// The name (`sparsenet-bc-100-24`).
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// Layout.
    pub dataset: Dataset,
    /// Depth.
    pub depth: usize,
    /// Growth per block (empty for ResNets).
    pub growth: &'static [usize],
    /// BC variant.
    pub bc: bool,
    /// The classes of the paper's figure.
    pub classes: usize,
    /// Parameters in millions as printed by the paper (its precision matters).
    pub paper_params: Option<&'static str>,
    /// GFLOPs as printed by the paper.
    pub paper_flops: Option<&'static str>,
}

impl Named {
    /// The spec, with `classes` overriding the paper's head when given.
    pub fn spec(&self, classes: Option<usize>) -> NetSpec {
        NetSpec::new(
            self.family,
            self.dataset,
            self.depth,
            self.growth,
            self.bc,
            classes.unwrap_or(self.classes),
        )
    }
}

macro_rules! named {
    ($name:literal, $fam:ident, $ds:ident, $depth:literal, [$($k:literal),*], $bc:literal, $classes:literal, $pp:expr, $pf:expr) => {
        Named { name: $name, family: Family::$fam, dataset: Dataset::$ds, depth: $depth,
                growth: &[$($k),*], bc: $bc, classes: $classes, paper_params: $pp, paper_flops: $pf }
    };
}

/// Every named model with the paper's figures (SparseNet paper; DenseNet and ResNet papers for
/// their rows; CIFAR SparseNet quoted with the 100-class head, CIFAR DenseNet/ResNet with 10).
pub const ZOO: &[Named] = &[
    named!(
        "sparsenet-40-24",
        Sparse,
        Cifar,
        40,
        [24],
        false,
        100,
        Some("0.76"),
        None
    ),
    named!(
        "sparsenet-100-24",
        Sparse,
        Cifar,
        100,
        [24],
        false,
        100,
        Some("2.52"),
        None
    ),
    named!(
        "sparsenet-100-36",
        Sparse,
        Cifar,
        100,
        [36],
        false,
        100,
        Some("5.65"),
        None
    ),
    named!(
        "sparsenet-100-16-32-64",
        Sparse,
        Cifar,
        100,
        [16, 32, 64],
        false,
        100,
        Some("7.22"),
        None
    ),
    named!(
        "sparsenet-100-32-64-128",
        Sparse,
        Cifar,
        100,
        [32, 64, 128],
        false,
        100,
        Some("27.72"),
        None
    ),
    named!(
        "sparsenet-bc-100-24",
        Sparse,
        Cifar,
        100,
        [24],
        true,
        100,
        Some("1.46"),
        None
    ),
    named!(
        "sparsenet-bc-100-36",
        Sparse,
        Cifar,
        100,
        [36],
        true,
        100,
        Some("3.26"),
        None
    ),
    named!(
        "sparsenet-bc-100-16-32-64",
        Sparse,
        Cifar,
        100,
        [16, 32, 64],
        true,
        100,
        Some("4.38"),
        None
    ),
    named!(
        "sparsenet-bc-100-32-64-128",
        Sparse,
        Cifar,
        100,
        [32, 64, 128],
        true,
        100,
        Some("16.72"),
        None
    ),
    named!(
        "densenet-40-12",
        Dense,
        Cifar,
        40,
        [12],
        false,
        10,
        Some("1.0"),
        None
    ),
    named!(
        "densenet-100-12",
        Dense,
        Cifar,
        100,
        [12],
        false,
        10,
        Some("7.0"),
        None
    ),
    named!(
        "densenet-100-24",
        Dense,
        Cifar,
        100,
        [24],
        false,
        10,
        Some("27.2"),
        None
    ),
    named!(
        "densenet-bc-100-12",
        Dense,
        Cifar,
        100,
        [12],
        true,
        10,
        Some("0.8"),
        None
    ),
    named!(
        "densenet-bc-250-24",
        Dense,
        Cifar,
        250,
        [24],
        true,
        10,
        Some("15.3"),
        None
    ),
    named!(
        "densenet-bc-190-40",
        Dense,
        Cifar,
        190,
        [40],
        true,
        10,
        Some("25.6"),
        None
    ),
    named!(
        "resnet-20",
        Res,
        Cifar,
        20,
        [],
        false,
        10,
        Some("0.27"),
        None
    ),
    named!(
        "resnet-32",
        Res,
        Cifar,
        32,
        [],
        false,
        10,
        Some("0.46"),
        None
    ),
    named!(
        "resnet-44",
        Res,
        Cifar,
        44,
        [],
        false,
        10,
        Some("0.66"),
        None
    ),
    named!(
        "resnet-56",
        Res,
        Cifar,
        56,
        [],
        false,
        10,
        Some("0.85"),
        None
    ),
    named!(
        "resnet-110",
        Res,
        Cifar,
        110,
        [],
        false,
        10,
        Some("1.7"),
        None
    ),
    named!(
        "resnet-1202",
        Res,
        Cifar,
        1202,
        [],
        false,
        10,
        Some("19.4"),
        None
    ),
    named!(
        "preresnet-164",
        Preres,
        Cifar,
        164,
        [],
        false,
        10,
        Some("1.7"),
        None
    ),
    named!(
        "preresnet-1001",
        Preres,
        Cifar,
        1001,
        [],
        false,
        10,
        Some("10.2"),
        None
    ),
    named!(
        "densenet-121",
        Dense,
        Imagenet,
        121,
        [32],
        true,
        1000,
        Some("7.98"),
        Some("5.7")
    ),
    named!(
        "densenet-169",
        Dense,
        Imagenet,
        169,
        [32],
        true,
        1000,
        Some("14.15"),
        Some("6.76")
    ),
    named!(
        "densenet-201",
        Dense,
        Imagenet,
        201,
        [32],
        true,
        1000,
        Some("20.01"),
        Some("8.63")
    ),
    named!(
        "sparsenet-121-32",
        Sparse,
        Imagenet,
        121,
        [32],
        true,
        1000,
        Some("4.51"),
        Some("3.46")
    ),
    named!(
        "sparsenet-169-32",
        Sparse,
        Imagenet,
        169,
        [32],
        true,
        1000,
        Some("6.23"),
        Some("3.74")
    ),
    named!(
        "sparsenet-201-32",
        Sparse,
        Imagenet,
        201,
        [32],
        true,
        1000,
        Some("7.22"),
        Some("4.13")
    ),
    named!(
        "sparsenet-201-48",
        Sparse,
        Imagenet,
        201,
        [48],
        true,
        1000,
        Some("14.91"),
        Some("9.19")
    ),
    named!(
        "resnet-50",
        Res,
        Imagenet,
        50,
        [],
        false,
        1000,
        Some("25.5"),
        Some("8.20")
    ),
];

/// CIFAR test errors (%) with augmentation (C10+, C100+) as printed in the SparseNet paper's
/// table, for the parameter-efficiency figure (`None` where the paper has no figure).
pub const PAPER_CIFAR_ERRORS: &[(&str, Option<f64>, Option<f64>)] = &[
    ("resnet-110", Some(6.61), None),
    ("preresnet-164", Some(5.46), Some(24.33)),
    ("preresnet-1001", Some(4.62), Some(22.71)),
    ("densenet-40-12", Some(5.39), Some(24.79)),
    ("densenet-100-12", Some(4.28), Some(20.97)),
    ("densenet-100-24", Some(4.04), Some(19.61)),
    ("densenet-bc-100-12", Some(4.68), Some(22.62)),
    ("densenet-bc-250-24", Some(3.65), Some(17.6)),
    ("densenet-bc-190-40", Some(3.75), Some(17.53)),
    ("sparsenet-40-24", Some(5.13), Some(24.65)),
    ("sparsenet-100-24", Some(4.64), Some(22.41)),
    ("sparsenet-100-36", Some(4.34), Some(20.50)),
    ("sparsenet-100-16-32-64", Some(4.11), Some(19.49)),
    ("sparsenet-100-32-64-128", Some(3.88), Some(18.80)),
    ("sparsenet-bc-100-24", Some(4.03), Some(22.12)),
    ("sparsenet-bc-100-36", Some(3.91), Some(20.31)),
    ("sparsenet-bc-100-16-32-64", None, Some(19.71)),
    ("sparsenet-bc-100-32-64-128", None, Some(17.71)),
];

/// Look up a named model.
pub fn named(name: &str) -> Result<&'static Named, AnalysisError> {
    let lower = name.to_ascii_lowercase();
    ZOO.iter().find(|m| m.name == lower).ok_or_else(|| {
        let mut close: Vec<(usize, &str)> = ZOO
            .iter()
            .map(|m| (edit_distance(&lower, m.name), m.name))
            .collect();
        close.sort();
        let names: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
        AnalysisError::Spec(format!(
            "unknown model '{name}': closest names are {} (see --list)",
            names.join(", ")
        ))
    })
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether `ours` (an exact count) agrees with `printed` (a figure in millions or billions as
/// printed, e.g. `"0.76"`) to the printed precision, i.e. rounds to it.
pub fn agrees(ours: u64, printed: &str, unit: f64) -> bool {
    let decimals = printed.split_once('.').map(|(_, d)| d.len()).unwrap_or(0);
    let Ok(paper) = printed.parse::<f64>() else {
        return false;
    };
    let scale = 10f64.powi(decimals as i32);
    ((ours as f64 / unit) * scale).round() == (paper * scale).round()
}

/// One row of the zoo table: a model's exact counts beside the paper's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelRow {
    /// Model name (the spec's description for free specs).
    pub name: String,
    /// Family.
    pub family: Family,
    /// Layout.
    pub dataset: Dataset,
    /// Depth.
    pub depth: usize,
    /// Growth per block (empty for ResNets).
    pub growth: Vec<usize>,
    /// BC variant.
    pub bc: bool,
    /// Classes of the head counted.
    pub classes: usize,
    /// Stem channels used.
    pub stem: usize,
    /// Head used (`global` or `paper`; ResNets always `global`).
    pub head: Head,
    /// Trainable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub bn_running: u64,
    /// Multiply-accumulates (batch 1).
    pub macs: u64,
    /// The paper's FLOPs: `2·macs + 2·BN input elements`.
    pub flops: u64,
    /// The paper's parameters, in millions as printed.
    pub paper_params: Option<f64>,
    /// The paper's GFLOPs as printed.
    pub paper_flops: Option<f64>,
    /// The paper's figures as printed (parameters in M, GFLOPs), for display.
    #[serde(skip)]
    pub paper_printed: (Option<String>, Option<String>),
    /// Whether `params` rounds to the paper's figure at its printed precision.
    pub params_agree: Option<bool>,
    /// Whether `flops` rounds to the paper's figure at its printed precision.
    pub flops_agree: Option<bool>,
}

/// Count a spec; `paper` gives the paper's printed figures (params in M, GFLOPs) if any.
pub fn model_row(
    name: &str,
    spec: &NetSpec,
    paper: (Option<&str>, Option<&str>),
) -> Result<ModelRow, AnalysisError> {
    let (_, c) = build_and_count(spec)?;
    Ok(ModelRow {
        name: name.to_string(),
        family: spec.family,
        dataset: spec.dataset,
        depth: spec.depth,
        growth: spec.growth.clone(),
        bc: spec.bc,
        classes: spec.classes,
        stem: spec.stem_channels(),
        head: spec.head_kind(),
        params: c.params,
        bn_running: c.bn_running,
        macs: c.macs,
        flops: c.flops,
        paper_params: paper.0.and_then(|p| p.parse().ok()),
        paper_flops: paper.1.and_then(|p| p.parse().ok()),
        paper_printed: (paper.0.map(String::from), paper.1.map(String::from)),
        params_agree: paper.0.map(|p| agrees(c.params, p, 1e6)),
        flops_agree: paper.1.map(|p| agrees(c.flops, p, 1e9)),
    })
}

/// The row of a named model; `classes` replaces the paper's head (then the paper's figures,
/// which are for its own head, are only shown when the classes match).
pub fn named_row(m: &Named, classes: Option<usize>) -> Result<ModelRow, AnalysisError> {
    let spec = m.spec(classes);
    let paper = if spec.classes == m.classes {
        (m.paper_params, m.paper_flops)
    } else {
        (None, None)
    };
    model_row(m.name, &spec, paper)
}

/// Parameters of CIFAR DenseNet and SparseNet (non-BC, growth `k`, 10 classes) at each depth.
pub fn depth_sweep(k: usize, depths: &[usize]) -> Result<Vec<(usize, u64, u64)>, AnalysisError> {
    depths
        .iter()
        .map(|&d| {
            let dense = build_and_count(&NetSpec::new(
                Family::Dense,
                Dataset::Cifar,
                d,
                &[k],
                false,
                10,
            ))?
            .1;
            let sparse = build_and_count(&NetSpec::new(
                Family::Sparse,
                Dataset::Cifar,
                d,
                &[k],
                false,
                10,
            ))?
            .1;
            Ok((d, dense.params, sparse.params))
        })
        .collect()
}

/// Least-squares slope of `ln y` against `ln x`: the exponent `a` in `y ≈ C·x^a`.
pub fn fit_exponent(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let mx = lx.iter().sum::<f64>() / n;
    let my = ly.iter().sum::<f64>() / n;
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx) * (x - mx)).sum();
    cov / var
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::count;
    use crate::net::Op;

    #[test]
    fn tiny_sparsenet_by_hand() {
        // Sparse, depth 7 → one layer per block, k = 2, stem 2k = 4, 3 classes, 32×32×3:
        //   stem conv 3→4 (3×3):                 3·4·9            = 108
        //   block1 layer1: BN(4) + conv 4→2:      8 + 4·2·9        = 80;  out = [x1, x0] → 6 ch
        //   transition1: BN(6) + conv 6→6 (1×1):  12 + 36          = 48
        //   block2 layer1: BN(6) + conv 6→2:      12 + 108         = 120; out → 8 ch
        //   transition2: BN(8) + conv 8→8:        16 + 64          = 80
        //   block3 layer1: BN(8) + conv 8→2:      16 + 144         = 160; out → 10 ch
        //   head: BN(10) + linear 10→3:           20 + 30 + 3      = 53
        //   total                                                  = 649
        let spec = NetSpec::new(Family::Sparse, Dataset::Cifar, 7, &[2], false, 3);
        let (net, c) = build_and_count(&spec).unwrap();
        assert_eq!(c.params, 649);
        // BN running stats: 2·(4 + 6 + 6 + 8 + 8 + 10) = 84.
        assert_eq!(c.bn_running, 84);
        assert_eq!(net.graph[net.output].shape, Shape::new(3, 1, 1));
        // MACs: stem 108·32² + block1 72·32² + trans1 36·32² + block2 108·16² + trans2 64·16²
        //       + block3 144·8² + linear 30 = 110592 + 73728 + 36864 + 27648 + 16384 + 9216 + 30.
        assert_eq!(c.macs, 274462);
    }

    #[test]
    fn resnet20_by_hand() {
        // stem 3·16·9 + BN 32 = 464; stage1: 3 units × (2·2304 + 2·32) = 14016;
        // stage2: (4608 + 9216 + 128) + 2·(2·9216 + 128) = 51072;
        // stage3: (18432 + 36864 + 256) + 2·(2·36864 + 256) = 203520; fc 64·10 + 10 = 650.
        let (_, c) = build_and_count(&named("resnet-20").unwrap().spec(None)).unwrap();
        assert_eq!(c.params, 464 + 14016 + 51072 + 203520 + 650);
    }

    #[test]
    fn torchvision_densenet121_exact() {
        let (_, c) = build_and_count(&named("densenet-121").unwrap().spec(None)).unwrap();
        assert_eq!(c.params, 7_978_856);
    }

    #[test]
    fn sparse_block_output_follows_the_rule_at_l_plus_one() {
        // CIFAR sparse depth 52 → 16 layers per block; the output aggregates ℓ = 17 − 2^m:
        // x16, x15, x13, x9, x1 → 5·k channels (x0 is not among them).
        let spec = NetSpec::new(Family::Sparse, Dataset::Cifar, 52, &[12], false, 10);
        let net = build(&spec).unwrap();
        let out = net
            .graph
            .node_indices()
            .find(|&n| net.graph[n].name == "block1.out")
            .unwrap();
        assert_eq!(net.graph[out].shape.c, 5 * 12);
        assert_eq!(net.inputs(out).len(), 5);
    }

    #[test]
    fn plain_has_no_sums_and_resnet_has_one_per_unit() {
        let plain = build(&NetSpec::new(
            Family::Plain,
            Dataset::Cifar,
            20,
            &[],
            false,
            10,
        ))
        .unwrap();
        let res = build(&NetSpec::new(
            Family::Res,
            Dataset::Cifar,
            20,
            &[],
            false,
            10,
        ))
        .unwrap();
        let sums = |n: &NetGraph| n.graph.node_weights().filter(|w| w.op == Op::Sum).count();
        assert_eq!(sums(&plain), 0);
        assert_eq!(sums(&res), 9);
        // Option-A shortcuts add no parameters: plain and res count the same.
        assert_eq!(count(&plain).params, count(&res).params);
    }

    #[test]
    fn agreement_uses_printed_precision() {
        assert!(agrees(757_252, "0.76", 1e6));
        assert!(agrees(1_019_722, "1.0", 1e6));
        assert!(!agrees(25_557_032, "25.5", 1e6));
        assert!(agrees(769_162, "0.8", 1e6));
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut s = NetSpec::new(Family::Dense, Dataset::Cifar, 41, &[12], false, 10);
        assert!(build(&s).is_err());
        s.depth = 40;
        s.bc = true; // (40 − 4) / 6 = 6: fine
        assert!(build(&s).is_ok());
        s.depth = 43;
        assert!(build(&s).is_err());
        s.depth = 40;
        s.classes = 0;
        assert!(build(&s).is_err());
        assert!(named("sparsenet-40")
            .unwrap_err()
            .to_string()
            .contains("sparsenet-40-24"));
    }
}
