//! Checkpoints: weights, batch-norm statistics and optimiser state as safetensors, plus a small
//! JSON of the spec, epoch and settings — each written atomically (temp file + rename).

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sparsenet_net::zoo::NetSpec;
use sparsenet_net::Shape;

use crate::data::{DatasetKind, Split};
use crate::io::write_atomic;
use crate::model::Model;
use crate::optim::{Config as OptConfig, Schedule, State};

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Format version.
    pub version: u32,
    /// The network spec (input shape included).
    pub spec: NetSpec,
    /// Input shape the model was built for.
    pub input: Shape,
    /// Dataset trained on.
    pub dataset: DatasetKind,
    /// Where the data came from.
    pub data_source: String,
    /// The `--data-dir` of the run, if any (evaluation's default).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The data's identity (location, counts, content hash); None in older checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::data::DataIdentity>,
    /// The run ([`crate::train::run_id`]) whose rows `metrics.jsonl` holds; None in older
    /// checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Epochs completed.
    pub epoch: usize,
    /// Total epochs planned.
    pub epochs: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Schedule.
    pub schedule: Schedule,
    /// Optimiser settings.
    pub optimizer: OptConfig,
    /// Optimiser steps taken.
    pub optimizer_steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// The run's seed; epoch `e` shuffles and augments with a stream derived from (seed, e),
    /// so it is the whole random state at an epoch boundary.
    pub seed: u64,
    /// Cap on steps per epoch, if any.
    pub max_steps: Option<usize>,
    /// Normalisation mean per channel.
    pub mean: Vec<f32>,
    /// Normalisation std per channel.
    pub std: Vec<f32>,
    /// Best test accuracy so far, and its epoch.
    pub best: Option<(f64, usize)>,
    /// Test accuracy of this checkpoint.
    pub test_acc: Option<f64>,
    /// Trainable parameters.
    pub params: u64,
    /// How a folder dataset was read (`--dataset folder`): evaluation reads it the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<crate::data::folder::FolderOptions>,
    /// A folder dataset's class names in label order: the data evaluated or resumed on must
    /// have the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// Paths of a checkpoint named `stem` in `dir`.
pub fn paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.safetensors")),
        dir.join(format!("{stem}.json")),
    )
}

/// f32 values as little-endian bytes (the safetensors layout).
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes (the safetensors layout) as f32 values: the inverse of [`f32_bytes`].
pub fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A tensor as a checkpoint stores it: name, shape, little-endian f32 bytes.
pub type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// The model's tensors under PyTorch's `state_dict` names: every parameter
/// (`block1.layer1.conv.weight`, …), then every batch norm's `running_mean` and `running_var`.
/// The checkpoint holds these and the optimiser state; an export holds these alone.
pub fn model_tensors(model: &Model<f32>) -> Vec<NamedTensor> {
    let mut named: Vec<NamedTensor> = Vec::new();
    for (p, v) in model.params.iter().zip(&model.values) {
        named.push((p.name.clone(), p.shape.clone(), f32_bytes(v)));
    }
    for (i, st) in model.bn.iter().enumerate() {
        if let Some(st) = st {
            let name = &model.net.graph[petgraph::graph::NodeIndex::new(i)].name;
            named.push((
                format!("{name}.running_mean"),
                vec![st.mean.len()],
                f32_bytes(&st.mean),
            ));
            named.push((
                format!("{name}.running_var"),
                vec![st.var.len()],
                f32_bytes(&st.var),
            ));
        }
    }
    named
}

/// Named f32 tensors and string metadata as the bytes of a safetensors file, its header in a
/// fixed order (the same tensors give the same bytes).
pub fn safetensors_bytes(
    named: &[NamedTensor],
    info: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    sorted_header(safetensors::serialize(views, &info)?)
}

/// Save the model, its BN statistics, its pruning masks (`mask.<param>`, 1 kept and 0 pruned,
/// for the pruned parameters only) and the optimiser state.
pub fn save(dir: &Path, stem: &str, model: &Model<f32>, opt: &State, meta: &Meta) -> Result<()> {
    let mut named = model_tensors(model);
    for (p, m) in model.params.iter().zip(&model.masks) {
        if let Some(m) = m {
            let v: Vec<f32> = m.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
            named.push((format!("mask.{}", p.name), p.shape.clone(), f32_bytes(&v)));
        }
    }
    for (k, (p, m)) in model.params.iter().zip(&opt.m).enumerate() {
        named.push((
            format!("optimizer.m.{}", p.name),
            vec![m.len()],
            f32_bytes(m),
        ));
        if let Some(v) = opt.v.get(k) {
            named.push((
                format!("optimizer.v.{}", p.name),
                vec![v.len()],
                f32_bytes(v),
            ));
        }
    }
    // The description travels inside the weights file, so the one atomic rename commits both;
    // the JSON beside it is a readable copy for people and tools.
    let meta_json = serde_json::to_string(meta)?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "sparsenet".to_string());
    info.insert(META_KEY.to_string(), meta_json);
    let bytes = safetensors_bytes(&named, Some(info))?;
    let (st, js) = paths(dir, stem);
    write_atomic(&st, &bytes)?;
    write_atomic(&js, serde_json::to_string_pretty(meta)?.as_bytes())?;
    Ok(())
}

/// The checkpoint format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Metadata key of the embedded description.
pub const META_KEY: &str = "sparsenet_meta";

/// The largest checkpoint file read (64 GiB: far above any network the zoo builds within its
/// limits, and a bound on what a file claiming more can make us allocate).
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 30;

/// A checkpoint's bytes: a regular file of at most [`MAX_CHECKPOINT_BYTES`].
fn read_checkpoint(st: &Path) -> Result<Vec<u8>> {
    crate::io::read_regular(st, "checkpoint", MAX_CHECKPOINT_BYTES)
}

impl Meta {
    /// Check every field a reader relies on, naming the first that is wrong: the normalisation
    /// has one finite mean and one positive finite std per input channel, the epochs are
    /// consistent (1 ≤ epoch ≤ epochs), and the recipe's numbers are usable.
    pub fn validate(&self, st: &Path) -> Result<()> {
        let c = self.input.c;
        let bad = |what: String| Err(anyhow::anyhow!("{}: {what}", st.display()));
        if self.mean.len() != c || self.std.len() != c {
            return bad(format!(
                "the description's normalisation has {} means and {} stds, the input has {c} channels",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("the description's mean {m} is not a finite number"));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!(
                "the description's std {s} is not a positive finite number"
            ));
        }
        if self.epochs == 0 || self.epoch == 0 || self.epoch > self.epochs {
            return bad(format!(
                "the description says epoch {} of {}: accepted 1 ≤ epoch ≤ epochs",
                self.epoch, self.epochs
            ));
        }
        if let Some((acc, ep)) = self.best {
            if !(0.0..=1.0).contains(&acc) || ep == 0 || ep > self.epoch {
                return bad(format!(
                    "the description's best ({acc} at epoch {ep}) is not an accuracy in [0, 1] at an epoch up to {}",
                    self.epoch
                ));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) || self.batch_size == 0 {
            return bad(format!(
                "the description's learning rate {} or batch size {} is not usable",
                self.lr, self.batch_size
            ));
        }
        Ok(())
    }
}

/// Read the description embedded in a checkpoint's weights file, checked ([`Meta::validate`]).
pub fn load_meta(st: &Path) -> Result<Meta> {
    let bytes = read_checkpoint(st)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: corrupt safetensors file ({e})", st.display()))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .with_context(|| {
            format!(
                "{}: not a sparsenet checkpoint (no {META_KEY} metadata)",
                st.display()
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{}: unreadable checkpoint description", st.display()))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v > FORMAT_VERSION as u64 => bail!(
            "{}: checkpoint format version {v} is newer than this build reads (up to {FORMAT_VERSION}); use a newer sparsenet",
            st.display()
        ),
        Some(_) => {}
        None => bail!("{}: checkpoint description has no format version", st.display()),
    }
    let meta: Meta = serde_json::from_value(value)
        .with_context(|| format!("{}: unreadable checkpoint description", st.display()))?;
    meta.validate(st)?;
    Ok(meta)
}

/// Check, before building anything, that the network a checkpoint describes is one whose
/// weights the file can hold: its spec builds (within the net crate's limits) and its exact
/// parameter count, 4 bytes each, fits in the file. A description edited to claim a huge
/// network fails here instead of allocating it.
pub fn check_size(st: &Path, meta: &Meta) -> Result<()> {
    let mut spec = meta.spec.clone();
    spec.input = Some(meta.input);
    let (_, count) = sparsenet_net::zoo::build_and_count(&spec).map_err(|e| {
        anyhow::anyhow!(
            "{}: the described network does not build: {e}",
            st.display()
        )
    })?;
    let len = std::fs::metadata(st)
        .with_context(|| format!("cannot read checkpoint {}", st.display()))?
        .len();
    if count.params.saturating_mul(4) > len {
        bail!(
            "{}: describes a network of {} parameters ({} bytes of weights) but the file has {len} bytes",
            st.display(),
            count.params,
            count.params.saturating_mul(4)
        );
    }
    Ok(())
}

/// Load weights (and BN statistics, and optimiser state when `opt` is given) into a model built
/// from the checkpoint's spec, checking every name and size.
pub fn load_into(st: &Path, model: &mut Model<f32>, opt: Option<&mut State>) -> Result<()> {
    load_into_named(st, model, opt, &|n: &str| Some(n.to_string()))
}

/// [`load_into`] from a file whose tensors are named by `name_in_file` (our name → the file's;
/// None: the map does not know the tensor, an error naming it). `num_batches_tracked`, which
/// PyTorch's batch norms keep and we do not, is ignored.
pub fn load_into_named(
    st: &Path,
    model: &mut Model<f32>,
    opt: Option<&mut State>,
    name_in_file: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let bytes = read_checkpoint(st)?;
    let t = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: corrupt safetensors file ({e})", st.display()))?;
    // Every tensor has the shape the network built from the description gives it, and only
    // finite values (a trained network never holds NaN or ∞: a non-finite loss stops
    // training before its update).
    let file_name = |ours: &str| -> Result<String> {
        name_in_file(ours).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the key map has no name for tensor {ours}",
                st.display()
            )
        })
    };
    let get = |ours: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let name = &file_name(ours)?;
        let v = t.tensor(name).map_err(|_| {
            anyhow::anyhow!(
                "{}: missing tensor {name} (checkpoint of another model?)",
                st.display()
            )
        })?;
        let len: usize = shape.iter().product();
        if v.dtype() != Dtype::F32 || v.data().len() != 4 * len {
            bail!(
                "{}: tensor {name} has {} bytes, the model needs {len} f32 values",
                st.display(),
                v.data().len()
            );
        }
        if v.shape() != shape {
            bail!(
                "{}: tensor {name} has shape {:?}, the network built from the description has {shape:?}",
                st.display(),
                v.shape()
            );
        }
        let values = f32_values(v.data());
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            bail!(
                "{}: tensor {name} holds {} at index {i}: not a trained network's value",
                st.display(),
                values[i]
            );
        }
        Ok(values)
    };
    // Tensors the network does not have: named, the first in sorted order, before anything is
    // loaded (a missing one or one of another shape is named by `get` below).
    // In the network's order, so that the first one missing is named.
    let mut wanted: Vec<String> = Vec::new();
    for p in &model.params {
        wanted.push(file_name(&p.name)?);
    }
    for (i, s) in model.bn.iter().enumerate() {
        if s.is_some() {
            let name = &model.net.graph[petgraph::graph::NodeIndex::new(i)].name;
            wanted.push(file_name(&format!("{name}.running_mean"))?);
            wanted.push(file_name(&format!("{name}.running_var"))?);
        }
    }
    let stored: std::collections::HashSet<&str> =
        t.names().into_iter().map(String::as_str).collect();
    if let Some(missing) = wanted.iter().find(|w| !stored.contains(w.as_str())) {
        bail!(
            "{}: missing tensor {missing} (checkpoint of another model?)",
            st.display()
        );
    }
    let expected: std::collections::HashSet<String> = wanted.into_iter().collect();
    let mut extra: Vec<&String> = t
        .names()
        .into_iter()
        .filter(|n| {
            !n.starts_with("optimizer.")
                && !n.starts_with("mask.")
                && !n.ends_with(".num_batches_tracked")
                && !expected.contains(*n)
        })
        .collect();
    extra.sort();
    if let Some(first) = extra.first() {
        bail!(
            "{}: tensor {first} is not in the network ({} such tensors; checkpoint of another model?)",
            st.display(),
            extra.len()
        );
    }
    for k in 0..model.params.len() {
        let shape = model.params[k].shape.clone();
        let v = get(&model.params[k].name, &shape)?;
        model.values[k] = v;
    }
    for i in 0..model.bn.len() {
        if let Some(s) = model.bn[i].as_mut() {
            let name = model.net.graph[petgraph::graph::NodeIndex::new(i)]
                .name
                .clone();
            s.mean = get(&format!("{name}.running_mean"), &[s.mean.len()])?;
            s.var = get(&format!("{name}.running_var"), &[s.var.len()])?;
            if let Some(v) = s.var.iter().find(|v| **v < 0.0) {
                bail!(
                    "{}: tensor {name}.running_var holds the negative variance {v}",
                    st.display()
                );
            }
        }
    }
    // Pruning masks: every `mask.*` tensor names a parameter of this network, holds only 0 and
    // 1, and the weights it clears are zero (else it is the mask of other weights).
    let mut masks = vec![None; model.params.len()];
    for name in t.names() {
        let Some(param) = name.strip_prefix("mask.") else {
            continue;
        };
        let Some(k) = model.params.iter().position(|p| p.name == param) else {
            bail!(
                "{}: {name} masks no parameter of this network (checkpoint of another model?)",
                st.display()
            );
        };
        let v = get(name, &model.params[k].shape.clone())?;
        if let Some(bad) = v.iter().find(|x| **x != 0.0 && **x != 1.0) {
            bail!(
                "{}: {name} holds {bad}: a mask holds 0 (pruned) and 1 (kept) only",
                st.display()
            );
        }
        let keep: Vec<bool> = v.iter().map(|x| *x == 1.0).collect();
        if let Some(i) = (0..keep.len()).find(|&i| !keep[i] && model.values[k][i] != 0.0) {
            bail!(
                "{}: {name} prunes element {i} of {param}, which is {} and not 0: the mask of other weights",
                st.display(),
                model.values[k][i]
            );
        }
        masks[k] = Some(keep);
    }
    model.masks = masks;
    if let Some(o) = opt {
        for k in 0..model.params.len() {
            let name = &model.params[k].name;
            o.m[k] = get(&format!("optimizer.m.{name}"), &[o.m[k].len()])?;
            if k < o.v.len() {
                o.v[k] = get(&format!("optimizer.v.{name}"), &[o.v[k].len()])?;
            }
        }
    }
    Ok(())
}

/// The safetensors file `bytes` with its JSON header's keys in sorted order. safetensors writes
/// the metadata map in hash order, which differs from process to process, while the same run
/// must give the same bytes. The JSON is the same, reordered, so it has the same length and
/// every data offset stays valid.
fn sorted_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .filter(|&n| 8 + n <= bytes.len())
        .context("safetensors wrote no header")?;
    // serde_json's map is ordered by key (no `preserve_order` feature in this build).
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len])?;
    let sorted = serde_json::to_string(&header)?;
    anyhow::ensure!(
        sorted.len() <= len,
        "the sorted safetensors header is longer than the original"
    );
    let body = &mut bytes[8..8 + len];
    body[..sorted.len()].copy_from_slice(sorted.as_bytes());
    body[sorted.len()..].fill(b' ');
    Ok(bytes)
}
/// A trained network read back from its checkpoint.
pub struct Loaded {
    /// Its description.
    pub meta: Meta,
    /// The network with the checkpoint's weights and statistics.
    pub model: Model<f32>,
}

/// Read a checkpoint written by `train` into a network (every error is bad input; one that
/// could not be read at all keeps its I/O error).
pub fn open(path: &Path) -> Result<Loaded> {
    (|| -> Result<Loaded> {
        let meta = load_meta(path)?;
        check_size(path, &meta)?;
        let mut model = Model::<f32>::new(&meta.spec, meta.input, 0)?;
        load_into(path, &mut model, None)?;
        Ok(Loaded { meta, model })
    })()
    .map_err(crate::error::bad_input)
}

/// A folder dataset must name its classes as the checkpoint does (label `k` is the same class);
/// the first difference is named.
pub fn check_classes(meta: &Meta, split: &Split) -> Result<()> {
    if let (Some(want), Some(have)) = (&meta.classes, split.test.class_names()) {
        if want.as_slice() != have {
            bail!(
                "the class folders of {} differ from the checkpoint's classes: {} (the checkpoint's: {})",
                split.location,
                crate::data::folder::first_difference(want, have),
                want.join(", ")
            );
        }
    }
    Ok(())
}

/// Where a checkpoint's data comes from: `data_dir` (or the copy `data` names) when given, else
/// what it was trained on (the folder its description records, or the embedded subset).
pub fn data_source(
    meta: &Meta,
    data_dir: Option<&Path>,
    data: crate::data::DataChoice,
) -> (Option<PathBuf>, crate::data::DataChoice) {
    use crate::data::DataChoice;
    if data_dir.is_some() || data != DataChoice::Auto {
        (data_dir.map(Path::to_path_buf), data)
    } else if meta.data_dir.is_some() {
        (meta.data_dir.clone(), DataChoice::Auto)
    } else if meta
        .data
        .as_ref()
        .is_some_and(|d| d.location == crate::data::EMBEDDED)
    {
        (None, DataChoice::Embedded)
    } else {
        (None, DataChoice::Auto)
    }
}

/// [`open`], and the data it is evaluated on: from `data_dir` (or the copy `data` names), else
/// the data it was trained on (the folder its description records, or the embedded subset),
/// checked to have the images the network takes (what `evaluate` and `study lesion` read).
pub fn open_for_eval(
    path: &Path,
    data_dir: Option<&Path>,
    data: crate::data::DataChoice,
) -> Result<(Loaded, Split)> {
    use crate::data::DataChoice;
    let loaded = open(path)?;
    let meta = &loaded.meta;
    let given = data_dir.is_some() || data != DataChoice::Auto;
    let (dir, choice) = data_source(meta, data_dir, data);
    let split = match (
        crate::data::load_choice(meta.dataset, dir.as_deref(), choice, meta.folder.as_ref()),
        &dir,
    ) {
        (Ok(s), _) => s,
        // Say where a folder nobody gave on this command line came from.
        (Err(e), Some(d)) if !given => {
            return Err(crate::error::bad_input(e.context(format!(
                "the data folder {} recorded in {} (give --data-dir to read another)",
                d.display(),
                path.display()
            ))))
        }
        (Err(e), _) => return Err(crate::error::bad_input(e)),
    };
    let (c, h, w) = split.test.dims();
    if (c, h, w) != (meta.input.c, meta.input.h, meta.input.w) {
        return Err(crate::error::bad_input(anyhow::anyhow!(
            "the data's images are {c}×{h}×{w} but the checkpoint's model takes {}",
            meta.input
        )));
    }
    check_classes(meta, &split).map_err(crate::error::bad_input)?;
    Ok((loaded, split))
}
