//! The model-selection flags shared by `zoo` and `train`: a named model or a free spec.

use super::paths_dag::{load_dag, DagSource};
use clap::Args;
use sparsenet_analysis::dag::BlockDag;
use sparsenet_analysis::topology::Pattern;
use sparsenet_net::zoo::{named, Aggregate, Family, Head, Layout, NetSpec};

use super::args::{parse_in_range, parse_usize_list};

/// `--model NAME` or a free spec (`--family … --depth … --growth …`).
#[derive(Args, Debug, Clone, Default)]
pub struct SpecArgs {
    /// A named model (see `zoo --list`), e.g. sparsenet-bc-100-24.
    #[arg(long, short = 'm')]
    pub model: Option<String>,

    /// Output classes (default: the paper's head for named models, 10 for free specs).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "classes", 1, 1_000_000))]
    pub classes: Option<usize>,

    /// Free spec: family sparse|dense|res|preres|plain|wide|mlp|lenet|vgg|alexnet|fractal|
    /// mixnet|dpn (wide: Wide ResNet, with --widen; mlp: with --hidden; lenet: LeNet-5; vgg:
    /// --depth 11, 13, 16, 19; alexnet: --depth 8; fractal: --columns, --blocks; mixnet: Mixed
    /// Link Networks, --depth 6n+4 --growth K (k₁ = k₂ = K); dpn: Dual Path Networks, --depth
    /// 68, 92, 98, 107, 131). A family built for one layout (wide, fractal, mixnet: cifar; mlp,
    /// lenet: mnist; vgg, alexnet, dpn: imagenet) takes it without --layout.
    #[arg(long)]
    pub family: Option<String>,

    /// Free spec: depth in the family's convention (e.g. 40, 100 for CIFAR DenseNet/SparseNet; 121 for ImageNet).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "depth", 1, 100_000))]
    pub depth: Option<usize>,

    /// Free spec: growth rate k, or one per block (e.g. 16,32,64).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_usize_list(s, "growth").map(GrowthList))]
    pub growth: Option<GrowthList>,

    /// Free spec: bottleneck + compression (BC) layers.
    #[arg(long)]
    pub bc: bool,

    /// Free spec: base of the sparse pattern (default 2).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "base", 2, 1_000_000))]
    pub base: Option<usize>,

    /// Free spec: custom offsets of the sparse pattern, e.g. 1,2,3,5,8.
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_usize_list(s, "offset").map(GrowthList))]
    pub offsets: Option<GrowthList>,

    /// Stem channels (default: the family's convention).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "stem", 1, 1_000_000))]
    pub stem: Option<usize>,

    /// Classifier head of DenseNet/SparseNet: global (global average pool) or paper (3×3 pooled map).
    #[arg(long)]
    pub head: Option<String>,

    /// Free spec: every block is this DAG (an edge list `j l` per line, or Graphviz DOT; node 0
    /// the block input, the highest node its output), layers concatenating their sources. The
    /// family is sparse and the depth follows from the DAG (4 + 3N, or 4 + 6N with --bc).
    #[arg(long, conflicts_with_all = ["random", "base", "offsets"])]
    pub dag_file: Option<std::path::PathBuf>,

    /// Free spec: every block is a random DAG: er:p=P (Erdős–Rényi), ba:m=M (Barabási–Albert)
    /// or ws:k=K,p=P (Watts–Strogatz), ordered by node number, with --nodes and --dag-seed.
    #[arg(long, conflicts_with_all = ["base", "offsets"])]
    pub random: Option<String>,

    /// Random nodes per block for --random (default 32; each block has 2 more, input and output).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "nodes", 1, 100_000))]
    pub nodes: Option<usize>,

    /// Seed of the random DAG of --random (default 0).
    #[arg(long)]
    pub dag_seed: Option<u64>,

    /// Free spec, dense and sparse families: how a layer combines its sources: concat
    /// (DenseNet, SparseNet), sum (every source k channels, the block input projected by a 1×1
    /// convolution when its width differs), mixed (Mixed Link: --mix A,C — A channels summed,
    /// C concatenated per layer) or dual (Dual Path: a residual path of the block input's width
    /// and a dense path of k per layer). Equations: README "Aggregation operators".
    #[arg(long, value_enum)]
    pub aggregate: Option<AggregateArg>,

    /// Free spec, --family wide: the widening factor K of WRN-D-K (stage widths 16K, 32K, 64K).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "widen", 1, 10_000))]
    pub widen: Option<usize>,

    /// Free spec, --family mlp: the hidden layers' widths, e.g. 300,100 (LeNet-300-100); the
    /// depth is their number + 1. --family lenet: conv1,conv2,fc1 (default 20,50,500).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_usize_list(s, "hidden").map(GrowthList))]
    pub hidden: Option<GrowthList>,

    /// Free spec, --family fractal: columns C of each fractal block (FractalNet-21: 3).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "columns", 1, 15))]
    pub columns: Option<usize>,

    /// Free spec, --family fractal: fractal blocks B, each followed by a 2×2 max pool
    /// (FractalNet-21: 5; the depth is B·2^(C−1) + 1).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "blocks", 1, 64))]
    pub blocks: Option<usize>,

    /// FractalNet's drop-path probability at every join in training (default 0.15; 0 turns it
    /// off).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_prob)]
    pub drop_path: Option<f64>,

    /// Drop probability of the family's dropout layers: vgg and alexnet (default 0.5, before
    /// their fully connected layers as torchvision places them; 0 removes them), wide (between a
    /// block's convolutions; default none).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_prob)]
    pub dropout: Option<f64>,

    /// Widths of a mixed-link layer: summed,concatenated (e.g. 12,12; the second is the growth).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_usize_list(s, "mix").map(GrowthList))]
    pub mix: Option<GrowthList>,
}

/// `--aggregate` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregateArg {
    /// Channel concatenation.
    Concat,
    /// Summation.
    Sum,
    /// Mixed link (with --mix).
    Mixed,
    /// Dual path.
    Dual,
}

/// A parsed integer list (a newtype so clap takes the whole list as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowthList(pub Vec<usize>);

impl SpecArgs {
    /// Whether any free-spec flag was given.
    pub fn has_free_spec(&self) -> bool {
        self.family.is_some()
            || self.depth.is_some()
            || self.growth.is_some()
            || self.bc
            || self.base.is_some()
            || self.offsets.is_some()
            || self.dag_file.is_some()
            || self.random.is_some()
            || self.nodes.is_some()
            || self.dag_seed.is_some()
            || self.aggregate.is_some()
            || self.mix.is_some()
            || self.widen.is_some()
            || self.hidden.is_some()
            || self.columns.is_some()
            || self.blocks.is_some()
    }

    /// The DAG block of `--dag-file` or `--random`, if given.
    /// Errors are marked as bad input; a DAG file that cannot be read keeps its
    /// `io::Error`, so it exits with status 3 in every command, as in `paths`.
    pub fn dag(&self) -> anyhow::Result<Option<BlockDag>> {
        if self.random.is_none() && (self.nodes.is_some() || self.dag_seed.is_some()) {
            return Err(bad(
                "--nodes and --dag-seed go with --random (e.g. --random ba:m=2 --nodes 32)",
            ));
        }
        let src = match (&self.dag_file, &self.random) {
            (Some(f), _) => DagSource::File(f),
            (None, Some(m)) => DagSource::Random {
                model: m,
                nodes: self.nodes.unwrap_or(32),
                seed: self.dag_seed.unwrap_or(0),
            },
            (None, None) => return Ok(None),
        };
        load_dag(&src).map(|(d, _)| Some(d))
    }

    /// The spec these flags describe (`None` when neither a model nor a family is given).
    /// `layout` is the free spec's `cifar|imagenet` (`--layout` in every command).
    /// Errors are marked as bad input (exit 2), except a DAG file that cannot be read (exit 3).
    pub fn to_spec(&self, layout: Option<&str>) -> anyhow::Result<Option<NetSpec>> {
        let dag = self.dag()?;
        self.spec_with(layout, dag).map_err(bad)
    }

    /// [`SpecArgs::to_spec`] once the block DAG (if any) is known.
    fn spec_with(
        &self,
        layout: Option<&str>,
        dag: Option<BlockDag>,
    ) -> Result<Option<NetSpec>, String> {
        // A DAG block makes a concatenating (sparse-family) network unless told otherwise.
        let implied = if dag.is_some() && self.model.is_none() && self.family.is_none() {
            Some("sparse".to_string())
        } else {
            None
        };
        let mut spec = match (&self.model, self.family.as_ref().or(implied.as_ref())) {
            (Some(_), Some(_)) => {
                return Err("give either --model or --family (a free spec), not both".into())
            }
            (Some(m), None) => {
                if self.has_free_spec() || layout.is_some() {
                    return Err(format!(
                        "--model {m} takes no free-spec flags (--depth, --growth, --bc, --base, --offsets, --layout); use --family to describe a network instead"
                    ));
                }
                named(m).map_err(|e| e.to_string())?.spec(self.classes)
            }
            (None, Some(f)) => {
                let family = Family::parse(f).map_err(|e| e.to_string())?;
                let layout = match layout {
                    Some(d) => Layout::parse(d).map_err(|e| e.to_string())?,
                    None => family.only_layout().unwrap_or(Layout::Cifar),
                };
                if self.widen.is_some() && family != Family::Wide {
                    return Err(format!(
                        "--widen goes with --family wide (Wide ResNet), not {f}"
                    ));
                }
                if (self.columns.is_some() || self.blocks.is_some()) && family != Family::Fractal {
                    return Err(format!(
                        "--columns and --blocks go with --family fractal, not {f}"
                    ));
                }
                if self.hidden.is_some() && !matches!(family, Family::Mlp | Family::Lenet) {
                    return Err(format!("--hidden goes with --family mlp or lenet, not {f}"));
                }
                if self.growth.is_some()
                    && !matches!(family, Family::Sparse | Family::Dense | Family::Mixnet)
                {
                    return Err(format!(
                        "--growth goes with --family sparse, dense or mixnet; {f} takes {}",
                        match family {
                            Family::Wide => "--widen K",
                            Family::Mlp | Family::Lenet => "--hidden W1,W2,…",
                            Family::Fractal => "--columns C --blocks B",
                            _ => "no widths",
                        }
                    ));
                }
                let depth = match (&dag, self.depth) {
                    (_, Some(d)) => d,
                    (None, None) if family == Family::Mlp => {
                        self.hidden.as_ref().map_or(0, |h| h.0.len()) + 1
                    }
                    (None, None) if family == Family::Lenet => 5,
                    (None, None) if family == Family::Alexnet => 8,
                    (None, None) if family == Family::Dpn => 92,
                    (None, None) if family == Family::Fractal => {
                        let c = self.columns.unwrap_or(3);
                        self.blocks.unwrap_or(5) * (1 << (c - 1)) + 1
                    }
                    (Some(d), None) => NetSpec::dag_depth(d, self.bc),
                    (None, None) => {
                        return Err(format!("--family {f} needs --depth (e.g. --depth 40)"))
                    }
                };
                let mix = match (&self.mix, self.aggregate) {
                    (Some(m), Some(AggregateArg::Mixed)) => match m.0.as_slice() {
                        [a, c] => Some((*a, *c)),
                        _ => {
                            return Err(format!(
                                "--mix takes two widths, summed,concatenated (e.g. 12,12), not {} numbers",
                                m.0.len()
                            ))
                        }
                    },
                    (Some(_), _) => return Err("--mix goes with --aggregate mixed".into()),
                    (None, Some(AggregateArg::Mixed)) => {
                        return Err("--aggregate mixed needs --mix A,C (A channels summed, C concatenated per layer, e.g. 12,12)".into())
                    }
                    (None, _) => None,
                };
                if let (Some((a, c)), Some(g)) = (mix, &self.growth) {
                    if g.0 != [c] {
                        return Err(format!(
                            "--mix {a},{c} sets the concatenated width (the growth) to {c}; leave out --growth or make it {c}"
                        ));
                    }
                }
                let growth = match (&self.growth, family) {
                    _ if mix.is_some() => vec![mix.map_or(0, |m| m.1)],
                    (Some(g), _) => g.0.clone(),
                    // DAG blocks default to the growth rate of the paper's smallest SparseNet
                    // rows' neighbours: 12.
                    (None, Family::Sparse) if dag.is_some() => vec![12],
                    (None, Family::Sparse | Family::Dense) => {
                        return Err(format!(
                            "--family {f} needs --growth (e.g. --growth 12, or 16,32,64 per block)"
                        ))
                    }
                    (None, Family::Mixnet) => {
                        return Err(
                            "--family mixnet needs --growth K, its k₁ = k₂ (e.g. --depth 100 --growth 12 for MixNet-100)".into(),
                        )
                    }
                    (None, Family::Wide) => match self.widen {
                        Some(k) => vec![k],
                        None => {
                            return Err("--family wide needs --widen K (e.g. --depth 16 --widen 8 for WRN-16-8)".into())
                        }
                    },
                    (None, Family::Fractal) => vec![self.columns.unwrap_or(3)],
                    (None, Family::Mlp | Family::Lenet) => {
                        self.hidden.as_ref().map_or(Vec::new(), |h| h.0.clone())
                    }
                    (None, _) => Vec::new(),
                };
                let mut spec = NetSpec::new(
                    family,
                    layout,
                    depth,
                    &growth,
                    self.bc,
                    self.classes.unwrap_or(10),
                );
                spec.pattern = match (&self.offsets, self.base) {
                    (Some(_), Some(_)) => {
                        return Err(
                            "give either --base or --offsets for the sparse pattern, not both"
                                .into(),
                        )
                    }
                    (Some(o), None) => Some(Pattern::custom(&o.0).map_err(|e| e.to_string())?),
                    (None, Some(b)) => Some(Pattern::sparse(b).map_err(|e| e.to_string())?),
                    (None, None) => None,
                };
                if let Some(d) = dag {
                    spec.pattern = Some(Pattern::Dag(d));
                }
                if let Some(a) = self.aggregate {
                    if !matches!(family, Family::Sparse | Family::Dense) {
                        return Err(format!(
                            "--aggregate applies to --family sparse or dense (res sums and plain chains already), not {f}"
                        ));
                    }
                    spec.aggregate = match a {
                        AggregateArg::Concat => Aggregate::Concat,
                        AggregateArg::Sum => Aggregate::Sum,
                        AggregateArg::Mixed => Aggregate::Mixed {
                            sum: mix.map_or(0, |m| m.0),
                        },
                        AggregateArg::Dual => Aggregate::Dual,
                    };
                }
                if spec.pattern.is_some() && family != Family::Sparse {
                    return Err(
                        "--base, --offsets, --dag-file and --random apply to --family sparse only"
                            .into(),
                    );
                }
                spec
            }
            (None, None) => {
                if self.has_free_spec() || layout.is_some() {
                    return Err(
                        "a free spec needs --family (sparse, dense, res, preres, plain, wide, mlp, lenet, vgg, alexnet, fractal)".into(),
                    );
                }
                return Ok(None);
            }
        };
        spec.stem = self.stem;
        // Named models take --dropout and --drop-path too: they change no count, only training.
        if let Some(p) = self.drop_path {
            spec.drop_path = Some(sparsenet_net::op::Prob::new(p)?);
        }
        if let Some(p) = self.dropout {
            spec.dropout = Some(sparsenet_net::op::Prob::new(p)?);
        }
        if let Some(h) = &self.head {
            spec.head = Some(Head::parse(h).map_err(|e| e.to_string())?);
        }
        Ok(Some(spec))
    }
}

/// A drop probability in [0, 1).
fn parse_prob(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| {
        format!("dropout '{s}' is not a number: give a probability in [0, 1), e.g. 0.5")
    })?;
    sparsenet_net::op::Prob::new(p).map(|p| p.get())
}

/// An input error (exit status 2) from a message.
pub fn bad(msg: impl std::fmt::Display) -> anyhow::Error {
    crate::error::bad_input(anyhow::anyhow!("{msg}"))
}
