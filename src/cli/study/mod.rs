//! `sparsenet study`: experiments on trained networks, one file per subcommand (its arguments
//! and its `exec`), as cargo's commands are.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use super::spec::SpecArgs;
use super::train::{options, RecipeArgs, TrainArgs};
use crate::spec::bad;

pub mod correlate;
pub mod efficiency;
pub mod lesion;
pub mod merge;
pub mod prune;
pub mod search;
pub mod slurm;
pub mod weights;

pub use correlate::CorrelateArgs;
pub use efficiency::{efficiency_study, EfficiencyArgs};
pub use lesion::LesionArgs;
pub use merge::{recorded_study, MergeArgs};
pub use prune::PruneArgs;
pub use search::{search_of, SearchArgs};
pub use slurm::SlurmArgs;
pub use weights::WeightsArgs;

const LONG_ABOUT: &str = "\
Experiments on trained networks, from their topology: the empirical half of the SparseNet paper.
Each subcommand below has its own --help; efficiency, search and prune are resumable (run the
same command again: finished work is read back, interrupted work resumes).

Examples:
  sparsenet study efficiency --preset quick --seeds 1,2 --out runs/study-quick
  sparsenet study efficiency --grid my-grid.txt --epochs 20 --dataset cifar10 --data-dir data/cifar-10
  sparsenet study weights --checkpoint runs/study-quick/runs/sparsenet-22-12-s1/best.safetensors
  sparsenet study lesion --checkpoint runs/a/best.safetensors --checkpoint runs/b/best.safetensors --out lesions
  sparsenet study prune --checkpoint runs/lenet-5/last.safetensors --rate 12 --iterations 3 --retrain-epochs 2
  sparsenet study search --budget-params 77000 --space offsets --candidates 24
  sparsenet study correlate runs/study-quick runs/search-offsets-77000/rung-0
  sparsenet study efficiency --preset quick --out runs/q --shard 0/2 &  sparsenet study efficiency --preset quick --out runs/q --shard 1/2
  sparsenet study slurm --shards 8 --max-running 4 --time 02:00:00 -- efficiency --preset quick --out /shared/q > job.sh";

/// Arguments of `study`.
#[derive(Parser, Debug)]
#[command(name = "study", version, about = "Experiments on trained networks: efficiency, connection usage, lesions, pruning, search, correlations.", long_about = LONG_ABOUT)]
pub struct StudyArgs {
    /// The experiment.
    #[command(subcommand)]
    pub command: StudyCommand,
}

/// The experiments. (Each one's help is its arguments' own: a doc comment on a variant would
/// replace their long help, so the one-line `about` is an attribute.)
// Parsed once per process: the size of the largest variant's flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[allow(missing_docs)] // each variant is named by its `about`
#[derive(Subcommand, Debug)]
pub enum StudyCommand {
    #[command(
        about = "Train a grid of networks and compare test error against parameters and FLOPs"
    )]
    Efficiency(EfficiencyArgs),
    #[command(about = "Connection usage (mean |w| per source) of a trained concatenating network")]
    Weights(WeightsArgs),
    #[command(about = "Test accuracy with layers removed at test time")]
    Lesion(LesionArgs),
    #[command(about = "Magnitude pruning and retraining of a trained network (Han et al. 2015)")]
    Prune(PruneArgs),
    #[command(
        about = "Rank correlations of the networks' graph metrics with test error over studies' runs"
    )]
    Correlate(CorrelateArgs),
    #[command(
        about = "Search block patterns at a parameter budget (analysis as a filter, successive halving)"
    )]
    Search(SearchArgs),
    #[command(
        about = "Gather a sharded study's finished runs into results.jsonl, the summary and figures"
    )]
    Merge(MergeArgs),
    #[command(
        about = "Print an sbatch script running a study as a Slurm job array (one task per shard)"
    )]
    Slurm(SlurmArgs),
}

/// Run `study`.
pub fn exec(a: &StudyArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    match &a.command {
        StudyCommand::Efficiency(e) => efficiency::exec(e, w),
        StudyCommand::Weights(e) => weights::exec(e, w),
        StudyCommand::Lesion(e) => lesion::exec(e, w),
        StudyCommand::Prune(e) => prune::exec(e, w),
        StudyCommand::Correlate(e) => correlate::exec(e, w),
        StudyCommand::Search(e) => search::exec(e, w),
        StudyCommand::Merge(e) => merge::exec(e, w),
        StudyCommand::Slurm(e) => slurm::exec(e, w),
    }
}

/// The seeds of --seeds, each at most once.
pub(crate) fn unique_seeds(list: &[usize]) -> anyhow::Result<Vec<u64>> {
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
pub(crate) fn recipe_options(
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

/// The folder a checkpoint is in (the default output folder of the studies of one checkpoint).
pub(crate) fn checkpoint_dir(c: &std::path::Path) -> PathBuf {
    c.parent()
        .map_or_else(|| PathBuf::from("."), |p| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::StudyArgs;
    use clap::CommandFactory;

    /// Every experiment's `--help` is its own long description (a doc comment on a variant of
    /// `StudyCommand` once replaced five of them with the one-line summary).
    #[test]
    fn every_study_has_its_long_help() {
        let mut app = StudyArgs::command();
        app.build();
        let mut n = 0;
        for sub in app.get_subcommands().filter(|s| s.get_name() != "help") {
            let long = sub
                .get_long_about()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let short = sub.get_about().map(|s| s.to_string()).unwrap_or_default();
            assert!(
                long.len() > short.len() + 80,
                "study {}: no long help",
                sub.get_name()
            );
            n += 1;
        }
        assert_eq!(n, 8);
    }
}
