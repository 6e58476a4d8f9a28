//! Trained networks out of the tool. [`pytorch`]: a self-contained PyTorch module file for a
//! checkpoint's network and its weights under the checkpoint's names; [`onnx`]: an ONNX model
//! ([`onnx::model_bytes`]). Each comes with a sample of test images and our logits, so the
//! export can be checked by running it (`python3 net.py --check …`, `scripts/check-onnx.py`).

pub mod onnx;
pub mod torchvision;

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::{self, BatchPlan, DataChoice};
use crate::error::bad_input;
use crate::io::write_atomic;
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

/// Write `stem.sample.safetensors` in `dir`: the first `n` test images as the network takes
/// them (normalised), their labels, and our evaluation-mode logits.
fn write_sample(
    dir: &Path,
    stem: &str,
    loaded: &mut checkpoint::Loaded,
    split: &data::Split,
    n: usize,
) -> Result<PathBuf> {
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
    let sample = dir.join(format!("{stem}.sample.safetensors"));
    write_atomic(&sample, &safetensors_bytes(&named, Some(info))?)?;
    Ok(sample)
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
    let mut written = Vec::new();
    if let Some(split) = split {
        written.push(write_sample(dir, &stem, &mut loaded, &split, e.sample)?);
    }
    write_atomic(&e.out, &bytes)?;
    written.insert(0, e.out.clone());
    Ok(written)
}

/// A Python module name: letters, digits and `_`, not starting with a digit.
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
        (Some("py"), Some(stem)) if ok(stem) => Ok(stem.to_string()),
        _ => bail!(
            "--out {}: give a Python module file, NAME.py with NAME of letters, digits and _ (e.g. sparsenet_40_24.py)",
            out.display()
        ),
    }
}

/// Write the module file, the weights and (with `sample > 0`) the sample. Returns the files
/// written, in that order. Every file is written atomically; bad input (a checkpoint that is
/// not ours, a module name Python cannot import) is marked as such.
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
    let classes = model.net.classes();
    let input = meta.input;
    let exported = serde_json::json!({
        "dag": dag,
        "mean": meta.mean,
        "std": meta.std,
        "input": [input.c, input.h, input.w],
        "classes": classes,
    });
    const MARK: &str = "None  # __EXPORTED__";
    debug_assert_eq!(MODULE_PY.matches(MARK).count(), 1);
    let text = MODULE_PY
        // A JSON string literal is a Python string literal too.
        .replace(
            MARK,
            &format!(
                "json.loads({})",
                serde_json::to_string(&exported.to_string())?
            ),
        )
        .replace(
            "__TITLE__",
            &format!("{} — exported from {}", meta.spec, e.checkpoint.display()),
        )
        .replace("__STEM__", &stem)
        .replace("__SPEC__", &meta.spec.to_string())
        .replace("__DATA__", &meta.data_source)
        .replace("__EPOCHS__", &meta.epochs.to_string())
        .replace("__EPOCH__", &meta.epoch.to_string())
        .replace("__C__", &input.c.to_string())
        .replace("__H__", &input.h.to_string())
        .replace("__W__", &input.w.to_string());
    let dir = e.out.parent().unwrap_or(Path::new(""));
    let weights = dir.join(format!("{stem}.safetensors"));
    let mut info = HashMap::new();
    info.insert("format".to_string(), "sparsenet-export".to_string());
    info.insert("spec".to_string(), meta.spec.to_string());
    let mut written = Vec::new();
    write_atomic(
        &weights,
        &safetensors_bytes(&model_tensors(model), Some(info))?,
    )?;
    written.push(weights);
    // The same tensors under torchvision's names, where torchvision builds this network.
    if let Some(twin) = torchvision::twin(&meta.spec) {
        let renamed = torchvision::tensors(model, &twin)?;
        let mut info = HashMap::new();
        info.insert(
            "format".to_string(),
            format!("torchvision {}", twin.constructor),
        );
        let tv = dir.join(format!("{stem}.torchvision.safetensors"));
        write_atomic(&tv, &safetensors_bytes(&renamed, Some(info))?)?;
        written.push(tv);
    }
    if let Some(split) = split {
        written.push(write_sample(dir, &stem, &mut loaded, &split, e.sample)?);
    }
    // The module last: a module file on disk always has its weights beside it.
    write_atomic(&e.out, text.as_bytes())?;
    written.insert(0, e.out.clone());
    Ok(written)
}
