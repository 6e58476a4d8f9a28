//! `study prune`: magnitude pruning as Han et al. do it ("Learning both Weights and Connections
//! for Efficient Neural Networks", NIPS 2015), set against sparsity by design.
//!
//! Each iteration removes, in every prunable layer (convolution and linear weights; biases and
//! batch norms are kept), the weights whose magnitude is below the layer's threshold — a
//! quality parameter `q` times the standard deviation of the layer's surviving weights — then
//! retrains the survivors (not re-initialised) at a reduced learning rate, the pruned weights
//! held at zero ([`crate::optim::update`] leaves them and their state alone). With a global
//! target (`--keep` or `--rate`) one `q` for all layers is found by bisection so that iteration
//! `i` of `n` keeps `keep^(i/n)` of the prunable weights; with `--quality` it is given.
//!
//! Where the network has dropout before a linear layer, the retraining's drop probability is
//! adjusted as the paper does: `D_r = D_o·√(C_r/C_o)`, C the kept connections of the layers the
//! dropout layers feed.
//!
//! One iteration costs one evaluation pass (the accuracy right after pruning) and the
//! retraining; the retrained accuracy is the retraining run's own last evaluation.

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sparsenet_net::count::node_count;
use sparsenet_net::op::{Op, Prob};

use crate::error::bad_input;
use crate::io::write_atomic;
use crate::model::Model;
use crate::optim::{Schedule, State};
use crate::plot::{self, Chart, Mark, Series};
use crate::train::{self, checkpoint, evaluate, Engine, TrainOptions};

/// Which layers are pruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layers {
    /// Convolution weights only.
    Conv,
    /// Fully connected (linear) weights only.
    Fc,
    /// Both.
    Both,
}

crate::choice_table!(Layers {
    Conv => "conv", "Convolution weights only",
    Fc => "fc", "Fully connected (linear) weights only",
    Both => "both", "Both",
});

/// How much each iteration prunes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Keep this fraction of the prunable weights after the last iteration.
    Keep(f64),
    /// Prune with this quality parameter in every layer and iteration.
    Quality(f64),
    /// Keep as many parameters as this network has (sparsity by pruning against sparsity by
    /// design at the same count): its words, and its parameters at the checkpoint's input
    /// and classes (filled in by [`run`]).
    Match {
        /// The network, in `train`'s words.
        words: String,
        /// Its trainable parameters.
        params: u64,
    },
    /// A quality parameter per layer (by parameter name, as `kept_per_layer` names them);
    /// layers not named are not pruned.
    PerLayer(BTreeMap<String, f64>),
    /// The paper's sensitivity analysis picks each layer's target: every layer pruned alone
    /// to each of [`SCAN_KEEP`], and the smallest fraction whose accuracy stays within
    /// `tolerance` of the trained network's is that layer's final kept fraction.
    Sensitivity {
        /// Largest accuracy loss accepted (a fraction: 0.01 is one point).
        tolerance: f64,
    },
}

/// The kept fractions the sensitivity scan tries in each layer.
pub const SCAN_KEEP: [f64; 6] = [0.9, 0.75, 0.5, 0.25, 0.1, 0.05];

/// One layer's sensitivity (the paper's Fig. 6): accuracy with this layer alone pruned.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sensitivity {
    /// The layer's parameter name.
    pub layer: String,
    /// (kept fraction, test accuracy) at each of [`SCAN_KEEP`].
    pub points: Vec<(f64, f64)>,
    /// The kept fraction chosen (1: the layer is too sensitive to prune within the tolerance).
    pub picked: f64,
}

/// What `study prune` is asked to do.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// The trained checkpoint.
    pub checkpoint: PathBuf,
    /// With [`Rule::Match`]: the network whose count to reach.
    pub matched: Option<sparsenet_net::zoo::NetSpec>,
    /// The target or the quality parameter.
    pub rule: Rule,
    /// Prune–retrain iterations.
    pub iterations: usize,
    /// Which layers.
    pub layers: Layers,
    /// Retraining epochs per iteration (0: prune only).
    pub retrain_epochs: usize,
    /// The retraining's learning rate as a fraction of the checkpoint's (the paper: 1/10).
    pub lr_scale: f32,
    /// Output folder.
    pub out: PathBuf,
    /// Data folder (default: the checkpoint's).
    pub data_dir: Option<PathBuf>,
    /// Test images per evaluation (all when None).
    pub max_test: Option<usize>,
    /// Steps per retraining epoch (all when None).
    pub max_steps: Option<usize>,
    /// Networks to compare with, trained otherwise (a SparseNet trained directly): each is
    /// evaluated on the same test images and drawn beside the pruned network.
    pub against: Vec<PathBuf>,
    /// Replace a prune run of other options in `out` instead of refusing.
    pub overwrite: bool,
}

/// The file in a prune folder that records which request it holds.
pub const REQUEST_FILE: &str = "prune-request.json";

/// The lock a prune run holds on its folder.
const PRUNE_LOCK: &str = ".prune.lock";

/// The identity of a prune request: the checkpoint's bytes and every option that changes the
/// pruned network or its records (`--against` only adds evaluations and is left out). The first
/// 16 hex digits of a SHA-256, as a study's grid hash.
fn request(o: &PruneOptions) -> Result<serde_json::Value> {
    use sha2::Digest;
    let bytes = crate::io::read_regular(
        &o.checkpoint,
        "checkpoint",
        checkpoint::MAX_CHECKPOINT_BYTES,
    )?;
    let options = serde_json::json!({
        "checkpoint_sha256": crate::dist::store::hex(&sha2::Sha256::digest(&bytes)),
        "rule": o.rule,
        "iterations": o.iterations,
        "layers": o.layers,
        "retrain_epochs": o.retrain_epochs,
        "lr_scale": o.lr_scale,
        "data_dir": o.data_dir.as_ref().map(|d| d.display().to_string()),
        "max_test": o.max_test,
        "max_steps": o.max_steps,
    });
    let hash = crate::dist::store::hex(&sha2::Sha256::digest(options.to_string().as_bytes())[..8]);
    Ok(serde_json::json!({
        "hash": hash,
        "checkpoint": o.checkpoint.display().to_string(),
        "options": options,
    }))
}

/// Whether `name` is a file or folder `study prune` writes in its folder.
fn prune_product(name: &str) -> bool {
    name == "prune.json"
        || name == REQUEST_FILE
        || name.starts_with("pruned")
        || name.starts_with("retrain-")
        || name.starts_with("prune_")
}

/// Claim `o.out` for this request: a folder holding the same request resumes; one holding
/// another (or a prune run without a record) is refused, or cleared with `overwrite`.
fn claim_folder(o: &PruneOptions) -> Result<()> {
    let mine = request(o)?;
    let path = o.out.join(REQUEST_FILE);
    let there = match std::fs::symlink_metadata(&path) {
        Ok(_) => {
            let bytes = crate::io::read_regular(&path, "prune request", 1 << 20)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                bad_input(anyhow::anyhow!(
                    "{}: not a prune request ({e})",
                    path.display()
                ))
            })?;
            Some(v["hash"].as_str().unwrap_or("?").to_string())
        }
        Err(_) => None,
    };
    let products: Vec<PathBuf> = std::fs::read_dir(&o.out)
        .with_context(|| format!("cannot read {}", o.out.display()))?
        .flatten()
        .filter(|e| prune_product(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    let conflict = match &there {
        Some(h) if h == mine["hash"].as_str().unwrap_or("") => None,
        Some(h) => Some(format!(
            "a prune run of other options (request {h}, this one {})",
            mine["hash"].as_str().unwrap_or("?")
        )),
        None if products.is_empty() => None,
        None => Some("a prune run without a request record (an older version's)".to_string()),
    };
    if let Some(what) = conflict {
        if !o.overwrite {
            return Err(bad_input(anyhow::anyhow!(
                "{} holds {what}: rerun with the same options to resume it, or give another --out, or --overwrite to replace it",
                o.out.display()
            )));
        }
        for p in products {
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    write_atomic(&path, serde_json::to_string_pretty(&mine)?.as_bytes())
}

/// A network compared with the pruned one.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Against {
    /// Its checkpoint.
    pub checkpoint: String,
    /// The network.
    pub network: String,
    /// Its trainable parameters.
    pub params: u64,
    /// Its test accuracy on the same images.
    pub acc: f64,
}

/// One iteration's record.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Iteration {
    /// 1-based.
    pub iteration: usize,
    /// The quality parameter used, when one serves every layer.
    pub quality: Option<f64>,
    /// The quality parameter of each pruned layer.
    pub quality_per_layer: BTreeMap<String, f64>,
    /// Fraction of the prunable weights kept.
    pub kept: f64,
    /// Fraction kept per pruned layer (by parameter name).
    pub kept_per_layer: BTreeMap<String, f64>,
    /// Nonzero parameters of the whole network.
    pub params_nonzero: u64,
    /// FLOPs per image that remain (a pruned weight costs nothing).
    pub flops_remaining: u64,
    /// Test accuracy right after pruning.
    pub acc_pruned: f64,
    /// Test accuracy after retraining (None without retraining).
    pub acc_retrained: Option<f64>,
    /// The retraining's drop probability, where the network has dropout.
    pub dropout: Option<f64>,
    /// Seconds spent choosing the threshold and masking (the pruning proper).
    pub seconds_prune: f64,
    /// Seconds of the evaluation after pruning.
    pub seconds_eval: f64,
    /// Seconds of the retraining (its own evaluations included).
    pub seconds_retrain: f64,
}

/// What `study prune` writes (`prune.json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PruneRecord {
    /// The checkpoint pruned.
    pub checkpoint: String,
    /// The network.
    pub network: String,
    /// The test data.
    pub data: String,
    /// Test images per evaluation.
    pub images: usize,
    /// The trained network's test accuracy.
    pub baseline_acc: f64,
    /// Trainable parameters of the dense network.
    pub params: u64,
    /// Prunable weights (the layers pruned).
    pub prunable: u64,
    /// FLOPs per image of the dense network.
    pub flops: u64,
    /// The target or quality parameter.
    pub target: Rule,
    /// Which layers were pruned.
    pub layers: Layers,
    /// Retraining epochs per iteration and learning rate.
    pub retrain_epochs: usize,
    /// The retraining's learning rate.
    pub retrain_lr: f32,
    /// The pruned layers' parameter names in network order.
    pub layer_order: Vec<String>,
    /// The networks compared with (`--against`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<Against>,
    /// The sensitivity scan, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<Sensitivity>,
    /// Every iteration.
    pub iterations: Vec<Iteration>,
    /// The pruning rule, in words.
    pub rule: String,
}

/// The prunable parameters of `model`: (parameter index, node index) of every convolution and
/// linear weight that `layers` names.
pub fn prunable(model: &Model<f32>, layers: Layers) -> Vec<(usize, usize)> {
    model
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name.ends_with(".weight"))
        .filter_map(|(k, p)| {
            let op = &model.net.graph[petgraph::graph::NodeIndex::new(p.node)].op;
            let take = match op {
                Op::Conv { .. } => layers != Layers::Fc,
                Op::Linear { .. } => layers != Layers::Conv,
                _ => false,
            };
            take.then_some((k, p.node))
        })
        .collect()
}

/// Mean and standard deviation of the surviving weights of parameter `k`.
fn surviving_std(model: &Model<f32>, k: usize) -> f64 {
    let v = &model.values[k];
    let mask = model.masks.get(k).and_then(Option::as_ref);
    let alive = |i: usize| mask.is_none_or(|m| m[i]);
    let (mut n, mut sum, mut sq) = (0usize, 0f64, 0f64);
    for (i, &w) in v.iter().enumerate() {
        if alive(i) {
            n += 1;
            sum += w as f64;
            sq += (w as f64) * (w as f64);
        }
    }
    if n < 2 {
        return 0.0;
    }
    let mean = sum / n as f64;
    ((sq / n as f64 - mean * mean).max(0.0)).sqrt()
}

/// The masks quality `q` gives: a surviving weight stays when `|w| ≥ q·σ` of its layer.
pub fn masks_for(model: &Model<f32>, layers: &[(usize, usize)], q: f64) -> Vec<(usize, Vec<bool>)> {
    layers
        .iter()
        .map(|&(k, _)| {
            let t = q * surviving_std(model, k);
            let mask = model.masks.get(k).and_then(Option::as_ref);
            let keep = model.values[k]
                .iter()
                .enumerate()
                .map(|(i, &w)| mask.is_none_or(|m| m[i]) && (w as f64).abs() >= t)
                .collect();
            (k, keep)
        })
        .collect()
}

fn kept_of(masks: &[(usize, Vec<bool>)]) -> (u64, u64) {
    masks.iter().fold((0, 0), |(kept, all), (_, m)| {
        (
            kept + m.iter().filter(|&&b| b).count() as u64,
            all + m.len() as u64,
        )
    })
}

/// The quality parameter whose masks keep `target` of the prunable weights: every surviving
/// weight's `|w|/σ` of its layer, and the value that many of them reach (one selection, no
/// search; ties may keep a few more).
pub fn quality_for(model: &Model<f32>, layers: &[(usize, usize)], target: f64) -> f64 {
    let mut ratios: Vec<f32> = Vec::new();
    let mut all = 0usize;
    for &(k, _) in layers {
        let s = surviving_std(model, k);
        let mask = model.masks.get(k).and_then(Option::as_ref);
        all += model.values[k].len();
        for (i, &w) in model.values[k].iter().enumerate() {
            if mask.is_none_or(|m| m[i]) {
                ratios.push(if s > 0.0 {
                    (w.abs() as f64 / s) as f32
                } else {
                    0.0
                });
            }
        }
    }
    let want = ((target * all as f64).round() as usize).clamp(1, ratios.len().max(1));
    if ratios.len() <= want {
        return 0.0;
    }
    // The want-th largest ratio: weights at or above it survive.
    let (_, q, _) = ratios.select_nth_unstable_by(want - 1, |a, b| b.total_cmp(a));
    // Back to f64 the way masks_for compares (|w| ≥ q·σ), a hair low so the boundary weight
    // itself survives the f32 → f64 rounding.
    *q as f64 * (1.0 - 1e-6)
}

/// Apply masks: pruned weights set to zero, the masks kept in the model. (The retraining
/// starts from fresh optimiser state, zero everywhere, so no state needs clearing.)
pub fn apply(model: &mut Model<f32>, masks: Vec<(usize, Vec<bool>)>) {
    if model.masks.len() < model.params.len() {
        model.masks.resize(model.params.len(), None);
    }
    for (k, keep) in masks {
        for (w, &kept) in model.values[k].iter_mut().zip(&keep) {
            if !kept {
                *w = 0.0;
            }
        }
        model.masks[k] = Some(keep);
    }
}

/// The index of node `node`'s weight parameter (a convolution's or linear layer's), if any.
fn weight_of(model: &Model<f32>, node: usize) -> Option<usize> {
    model
        .params
        .iter()
        .position(|p| p.node == node && p.name.ends_with(".weight"))
}

/// Elements of parameter `k` kept (all of them when it has no mask).
fn kept_elements(model: &Model<f32>, k: usize) -> usize {
    match model.masks.get(k).and_then(Option::as_ref) {
        Some(m) => m.iter().filter(|&&b| b).count(),
        None => model.values[k].len(),
    }
}

/// FLOPs per image that remain: each convolution's and linear layer's multiply-adds scale with
/// the fraction of its weight kept; everything else costs what it did.
pub fn flops_remaining(model: &Model<f32>) -> u64 {
    let mut macs = 0f64;
    let mut bn = 0u64;
    for n in model.net.graph.node_indices() {
        let node = &model.net.graph[n];
        let c = node_count(node);
        let kept = weight_of(model, n.index()).map_or(1.0, |k| {
            kept_elements(model, k) as f64 / model.values[k].len().max(1) as f64
        });
        macs += c.macs as f64 * kept;
        bn += c.bn_elements;
    }
    (2.0 * macs).round() as u64 + 2 * bn
}

/// The dense network's FLOPs per image at the model's input (the zoo's count).
pub fn flops_dense(model: &Model<f32>) -> u64 {
    sparsenet_net::count::count(&model.net).flops
}

/// The paper's dropout adjustment: `D_o·√(C_r/C_o)` over the linear layers that dropout feeds
/// (None where the network has no dropout).
fn adjusted_dropout(model: &Model<f32>, d_o: Option<Prob>) -> Option<f64> {
    let d_o = d_o?.get();
    let g = &model.net.graph;
    let (mut kept, mut all) = (0f64, 0f64);
    for n in g.node_indices() {
        if !matches!(g[n].op, Op::Dropout { .. }) {
            continue;
        }
        for reader in g.neighbors_directed(n, petgraph::Direction::Outgoing) {
            if let Some(k) = weight_of(model, reader.index()) {
                all += model.values[k].len() as f64;
                kept += kept_elements(model, k) as f64;
            }
        }
    }
    (all > 0.0).then(|| d_o * (kept / all).sqrt())
}

/// Run `study prune`; `log` gets a line per step.
pub fn run(o: &PruneOptions, log: &mut dyn Write) -> Result<PruneRecord> {
    check_options(o)?;
    let (checkpoint::Loaded { meta, mut model }, split) = checkpoint::open_for_eval(
        &o.checkpoint,
        o.data_dir.as_deref(),
        crate::data::DataChoice::Auto,
    )
    .map_err(|e| e.context(format!("--checkpoint {}", o.checkpoint.display())))?;
    let layers = prunable_layers(o, &model)?;
    let test = &split.test;
    let mut engine = Engine::Cpu;
    let batch = meta.batch_size.max(1);
    let eval = |model: &mut Model<f32>, engine: &mut Engine| -> Result<f64> {
        Ok(evaluate(
            model, engine, test, &meta.mean, &meta.std, batch, o.max_test,
        )?
        .1)
    };
    let baseline = eval(&mut model, &mut engine)?;
    let against = evaluate_against(o, &split, &mut engine, batch)?;
    let prunable_count: u64 = layers
        .iter()
        .map(|&(k, _)| model.values[k].len() as u64)
        .sum();
    let network = super::network_name(&meta);
    writeln!(
        log,
        "prune: {network}, {} prunable weights in {} layers, test accuracy {:.4}",
        prunable_count,
        layers.len(),
        baseline
    )?;
    let fixed = model.param_count() - prunable_count;
    let rule = matched_rule(o, &meta, &model, fixed, &network)?;
    let keep_target = match &rule {
        Rule::Keep(k) => Some(*k),
        Rule::Match { params, .. } => Some((params - fixed) as f64 / prunable_count as f64),
        Rule::Quality(_) | Rule::PerLayer(_) | Rule::Sensitivity { .. } => None,
    };
    check_target(&rule, keep_target, &model, &layers, &network)?;
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create {}", o.out.display()))?;
    let _lock = crate::io::try_lock_folder(&o.out, PRUNE_LOCK, "study prune")?;
    claim_folder(o)?;
    let sensitivity = match &rule {
        Rule::Sensitivity { tolerance } => {
            let s = scan(&mut model, &layers, baseline, *tolerance, |m| {
                eval(m, &mut engine)
            })?;
            log_sensitivity(&s, log)?;
            s
        }
        _ => Vec::new(),
    };
    let mut pruning = Pruning::new(o, &meta, &model, &layers, &rule, keep_target, &sensitivity);
    let mut iterations = Vec::new();
    for i in 1..=o.iterations {
        let it = pruning.iteration(i, &mut model, |m| eval(m, &mut engine))?;
        it.log(o.iterations, log)?;
        iterations.push(it);
    }
    // The final pruned network (its masks included) under a stable name.
    let mut m2 = meta.clone();
    m2.spec = pruning.spec.clone();
    m2.test_acc = iterations
        .last()
        .map(|it: &Iteration| it.acc_retrained.unwrap_or(it.acc_pruned));
    checkpoint::save(&o.out, "pruned", &model, &pruning.fresh, &m2)?;
    let retrain_lr = pruning.retrain_lr;
    Ok(PruneRecord {
        checkpoint: o.checkpoint.display().to_string(),
        network,
        data: split.source.clone(),
        images: o.max_test.map_or(test.n(), |l| l.min(test.n())),
        baseline_acc: baseline,
        params: model.param_count(),
        prunable: prunable_count,
        flops: flops_dense(&model),
        target: rule,
        layers: o.layers,
        retrain_epochs: o.retrain_epochs,
        retrain_lr,
        layer_order: layers
            .iter()
            .map(|&(k, _)| model.params[k].name.clone())
            .collect(),
        against,
        sensitivity,
        iterations,
        rule: RULE.into(),
    })
}

/// How `study prune` prunes, as its record says.
const RULE: &str = "Han et al. 2015: in each pruned layer a weight survives when |w| ≥ q·σ, σ the standard deviation of the layer's surviving weights; one q for every layer, found by bisection so that iteration i of n keeps keep^(i/n) of the prunable weights (or given by --quality); survivors retrained from their values at lr × --lr-scale, constant, pruned weights held at zero; dropout before a linear layer scaled by √(C_r/C_o)";

impl Iteration {
    /// Its line in the log.
    fn log(&self, of: usize, log: &mut dyn Write) -> Result<()> {
        writeln!(
            log,
            "iteration {}/{of}: q = {}, kept {:.2} % of the prunable weights ({}× fewer), accuracy {:.4} pruned{} (pruning {:.2} s, evaluation {:.1} s, retraining {:.1} s)",
            self.iteration,
            self.quality.map_or("per layer".to_string(), |q| format!("{q:.3}")),
            100.0 * self.kept,
            format_rate(self.kept),
            self.acc_pruned,
            self.acc_retrained.map_or(String::new(), |a| format!(", {a:.4} retrained")),
            self.seconds_prune,
            self.seconds_eval,
            self.seconds_retrain
        )?;
        Ok(())
    }
}

/// The layers `--layers` names, refused when the network has none.
fn prunable_layers(o: &PruneOptions, model: &Model<f32>) -> Result<Vec<(usize, usize)>> {
    let layers = prunable(model, o.layers);
    if layers.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "{}: the network has no {} weights to prune (--layers conv, fc or both)",
            o.checkpoint.display(),
            match o.layers {
                Layers::Conv => "convolution",
                Layers::Fc => "fully connected",
                Layers::Both => "convolution or fully connected",
            }
        )));
    }
    Ok(layers)
}

/// The options' own checks, before anything is read.
fn check_options(o: &PruneOptions) -> Result<()> {
    if o.iterations == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--iterations 0 prunes nothing: give at least 1"
        )));
    }
    match o.rule {
        Rule::Keep(k) if !(k > 0.0 && k < 1.0) => Err(bad_input(anyhow::anyhow!(
            "a target that keeps {k} of the weights keeps {}: give --keep in (0, 1) or --rate above 1",
            if k <= 0.0 { "nothing" } else { "everything" }
        ))),
        Rule::Quality(q) if !(q.is_finite() && q > 0.0) => Err(bad_input(anyhow::anyhow!(
            "--quality {q}: the quality parameter is a positive multiple of each layer's standard deviation"
        ))),
        _ => Ok(()),
    }
}

/// The `--against` networks, each evaluated on the pruned network's test images.
fn evaluate_against(
    o: &PruneOptions,
    split: &crate::data::Split,
    engine: &mut Engine,
    batch: usize,
) -> Result<Vec<Against>> {
    let mut against = Vec::new();
    for path in &o.against {
        let (
            checkpoint::Loaded {
                meta: m,
                model: mut other,
            },
            s,
        ) = checkpoint::open_for_eval(path, o.data_dir.as_deref(), crate::data::DataChoice::Auto)
            .map_err(|e| e.context(format!("--against {}", path.display())))?;
        if s.identity() != split.identity() {
            return Err(bad_input(anyhow::anyhow!(
                "--against {}: its test data ({}) is not the pruned network's ({})",
                path.display(),
                s.source,
                split.source
            )));
        }
        let (_, acc) = evaluate(
            &mut other, engine, &s.test, &m.mean, &m.std, batch, o.max_test,
        )?;
        against.push(Against {
            checkpoint: path.display().to_string(),
            network: super::network_name(&m),
            params: other.nonzero_param_count(),
            acc,
        });
    }
    Ok(against)
}

/// The rule with `--match`'s parameter count resolved: the fraction of the prunable weights
/// that leaves the whole network with that network's parameter count.
fn matched_rule(
    o: &PruneOptions,
    meta: &checkpoint::Meta,
    model: &Model<f32>,
    fixed: u64,
    network: &str,
) -> Result<Rule> {
    let (Rule::Match { words, .. }, Some(spec)) = (&o.rule, &o.matched) else {
        return Ok(o.rule.clone());
    };
    let mut spec = spec.clone();
    spec.classes = meta.spec.classes;
    let other = Model::<f32>::new(&spec, meta.input, 0).map_err(bad_input)?;
    let target = other.param_count();
    if target <= fixed || target >= model.param_count() {
        return Err(bad_input(anyhow::anyhow!(
            "--match {words}: {target} parameters cannot be reached by pruning {network} ({} parameters, {fixed} of them not prunable)",
            model.param_count()
        )));
    }
    Ok(Rule::Match {
        words: words.clone(),
        params: target,
    })
}

/// A target that names layers the network lacks, or would leave a layer without a weight, is
/// refused before anything is written (checked again at each iteration, on the retrained
/// weights).
fn check_target(
    rule: &Rule,
    keep_target: Option<f64>,
    model: &Model<f32>,
    layers: &[(usize, usize)],
    network: &str,
) -> Result<()> {
    if let Rule::PerLayer(map) = rule {
        if let Some(bad) = map
            .keys()
            .find(|n| !layers.iter().any(|&(k, _)| &model.params[k].name == *n))
        {
            return Err(bad_input(anyhow::anyhow!(
                "--quality-per-layer: {bad} is not a pruned layer of {network}; its layers are {}",
                layers
                    .iter()
                    .map(|&(k, _)| model.params[k].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some((n, q)) = map.iter().find(|(_, q)| !(q.is_finite() && **q >= 0.0)) {
            return Err(bad_input(anyhow::anyhow!(
                "--quality-per-layer: {n}={q}; a quality parameter is a non-negative multiple of σ"
            )));
        }
    }
    if let Some(k) = keep_target {
        let q = quality_for(model, layers, k);
        if let Some((p, _)) = masks_for(model, layers, q)
            .iter()
            .find(|(_, m)| !m.iter().any(|&b| b))
        {
            return Err(bad_input(anyhow::anyhow!(
                "keeping {k:.3e} of the prunable weights would prune every weight of {}: give a larger --keep (or a smaller --rate)",
                model.params[*p].name
            )));
        }
    }
    Ok(())
}

/// A line per layer of the sensitivity scan.
fn log_sensitivity(s: &[Sensitivity], log: &mut dyn Write) -> Result<()> {
    for x in s {
        writeln!(
            log,
            "sensitivity of {}: {} → keep {:.0} %",
            x.layer,
            x.points
                .iter()
                .map(|(k, a)| format!("{:.0} % {a:.4}", 100.0 * k))
                .collect::<Vec<_>>()
                .join(", "),
            100.0 * x.picked
        )?;
    }
    Ok(())
}

/// What every iteration of a prune run shares.
struct Pruning<'a> {
    o: &'a PruneOptions,
    meta: &'a checkpoint::Meta,
    layers: &'a [(usize, usize)],
    rule: &'a Rule,
    keep_target: Option<f64>,
    sensitivity: &'a [Sensitivity],
    retrain_lr: f32,
    fresh: State,
    /// The network's spec as pruned so far (its dropout adjusted).
    spec: sparsenet_net::zoo::NetSpec,
}

impl<'a> Pruning<'a> {
    fn new(
        o: &'a PruneOptions,
        meta: &'a checkpoint::Meta,
        model: &Model<f32>,
        layers: &'a [(usize, usize)],
        rule: &'a Rule,
        keep_target: Option<f64>,
        sensitivity: &'a [Sensitivity],
    ) -> Self {
        Pruning {
            o,
            retrain_lr: meta.lr * o.lr_scale,
            // What each pruned checkpoint stores as optimiser state: none yet (the retraining
            // starts afresh).
            fresh: State::new(
                &meta.optimizer,
                &model.values.iter().map(Vec::len).collect::<Vec<_>>(),
            ),
            spec: meta.spec.clone(),
            meta,
            layers,
            rule,
            keep_target,
            sensitivity,
        }
    }

    /// The quality parameter of each layer at iteration `i` (and the one shared by all, when
    /// there is one).
    fn qualities(&self, model: &Model<f32>, i: usize) -> (Option<f64>, Vec<f64>) {
        let step = i as f64 / self.o.iterations as f64;
        let layers = self.layers;
        match (self.keep_target, self.rule) {
            (Some(k), _) => {
                let q = quality_for(model, layers, k.powf(step));
                (Some(q), vec![q; layers.len()])
            }
            (None, Rule::Quality(q)) => (Some(*q), vec![*q; layers.len()]),
            (None, Rule::PerLayer(map)) => (
                None,
                layers
                    .iter()
                    .map(|&(k, _)| map.get(&model.params[k].name).copied().unwrap_or(0.0))
                    .collect(),
            ),
            (None, Rule::Sensitivity { .. }) => (
                None,
                layers
                    .iter()
                    .zip(self.sensitivity)
                    .map(|(l, s)| {
                        if s.picked >= 1.0 {
                            0.0
                        } else {
                            quality_for(model, std::slice::from_ref(l), s.picked.powf(step))
                        }
                    })
                    .collect(),
            ),
            (None, _) => unreachable!("every other rule has a target"),
        }
    }

    /// Iteration `i`: prune by this iteration's qualities (a layer left without a weight is
    /// refused), evaluate, save the pruned checkpoint, retrain from it.
    fn iteration(
        &mut self,
        i: usize,
        model: &mut Model<f32>,
        mut eval: impl FnMut(&mut Model<f32>) -> Result<f64>,
    ) -> Result<Iteration> {
        let layers = self.layers;
        let t0 = std::time::Instant::now();
        let (global, qs) = self.qualities(model, i);
        let masks: Vec<(usize, Vec<bool>)> = layers
            .iter()
            .zip(&qs)
            .flat_map(|(l, &q)| masks_for(model, std::slice::from_ref(l), q))
            .collect();
        let (kept, all) = kept_of(&masks);
        if kept == 0 {
            return Err(bad_input(anyhow::anyhow!(
                "these quality parameters prune every weight: give smaller ones or a larger --keep"
            )));
        }
        // A layer left without a weight cuts the network in two: refused, not obeyed.
        if let Some((k, _)) = masks.iter().find(|(_, m)| !m.iter().any(|&b| b)) {
            return Err(bad_input(anyhow::anyhow!(
                "iteration {i} would prune every weight of {}: give a larger --keep (or a smaller --rate or quality parameter)",
                model.params[*k].name
            )));
        }
        let quality_per_layer: BTreeMap<String, f64> = layers
            .iter()
            .zip(&qs)
            .map(|(&(k, _), &q)| (model.params[k].name.clone(), q))
            .collect();
        apply(model, masks);
        let seconds_prune = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        let acc_pruned = eval(model)?;
        let seconds_eval = t1.elapsed().as_secs_f64();
        let kept_per_layer: BTreeMap<String, f64> = layers
            .iter()
            .map(|&(k, _)| {
                let m = model.masks[k].as_ref().expect("just pruned");
                (
                    model.params[k].name.clone(),
                    m.iter().filter(|&&b| b).count() as f64 / m.len() as f64,
                )
            })
            .collect();
        let dropout = adjusted_dropout(model, self.meta.spec.dropout_p());
        if let Some(d) = dropout {
            self.spec.dropout = Some(Prob::new(d).map_err(|e| anyhow::anyhow!(e))?);
        }
        let pruned_path = self.save_pruned(i, model, acc_pruned)?;
        let t2 = std::time::Instant::now();
        let acc_retrained = self.retrain(i, model, &pruned_path)?;
        Ok(Iteration {
            iteration: i,
            quality: global,
            quality_per_layer,
            kept: kept as f64 / all as f64,
            kept_per_layer,
            params_nonzero: model.nonzero_param_count(),
            flops_remaining: flops_remaining(model),
            acc_pruned,
            acc_retrained,
            dropout,
            seconds_prune,
            seconds_eval,
            seconds_retrain: t2.elapsed().as_secs_f64(),
        })
    }

    /// The pruned weights of iteration `i` as a checkpoint (what its retraining starts from);
    /// its path.
    fn save_pruned(
        &self,
        i: usize,
        model: &Model<f32>,
        acc_pruned: f64,
    ) -> Result<std::path::PathBuf> {
        let o = self.o;
        let stem = format!("pruned-{i}");
        let mut m2 = self.meta.clone();
        m2.spec = self.spec.clone();
        m2.test_acc = Some(acc_pruned);
        checkpoint::save(&o.out, &stem, model, &self.fresh, &m2)?;
        Ok(checkpoint::paths(&o.out, &stem).0)
    }

    /// With retraining epochs, iteration `i`'s retraining from `pruned_path`, whose last
    /// weights the next iteration prunes; its test accuracy.
    fn retrain(
        &self,
        i: usize,
        model: &mut Model<f32>,
        pruned_path: &std::path::Path,
    ) -> Result<Option<f64>> {
        let o = self.o;
        if o.retrain_epochs == 0 {
            return Ok(None);
        }
        let out = o.out.join(format!("retrain-{i}"));
        let resume = checkpoint::paths(&out, "last").0.is_file();
        let opts = retrain_options(
            self.meta,
            &self.spec,
            (i, o),
            pruned_path,
            out.clone(),
            resume,
            self.retrain_lr,
        );
        let summary = train::run(&opts, &mut std::io::sink())?;
        // The next iteration prunes the retrained weights.
        checkpoint::load_into(&checkpoint::paths(&out, "last").0, model, None)?;
        Ok(summary.epochs.last().map(|e| e.test_acc))
    }
}

/// The sensitivity scan: each layer pruned alone (its surviving weights, the others whole) to
/// each of [`SCAN_KEEP`], evaluated, and restored; the pick is the smallest fraction within
/// `tolerance` of `baseline`.
fn scan(
    model: &mut Model<f32>,
    layers: &[(usize, usize)],
    baseline: f64,
    tolerance: f64,
    mut eval: impl FnMut(&mut Model<f32>) -> Result<f64>,
) -> Result<Vec<Sensitivity>> {
    let mut out = Vec::new();
    for l in layers {
        let k = l.0;
        let mut points = Vec::new();
        for f in SCAN_KEEP {
            let q = quality_for(model, std::slice::from_ref(l), f);
            let (_, keep) = masks_for(model, std::slice::from_ref(l), q)
                .pop()
                .expect("one layer");
            let whole = model.values[k].clone();
            for (w, kept) in model.values[k].iter_mut().zip(&keep) {
                if !kept {
                    *w = 0.0;
                }
            }
            let acc = eval(model);
            model.values[k] = whole;
            let share = keep.iter().filter(|&&b| b).count() as f64 / keep.len() as f64;
            points.push((share, acc?));
        }
        let picked = points
            .iter()
            .filter(|(_, a)| *a >= baseline - tolerance)
            .map(|(f, _)| *f)
            .fold(1.0, f64::min);
        out.push(Sensitivity {
            layer: model.params[k].name.clone(),
            points,
            picked,
        });
    }
    Ok(out)
}

fn format_rate(kept: f64) -> String {
    format!("{:.1}", 1.0 / kept.max(1e-12))
}

/// The retraining run of iteration `i`: the checkpoint's recipe at the reduced, constant
/// learning rate, starting from the pruned weights (their masks with them).
fn retrain_options(
    meta: &checkpoint::Meta,
    spec: &sparsenet_net::zoo::NetSpec,
    (i, o): (usize, &PruneOptions),
    pruned: &Path,
    out: PathBuf,
    resume: bool,
    lr: f32,
) -> TrainOptions {
    let (data_dir, data) =
        checkpoint::data_source(meta, o.data_dir.as_deref(), crate::data::DataChoice::Auto);
    TrainOptions {
        spec: spec.clone(),
        name: format!("{} pruned {i}", super::network_name(meta)),
        dataset: meta.dataset,
        data_dir,
        data,
        folder: meta.folder.clone(),
        epochs: o.retrain_epochs,
        batch_size: meta.batch_size,
        lr,
        schedule: Schedule::Constant,
        optimizer: meta.optimizer,
        seed: meta.seed.wrapping_add(i as u64),
        max_steps: o.max_steps,
        out,
        resume,
        overwrite: !resume,
        init_from: Some(pruned.to_path_buf()),
        key_map: train::KeyMap::Ours,
        progress: false,
        epoch_bar: None,
        max_test: o.max_test,
        stop_after: None,
        device: train::DeviceKind::Cpu,
        gpus: None,
        group: None,
        max_memory: None,
    }
}

/// Write `prune.json` and the figures `prune_accuracy` (test accuracy against the fraction of
/// prunable weights kept, after pruning and after retraining) and `prune_layers` (the fraction
/// kept per layer after each iteration).
pub fn report(r: &PruneRecord, out: &Path) -> Result<Vec<PathBuf>> {
    let p = out.join("prune.json");
    write_atomic(&p, serde_json::to_string_pretty(r)?.as_bytes())?;
    let mut written = vec![p];
    let mut pruned = vec![(100.0, 100.0 * r.baseline_acc)];
    pruned.extend(
        r.iterations
            .iter()
            .map(|i| (100.0 * i.kept, 100.0 * i.acc_pruned)),
    );
    let mut series = vec![Series::new("after pruning", pruned, Mark::LinePoints)];
    if r.iterations.iter().all(|i| i.acc_retrained.is_some()) {
        let mut re = vec![(100.0, 100.0 * r.baseline_acc)];
        re.extend(
            r.iterations
                .iter()
                .map(|i| (100.0 * i.kept, 100.0 * i.acc_retrained.expect("checked"))),
        );
        series.push(Series::new("after retraining", re, Mark::LinePoints));
    }
    // A compared network at the share of the prunable weights that gives its count.
    let fixed = r.params.saturating_sub(r.prunable) as f64;
    for a in &r.against {
        let x = 100.0 * (a.params as f64 - fixed) / r.prunable.max(1) as f64;
        series.push(Series::new(
            format!("{} ({} parameters)", a.network, a.params),
            vec![(x, 100.0 * a.acc)],
            Mark::Points,
        ));
    }
    let acc = Chart {
        title: format!("{}: test accuracy against weights kept", r.network),
        x_label: "prunable weights kept (%)".into(),
        y_label: "test accuracy (%)".into(),
        series,
    };
    plot::save(&acc, out, "prune_accuracy")?;
    written.push(out.join("prune_accuracy.png"));
    let names = &r.layer_order;
    let layers = Chart {
        title: format!("{}: weights kept per layer (layers in order)", r.network),
        x_label: "layer".into(),
        y_label: "weights kept (%)".into(),
        series: r
            .iterations
            .iter()
            .map(|i| {
                Series::new(
                    format!("iteration {}", i.iteration),
                    names
                        .iter()
                        .enumerate()
                        .map(|(x, n)| ((x + 1) as f64, 100.0 * i.kept_per_layer[n]))
                        .collect(),
                    Mark::LinePoints,
                )
            })
            .collect(),
    };
    plot::save(&layers, out, "prune_layers")?;
    written.push(out.join("prune_layers.png"));
    if !r.sensitivity.is_empty() {
        let chart = Chart {
            title: format!(
                "{}: sensitivity, each layer pruned alone (Han et al. Fig. 6)",
                r.network
            ),
            x_label: "weights of the layer kept (%)".into(),
            y_label: "test accuracy (%)".into(),
            series: r
                .sensitivity
                .iter()
                .map(|s| {
                    let mut pts = vec![(100.0, 100.0 * r.baseline_acc)];
                    pts.extend(s.points.iter().map(|(k, a)| (100.0 * k, 100.0 * a)));
                    Series::new(s.layer.clone(), pts, Mark::LinePoints)
                })
                .collect(),
        };
        plot::save(&chart, out, "prune_sensitivity")?;
        written.push(out.join("prune_sensitivity.png"));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsenet_net::zoo::named;

    /// AlexNet and VGG-16 are not trainable here, but they build, count and prune: at q = 1 a
    /// He-normal convolution keeps P(|Z| ≥ 1) = 31.73 % of its weights and a linear layer
    /// (uniform in ±a, σ = a/√3) keeps 1 − 1/√3 = 42.26 %, layer by layer; the bisection hits a
    /// global target; the remaining FLOPs fall with the kept weights.
    #[test]
    fn alexnet_and_vgg_16_keep_what_their_thresholds_give() {
        for name in ["alexnet", "vgg-16"] {
            let spec = named(name).unwrap().spec(None);
            let mut model = Model::<f32>::new(&spec, spec.input_shape(), 1).unwrap();
            let layers = prunable(&model, Layers::Both);
            assert_eq!(
                layers.len(),
                if name == "alexnet" { 8 } else { 16 },
                "{name}"
            );
            for (k, keep) in masks_for(&model, &layers, 1.0) {
                let frac = keep.iter().filter(|&&b| b).count() as f64 / keep.len() as f64;
                let linear = model.params[k].shape.len() == 2;
                let want = if linear {
                    1.0 - 1.0 / 3f64.sqrt()
                } else {
                    0.3173
                };
                // The first convolution has only 23 232 (AlexNet) or 1 728 (VGG) weights.
                let tol = if keep.len() < 30_000 { 0.02 } else { 0.003 };
                assert!(
                    (frac - want).abs() < tol,
                    "{name} {}: kept {frac}, want {want}",
                    model.params[k].name
                );
            }
            let q = quality_for(&model, &layers, 0.08);
            let (kept, all) = kept_of(&masks_for(&model, &layers, q));
            assert!(
                (kept as f64 / all as f64 - 0.08).abs() < 1e-5,
                "{name}: {kept} of {all}"
            );
            let dense = flops_dense(&model);
            let masks = masks_for(&model, &layers, q);
            apply(&mut model, masks);
            assert_eq!(
                model.nonzero_param_count(),
                model.param_count() - (all - kept)
            );
            let left = flops_remaining(&model);
            assert!(left < dense / 5, "{name}: {left} of {dense}");
            // Pruning again with the same q keeps only survivors: masks never grow back.
            let again = masks_for(&model, &layers, q);
            for (k, m) in &again {
                let old = model.masks[*k].as_ref().unwrap();
                assert!(m.iter().zip(old).all(|(n, o)| !n | o));
            }
        }
    }

    #[test]
    fn dropout_is_scaled_by_the_root_of_the_connections_kept() {
        let spec = named("alexnet").unwrap().spec(None);
        let mut model = Model::<f32>::new(&spec, spec.input_shape(), 2).unwrap();
        // Both dropout layers feed linear layers (fc6 and fc7); keep a quarter of those.
        let fc = prunable(&model, Layers::Fc);
        let q = quality_for(&model, &fc[..2], 0.25);
        let masks = masks_for(&model, &fc[..2], q);
        apply(&mut model, masks);
        let d = adjusted_dropout(&model, spec.dropout_p()).unwrap();
        assert!((d - 0.5 * 0.25f64.sqrt()).abs() < 1e-3, "{d}");
        assert_eq!(adjusted_dropout(&model, None), None);
    }
}
