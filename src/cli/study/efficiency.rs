//! `study efficiency`: a grid of networks trained under one recipe, compared by test error
//! against parameters and FLOPs.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::merge::report_merge;
use super::{recipe_options, unique_seeds};
use crate::choice::Choice;
use crate::cli::args::{parse_in_range, parse_usize_list};
use crate::cli::spec::{bad, GrowthList};
use crate::cli::train::{set_threads, RecipeArgs};
use crate::study::{efficiency, grid};

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
        (None, Some(p)) => (grid::preset(p), format!("study-{}", p.name())),
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

/// Run `study efficiency`: train the grid (what is not done yet), then merge.
pub fn exec(a: &EfficiencyArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let st = efficiency_study(a)?;
    set_threads(a.threads);
    let m = efficiency::run(&st, w).and_then(|_| efficiency::merge(&st))?;
    report_merge(&st, m, w);
    Ok(())
}
