//! `study lesion`: test accuracy with layers removed at test time (Veit et al. 2016).

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::checkpoint_dir;
use crate::cli::args::parse_in_range;
use crate::cli::spec::bad;
use crate::cli::train::set_threads;
use crate::study::{self, lesion};

/// Arguments of `study lesion`.
#[derive(Args, Debug)]
#[command(long_about = "\
Test accuracy with layers removed at test time (Veit et al. 2016): each layer alone, then k
random layers at once for k up to --max-k; lesion.json and figures. Several checkpoints are
compared in one figure.")]
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

/// Run `study lesion`.
pub fn exec(a: &LesionArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let out = match (&a.out, a.checkpoint.as_slice()) {
        (Some(o), _) => o.clone(),
        (None, [one]) => checkpoint_dir(one),
        (None, _) => {
            return Err(bad(
                "several checkpoints need --out (where the comparison goes)",
            ))
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
        {
            {
                let r = r?;
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
        }
    }
    let files = study::lesion::report(&results, &out)?;
    for f in files {
        let _ = writeln!(w, "wrote {}", f.display());
    }
    Ok(())
}
