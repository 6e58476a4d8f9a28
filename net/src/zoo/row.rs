//! A model's exact counts beside the paper's printed figures: one row of the `zoo` table.

use super::build::build_and_count;
use super::spec::{Family, Head, Layout, NetSpec};
use super::table::Named;
use crate::NetError;

/// Whether `ours` (an exact count) agrees with `printed` (a figure in millions or billions as
/// printed, e.g. `"0.76"`) to the printed precision, i.e. rounds to it.
pub fn agrees(ours: u64, printed: &str, unit: f64) -> bool {
    let decimals = printed.split_once('.').map(|(_, d)| d.len()).unwrap_or(0);
    let Ok(paper) = printed.parse::<f64>() else {
        return false;
    };
    let scale = 10f64.powi(decimals as i32);
    ((ours as f64 / unit) * scale).round() == (paper * scale).round()
}

/// One row of the zoo table: a model's exact counts beside the paper's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelRow {
    /// Model name (the spec's description for free specs).
    pub name: String,
    /// Family.
    pub family: Family,
    /// Layout.
    #[serde(rename = "dataset")]
    pub layout: Layout,
    /// Depth.
    pub depth: usize,
    /// Growth per block (empty for ResNets).
    pub growth: Vec<usize>,
    /// BC variant.
    pub bc: bool,
    /// Classes of the head counted.
    pub classes: usize,
    /// Stem channels used (`None` for the families without a stem convention: the LeNets,
    /// VGG, AlexNet).
    pub stem: Option<usize>,
    /// Head used (`global` or `paper`; ResNets always `global`; `None` for the families whose
    /// classifier is a stack of fully connected layers).
    pub head: Option<Head>,
    /// Trainable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub bn_running: u64,
    /// Multiply-accumulates (batch 1).
    pub macs: u64,
    /// The paper's FLOPs: `2·macs + 2·BN input elements`.
    pub flops: u64,
    /// The paper's parameters, in millions as printed.
    pub paper_params: Option<f64>,
    /// The paper's GFLOPs as printed.
    pub paper_flops: Option<f64>,
    /// The paper's figures as printed (parameters in M, GFLOPs), for display.
    #[serde(skip)]
    pub paper_printed: (Option<String>, Option<String>),
    /// Whether `params` rounds to the paper's figure at its printed precision.
    pub params_agree: Option<bool>,
    /// Whether `flops` rounds to the paper's figure at its printed precision.
    pub flops_agree: Option<bool>,
}

/// Count a spec; `paper` gives the paper's printed figures (params in M, GFLOPs) if any.
pub fn model_row(
    name: &str,
    spec: &NetSpec,
    paper: (Option<&str>, Option<&str>),
) -> Result<ModelRow, NetError> {
    let (_, c) = build_and_count(spec)?;
    Ok(ModelRow {
        name: name.to_string(),
        family: spec.family,
        layout: spec.layout,
        depth: spec.depth,
        growth: spec.growth.clone(),
        bc: spec.bc,
        classes: spec.classes,
        stem: spec.family.has_stem().then(|| spec.stem_channels()),
        head: spec.family.has_stem().then(|| spec.head_kind()),
        params: c.params,
        bn_running: c.bn_running,
        macs: c.macs,
        flops: c.flops,
        paper_params: paper.0.and_then(|p| p.parse().ok()),
        paper_flops: paper.1.and_then(|p| p.parse().ok()),
        paper_printed: (paper.0.map(String::from), paper.1.map(String::from)),
        params_agree: paper.0.map(|p| agrees(c.params, p, 1e6)),
        flops_agree: paper.1.map(|p| agrees(c.flops, p, 1e9)),
    })
}

/// The row of a named model; `classes` replaces the paper's head (then the paper's figures,
/// which are for its own head, are only shown when the classes match).
pub fn named_row(m: &Named, classes: Option<usize>) -> Result<ModelRow, NetError> {
    let spec = m.spec(classes);
    let paper = if spec.classes == m.classes {
        (m.paper_params, m.paper_flops)
    } else {
        (None, None)
    };
    model_row(m.name, &spec, paper)
}
