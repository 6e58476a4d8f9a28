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
    /// The run this row belongs to ([`crate::train::run_id`]); rows written before runs were
    /// marked have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Training images of a folder dataset left out of the epoch because they could not be
    /// read (named in the run's warnings); absent for in-memory datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_images: Option<usize>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_read_and_rewrite_digit_for_digit() {
        // A resumed run reads the earlier rows back and writes them again. These values (from a
        // real run) lost their last digit through a parse without serde_json's exact float
        // parsing: 0.10416666666666667 came back as 0.10416666666666669.
        let row = EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 2.3047051429748535,
            train_acc: 0.10416666666666667,
            test_loss: 2.2931386947631838,
            test_acc: 0.102,
            images_per_sec: 823.2037433852524,
            seconds: 0.459016229,
            steps: 3,
            run: Some("0123456789abcdef".into()),
            skipped_images: None,
        };
        let dir = std::env::temp_dir().join(format!("sparsenet-metrics-{}", std::process::id()));
        write(&dir, std::slice::from_ref(&row)).unwrap();
        let first = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let back = read(&dir).unwrap();
        assert_eq!(back, vec![row]);
        write(&dir, &back).unwrap();
        let second = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(first, second);
    }
}
