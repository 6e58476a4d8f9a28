//! Experiments on trained networks (`study`): parameter efficiency over a grid of networks
//! ([`efficiency`]), connection usage of a trained concatenating network ([`weights`]), and
//! test-time lesions ([`lesion`]). The command-line front end is `cli::study`; everything here
//! writes to a folder and returns what it wrote, so notebooks and tests drive it too.

pub mod efficiency;
pub mod lesion;
pub mod weights;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use crate::data;
use crate::io::write_atomic;
use crate::model::Model;
use crate::plot::heatmap::{self, Labels, Panel};
use crate::plot::{self, Chart, Mark, Series};
use crate::train::{checkpoint, Engine};

/// A trained network read back from its checkpoint (bad files are bad input).
pub struct Loaded {
    /// Its description.
    pub meta: checkpoint::Meta,
    /// The network with the checkpoint's weights and statistics.
    pub model: Model<f32>,
}

/// Read a checkpoint written by `train`.
pub fn load(path: &Path) -> Result<Loaded> {
    (|| -> Result<Loaded> {
        let meta = checkpoint::load_meta(path)?;
        checkpoint::check_size(path, &meta)?;
        let mut model = Model::<f32>::new(&meta.spec, meta.input, 0)?;
        checkpoint::load_into(path, &mut model, None)?;
        Ok(Loaded { meta, model })
    })()
    .map_err(crate::error::bad_input)
}

/// The name a checkpoint's network is shown under.
fn network_name(meta: &checkpoint::Meta) -> String {
    let s = meta.spec.to_string();
    match s.find(" (") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `study weights`: the connection usage of `checkpoint` as `weights.json` and the heat map
/// `weights.png`/`.svg` in `out`. Returns the files written.
pub fn weights_report(checkpoint: &Path, out: &Path) -> Result<(weights::Usage, Vec<PathBuf>)> {
    let l = load(checkpoint)?;
    let blocks = weights::usage(&l.model).map_err(crate::error::bad_input)?;
    let usage = weights::Usage {
        checkpoint: checkpoint.display().to_string(),
        network: network_name(&l.meta),
        rule: weights::RULE.into(),
        blocks,
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("weights.json");
    write_atomic(&json, serde_json::to_string_pretty(&usage)?.as_bytes())?;
    let panels: Vec<Panel> = usage
        .blocks
        .iter()
        .map(|b| Panel {
            title: format!("{} ({} layers)", b.name, b.layers),
            matrix: b.matrix.clone(),
        })
        .collect();
    let labels = Labels {
        title: format!(
            "{}: mean |w| of each layer's first convolution per source (epoch {})",
            usage.network, l.meta.epoch
        ),
        x: "target layer ℓ".into(),
        y: "source s (0 = block input)".into(),
        scale: "mean |w| / block max".into(),
        first_col: 1,
    };
    heatmap::save(&panels, &labels, out, "weights")?;
    Ok((
        usage,
        vec![json, out.join("weights.png"), out.join("weights.svg")],
    ))
}

/// `study lesion` for one checkpoint: evaluate on its test data with layers removed.
pub fn lesion_one(
    checkpoint: &Path,
    sweep: lesion::Sweep,
    data_dir: Option<&Path>,
    mut progress: impl FnMut(usize, usize),
) -> Result<lesion::Lesion> {
    let Loaded { meta, mut model } = load(checkpoint)?;
    let dir = data_dir
        .map(Path::to_path_buf)
        .or_else(|| meta.data_dir.clone());
    let split = data::load(meta.dataset, dir.as_deref()).map_err(crate::error::bad_input)?;
    let test = split.test;
    if (test.c, test.h, test.w) != (meta.input.c, meta.input.h, meta.input.w) {
        return Err(crate::error::bad_input(anyhow::anyhow!(
            "the data's images are {}×{}×{} but the checkpoint's model takes {}",
            test.c,
            test.h,
            test.w,
            meta.input
        )));
    }
    let mut engine = Engine::Cpu;
    let (baseline, single, random) = lesion::sweep(
        &mut model,
        &mut engine,
        &test,
        &meta.mean,
        &meta.std,
        sweep,
        &mut progress,
    )?;
    Ok(lesion::Lesion {
        checkpoint: checkpoint.display().to_string(),
        network: network_name(&meta),
        data: split.source,
        images: sweep.limit.map_or(test.n, |l| l.min(test.n)),
        baseline_acc: baseline,
        single,
        random,
        rule: lesion::rule(&model),
        seed: sweep.seed,
    })
}

/// Write each lesion result as `lesion-<i>.json` (`lesion.json` for one) and the figures
/// `lesion_single` (accuracy drop per removed layer) and `lesion_random` (accuracy against
/// the number of layers removed, one line per network) in `out`.
pub fn lesion_report(results: &[lesion::Lesion], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let name = if results.len() == 1 {
            "lesion.json".to_string()
        } else {
            format!("lesion-{}.json", i + 1)
        };
        let p = out.join(name);
        write_atomic(&p, serde_json::to_string_pretty(r)?.as_bytes())?;
        written.push(p);
    }
    let label = |r: &lesion::Lesion| format!("{} ({} images)", r.network, r.images);
    let single = Chart {
        title: "Accuracy lost by removing one layer at test time".into(),
        x_label: "layer (blocks in order)".into(),
        y_label: "accuracy drop (percentage points)".into(),
        series: results
            .iter()
            .map(|r| {
                Series::new(
                    label(r),
                    r.single
                        .iter()
                        .enumerate()
                        .map(|(i, s)| ((i + 1) as f64, 100.0 * (r.baseline_acc - s.acc)))
                        .collect(),
                    Mark::LinePoints,
                )
            })
            .collect(),
    };
    plot::save(&single, out, "lesion_single")?;
    let random = Chart {
        title: "Test accuracy with k random layers removed (mean over draws)".into(),
        x_label: "layers removed k".into(),
        y_label: "test accuracy (%)".into(),
        series: results
            .iter()
            .map(|r| {
                let mut pts = vec![(0.0, 100.0 * r.baseline_acc)];
                pts.extend(r.random.iter().map(|k| {
                    (
                        k.k as f64,
                        100.0 * k.accs.iter().sum::<f64>() / k.accs.len().max(1) as f64,
                    )
                }));
                Series::new(label(r), pts, Mark::LinePoints)
            })
            .collect(),
    };
    plot::save(&random, out, "lesion_random")?;
    for stem in ["lesion_single", "lesion_random"] {
        written.push(out.join(format!("{stem}.png")));
        written.push(out.join(format!("{stem}.svg")));
    }
    Ok(written)
}
