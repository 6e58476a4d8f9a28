//! CIFAR-10 / CIFAR-100 binary batches: records of label byte(s) + 3 072 pixel bytes
//! (1 024 red, 1 024 green, 1 024 blue).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use super::{Dataset, DatasetKind, Split};

/// Parse concatenated records; `label_bytes` is 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine — the
/// fine label is used).
pub fn parse(bytes: &[u8], label_bytes: usize, classes: usize, what: &str) -> Result<Dataset> {
    let rec = label_bytes + 3072;
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        bail!("{what}: {} bytes is not a whole number of {rec}-byte CIFAR records (truncated or not a CIFAR batch?)", bytes.len());
    }
    let n = bytes.len() / rec;
    let mut images = Vec::with_capacity(n * 3072);
    let mut labels = Vec::with_capacity(n);
    for r in bytes.chunks(rec) {
        labels.push(r[label_bytes - 1]);
        images.extend_from_slice(&r[label_bytes..]);
    }
    let d = Dataset {
        images,
        labels,
        n,
        c: 3,
        h: 32,
        w: 32,
        classes,
    };
    d.validate(what)?;
    Ok(d)
}

fn read_all(dir: &Path, names: &[&str], label_bytes: usize, classes: usize) -> Result<Dataset> {
    let mut all: Option<Dataset> = None;
    for name in names {
        let p: PathBuf = dir.join(name);
        let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let d = parse(&bytes, label_bytes, classes, &p.display().to_string())?;
        match &mut all {
            None => all = Some(d),
            Some(a) => {
                a.images.extend(d.images);
                a.labels.extend(d.labels);
                a.n += d.n;
            }
        }
    }
    all.context("no CIFAR batch files")
}

/// Load CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) or CIFAR-100 (`train.bin`,
/// `test.bin`) from `dir` or its usual subfolder.
pub fn load(kind: DatasetKind, dir: &Path) -> Result<Split> {
    let (sub, train, test, lb, classes): (&str, Vec<&str>, Vec<&str>, usize, usize) = match kind {
        DatasetKind::Cifar10 => (
            "cifar-10-batches-bin",
            vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            vec!["test_batch.bin"],
            1,
            10,
        ),
        _ => (
            "cifar-100-binary",
            vec!["train.bin"],
            vec!["test.bin"],
            2,
            100,
        ),
    };
    let base = if dir.join(train[0]).exists() {
        dir.to_path_buf()
    } else {
        dir.join(sub)
    };
    if !base.join(train[0]).exists() {
        bail!(
            "{}: no {} (expected the CIFAR binary batches there or in {sub}/)",
            dir.display(),
            train[0]
        );
    }
    let tr = read_all(&base, &train, lb, classes)?;
    let te = read_all(&base, &test, lb, classes)?;
    Ok(Split {
        source: format!(
            "{} from {} ({} train / {} test)",
            if classes == 10 {
                "CIFAR-10"
            } else {
                "CIFAR-100"
            },
            base.display(),
            tr.n,
            te.n
        ),
        train: super::Images::Memory(tr),
        test: super::Images::Memory(te),
        kind,
        location: super::absolute(&base).display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let mut b = vec![3u8];
        b.extend(std::iter::repeat_n(1u8, 3072));
        b.push(7);
        b.extend(std::iter::repeat_n(2u8, 3072));
        let d = parse(&b, 1, 10, "t").unwrap();
        assert_eq!((d.n, d.labels.clone(), d.images[3072]), (2, vec![3, 7], 2));
        assert!(parse(&b[..100], 1, 10, "t").is_err());
        let mut c100 = vec![1u8, 55];
        c100.extend(std::iter::repeat_n(0u8, 3072));
        assert_eq!(parse(&c100, 2, 100, "t").unwrap().labels, vec![55]);
        b[0] = 10;
        assert!(parse(&b, 1, 10, "t")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }
}
