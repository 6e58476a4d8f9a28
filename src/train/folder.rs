//! A run folder belongs to one run: a fresh run never writes over another run's files, and a
//! resumed run continues only the run its checkpoint and metrics describe.
//!
//! A folder "holds a run" when it has `last.safetensors` (the state a run resumes from). A fresh
//! run into such a folder is refused, naming the run found, unless it was asked to `--overwrite`
//! it: then the old run's files ([`RUN_FILES`]) are moved into `.replaced/` and deleted only
//! after the new run's first checkpoint is written, so a replacement killed early loses nothing
//! (the old files are still in `.replaced/`, and the next `--overwrite` starts over from them).

use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::TrainOptions;
use crate::error::bad_input;

/// Every file a run writes in its folder (`finish_epoch`: metrics, figures, checkpoints and
/// their descriptions). `--overwrite` moves exactly these, never anything else a folder holds.
pub const RUN_FILES: [&str; 10] = [
    "last.safetensors",
    "last.json",
    "best.safetensors",
    "best.json",
    "metrics.jsonl",
    "metrics.csv",
    "loss.png",
    "loss.svg",
    "accuracy.png",
    "accuracy.svg",
];

/// Where `--overwrite` keeps the replaced run until the new one has a checkpoint.
pub const REPLACED: &str = ".replaced";

fn holds_run(dir: &Path) -> bool {
    checkpoint::paths(dir, "last").0.exists()
}

/// The run in `dir`, in a few words: "sparsenet-… on FashionMnist, 3 of 10 epochs".
fn describe_run(dir: &Path) -> String {
    let (last, _) = checkpoint::paths(dir, "last");
    match checkpoint::load_meta(&last) {
        Ok(m) => format!(
            "a run of {} on {:?}, {} of {} epochs, seed {}",
            m.spec, m.dataset, m.epoch, m.epochs, m.seed
        ),
        Err(e) => format!("a run whose checkpoint cannot be read ({e:#})"),
    }
}

/// Move (or remove) the run files of `from` into `to` (None: remove them).
fn move_run_files(from: &Path, to: Option<&Path>) -> Result<()> {
    if let Some(to) = to {
        std::fs::create_dir_all(to).map_err(|e| anyhow!("cannot create {}: {e}", to.display()))?;
    }
    for name in RUN_FILES {
        let p = from.join(name);
        if !p.exists() {
            continue;
        }
        let done = match to {
            Some(to) => std::fs::rename(&p, to.join(name)),
            None => std::fs::remove_file(&p),
        };
        done.map_err(|e| anyhow::Error::new(e).context(format!("cannot move {}", p.display())))?;
    }
    Ok(())
}

/// Make `opts.out` ready for this run, before anything is written: finish a replacement whose
/// new run already has a checkpoint, refuse a fresh run into another run's folder (bad input)
/// unless `opts.overwrite`, and with it move the old run aside. The caller holds the folder's
/// lock.
pub fn claim(opts: &TrainOptions) -> Result<()> {
    let dir = &opts.out;
    let replaced = dir.join(REPLACED);
    if replaced.exists() && holds_run(dir) {
        // The replacing run wrote its first checkpoint; the old files were due for deletion.
        remove_replaced(dir)?;
    }
    if opts.resume {
        return Ok(());
    }
    if holds_run(dir) {
        if !opts.overwrite {
            return Err(bad_input(anyhow!(
                "{} holds {}: --resume to continue it, --overwrite to replace it, or another --out",
                dir.display(),
                describe_run(dir)
            )));
        }
        return move_run_files(dir, Some(&replaced));
    }
    if replaced.exists() {
        if !opts.overwrite {
            return Err(bad_input(anyhow!(
                "{} holds a run replaced by an --overwrite that stopped before its first checkpoint (the old files are in {}): --overwrite to replace it again, or move them back",
                dir.display(),
                replaced.display()
            )));
        }
        // The interrupted replacement's partial files; the old run stays in `.replaced/`.
        return move_run_files(dir, None);
    }
    Ok(())
}

/// After a checkpoint: the run that replaced an older one now stands on its own, so the old
/// files go.
pub fn remove_replaced(dir: &Path) -> Result<()> {
    let replaced: PathBuf = dir.join(REPLACED);
    if replaced.exists() {
        std::fs::remove_dir_all(&replaced).map_err(|e| {
            anyhow::Error::new(e).context(format!("cannot remove {}", replaced.display()))
        })?;
    }
    Ok(())
}
