//! `study merge`: a sharded study's finished runs gathered into its results.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use crate::cli::spec::bad;
use crate::study::{efficiency, grid};

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
pub fn report_merge(st: &efficiency::Study, m: efficiency::Merge, w: &mut (dyn Write + Send)) {
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

/// Run `study merge`.
pub fn exec(a: &MergeArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let st = recorded_study(&a.out)?;
    let m = efficiency::merge(&st)?;
    report_merge(&st, m, w);
    Ok(())
}
