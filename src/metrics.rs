//! Per-epoch metrics: `metrics.jsonl` (one object per epoch — a contract for notebooks and
//! tools) and `metrics.csv`, both rewritten atomically after every epoch.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::io::write_atomic;

/// One epoch's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f32,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (with augmentation, batch statistics).
    pub train_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// Optimiser steps taken in the epoch.
    pub steps: usize,
}

/// Rewrite both files with every epoch so far.
pub fn write(dir: &Path, all: &[EpochMetrics]) -> Result<()> {
    let mut jsonl = String::new();
    let mut csv = String::from(
        "epoch,lr,train_loss,train_acc,test_loss,test_acc,images_per_sec,seconds,steps\n",
    );
    for m in all {
        jsonl.push_str(&serde_json::to_string(m)?);
        jsonl.push('\n');
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            m.epoch,
            m.lr,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.images_per_sec,
            m.seconds,
            m.steps
        ));
    }
    write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())
}

/// Read `metrics.jsonl` (for resuming); missing file = no epochs.
pub fn read(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let p = dir.join("metrics.jsonl");
    if !p.exists() {
        return Ok(Vec::new());
    }
    std::fs::read_to_string(&p)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}
