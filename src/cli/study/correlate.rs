//! `study correlate`: which graph metric of the networks goes with test error.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::checkpoint_dir;
use crate::cli::args::parse_in_range;
use crate::study;

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

/// Run `study correlate`.
pub fn exec(a: &CorrelateArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
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
    let studies = study::correlate::read(&a.results)?;
    study::correlate::check_work(&studies, &o)?;
    let c = study::correlate::correlate(&studies, &o);
    let files = study::correlate::report(&studies, &c, &out)?;
    let _ = write!(w, "{}", study::correlate::table(&c));
    for f in files {
        let _ = writeln!(w, "wrote {}", f.display());
    }
    Ok(())
}
