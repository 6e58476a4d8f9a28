//! The `study` command: `efficiency`, `weights` and `lesion` experiments on trained networks.

use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::args::{exit_bad_input, fail, parse_in_range, parse_usize_list};
use super::spec::{bad, GrowthList, SpecArgs};
use super::train::{options, set_threads, RecipeArgs, TrainArgs};
use crate::study::grid;
use crate::study::{self, efficiency, lesion};

const LONG_ABOUT: &str = "\
Experiments on trained networks, from their topology: the empirical half of the SparseNet paper.

  study efficiency   train a grid of networks (several seeds each) under one recipe and compare
                     test error against parameters and FLOPs: results.jsonl, a table (mean ± std
                     over seeds) and figures with each family's Pareto front. Resumable: run it
                     again and finished runs are kept, interrupted ones resume.
  study weights      connection usage of a trained DenseNet/SparseNet (any concatenating
                     pattern): per block, the mean |weight| of each layer's first convolution
                     per source (DenseNet Fig. 5), as JSON and a heat map.
  study lesion       test accuracy with layers removed at test time (Veit et al. 2016): each
                     layer alone, then k random layers; JSON and figures.
  study prune        magnitude pruning as Han et al. 2015 do it: per layer a threshold of q
                     times the standard deviation of its weights, survivors retrained at a
                     tenth of the learning rate with the pruned weights held at zero, iterated;
                     prune.json, the pruned checkpoint (masks in it) and figures.
  study search       search block patterns (offset sets, random DAGs, operators) at a
                     parameter budget: the graph analysis filters for free (budget, limits,
                     isomorphic duplicates), successive halving spends the training; every
                     candidate with its metrics, the Pareto front, baselines at the same budget.
  study correlate    over the runs of one or more studies, the rank correlation of each graph
                     metric of the networks (connections, path counts and lengths, gradient
                     paths, what the block output reads) with test error, raw and at matched
                     size, with bootstrap intervals; a table, correlate.json and a figure each.
  study merge        gather a sharded study's finished runs (efficiency --shard I/N) into
                     results.jsonl, the summary and the figures.
  study slurm        print an sbatch script that runs a study as a Slurm job array, one task
                     per shard, and a merge job after it.

Examples:
  study efficiency --preset quick --seeds 1,2 --out runs/study-quick
  study efficiency --grid my-grid.txt --epochs 20 --dataset cifar10 --data-dir data/cifar-10
  study weights --checkpoint runs/study-quick/runs/sparsenet-22-12-s1/best.safetensors
  study lesion --checkpoint runs/a/best.safetensors --checkpoint runs/b/best.safetensors --out lesions
  study prune --checkpoint runs/lenet-5/last.safetensors --rate 12 --iterations 3 --retrain-epochs 2
  study search --budget-params 77000 --space offsets --candidates 24
  study correlate runs/study-quick runs/search-offsets-77000/rung-0
  study efficiency --preset quick --out runs/q --shard 0/2 &  study efficiency --preset quick --out runs/q --shard 1/2
  study slurm --shards 8 --max-running 4 --time 02:00:00 -- efficiency --preset quick --out /shared/q > job.sh";

/// Arguments of `study`.
#[derive(Parser, Debug)]
#[command(name = "study", version, about = "Experiments on trained networks: parameter efficiency, connection usage, lesions.", long_about = LONG_ABOUT)]
pub struct StudyArgs {
    /// The experiment.
    #[command(subcommand)]
    pub command: StudyCommand,
}

/// The experiments.
// Parsed once per process: the size of the largest variant's flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum StudyCommand {
    /// Train a grid of networks and compare test error against parameters and FLOPs.
    Efficiency(EfficiencyArgs),
    /// Connection usage (mean |w| per source) of a trained concatenating network.
    Weights(WeightsArgs),
    /// Test accuracy with layers removed at test time.
    Lesion(LesionArgs),
    /// Magnitude pruning and retraining of a trained network (Han et al. 2015).
    Prune(PruneArgs),
    /// Rank correlations of the networks' graph metrics with test error over studies' runs.
    Correlate(CorrelateArgs),
    /// Search block patterns at a parameter budget (analysis as a filter, successive halving).
    Search(SearchArgs),
    /// Gather a sharded study's finished runs into results.jsonl, the summary and figures.
    Merge(MergeArgs),
    /// Print an sbatch script running a study as a Slurm job array (one task per shard).
    Slurm(SlurmArgs),
}

/// `--space` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpaceArg {
    /// Offset sets {1, o2, …} over a block's layers (SparseNet's pattern family).
    Offsets,
    /// Random DAG blocks (Erdős–Rényi, Barabási–Albert, Watts–Strogatz, with their parameters).
    Dag,
    /// Aggregation operators (concat, sum, mixed, dual) over the sparse and dense patterns.
    Aggregate,
}

/// Arguments of `study search`.
#[derive(Args, Debug)]
#[command(long_about = "\
Search block patterns at a parameter budget. A seeded sampler draws structures from --space;
each is sized to --budget-params by its growth rate, and kept when within --tolerance, under the
limits (--max-gradient-path) and not isomorphic to one kept before — the graph analysis filters
for free, nothing is trained to filter. Baselines at the same budget (SparseNet's exponential
offsets and DenseNet at --depth, ResNet at the nearest depth and width) join every rung.
Successive halving spends the training: rung 0 trains every candidate for --min-epochs, the best
1/--eta by test accuracy go on to eta times as many epochs, and so on, until one is left or
--rungs is reached. Each rung is an ordinary `study efficiency` in OUT/rung-R (resumable: run the
same command again and nothing is trained twice; `study correlate OUT/rung-0` relates the
graph metrics to accuracy over all candidates).

Writes candidates.jsonl (every network: words, params, FLOPs, graph metrics, rungs and errors),
search.json (options, draw statistics, the fronts), front.txt (the final rung's Pareto front of
error against parameters as grid lines, which train, zoo and study efficiency --grid read) and
front-I.edges (each front network's block for paths --dag-file), and the figures
search_vs_params / search_vs_flops (the final rung, its front, the baselines).

  study search --budget-params 77000 --space offsets --candidates 24 --epochs … (recipe flags)
  study search --budget-params 77000 --space dag --nodes 4,10 --max-gradient-path 3")]
pub struct SearchArgs {
    /// The parameter budget (for the data's input and classes).
    #[arg(long)]
    pub budget_params: u64,

    /// What to draw.
    #[arg(long, value_enum, default_value_t = SpaceArg::Offsets)]
    pub space: SpaceArg,

    /// Candidates to draw (baselines come on top).
    #[arg(long, default_value = "24", value_parser = |s: &str| parse_in_range(s, "candidates", 1, 100_000))]
    pub candidates: usize,

    /// Relative distance from the budget a candidate may have.
    #[arg(long, default_value = "0.1", value_parser = parse_fraction)]
    pub tolerance: f64,

    /// Seed of the sampler.
    #[arg(long, default_value = "0")]
    pub seed: u64,

    /// Network depth of the offsets and aggregate spaces (CIFAR layout, 4 + 3L).
    #[arg(long, default_value = "22", value_parser = |s: &str| parse_in_range(s, "depth", 7, 10_000))]
    pub depth: usize,

    /// Random nodes per block of the dag space: MIN,MAX.
    #[arg(long, default_value = "4,12", value_parser = |s: &str| parse_usize_list(s, "nodes").map(GrowthList))]
    pub nodes: GrowthList,

    /// Keep only candidates whose longest all-pairs gradient path (mean over blocks) is at most
    /// this.
    #[arg(long)]
    pub max_gradient_path: Option<f64>,

    /// Epochs of rung 0.
    #[arg(long, default_value = "1", value_parser = |s: &str| parse_in_range(s, "min epochs", 1, 100_000))]
    pub min_epochs: usize,

    /// Halving factor: 1/eta of the candidates go on, for eta times the epochs.
    #[arg(long, default_value = "2", value_parser = |s: &str| parse_in_range(s, "eta", 2, 100))]
    pub eta: usize,

    /// Most rungs.
    #[arg(long, default_value = "3", value_parser = |s: &str| parse_in_range(s, "rungs", 1, 20))]
    pub rungs: usize,

    /// Seeds: every network of a rung is trained once per seed.
    #[arg(long, default_value = "1", value_parser = |s: &str| parse_usize_list(s, "seed").map(GrowthList))]
    pub seeds: GrowthList,

    /// Data, optimiser, limits and device (as in train).
    #[command(flatten)]
    pub recipe: RecipeArgs,

    /// Worker threads shared by all runs (default: all cores).
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,

    /// Runs at once.
    #[arg(long, default_value = "1", value_parser = |s: &str| parse_in_range(s, "jobs", 1, 256))]
    pub jobs: usize,

    /// The search folder (default runs/search-<space>-<budget>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("{s}: give a fraction between 0 and 1, e.g. 0.1")),
    }
}

/// Arguments of `study correlate`.
#[derive(Args, Debug)]
#[command(long_about = "\
Which graph property of a topology goes with accuracy? Reads the rows of one or more studies
(`study efficiency` writes each network's graph metrics beside its accuracy: per block, computed
from the DAG that was trained, and their mean over the network's blocks) and gives, for each
metric, Spearman's rank correlation with the final test error over the runs, and the partial
rank correlation given log10 parameters (the metric at matched size), each with a bootstrap 95 %
interval. Writes correlate.json, correlate.txt and correlate_<metric>.png/.svg (error against
the metric, one point per run, coloured by parameter count).

Rows written before rows had metrics are refused with the fix: run `study efficiency` again with
the same --out (finished runs are read back, not trained). With fewer than --min-networks
distinct networks it says so instead of printing noise.

  study correlate runs/study-quick
  study correlate runs/study-quick/results.jsonl runs/search/results.jsonl --out runs/corr")]
pub struct CorrelateArgs {
    /// Study folders or their results.jsonl files.
    #[arg(required = true, num_args = 1..)]
    pub results: Vec<PathBuf>,

    /// Output folder (default: the first study's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Bootstrap resamples of the runs.
    #[arg(long, default_value = "2000", value_parser = |s: &str| parse_in_range(s, "bootstrap", 100, 1_000_000))]
    pub bootstrap: usize,

    /// Seed of the resampling.
    #[arg(long, default_value = "0")]
    pub seed: u64,

    /// Fewest distinct networks for which correlations are given.
    #[arg(long, default_value = "5", value_parser = |s: &str| parse_in_range(s, "min networks", 3, 1_000_000))]
    pub min_networks: usize,
}

/// Arguments of `study merge`.
#[derive(Args, Debug)]
#[command(long_about = "\
Gather the finished runs of a study folder (their runs/*/result.json) into results.jsonl, in grid
order, and write summary.json, summary.txt and the figures, as a study run in one process does.
The study (grid, seeds, recipe) is read from OUT/study.json. Exits 0 with a line saying how many
runs are done when some are not (and writes nothing); every shard that finds all runs done
merges by itself, so this is for looking early or after a shard failed and was rerun.")]
pub struct MergeArgs {
    /// The study folder (the --out of its shards).
    pub out: PathBuf,
}

/// Arguments of `study slurm`.
#[derive(Args, Debug)]
#[command(long_about = "\
Print a bash script for Slurm's sbatch that runs a study as a job array: one array task per
shard (`--array=0-(N-1)%K`, SLURM_ARRAY_TASK_ID → --shard), with the resources given here and a
log per task, then a merge job that starts once every task has succeeded
(`--dependency=afterok`). `bash job.sh` submits both; `sbatch job.sh` submits the array alone
(the last shard to finish merges too). The study's own arguments follow `--`, exactly as
`study efficiency` takes them, and are checked now:

  study slurm --shards 8 --max-running 4 --cpus-per-task 4 --time 02:00:00 --partition cpu \\
      -- efficiency --preset quick --seeds 1,2,3 --out /shared/runs/quick > job.sh
  bash job.sh

The script runs this study binary (its absolute path) in the current folder, so relative paths
in the study's arguments mean what they mean here; the study folder must be on a file system
every node sees.")]
pub struct SlurmArgs {
    /// Shards (array tasks) to cut the study into.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "shards", 1, 100_000))]
    pub shards: usize,

    /// Array tasks running at once (the array's %K); default: no limit.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "max running", 1, 100_000))]
    pub max_running: Option<usize>,

    /// CPUs per task.
    #[arg(long, default_value = "2", value_parser = |s: &str| parse_in_range(s, "cpus per task", 1, 4096))]
    pub cpus_per_task: usize,

    /// GPUs per task (--gres=gpu:G; give the study --device cuda too).
    #[arg(long, default_value = "0", value_parser = |s: &str| parse_in_range(s, "gpus per task", 0, 64))]
    pub gpus_per_task: usize,

    /// Memory per task, in Slurm's words (e.g. 8G); default: the partition's.
    #[arg(long)]
    pub mem: Option<String>,

    /// Time limit per task, in Slurm's words (e.g. 02:00:00 or 1-00:00:00).
    #[arg(long, default_value = "04:00:00")]
    pub time: String,

    /// Partition.
    #[arg(long)]
    pub partition: Option<String>,

    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,

    /// Job name (the merge job adds -merge).
    #[arg(long, default_value = "sparsenet-study")]
    pub job_name: String,

    /// Folder of the per-task logs (default: OUT/slurm-logs).
    #[arg(long)]
    pub logs: Option<PathBuf>,

    /// The study, after `--`: `efficiency …` as `study efficiency` takes it (without --shard).
    #[arg(last = true, required = true, num_args = 1..)]
    pub study: Vec<String>,
}

/// Arguments of `study efficiency`.
#[derive(Args, Debug)]
#[command(long_about = "\
Train every network of a grid once per seed, through the same training library as `train` (each
run its own folder under OUT/runs with metrics, checkpoints and description), then write
results.jsonl (one object per run: spec, name, family, params, flops, seed, epochs,
final_test_acc, best_test_acc, final_test_loss, seconds, data, and graph: the network's graph
metrics, each the mean over its blocks, with every block's own), summary.json and summary.txt
(mean ± std over seeds per network) and the figures error_vs_params / error_vs_flops (PNG + SVG,
one colour per family, lines = Pareto fronts; on CIFAR data the paper's printed points are
overlaid and labelled as such).

The grid file has one network per line in train's words, `#` starts a comment:
  --model sparsenet-40-24
  --family sparse --depth 16 --growth 12 --offsets 1,2,3,5
  --family res --depth 20

Running it again with the same OUT and settings keeps finished runs, resumes interrupted ones and
trains nothing twice.")]
pub struct EfficiencyArgs {
    /// A grid file: one network per line in train's spec flags.
    #[arg(long, conflicts_with = "preset")]
    pub grid: Option<PathBuf>,

    /// A built-in grid: quick (plain/res/dense/sparse at two matched sizes, ~20 min for 2 seeds
    /// on 2 CPU cores with the embedded data) or paper-cifar (the paper's CIFAR rows).
    #[arg(long, value_enum)]
    pub preset: Option<grid::Preset>,

    /// Seeds, e.g. 1,2,3: every network is trained once per seed.
    #[arg(long, default_value = "1,2", value_parser = |s: &str| parse_usize_list(s, "seed").map(GrowthList))]
    pub seeds: GrowthList,

    /// Epochs of every run (the default keeps `--preset quick` with 2 seeds near 16 minutes on
    /// 2 CPU cores with the embedded data).
    #[arg(long, default_value = "6", value_parser = |s: &str| parse_in_range(s, "epochs", 1, 100_000))]
    pub epochs: usize,

    /// Data, optimiser, limits and device (as in train).
    #[command(flatten)]
    pub recipe: RecipeArgs,

    /// Worker threads shared by all runs (default: all cores).
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,

    /// Runs at once (on one GPU several small runs share the card).
    #[arg(long, default_value = "1", value_parser = |s: &str| parse_in_range(s, "jobs", 1, 256))]
    pub jobs: usize,

    /// The study folder (default runs/study-<preset or grid file>).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Train only shard I of N (counted from 0): the runs whose place in grid order is I mod N.
    /// Shards may run at once, on one machine or many, into one shared --out; each writes its
    /// own run folders, and the last to finish (or `study merge OUT`) writes the results.
    #[arg(long, value_parser = efficiency::Shard::parse)]
    pub shard: Option<efficiency::Shard>,
}

/// Arguments of `study weights`.
#[derive(Args, Debug)]
pub struct WeightsArgs {
    /// A checkpoint of a concatenating network (DenseNet, SparseNet, …) written by train.
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// Output folder for weights.json and weights.png/.svg (default: the checkpoint's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `study prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// A checkpoint written by train (its recipe is the retraining's, at --lr-scale).
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// Keep this fraction of the prunable weights after the last iteration (e.g. 0.08).
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["rate", "quality"], value_parser = parse_keep)]
    pub keep: Option<f64>,

    /// Compression rate: keep 1/R of the prunable weights (e.g. 12, the paper's LeNet rate).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "quality", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Instead of a target: this quality parameter in every layer and iteration (threshold
    /// q·σ of the layer's surviving weights).
    #[arg(long, allow_hyphen_values = true)]
    pub quality: Option<f64>,

    /// Instead of a target: prune to the parameter count of this network, in train's words
    /// (e.g. "--model sparsenet-40-24" or "--family sparse --depth 22 --growth 12"): sparsity
    /// by pruning against sparsity by design.
    #[arg(long = "match", value_name = "WORDS", allow_hyphen_values = true, conflicts_with_all = ["keep", "rate", "quality"])]
    pub matched: Option<String>,

    /// Instead of a target: a quality parameter per layer, NAME=Q,… with the layers' parameter
    /// names (e.g. fc1.weight=1.3,fc2.weight=1.0); layers not named are not pruned.
    #[arg(long, value_name = "NAME=Q,…", conflicts_with_all = ["keep", "rate", "quality", "matched"])]
    pub quality_per_layer: Option<String>,

    /// Instead of a target: the paper's sensitivity scan picks each layer's kept fraction
    /// (each layer pruned alone to 90 … 5 %; the smallest within --tolerance of the trained
    /// accuracy), reached over the iterations.
    #[arg(long, conflicts_with_all = ["keep", "rate", "quality", "matched", "quality_per_layer"])]
    pub sensitivity: bool,

    /// With --sensitivity: the accuracy loss accepted per layer, as a fraction (0.01: one
    /// point).
    #[arg(long, default_value = "0.01", requires = "sensitivity")]
    pub tolerance: f64,

    /// Prune–retrain iterations (iteration i of n keeps keep^(i/n)).
    #[arg(long, default_value = "3", value_parser = |s: &str| parse_in_range(s, "iterations", 1, 1000))]
    pub iterations: usize,

    /// Which layers are pruned: conv, fc or both.
    #[arg(long, value_enum, default_value = "both")]
    pub layers: study::prune::Layers,

    /// Retraining epochs per iteration (0: prune without retraining).
    #[arg(long, default_value = "1", value_parser = |s: &str| parse_in_range(s, "retrain epochs", 0, 100_000))]
    pub retrain_epochs: usize,

    /// The retraining's learning rate as a fraction of the checkpoint's (the paper: 0.1).
    #[arg(long, default_value = "0.1")]
    pub lr_scale: f32,

    /// A network to compare with, trained otherwise (e.g. the SparseNet of --match trained
    /// directly; repeat for several): evaluated on the same test images, recorded and drawn.
    #[arg(long)]
    pub against: Vec<PathBuf>,

    /// Steps per retraining epoch (quick runs).
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "max steps", 1, usize::MAX / 2))]
    pub max_steps: Option<usize>,

    /// Evaluate on at most this many test images.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "max test", 1, usize::MAX / 2))]
    pub max_test: Option<usize>,

    /// Folder with the dataset's files (default: as in training).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Worker threads.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,

    /// Output folder (default: `prune/` beside the checkpoint). Run again with the same
    /// options and a finished run is read back, an interrupted retraining resumes; other
    /// options are refused unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Replace a prune run of other options in --out (its pruned checkpoints, retrainings,
    /// records and figures) instead of refusing.
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_keep(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        Ok(v) => Err(format!(
            "--keep {v} keeps {}: give a fraction strictly between 0 and 1 (e.g. 0.08)",
            if v <= 0.0 { "nothing" } else { "everything" }
        )),
        Err(_) => Err(format!(
            "'{s}' is not a number: give a fraction such as 0.08"
        )),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 1.0 && v.is_finite() => Ok(v),
        Ok(v) => Err(format!(
            "--rate {v} keeps everything or more: give a compression rate above 1 (e.g. 12)"
        )),
        Err(_) => Err(format!("'{s}' is not a number: give a rate such as 12")),
    }
}

/// Arguments of `study lesion`.
#[derive(Args, Debug)]
pub struct LesionArgs {
    /// Checkpoints written by train (repeat for several networks: one line each in the figure).
    #[arg(long, required = true)]
    pub checkpoint: Vec<PathBuf>,

    /// Largest number of layers removed at once.
    #[arg(long, default_value = "8", value_parser = |s: &str| parse_in_range(s, "max k", 1, 100_000))]
    pub max_k: usize,

    /// Random draws per k.
    #[arg(long, default_value = "5", value_parser = |s: &str| parse_in_range(s, "draws", 1, 100_000))]
    pub draws: usize,

    /// Seed of the random draws.
    #[arg(long, default_value = "0")]
    pub seed: u64,

    /// Images per evaluation batch.
    #[arg(long, default_value = "100", value_parser = |s: &str| parse_in_range(s, "batch size", 1, 65_536))]
    pub batch_size: usize,

    /// Evaluate on at most this many test images.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "max test", 1, usize::MAX / 2))]
    pub max_test: Option<usize>,

    /// Folder with the dataset's files (default: as in training).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Worker threads.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,

    /// Output folder (default: the checkpoint's folder; required with several checkpoints).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `study`.
pub fn run_study(a: &StudyArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    match &a.command {
        StudyCommand::Efficiency(e) => run_efficiency(e, w),
        StudyCommand::Weights(e) => run_weights(e, w),
        StudyCommand::Lesion(e) => run_lesion(e, w),
        StudyCommand::Prune(e) => run_prune(e, w),
        StudyCommand::Correlate(e) => run_correlate(e, w),
        StudyCommand::Search(e) => run_search(e, w),
        StudyCommand::Merge(e) => run_merge(e, w),
        StudyCommand::Slurm(e) => match super::slurm::script(e) {
            Ok(text) => match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&anyhow::Error::new(e).context("cannot write the script to stdout")),
            },
            Err(e) => fail(&e),
        },
    }
}

/// The study of `study efficiency`'s arguments: an unreadable grid file is an I/O error, any
/// other problem bad input (the statuses of [`crate::error`]).
pub fn efficiency_study(a: &EfficiencyArgs) -> anyhow::Result<efficiency::Study> {
    let text = match &a.grid {
        Some(path) => Some(
            String::from_utf8(crate::io::read_regular(path, "the grid file", 1 << 20)?).map_err(
                |_| {
                    bad(format!(
                        "the grid file {} is not UTF-8 text",
                        path.display()
                    ))
                },
            )?,
        ),
        None => None,
    };
    study_of(a, text.as_deref())
}

fn study_of(a: &EfficiencyArgs, grid_text: Option<&str>) -> anyhow::Result<efficiency::Study> {
    let (entries, default_out) = match (&a.grid, a.preset) {
        (Some(path), None) => {
            let text = grid_text.unwrap_or_default();
            let stem = path
                .file_stem()
                .map_or("grid".into(), |s| s.to_string_lossy().to_string());
            (
                grid::parse_grid(text, &path.display().to_string())?,
                format!("study-{stem}"),
            )
        }
        (None, Some(p)) => (
            grid::preset(p),
            format!(
                "study-{}",
                clap::ValueEnum::to_possible_value(&p)
                    .map_or("preset".into(), |v| v.get_name().to_string())
            ),
        ),
        _ => return Err(bad(
            "give the networks: --grid FILE (one network per line) or --preset quick|paper-cifar",
        )),
    };
    let seeds = unique_seeds(&a.seeds.0)?;
    let recipe = recipe_options(&a.recipe, a.epochs, a.threads)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(default_out));
    Ok(efficiency::Study {
        grid: entries,
        seeds,
        recipe,
        jobs: a.jobs,
        out,
        shard: a.shard.unwrap_or(efficiency::Shard::WHOLE),
    })
}

/// The seeds of --seeds, each at most once.
fn unique_seeds(list: &[usize]) -> anyhow::Result<Vec<u64>> {
    let mut seeds: Vec<u64> = Vec::new();
    for &s in list {
        if seeds.contains(&(s as u64)) {
            return Err(bad(format!("seed {s} is given twice in --seeds")));
        }
        seeds.push(s as u64);
    }
    Ok(seeds)
}

/// The recipe every run of a study shares: train's options for a placeholder network (each run
/// replaces the spec).
fn recipe_options(
    recipe: &RecipeArgs,
    epochs: usize,
    threads: Option<usize>,
) -> anyhow::Result<crate::train::TrainOptions> {
    options(&TrainArgs {
        spec: SpecArgs::default(),
        layout: None,
        recipe: recipe.clone(),
        epochs,
        seed: 0,
        threads,
        out: None,
        stop_after: None,
        gpus: None,
        resume: false,
        overwrite: false,
        init_from: None,
        key_map: Default::default(),
        quiet: true,
        dist_timeout: 300,
    })
}

/// The search of `study search`'s arguments.
pub fn search_of(a: &SearchArgs) -> anyhow::Result<study::search::Search> {
    if a.nodes.0.len() != 2 || a.nodes.0[0] > a.nodes.0[1] || a.nodes.0[0] == 0 {
        return Err(bad(format!(
            "--nodes {:?}: give MIN,MAX with 1 ≤ MIN ≤ MAX, e.g. 4,12",
            a.nodes.0
        )));
    }
    if a.budget_params < 1000 {
        return Err(bad(format!(
            "--budget-params {}: no network here is that small; give at least 1000",
            a.budget_params
        )));
    }
    let seeds = unique_seeds(&a.seeds.0)?;
    let space = match a.space {
        SpaceArg::Offsets => study::search::Space::Offsets,
        SpaceArg::Dag => study::search::Space::Dag,
        SpaceArg::Aggregate => study::search::Space::Aggregate,
    };
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "search-{}-{}",
            clap::ValueEnum::to_possible_value(&a.space)
                .map_or("space".into(), |v| v.get_name().to_string()),
            a.budget_params
        ))
    });
    Ok(study::search::Search {
        draw: study::search::Draw {
            space,
            budget: a.budget_params,
            tolerance: a.tolerance,
            candidates: a.candidates,
            seed: a.seed,
            depth: a.depth,
            nodes: (a.nodes.0[0], a.nodes.0[1]),
            max_gradient_path: a.max_gradient_path,
        },
        min_epochs: a.min_epochs,
        eta: a.eta,
        rungs: a.rungs,
        study: efficiency::Study {
            grid: Vec::new(),
            seeds,
            recipe: recipe_options(&a.recipe, a.min_epochs, a.threads)?,
            jobs: a.jobs,
            out,
            shard: efficiency::Shard::WHOLE,
        },
    })
}

fn run_search(a: &SearchArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let s = match search_of(a) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    set_threads(a.threads);
    match study::search::run(&s, w) {
        Ok(r) => {
            let _ = writeln!(
                w,
                "front (error against parameters, final rung of {} epochs):",
                r.rung_epochs.last().copied().unwrap_or(0)
            );
            for words in &r.front_params {
                let c = r.candidates.iter().find(|c| &c.words == words);
                let _ = writeln!(
                    w,
                    "  {words}  ({} parameters, error {:.2} %{})",
                    c.map_or(0, |c| c.params),
                    c.and_then(|c| c.rungs.last()).map_or(f64::NAN, |r| r.2),
                    if c.is_some_and(|c| c.baseline) {
                        ", a baseline"
                    } else {
                        ""
                    }
                );
            }
            let _ = writeln!(
                w,
                "results in {}: candidates.jsonl, search.json, front.txt, front-*.edges, rung-*/",
                s.study.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The study recorded in a study folder's `study.json` (for `study merge`).
pub fn recorded_study(out: &std::path::Path) -> anyhow::Result<efficiency::Study> {
    let record = efficiency::read_record(out)?;
    let what = out.join("study.json").display().to_string();
    let entries = grid::parse_grid(&record.grid.join("\n"), &what)?;
    let st = efficiency::Study {
        grid: entries,
        seeds: record.seeds.clone(),
        recipe: record.recipe.clone(),
        jobs: 1,
        out: out.to_path_buf(),
        shard: efficiency::Shard::WHOLE,
    };
    if st.record().grid_hash != record.grid_hash {
        return Err(bad(format!(
            "{what}: its grid hash {} is not that of its contents ({}); the file was edited",
            record.grid_hash,
            st.record().grid_hash
        )));
    }
    Ok(st)
}

/// Print what a merge found.
fn report_merge(st: &efficiency::Study, m: efficiency::Merge, w: &mut (dyn Write + Send)) {
    match m {
        efficiency::Merge::Done { table, .. } => {
            let _ = write!(w, "{table}");
            let _ = writeln!(
                w,
                "results in {}: results.jsonl, summary.json, summary.txt, error_vs_params.png, error_vs_flops.png",
                st.out.display()
            );
        }
        efficiency::Merge::Waiting {
            done,
            total,
            first_missing,
        } => {
            let _ = writeln!(
                w,
                "{done} of {total} runs of the study in {} are done (the first not done: {}); the last shard to finish, or `study merge {}`, writes results.jsonl",
                st.out.display(),
                first_missing.display(),
                st.out.display()
            );
        }
    }
}

fn run_correlate(a: &CorrelateArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let o = study::correlate::Options {
        bootstrap: a.bootstrap,
        seed: a.seed,
        min_networks: a.min_networks,
    };
    let out = a.out.clone().unwrap_or_else(|| {
        let first = &a.results[0];
        if first.is_dir() {
            first.clone()
        } else {
            checkpoint_dir(first)
        }
    });
    let r = study::correlate::read(&a.results).and_then(|studies| {
        study::correlate::check_work(&studies, &o)?;
        let c = study::correlate::correlate(&studies, &o);
        let files = study::correlate::report(&studies, &c, &out)?;
        Ok((c, files))
    });
    match r {
        Ok((c, files)) => {
            let _ = write!(w, "{}", study::correlate::table(&c));
            for f in files {
                let _ = writeln!(w, "wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run_merge(a: &MergeArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    match recorded_study(&a.out).and_then(|st| efficiency::merge(&st).map(|m| (st, m))) {
        Ok((st, m)) => {
            report_merge(&st, m, w);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run_efficiency(a: &EfficiencyArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let st = match efficiency_study(a) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    set_threads(a.threads);
    let r = efficiency::run(&st, w).and_then(|_| efficiency::merge(&st));
    match r {
        Ok(m) => {
            report_merge(&st, m, w);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = w.flush();
            fail(&e)
        }
    }
}

fn checkpoint_dir(c: &std::path::Path) -> PathBuf {
    c.parent()
        .map_or_else(|| PathBuf::from("."), |p| p.to_path_buf())
}

fn run_weights(a: &WeightsArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| checkpoint_dir(&a.checkpoint));
    match study::weights::report(&a.checkpoint, &out) {
        Ok((usage, files)) => {
            for b in &usage.blocks {
                let read = b.raw.iter().flatten().flatten().count();
                let _ = writeln!(w, "{}: {} layers, {read} connections", b.name, b.layers);
            }
            for f in files {
                let _ = writeln!(w, "wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run_prune(a: &PruneArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let matched = match &a.matched {
        Some(words) => match grid::parse_line(words, "--match") {
            Ok(e) => Some((e.words, e.spec)),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    let per_layer = match &a.quality_per_layer {
        Some(list) => {
            let mut map = std::collections::BTreeMap::new();
            for item in list.split(',').filter(|s| !s.is_empty()) {
                let parsed = item
                    .split_once('=')
                    .and_then(|(n, q)| Some((n.trim().to_string(), q.trim().parse::<f64>().ok()?)));
                match parsed {
                    Some((n, q)) => {
                        map.insert(n, q);
                    }
                    None => {
                        return exit_bad_input(format!(
                            "--quality-per-layer: '{item}' is not NAME=Q (e.g. fc1.weight=1.3)"
                        ))
                    }
                }
            }
            Some(map)
        }
        None => None,
    };
    if a.sensitivity && !(a.tolerance >= 0.0 && a.tolerance < 1.0) {
        return exit_bad_input(
            "--tolerance is an accuracy loss in [0, 1), e.g. 0.01 for one point",
        );
    }
    let rule = match (a.keep, a.rate, a.quality) {
        _ if a.sensitivity => study::prune::Rule::Sensitivity {
            tolerance: a.tolerance,
        },
        _ if per_layer.is_some() => study::prune::Rule::PerLayer(per_layer.clone().expect("given")),
        _ if matched.is_some() => study::prune::Rule::Match {
            words: matched.as_ref().expect("matched").0.clone(),
            params: 0,
        },
        (Some(k), _, _) => study::prune::Rule::Keep(k),
        (None, Some(r), _) => study::prune::Rule::Keep(1.0 / r),
        (None, None, Some(q)) => study::prune::Rule::Quality(q),
        (None, None, None) => return exit_bad_input(
            "study prune needs a target: --keep F (e.g. 0.08), --rate R (e.g. 12), --quality Q, --quality-per-layer, --sensitivity or --match WORDS",
        ),
    };
    if !(a.lr_scale > 0.0 && a.lr_scale.is_finite()) {
        return exit_bad_input("--lr-scale must be positive (the paper retrains at 0.1)");
    }
    set_threads(a.threads);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| checkpoint_dir(&a.checkpoint).join("prune"));
    let o = study::prune::PruneOptions {
        checkpoint: a.checkpoint.clone(),
        matched: matched.map(|m| m.1),
        rule,
        iterations: a.iterations,
        layers: a.layers,
        retrain_epochs: a.retrain_epochs,
        lr_scale: a.lr_scale,
        out: out.clone(),
        data_dir: a.data_dir.clone(),
        max_test: a.max_test,
        max_steps: a.max_steps,
        against: a.against.clone(),
        overwrite: a.overwrite,
    };
    let r = match study::prune::run(&o, w) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match study::prune::report(&r, &out) {
        Ok(files) => {
            for f in files {
                let _ = writeln!(w, "wrote {}", f.display());
            }
            let _ = writeln!(w, "wrote {}", out.join("pruned.safetensors").display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run_lesion(a: &LesionArgs, w: &mut (dyn Write + Send)) -> ExitCode {
    let out = match (&a.out, a.checkpoint.as_slice()) {
        (Some(o), _) => o.clone(),
        (None, [one]) => checkpoint_dir(one),
        (None, _) => {
            return exit_bad_input("several checkpoints need --out (where the comparison goes)")
        }
    };
    set_threads(a.threads);
    let sweep = lesion::Sweep {
        max_k: a.max_k,
        draws: a.draws,
        seed: a.seed,
        batch: a.batch_size,
        limit: a.max_test,
    };
    let mut results = Vec::new();
    for c in &a.checkpoint {
        let t0 = std::time::Instant::now();
        let bar = indicatif::ProgressBar::new(1).with_message(c.display().to_string());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} evaluations {elapsed}",
            )
            .expect("valid template"),
        );
        let r = study::lesion::run(c, sweep, a.data_dir.as_deref(), |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        match r {
            Ok(r) => {
                let evals =
                    1 + r.single.len() + r.random.iter().map(|k| k.accs.len()).sum::<usize>();
                let secs = t0.elapsed().as_secs_f64();
                let _ = writeln!(
                    w,
                    "{}: baseline accuracy {:.4} on {} images; {} layers; {evals} evaluations in {secs:.1} s ({:.2} s each)\n  rule: {}",
                    r.network,
                    r.baseline_acc,
                    r.images,
                    r.single.len(),
                    secs / evals as f64,
                    r.rule
                );
                results.push(r);
            }
            Err(e) => return fail(&e),
        }
    }
    match study::lesion::report(&results, &out) {
        Ok(files) => {
            for f in files {
                let _ = writeln!(w, "wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
