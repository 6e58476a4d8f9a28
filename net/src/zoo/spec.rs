//! A whole-network specification: family, layout, depth, growth, pattern, stem and head, with
//! each family's conventions for what is left out.

use std::fmt;

use crate::op::{Prob, Shape};
use crate::NetError;
use sparsenet_analysis::topology::Pattern;

/// The deepest network a spec may describe (published ones stop at 1 202).
pub const MAX_NET_DEPTH: usize = 10_000;

/// The widest growth rate, stem, class count or input dimension a spec may give.
pub const MAX_WIDTH: usize = 100_000;

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
    /// Wide ResNet (Zagoruyko & Komodakis 2016), CIFAR: WRN-D-K, pre-activation basic blocks of
    /// widths 16K, 32K, 64K, a 1×1 projection where the width changes; `growth` holds K.
    Wide,
    /// A multilayer perceptron over the flattened image (LeNet-300-100): `growth` holds the
    /// hidden widths, each followed by a ReLU.
    Mlp,
    /// LeNet-5 as Caffe defines it (Han et al.'s pruning table): conv 20@5×5, max pool, conv
    /// 50@5×5, max pool, fc 500, ReLU, fc; `growth` may give the three widths.
    Lenet,
    /// VGG (Simonyan & Zisserman 2015), configurations A, B, D, E (depth 11, 13, 16, 19) as
    /// torchvision builds them without batch norm.
    Vgg,
    /// AlexNet as torchvision builds it (the one-tower network of Krizhevsky 2014).
    Alexnet,
    /// FractalNet (Larsson et al. 2017), CIFAR: `B` fractal blocks of `C` columns (`growth`
    /// holds C; depth `B·2^(C−1) + 1`), conv-BN-ReLU units of widths 64, 128, 256, 512, 512
    /// (512 beyond), mean joins with drop-path, a 2×2 max pool after each block, a linear layer.
    Fractal,
    /// Mixed Link Networks (Wang et al. 2018) as the authors' CIFAR code builds them: depth
    /// `6n + 4`, three blocks of `n` units; each unit's inner link (k₁ channels) is added onto
    /// the last k₁ channels of its input and its outer link (k₂) concatenated. `growth` holds
    /// k₁ = k₂ (every published MixNet).
    Mixnet,
    /// Dual Path Networks (Chen et al. 2017), ImageNet: DPN-68/92/98/107/131 by depth, each
    /// unit's 1×1–grouped 3×3–1×1 bottleneck split into a residual part (summed) and a dense
    /// part (concatenated).
    Dpn,
}

/// Every family's name, as `--family` accepts them.
pub const FAMILIES: &str =
    "sparse, dense, res, preres, plain, wide, mlp, lenet, vgg, alexnet, fractal, mixnet, dpn";

impl Family {
    /// Parse `sparse|dense|res|preres|plain`.
    pub fn parse(s: &str) -> Result<Self, NetError> {
        match s {
            "sparse" => Ok(Family::Sparse),
            "dense" => Ok(Family::Dense),
            "res" => Ok(Family::Res),
            "preres" => Ok(Family::Preres),
            "plain" => Ok(Family::Plain),
            "wide" => Ok(Family::Wide),
            "mlp" => Ok(Family::Mlp),
            "lenet" => Ok(Family::Lenet),
            "vgg" => Ok(Family::Vgg),
            "alexnet" => Ok(Family::Alexnet),
            "fractal" => Ok(Family::Fractal),
            "mixnet" => Ok(Family::Mixnet),
            "dpn" => Ok(Family::Dpn),
            _ => Err(NetError::Spec(format!(
                "unknown family '{s}': accepted {FAMILIES}"
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
            Family::Wide => "wide",
            Family::Mlp => "mlp",
            Family::Lenet => "lenet",
            Family::Vgg => "vgg",
            Family::Alexnet => "alexnet",
            Family::Fractal => "fractal",
            Family::Mixnet => "mixnet",
            Family::Dpn => "dpn",
        }
    }

    /// The family as figures and tables name it (`SparseNet`, `Wide ResNet`, `VGG`, …).
    pub fn display_name(&self) -> &'static str {
        match self {
            Family::Sparse => "SparseNet",
            Family::Dense => "DenseNet",
            Family::Res => "ResNet",
            Family::Preres => "PreresNet",
            Family::Plain => "PlainNet",
            Family::Wide => "Wide ResNet",
            Family::Mlp => "MLP",
            Family::Lenet => "LeNet-5",
            Family::Vgg => "VGG",
            Family::Alexnet => "AlexNet",
            Family::Fractal => "FractalNet",
            Family::Mixnet => "MixNet",
            Family::Dpn => "DPN",
        }
    }

    /// The one layout a family is built for, when it has only one (`None`: CIFAR or ImageNet).
    pub fn only_layout(&self) -> Option<Layout> {
        match self {
            Family::Preres | Family::Plain | Family::Wide | Family::Fractal | Family::Mixnet => {
                Some(Layout::Cifar)
            }
            Family::Mlp | Family::Lenet => Some(Layout::Mnist),
            Family::Vgg | Family::Alexnet | Family::Dpn => Some(Layout::Imagenet),
            Family::Sparse | Family::Dense | Family::Res => None,
        }
    }

    /// Whether the family has a stem of a chosen width and a pooled head (`--stem`, `--head`):
    /// all but the LeNets, VGG, AlexNet, FractalNet, MixNet and DPN, whose stems their
    /// definitions fix.
    pub fn has_stem(&self) -> bool {
        !matches!(
            self,
            Family::Mlp
                | Family::Lenet
                | Family::Vgg
                | Family::Alexnet
                | Family::Fractal
                | Family::Mixnet
                | Family::Dpn
        )
    }

    /// The family's default drop probability where it has dropout layers (VGG's and AlexNet's
    /// classifiers: 0.5; Wide ResNet's blocks: none unless asked).
    pub fn default_dropout(&self) -> Option<f64> {
        match self {
            Family::Vgg | Family::Alexnet => Some(0.5),
            _ => None,
        }
    }
}

/// The layout of a network: the image size it is built for, and with it the stem and the number
/// of blocks (`--layout` in `zoo`, `train` and `study` grid lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// 32×32 inputs, three blocks / stages.
    Cifar,
    /// 224×224 inputs, four blocks / stages.
    Imagenet,
    /// 28×28 grey inputs (the LeNets').
    Mnist,
}

impl Layout {
    /// Parse `cifar|imagenet`.
    pub fn parse(s: &str) -> Result<Self, NetError> {
        match s {
            "cifar" => Ok(Layout::Cifar),
            "imagenet" => Ok(Layout::Imagenet),
            "mnist" => Ok(Layout::Mnist),
            _ => Err(NetError::Spec(format!(
                "unknown layout '{s}': accepted cifar, imagenet, mnist"
            ))),
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Cifar => "cifar",
            Layout::Imagenet => "imagenet",
            Layout::Mnist => "mnist",
        }
    }

    /// The paper's input shape.
    pub fn input(&self) -> Shape {
        match self {
            Layout::Cifar => Shape::new(3, 32, 32),
            Layout::Imagenet => Shape::new(3, 224, 224),
            Layout::Mnist => Shape::new(1, 28, 28),
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
    pub fn parse(s: &str) -> Result<Self, NetError> {
        match s {
            "global" => Ok(Head::Global),
            "paper" => Ok(Head::Paper),
            _ => Err(NetError::Spec(format!(
                "unknown head '{s}': accepted global, paper"
            ))),
        }
    }
}

/// How a DenseNet/SparseNet-family block's layer combines its sources `S(ℓ)` (the aggregation
/// operator; the pattern `S` is the other, independent axis). With block input `x_0` of `C_0`
/// channels, growth `k` and layer function `H_ℓ` (BN-ReLU-conv 3×3 to `k`; BC: BN-ReLU-conv 1×1
/// to `4k`, BN-ReLU-conv 3×3 to `k`):
///
/// * `Concat` (DenseNet, SparseNet): `x_ℓ = H_ℓ([x_j : j ∈ S(ℓ)])`, block output
///   `[x_j : j ∈ S(N+1)]`.
/// * `Sum`: every summand has `k` channels: `x̃_0 = P(x_0)`, a 1×1 convolution `C_0 → k` without
///   bias (only when `C_0 ≠ k`; else `x̃_0 = x_0`), `x̃_j = x_j` for `j ≥ 1`;
///   `x_ℓ = H_ℓ(Σ_{j∈S(ℓ)} x̃_j)`, block output `Σ_{j∈S(N+1)} x̃_j` (`k` channels). Over the dense
///   pattern this is the unrolled ResNet of the paper's aggregation view; over the sparse one, a
///   "sparse ResNet". Parameters per block: `C_0·k` (projection, if any) `+ Σ_ℓ |H_ℓ|` with
///   `|H_ℓ| = 2k + 9k²` (BC: `2k + 4k² + 8k + 36k²`).
/// * `Mixed { sum: a }` (Mixed Link Networks, Wang et al. 2018): each layer's new features are
///   `a` channels added into a summed stream and `k` concatenated. Streams of the block input:
///   summed `s_0 = P(x_0)` (1×1 conv `C_0 → a` when `C_0 ≠ a`), concatenated `c_0 = x_0`; of layer
///   `j`: `(s_j, c_j) = (H^s_j(u_j), H^c_j(u_j))`, the last convolution of `H_j` split into `a` and
///   `k` output channels. `u_ℓ = [Σ_{j∈S(ℓ)} s_j ; c_j for j ∈ S(ℓ)]`, block output
///   `u_{N+1}` the same over `S(N+1)`. Widths: `|u_ℓ| = a + Σ_{j∈S(ℓ)} |c_j|` (`|c_0| = C_0`,
///   `|c_j| = k`); `|H_ℓ| = 2|u_ℓ| + 9|u_ℓ|(a + k)` (BC: `2|u| + 4k|u| + 8k + 36k(a + k)`).
/// * `Dual` (Dual Path Networks, Chen et al. 2017): a residual path of the block input's width
///   `C_0`, summed, and a densely connected path of `k` channels per layer, concatenated:
///   `r_0 = x_0` (no dense part), `(r_j, d_j)` the split of `H_j`'s last convolution into `C_0`
///   and `k` channels, `u_ℓ = [Σ_{j∈S(ℓ)} r_j ; d_j for j ∈ S(ℓ), j ≥ 1]`, block output `u_{N+1}`.
///   `|u_ℓ| = C_0 + k·|S(ℓ) \ {0}|`; `|H_ℓ| = 2|u_ℓ| + 9|u_ℓ|(C_0 + k)` (BC: `2|u| + 4k|u| +
///   8k + 36k(C_0 + k)`).
/// * `Max`: as `Sum` with the element-wise maximum in place of the sum: `x_ℓ =
///   H_ℓ(max_{j∈S(ℓ)} x̃_j)`, block output `max_{j∈S(N+1)} x̃_j` (`k` channels); the parameters
///   are `Sum`'s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Channel concatenation.
    #[default]
    Concat,
    /// Summation (with a projection of the block input to `k` channels when needed).
    Sum,
    /// Mixed link: `sum` channels summed and `k` concatenated per layer.
    Mixed {
        /// Channels each layer adds into the summed stream.
        sum: usize,
    },
    /// Dual path: a residual path of the block input's width and a dense path of `k`.
    Dual,
    /// Element-wise maximum (with a projection of the block input to `k` channels when needed).
    Max,
}

/// The aggregation operators by kind, without their widths: what `--aggregate` names and the
/// search draws from. The one list of operators: each with its name and a line of help here,
/// its equations on [`Aggregate`], its wiring in `build_aggregated`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    /// Channel concatenation.
    Concat,
    /// Summation.
    Sum,
    /// Mixed link (with the summed width).
    Mixed,
    /// Dual path.
    Dual,
    /// Element-wise maximum.
    Max,
}

impl AggregateKind {
    /// Every operator, in the order help lists them.
    pub const ALL: &'static [AggregateKind] = &[
        AggregateKind::Concat,
        AggregateKind::Sum,
        AggregateKind::Mixed,
        AggregateKind::Dual,
        AggregateKind::Max,
    ];

    /// The operator's name (`--aggregate NAME`).
    pub fn name(self) -> &'static str {
        match self {
            AggregateKind::Concat => "concat",
            AggregateKind::Sum => "sum",
            AggregateKind::Mixed => "mixed",
            AggregateKind::Dual => "dual",
            AggregateKind::Max => "max",
        }
    }

    /// A line of help.
    pub fn help(self) -> &'static str {
        match self {
            AggregateKind::Concat => "Channel concatenation",
            AggregateKind::Sum => "Summation",
            AggregateKind::Mixed => "Mixed link (with --mix)",
            AggregateKind::Dual => "Dual path",
            AggregateKind::Max => "Element-wise maximum",
        }
    }

    /// The operator named `name`.
    pub fn parse(name: &str) -> Result<AggregateKind, NetError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                NetError::Spec(format!(
                    "unknown aggregation operator '{name}': one of {}",
                    names.join(", ")
                ))
            })
    }

    /// The operator with its widths: `summed` is the mixed link's summed width (ignored by the
    /// others).
    pub fn with_widths(self, summed: usize) -> Aggregate {
        match self {
            AggregateKind::Concat => Aggregate::Concat,
            AggregateKind::Sum => Aggregate::Sum,
            AggregateKind::Mixed => Aggregate::Mixed { sum: summed },
            AggregateKind::Dual => Aggregate::Dual,
            AggregateKind::Max => Aggregate::Max,
        }
    }
}

impl Aggregate {
    /// The operator's kind.
    pub fn kind(&self) -> AggregateKind {
        match self {
            Aggregate::Concat => AggregateKind::Concat,
            Aggregate::Sum => AggregateKind::Sum,
            Aggregate::Mixed { .. } => AggregateKind::Mixed,
            Aggregate::Dual => AggregateKind::Dual,
            Aggregate::Max => AggregateKind::Max,
        }
    }

    /// The operator's name (`--aggregate NAME`).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    fn is_concat(&self) -> bool {
        *self == Aggregate::Concat
    }
}

/// A whole-network specification.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetSpec {
    /// Family.
    pub family: Family,
    /// Layout (stem, blocks). Written `"dataset"` in JSON (checkpoints, `zoo --dag`), the name
    /// it had before, so that files written before and after read the same.
    #[serde(rename = "dataset")]
    pub layout: Layout,
    /// Depth in the family's convention (e.g. 100 for DenseNet-BC-100, 121 for DenseNet-121).
    pub depth: usize,
    /// Growth rate per block (one value is used for every block); unused for ResNets.
    pub growth: Vec<usize>,
    /// Bottleneck + compression (DenseNet-BC / SparseNet-BC).
    pub bc: bool,
    /// The block pattern of the dense and sparse families: `Sparse { base }`, `Custom { offsets }`
    /// or `Dag` (a block DAG from a file or a generator); `None` is the family's own (dense, or
    /// sparse of base 2).
    pub pattern: Option<Pattern>,
    /// Output classes.
    pub classes: usize,
    /// Stem channels; `None` = the family's convention ([`NetSpec::stem_channels`]).
    pub stem: Option<usize>,
    /// Classifier head of DenseNet/SparseNet; `None` = the family's convention.
    pub head: Option<Head>,
    /// Input shape; `None` = the layout's (the trainer sets it from the data).
    pub input: Option<Shape>,
    /// How DenseNet/SparseNet-family layers combine their sources (absent in JSON when
    /// `concat`, so descriptions written before it existed read and write unchanged).
    #[serde(default, skip_serializing_if = "Aggregate::is_concat")]
    pub aggregate: Aggregate,
    /// The drop probability of the family's dropout layers (VGG's and AlexNet's classifiers,
    /// Wide ResNet's blocks between their convolutions); `None` = the family's default
    /// ([`Family::default_dropout`]). Absent in JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<Prob>,
    /// FractalNet's drop-path probability at every join; `None` = 0.15, the authors' local
    /// drop-path rate. Absent in JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_path: Option<Prob>,
}

impl NetSpec {
    /// A spec with the family's conventions for everything optional.
    pub fn new(
        family: Family,
        layout: Layout,
        depth: usize,
        growth: &[usize],
        bc: bool,
        classes: usize,
    ) -> Self {
        NetSpec {
            family,
            depth,
            growth: growth.to_vec(),
            bc,
            pattern: None,
            classes,
            stem: None,
            head: None,
            input: None,
            aggregate: Aggregate::Concat,
            dropout: None,
            drop_path: None,
            layout,
        }
    }

    /// The drop probability of the family's dropout layers: given, or the family's default
    /// (`None`: no dropout layers).
    pub fn dropout_p(&self) -> Option<Prob> {
        self.dropout.or_else(|| {
            self.family
                .default_dropout()
                .map(|p| Prob::new(p).expect("defaults are probabilities"))
        })
    }

    /// The input shape used.
    pub fn input_shape(&self) -> Shape {
        self.input.unwrap_or_else(|| self.layout.input())
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
        match (self.family, self.layout) {
            (Family::Dense, Layout::Cifar) if !self.bc => 16,
            (Family::Dense, _) => 2 * k,
            (Family::Sparse, Layout::Cifar) => 2 * k,
            (Family::Sparse, Layout::Imagenet) => k,
            (_, Layout::Cifar | Layout::Mnist) => 16,
            (_, Layout::Imagenet) => 64,
        }
    }

    /// Head: given, or `Paper` for ImageNet SparseNet and `Global` otherwise.
    pub fn head_kind(&self) -> Head {
        self.head.unwrap_or(match (self.family, self.layout) {
            (Family::Sparse, Layout::Imagenet) => Head::Paper,
            _ => Head::Global,
        })
    }

    /// The depth a CIFAR network of three blocks of `dag`'s layers has (`4 + 3N`, or `4 + 6N`
    /// with BC layers).
    pub fn dag_depth(dag: &sparsenet_analysis::dag::BlockDag, bc: bool) -> usize {
        4 + if bc { 6 } else { 3 } * dag.depth()
    }

    /// The block pattern of a DenseNet/SparseNet.
    pub fn block_pattern(&self) -> Pattern {
        match self.family {
            Family::Dense => Pattern::Dense,
            _ => self.pattern.clone().unwrap_or(Pattern::Sparse { base: 2 }),
        }
    }

    /// Layers per block of a DenseNet/SparseNet, validating the depth.
    pub fn dense_blocks(&self) -> Result<Vec<usize>, NetError> {
        match self.layout {
            Layout::Cifar => {
                let step = if self.bc { 6 } else { 3 };
                if let Some(Pattern::Dag(d)) = &self.pattern {
                    // Each of the three blocks is the DAG: its layers fix the depth.
                    let want = 4 + step * d.depth();
                    if self.depth != want {
                        return Err(NetError::Spec(format!(
                            "depth {} does not fit three blocks of the {}-layer DAG: the depth is {want} (4 + {step} × {}); give --depth {want} or leave it out",
                            self.depth,
                            d.depth(),
                            d.depth()
                        )));
                    }
                    return Ok(vec![d.depth(); 3]);
                }
                if self.depth < 4 + step || !(self.depth - 4).is_multiple_of(step) {
                    return Err(NetError::Spec(format!(
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
            Layout::Imagenet if matches!(self.pattern, Some(Pattern::Dag(_))) => {
                Err(NetError::Spec(
                    "a DAG block takes the CIFAR layout (three blocks of the DAG); leave out --layout imagenet".into(),
                ))
            }
            Layout::Mnist => Err(NetError::Spec(format!(
                "the {} family has no 28×28 (mnist) layout: use --layout cifar or imagenet",
                self.family.name()
            ))),
            Layout::Imagenet => match self.depth {
                121 => Ok(vec![6, 12, 24, 16]),
                169 => Ok(vec![6, 12, 32, 32]),
                201 => Ok(vec![6, 12, 48, 32]),
                264 => Ok(vec![6, 12, 64, 48]),
                d => Err(NetError::Spec(format!(
                    "depth {d} is not an ImageNet {} layout: accepted 121, 169, 201, 264",
                    self.family.name()
                ))),
            },
        }
    }

    pub(crate) fn check(&self) -> Result<(), NetError> {
        // Limits far above every published network, so that a spec read from a file cannot
        // make the builder allocate without bound (and counts cannot overflow).
        let limits = [
            ("depth", self.depth, MAX_NET_DEPTH),
            ("classes", self.classes, MAX_WIDTH),
            ("stem channels", self.stem.unwrap_or(0), MAX_WIDTH),
            (
                "growth",
                self.growth.iter().copied().max().unwrap_or(0),
                MAX_WIDTH,
            ),
            ("blocks' growth rates", self.growth.len(), 16),
        ];
        for (what, v, max) in limits {
            if v > max {
                return Err(NetError::Spec(format!(
                    "{what} {v} is beyond what this tool builds (at most {max})"
                )));
            }
        }
        if let Some(s) = self.input {
            if [s.c, s.h, s.w].iter().any(|&v| v == 0 || v > MAX_WIDTH) {
                return Err(NetError::Spec(format!(
                    "input {s} is outside 1..={MAX_WIDTH} per dimension"
                )));
            }
        }
        if let Aggregate::Mixed { sum } = self.aggregate {
            if sum == 0 || sum > MAX_WIDTH {
                return Err(NetError::Spec(format!(
                    "mixed link: {sum} summed channels per layer is outside 1..={MAX_WIDTH}"
                )));
            }
        }
        if self.aggregate != Aggregate::Concat
            && !matches!(self.family, Family::Sparse | Family::Dense)
        {
            return Err(NetError::Spec(format!(
                "--aggregate {} applies to the dense and sparse families (ResNets already sum, plain networks chain)",
                self.aggregate.name()
            )));
        }
        if self.classes == 0 {
            return Err(NetError::Spec(
                "classes 0: a classifier needs at least 1 class".into(),
            ));
        }
        if matches!(self.family, Family::Sparse | Family::Dense) {
            if self.growth.is_empty() || self.growth.contains(&0) {
                return Err(NetError::Spec(
                    "growth must be positive: give k or one k per block, e.g. 24 or 16,32,64"
                        .into(),
                ));
            }
            let blocks = self.dense_blocks()?.len();
            if self.growth.len() != 1 && self.growth.len() != blocks {
                return Err(NetError::Spec(format!(
                    "{} growth rates for {blocks} blocks: give one k, or one per block",
                    self.growth.len()
                )));
            }
        }
        if self.stem == Some(0) {
            return Err(NetError::Spec("stem channels must be positive".into()));
        }
        if !self.family.has_stem() && (self.stem.is_some() || self.head.is_some()) {
            return Err(NetError::Spec(format!(
                "the {} family has no stem or pooled head to set: leave out --stem and --head",
                self.family.name()
            )));
        }
        if let Some(only) = self.family.only_layout() {
            if self.layout != only {
                return Err(NetError::Spec(format!(
                    "the {} family is built for the {} layout only: leave out --layout {} (the trainer still takes the data's image size)",
                    self.family.name(),
                    only.name(),
                    self.layout.name()
                )));
            }
        } else if self.layout == Layout::Mnist {
            return Err(NetError::Spec(format!(
                "the {} family has no mnist layout: use --layout cifar or imagenet",
                self.family.name()
            )));
        }
        if self.drop_path.is_some() && self.family != Family::Fractal {
            return Err(NetError::Spec(format!(
                "--drop-path applies to the fractal family (the {} family has no joins)",
                self.family.name()
            )));
        }
        if self.dropout.is_some()
            && !matches!(self.family, Family::Wide | Family::Vgg | Family::Alexnet)
        {
            return Err(NetError::Spec(format!(
                "--dropout applies to the wide, vgg and alexnet families (the {} family has no dropout layers)",
                self.family.name()
            )));
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
                    "{}net{}-{}-{}{}",
                    self.family.name(),
                    if self.bc { "-bc" } else { "" },
                    self.depth,
                    g.join("-"),
                    match self.aggregate {
                        Aggregate::Concat => String::new(),
                        Aggregate::Sum => "-sum".into(),
                        Aggregate::Mixed { sum } => format!("-mixed{sum}"),
                        Aggregate::Dual => "-dual".into(),
                        Aggregate::Max => "-max".into(),
                    }
                )?;
                match &self.pattern {
                    Some(p) if *p != (Pattern::Sparse { base: 2 }) => write!(f, " [{p}]")?,
                    _ => {}
                }
                write!(f, " ({}, {} classes)", self.layout.name(), self.classes)
            }
            Family::Wide => write!(
                f,
                "wrn-{}-{} ({}, {} classes)",
                self.depth,
                g.join("-"),
                self.layout.name(),
                self.classes
            ),
            Family::Fractal => write!(
                f,
                "fractalnet-{}-c{} ({}, {} classes)",
                self.depth,
                g.join("-"),
                self.layout.name(),
                self.classes
            ),
            Family::Mixnet => write!(
                f,
                "mixnet-{}-{} ({}, {} classes)",
                self.depth,
                g.join("-"),
                self.layout.name(),
                self.classes
            ),
            Family::Dpn => write!(
                f,
                "dpn-{} ({}, {} classes)",
                self.depth,
                self.layout.name(),
                self.classes
            ),
            Family::Mlp => write!(
                f,
                "mlp-{} ({}, {} classes)",
                g.join("-"),
                self.layout.name(),
                self.classes
            ),
            Family::Vgg | Family::Alexnet | Family::Lenet => write!(
                f,
                "{}-{} ({}, {} classes)",
                self.family.name(),
                self.depth,
                self.layout.name(),
                self.classes
            ),
            _ => write!(
                f,
                "{}net-{} ({}, {} classes)",
                self.family.name(),
                self.depth,
                self.layout.name(),
                self.classes
            ),
        }
    }
}
