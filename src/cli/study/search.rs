//! `study search`: block patterns drawn at a parameter budget, filtered by the graph analysis,
//! trained by successive halving.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::{recipe_options, unique_seeds};
use crate::choice::Choice;
use crate::cli::args::{parse_in_range, parse_usize_list};
use crate::cli::spec::{bad, GrowthList};
use crate::cli::train::{set_threads, RecipeArgs};
use crate::study::{self, efficiency, search::Space};

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
    #[arg(long, value_enum, default_value_t = Space::Offsets)]
    pub space: Space,

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
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("search-{}-{}", a.space.name(), a.budget_params))
    });
    Ok(study::search::Search {
        draw: study::search::Draw {
            space: a.space,
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

/// Run `study search`.
pub fn exec(a: &SearchArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let s = search_of(a)?;
    set_threads(a.threads);
    let r = study::search::run(&s, w)?;
    {
        {
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
        }
    }
    Ok(())
}
