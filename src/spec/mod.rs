//! The words that describe a network — `--model NAME`, or a free spec `--family … --depth …
//! --growth …` — and what they mean: the grammar every command's spec flags, a study's grid
//! lines and the search's candidates share. [`SpecFlags`] holds the words' values (the command
//! line's clap flags fill it, [`parse_words`] reads a grid line into it) and
//! [`SpecFlags::to_spec`] turns them into a [`NetSpec`]; [`SpecFlags::to_words`] writes them
//! back.

mod dag;
mod words;

pub use dag::{load_dag, DagSource, MAX_DAG_FILE_BYTES};
pub use words::{parse_words, FLAGS};

use sparsenet_analysis::dag::BlockDag;
use sparsenet_analysis::topology::Pattern;
use sparsenet_net::zoo::{named, Family, Head, Layout, NetSpec};
use std::path::PathBuf;

pub use sparsenet_net::zoo::AggregateKind;

/// `--aggregate`'s values are the net crate's operators (no second list).
impl crate::choice::Choice for AggregateKind {
    const ALL: &'static [Self] = AggregateKind::ALL;
    fn name(self) -> &'static str {
        AggregateKind::name(self)
    }
    fn help(self) -> &'static str {
        AggregateKind::help(self)
    }
}

/// The values of a network's words: a named model or a free spec, each field one flag
/// (`None`/`false`: not given). The command line's help describes each flag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecFlags {
    /// `--model`.
    pub model: Option<String>,
    /// `--classes`.
    pub classes: Option<usize>,
    /// `--family`.
    pub family: Option<String>,
    /// `--depth`.
    pub depth: Option<usize>,
    /// `--growth`: one rate, or one per block.
    pub growth: Option<Vec<usize>>,
    /// `--bc`.
    pub bc: bool,
    /// `--base`.
    pub base: Option<usize>,
    /// `--offsets`.
    pub offsets: Option<Vec<usize>>,
    /// `--stem`.
    pub stem: Option<usize>,
    /// `--head`.
    pub head: Option<String>,
    /// `--dag-file`.
    pub dag_file: Option<PathBuf>,
    /// `--random`.
    pub random: Option<String>,
    /// `--nodes`.
    pub nodes: Option<usize>,
    /// `--dag-seed`.
    pub dag_seed: Option<u64>,
    /// `--aggregate`.
    pub aggregate: Option<AggregateKind>,
    /// `--widen`.
    pub widen: Option<usize>,
    /// `--hidden`.
    pub hidden: Option<Vec<usize>>,
    /// `--columns`.
    pub columns: Option<usize>,
    /// `--blocks`.
    pub blocks: Option<usize>,
    /// `--drop-path`.
    pub drop_path: Option<f64>,
    /// `--dropout`.
    pub dropout: Option<f64>,
    /// `--mix`.
    pub mix: Option<Vec<usize>>,
    /// `--layout`: the free spec's `cifar|imagenet`.
    pub layout: Option<String>,
}

impl SpecFlags {
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
    /// Errors are marked as bad input (exit 2), except a DAG file that cannot be read (exit 3).
    pub fn to_spec(&self) -> anyhow::Result<Option<NetSpec>> {
        let dag = self.dag()?;
        self.spec_with(self.layout.as_deref(), dag).map_err(bad)
    }

    /// The spec once the block DAG (if any) is known.
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
            (None, Some(f)) => self.free_spec(f, layout, dag)?,
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

    /// A free spec of family `f`: the family's own flags checked, then its depth, widths,
    /// pattern and operator.
    fn free_spec(
        &self,
        f: &str,
        layout: Option<&str>,
        dag: Option<BlockDag>,
    ) -> Result<NetSpec, String> {
        let family = Family::parse(f).map_err(|e| e.to_string())?;
        let layout = match layout {
            Some(d) => Layout::parse(d).map_err(|e| e.to_string())?,
            None => family.only_layout().unwrap_or(Layout::Cifar),
        };
        self.check_family_flags(family, f)?;
        let depth = self.depth_of(family, f, dag.as_ref())?;
        let mix = self.mix_widths()?;
        let growth = self.growth_of(family, f, mix, dag.is_some())?;
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
                    "give either --base or --offsets for the sparse pattern, not both".into(),
                )
            }
            (Some(o), None) => Some(Pattern::custom(o).map_err(|e| e.to_string())?),
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
            spec.aggregate = a.with_widths(mix.map_or(0, |m| m.0));
        }
        if spec.pattern.is_some() && family != Family::Sparse {
            return Err(
                "--base, --offsets, --dag-file and --random apply to --family sparse only".into(),
            );
        }
        Ok(spec)
    }

    /// The flags of one family given with another.
    fn check_family_flags(&self, family: Family, f: &str) -> Result<(), String> {
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
        Ok(())
    }

    /// `--depth`, or the family's own where it has one (a DAG block's follows from the DAG).
    fn depth_of(&self, family: Family, f: &str, dag: Option<&BlockDag>) -> Result<usize, String> {
        Ok(match (dag, self.depth) {
            (_, Some(d)) => d,
            (None, None) if family == Family::Mlp => {
                self.hidden.as_ref().map_or(0, |h| h.len()) + 1
            }
            (None, None) if family == Family::Lenet => 5,
            (None, None) if family == Family::Alexnet => 8,
            (None, None) if family == Family::Dpn => 92,
            (None, None) if family == Family::Fractal => {
                let c = self.columns.unwrap_or(3);
                self.blocks.unwrap_or(5) * (1 << (c - 1)) + 1
            }
            (Some(d), None) => NetSpec::dag_depth(d, self.bc),
            (None, None) => return Err(format!("--family {f} needs --depth (e.g. --depth 40)")),
        })
    }

    /// `--mix A,C` with `--aggregate mixed`: (summed, concatenated) widths.
    fn mix_widths(&self) -> Result<Option<(usize, usize)>, String> {
        let mix = match (&self.mix, self.aggregate) {
            (Some(m), Some(AggregateKind::Mixed)) => match m.as_slice() {
                [a, c] => Some((*a, *c)),
                _ => {
                    return Err(format!(
                        "--mix takes two widths, summed,concatenated (e.g. 12,12), not {} numbers",
                        m.len()
                    ))
                }
            },
            (Some(_), _) => return Err("--mix goes with --aggregate mixed".into()),
            (None, Some(AggregateKind::Mixed)) => {
                return Err("--aggregate mixed needs --mix A,C (A channels summed, C concatenated per layer, e.g. 12,12)".into())
            }
            (None, _) => None,
        };
        if let (Some((a, c)), Some(g)) = (mix, &self.growth) {
            if *g != [c] {
                return Err(format!(
                    "--mix {a},{c} sets the concatenated width (the growth) to {c}; leave out --growth or make it {c}"
                ));
            }
        }
        Ok(mix)
    }

    /// The widths of family `family`: `--growth`, or what its own flags give.
    fn growth_of(
        &self,
        family: Family,
        f: &str,
        mix: Option<(usize, usize)>,
        dag: bool,
    ) -> Result<Vec<usize>, String> {
        Ok(match (&self.growth, family) {
            _ if mix.is_some() => vec![mix.map_or(0, |m| m.1)],
            (Some(g), _) => g.clone(),
            // DAG blocks default to the growth rate of the paper's smallest SparseNet rows'
            // neighbours: 12.
            (None, Family::Sparse) if dag => vec![12],
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
            (None, Family::Mlp | Family::Lenet) => self.hidden.clone().unwrap_or_default(),
            (None, _) => Vec::new(),
        })
    }
}

/// A drop probability in [0, 1).
pub fn parse_prob(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| {
        format!("dropout '{s}' is not a number: give a probability in [0, 1), e.g. 0.5")
    })?;
    sparsenet_net::op::Prob::new(p).map(|p| p.get())
}

/// An input error (exit status 2) from a message.
pub fn bad(msg: impl std::fmt::Display) -> anyhow::Error {
    crate::error::bad_input(anyhow::anyhow!("{msg}"))
}
