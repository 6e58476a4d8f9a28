//! The model-selection flags shared by `zoo` and `train`: a named model or a free spec.

use crate::spec::{parse_prob, AggregateKind, SpecFlags};
use clap::Args;
use sparsenet_net::zoo::NetSpec;

pub use crate::spec::bad;

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
    /// C concatenated per layer), dual (Dual Path: a residual path of the block input's width
    /// and a dense path of k per layer) or max (sum's wiring with the element-wise maximum in
    /// place of the sum). Equations: README "Aggregation operators".
    #[arg(long, value_parser = super::choices::choice_parser::<AggregateKind>())]
    pub aggregate: Option<AggregateKind>,

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

/// A parsed integer list (a newtype so clap takes the whole list as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowthList(pub Vec<usize>);

impl SpecArgs {
    /// The flags' values for the library's grammar, with the command's `--layout`.
    pub fn flags(&self, layout: Option<&str>) -> SpecFlags {
        let list = |l: &Option<GrowthList>| l.as_ref().map(|l| l.0.clone());
        SpecFlags {
            model: self.model.clone(),
            classes: self.classes,
            family: self.family.clone(),
            depth: self.depth,
            growth: list(&self.growth),
            bc: self.bc,
            base: self.base,
            offsets: list(&self.offsets),
            stem: self.stem,
            head: self.head.clone(),
            dag_file: self.dag_file.clone(),
            random: self.random.clone(),
            nodes: self.nodes,
            dag_seed: self.dag_seed,
            aggregate: self.aggregate,
            widen: self.widen,
            hidden: list(&self.hidden),
            columns: self.columns,
            blocks: self.blocks,
            drop_path: self.drop_path,
            dropout: self.dropout,
            mix: list(&self.mix),
            layout: layout.map(str::to_string),
        }
    }

    /// Whether any free-spec flag was given.
    pub fn has_free_spec(&self) -> bool {
        self.flags(None).has_free_spec()
    }

    /// The spec these flags describe with `layout` ([`SpecFlags::to_spec`]).
    pub fn to_spec(&self, layout: Option<&str>) -> anyhow::Result<Option<NetSpec>> {
        self.flags(layout).to_spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// A grid line as the command line reads it: the spec flags and `--layout`.
    #[derive(Parser, Debug)]
    #[command(no_binary_name = true, disable_help_flag = true)]
    struct Line {
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long)]
        layout: Option<String>,
    }

    /// The library's reading of a network's words (grid lines, the search) and the command
    /// line's are one grammar: the same flags, and the same values or a refusal for each line.
    #[test]
    fn the_words_grammar_is_the_command_lines() {
        let mut clap_names: Vec<String> = Line::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        let mut ours: Vec<String> = crate::spec::FLAGS
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        clap_names.sort();
        ours.sort();
        assert_eq!(clap_names, ours);
        for line in [
            "--model sparsenet-40-24",
            "-m lenet-5",
            "--family sparse --depth 22 --growth 12",
            "--family sparse --depth=22 --growth=12,24,48 --bc --base 3 --stem 32 --head global",
            "--family dense --depth 40 --growth 12 --aggregate mixed --mix 6,6 --layout imagenet",
            "--random ws:k=4,p=0.75 --nodes 8 --dag-seed 1 --growth 12",
            "--dag-file blocks.txt --bc",
            "--family wide --depth 16 --widen 8 --dropout 0.3",
            "--family mlp --hidden 300,100",
            "--family fractal --columns 3 --blocks 5 --drop-path 0.15",
            "--family sparse --depth 22 --offsets 1,2,5 --growth 12 --classes 7",
            "--family sparse --depth -3",
            "--family sparse --depth 0",
            "--depth",
            "--family --depth 3",
            "--frobnicate 3",
            "sparse",
            "--bc --bc",
            "--bc=yes",
            "--depth 3 --depth 4",
            "--aggregate max2",
            "--random er:p=0.1 --offsets 1,2",
            "--offsets 1,2 --dag-file f",
            "--dag-seed x",
            "--dropout 1.5",
            "--growth 1,,2",
        ] {
            let words: Vec<&str> = line.split_whitespace().collect();
            let by_clap = Line::try_parse_from(&words).map(|l| l.spec.flags(l.layout.as_deref()));
            let by_words = crate::spec::parse_words(&words);
            match (by_clap, by_words) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{line}: the command line reads {a:?}, the words {b:?}"),
            }
        }
    }
}
