//! `study prune`: magnitude pruning and retraining of a trained network (Han et al. 2015).

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::checkpoint_dir;
use crate::cli::args::parse_in_range;
use crate::cli::spec::bad;
use crate::cli::train::set_threads;
use crate::study::{self, grid};

/// Arguments of `study prune`.
#[derive(Args, Debug)]
#[command(long_about = "\
Magnitude pruning as Han et al. 2015 do it: per layer a threshold of q times the standard
deviation of its weights, the survivors retrained at a tenth of the learning rate with the pruned
weights held at zero, iterated. Writes prune.json, the pruned checkpoint (its masks in it) and
figures. The target is one of --keep, --rate, --quality, --quality-per-layer, --sensitivity or
--match (sparsity by pruning against sparsity by design).")]
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

/// Run `study prune`.
pub fn exec(a: &PruneArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let matched = match &a.matched {
        Some(words) => {
            let e = grid::parse_line(words, "--match")?;
            Some((e.words, e.spec))
        }
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
                        return Err(bad(format!(
                            "--quality-per-layer: '{item}' is not NAME=Q (e.g. fc1.weight=1.3)"
                        )))
                    }
                }
            }
            Some(map)
        }
        None => None,
    };
    if a.sensitivity && !(a.tolerance >= 0.0 && a.tolerance < 1.0) {
        return Err(bad(
            "--tolerance is an accuracy loss in [0, 1), e.g. 0.01 for one point",
        ));
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
        (None, None, None) => return Err(bad(
            "study prune needs a target: --keep F (e.g. 0.08), --rate R (e.g. 12), --quality Q, --quality-per-layer, --sensitivity or --match WORDS",
        )),
    };
    if !(a.lr_scale > 0.0 && a.lr_scale.is_finite()) {
        return Err(bad(
            "--lr-scale must be positive (the paper retrains at 0.1)",
        ));
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
    let r = study::prune::run(&o, w)?;
    let files = study::prune::report(&r, &out)?;
    for f in files {
        let _ = writeln!(w, "wrote {}", f.display());
    }
    let _ = writeln!(w, "wrote {}", out.join("pruned.safetensors").display());
    Ok(())
}
