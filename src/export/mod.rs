//! Trained networks out of the tool. [`pytorch`]: a self-contained PyTorch module file for a
//! checkpoint's network and its weights under the checkpoint's names; [`onnx`]: an ONNX model
//! ([`onnx::model_bytes`]). Each comes with a sample of test images and our logits, so the
//! export can be checked by running it (`python3 net.py --check …`, `scripts/check-onnx.py`).

pub mod files;
pub mod onnx;
use crate::train::torchvision;

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::{self, BatchPlan, DataChoice};
use crate::error::bad_input;
use crate::train::checkpoint::{self, f32_bytes, model_tensors, safetensors_bytes, NamedTensor};

/// The module file's text, with `__NAME__` placeholders filled by [`pytorch`].
const MODULE_PY: &str = include_str!("module.py");

/// What to export and where.
#[derive(Clone, Debug)]
pub struct ExportJob {
    /// A checkpoint written by `train`.
    pub checkpoint: PathBuf,
    /// The module file to write (`net.py`); the weights go beside it as `net.safetensors`,
    /// the sample as `net.sample.safetensors`.
    pub out: PathBuf,
    /// Test images in the sample (0: none, and no data is read).
    pub sample: usize,
    /// The sample's data (default: the data the checkpoint was trained on).
    pub data_dir: Option<PathBuf>,
    /// Which copy of the data without `data_dir`.
    pub data: DataChoice,
}

/// Open the checkpoint, with the test data when a sample is asked for.
fn open(e: &ExportJob) -> Result<(checkpoint::Loaded, Option<data::Split>)> {
    if e.sample > 0 {
        let (l, s) = checkpoint::open_for_eval(&e.checkpoint, e.data_dir.as_deref(), e.data)?;
        Ok((l, Some(s)))
    } else {
        Ok((checkpoint::open(&e.checkpoint)?, None))
    }
}

/// `stem.sample.safetensors` in `dir` and its bytes: the first `n` test images as the network
/// takes them (normalised), their labels, and our evaluation-mode logits.
fn sample_file(
    dir: &Path,
    stem: &str,
    loaded: &mut checkpoint::Loaded,
    split: &data::Split,
    n: usize,
) -> Result<(PathBuf, Vec<u8>)> {
    let (meta, model) = (&loaded.meta, &mut loaded.model);
    let t = &split.test;
    let n = n.min(t.n());
    if n == 0 {
        return Err(bad_input(anyhow!(
            "the test set is empty: no sample to write"
        )));
    }
    let plan = BatchPlan {
        batch_size: n,
        shuffle_seed: None,
        crop_pad: 0,
        flip: false,
        mean: meta.mean.clone(),
        std: meta.std.clone(),
        augment: false,
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let idx: Vec<usize> = (0..n).collect();
    let b = t.batch(&plan, &idx, 0, &mut rng)?;
    let logits = model
        .logits(b.x.clone(), n, false)
        .context("our forward pass of the sample")?;
    let classes = model.net.classes();
    let labels: Vec<f32> = b.y.iter().map(|&y| y as f32).collect();
    let s = meta.input;
    let named: Vec<NamedTensor> = vec![
        ("input".into(), vec![n, s.c, s.h, s.w], f32_bytes(&b.x)),
        ("labels".into(), vec![n], f32_bytes(&labels)),
        ("logits".into(), vec![n, classes], f32_bytes(&logits)),
    ];
    let mut info = HashMap::new();
    info.insert("data".to_string(), split.source.clone());
    info.insert("format".to_string(), files::SAMPLE_FORMAT.to_string());
    let sample = dir.join(format!("{stem}.sample.safetensors"));
    Ok((sample, safetensors_bytes(&named, Some(info))?))
}

/// Write `NAME.onnx` and (with `sample > 0`) `NAME.sample.safetensors`. Returns the files
/// written, the model first.
pub fn onnx(e: &ExportJob) -> Result<Vec<PathBuf>> {
    let stem = match (
        e.out.extension().and_then(|x| x.to_str()),
        e.out.file_stem().and_then(|s| s.to_str()),
    ) {
        (Some("onnx"), Some(stem)) if !stem.is_empty() => stem.to_string(),
        _ => {
            return Err(bad_input(anyhow!(
                "--out {}: give the model file, NAME.onnx",
                e.out.display()
            )))
        }
    };
    let (mut loaded, split) = open(e)?;
    let bytes = onnx::model_bytes(&loaded.model, &loaded.meta)?;
    let dir = e.out.parent().unwrap_or(Path::new(""));
    let mut out = files::Outputs::default();
    if let Some(split) = split {
        let (path, sample) = sample_file(dir, &stem, &mut loaded, &split, e.sample)?;
        out.add(path, sample);
    }
    out.add(e.out.clone(), bytes);
    let mut written = out.write(&e.checkpoint)?;
    written.rotate_right(1);
    Ok(written)
}

/// Names the module file may not take: Python's keywords (`import.py` cannot be imported) and
/// the modules the file itself imports (`torch.py` would import itself in place of torch).
const RESERVED_STEMS: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "json",
    "struct",
    "sys",
    "os",
    "torch",
    "torchvision",
    "safetensors",
];

/// A Python module name: letters, digits and `_`, not starting with a digit, neither a keyword
/// nor a module the file imports.
fn module_name(out: &Path) -> Result<String> {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match (
        out.extension().and_then(|e| e.to_str()),
        out.file_stem().and_then(|s| s.to_str()),
    ) {
        (Some("py"), Some(stem)) if RESERVED_STEMS.contains(&stem) => bail!(
            "--out {}: {stem} is a Python keyword or a module the exported file imports; give another NAME.py (e.g. sparsenet_40_24.py)",
            out.display()
        ),
        (Some("py"), Some(stem)) if ok(stem) => Ok(stem.to_string()),
        _ => bail!(
            "--out {}: give a Python module file, NAME.py with NAME of letters, digits and _ (e.g. sparsenet_40_24.py)",
            out.display()
        ),
    }
}

/// `template` with each mark replaced by its text, in one pass: a replacement is never read
/// again, so a value that happens to hold another mark stays as it is.
fn fill(template: &str, marks: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let next = marks
            .iter()
            .filter_map(|(m, v)| rest.find(m).map(|i| (i, *m, v)))
            .min_by_key(|&(i, m, _)| (i, std::cmp::Reverse(m.len())));
        match next {
            Some((i, m, v)) => {
                out.push_str(&rest[..i]);
                out.push_str(v);
                rest = &rest[i + m.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// A string as a Python string literal: JSON's escaping (quotes, backslashes, control
/// characters as `\n`, `\u0000`) is Python's too, so the text is data whatever it holds.
fn py_literal(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The module file's text for a checkpoint's network.
fn module_text(
    stem: &str,
    checkpoint_path: &Path,
    meta: &checkpoint::Meta,
    exported: &serde_json::Value,
) -> String {
    let input = meta.input;
    fill(
        MODULE_PY,
        &[
            (
                "None  # __EXPORTED__",
                format!("json.loads({})", py_literal(&exported.to_string())),
            ),
            ("None  # __SPEC__", py_literal(&meta.spec.to_string())),
            (
                "None  # __CHECKPOINT__",
                py_literal(&checkpoint_path.display().to_string()),
            ),
            ("None  # __DATA__", py_literal(&meta.data_source)),
            ("__STEM__", stem.to_string()),
            ("__EPOCHS__", meta.epochs.to_string()),
            ("__EPOCH__", meta.epoch.to_string()),
            ("__C__", input.c.to_string()),
            ("__H__", input.h.to_string()),
            ("__W__", input.w.to_string()),
        ],
    )
}

/// Write the module file, the weights and (with `sample > 0`) the sample. Returns the files
/// written, the module first. Nothing is written until every file is ready and every target is
/// free ([`files::Outputs`]); bad input (a checkpoint that is not ours, a module name Python
/// cannot import, a target export did not write) is marked as such.
pub fn pytorch(e: &ExportJob) -> Result<Vec<PathBuf>> {
    let stem = module_name(&e.out).map_err(bad_input)?;
    let (mut loaded, split) = open(e)?;
    let (meta, model) = (&loaded.meta, &loaded.model);
    let dag = model.net.export();
    // The module interprets nodes by position and reads inputs by index: they must agree.
    if let Some((i, _)) = dag
        .nodes
        .iter()
        .enumerate()
        .find(|(i, n)| n.inputs.iter().any(|&j| j >= *i))
    {
        bail!("node {i} of the DAG reads a node after it; the export needs nodes in topological order");
    }
    let input = meta.input;
    let exported = serde_json::json!({
        "dag": dag,
        "mean": meta.mean,
        "std": meta.std,
        "input": [input.c, input.h, input.w],
        "classes": model.net.classes(),
    });
    let text = module_text(&stem, &e.checkpoint, meta, &exported);
    let dir = e.out.parent().unwrap_or(Path::new(""));
    let mut out = files::Outputs::default();
    let mut info = HashMap::new();
    info.insert("format".to_string(), files::WEIGHTS_FORMAT.to_string());
    info.insert("spec".to_string(), meta.spec.to_string());
    out.add(
        dir.join(format!("{stem}.safetensors")),
        safetensors_bytes(&model_tensors(model), Some(info))?,
    );
    // The same tensors under torchvision's names, where torchvision builds this network.
    if let Some(twin) = torchvision::twin(&meta.spec) {
        let renamed = torchvision::tensors(model, &twin)?;
        let mut info = HashMap::new();
        info.insert(
            "format".to_string(),
            format!("torchvision {}", twin.constructor),
        );
        out.add(
            dir.join(format!("{stem}.torchvision.safetensors")),
            safetensors_bytes(&renamed, Some(info))?,
        );
    }
    if let Some(split) = split {
        let (path, sample) = sample_file(dir, &stem, &mut loaded, &split, e.sample)?;
        out.add(path, sample);
    }
    // The module last: a module file on disk always has its weights beside it.
    out.add(e.out.clone(), text.into_bytes());
    let mut written = out.write(&e.checkpoint)?;
    written.rotate_right(1);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_never_reads_a_replacement_again() {
        let t = "a __X__ b None  # __S__ c";
        let got = fill(
            t,
            &[
                ("__X__", "__S__".into()),
                ("None  # __S__", py_literal("\"\"\"\\\n")),
            ],
        );
        assert_eq!(got, "a __S__ b \"\\\"\\\"\\\"\\\\\\n\" c");
    }

    #[test]
    fn reserved_and_malformed_module_names_are_refused() {
        for bad in [
            "torch.py",
            "json.py",
            "import.py",
            "class.py",
            "9x.py",
            "a-b.py",
            "x.txt",
        ] {
            assert!(module_name(Path::new(bad)).is_err(), "{bad}");
        }
        assert_eq!(module_name(Path::new("dir/net_1.py")).unwrap(), "net_1");
    }
}
