//! The figures: the analysis (`paths --plot`), the zoo (`zoo --plot`) and training curves.

use anyhow::Result;
use num_bigint::BigUint;
use std::path::{Path, PathBuf};

use sparsenet_analysis::paths::big_ratio;
use sparsenet_analysis::report::Report;
use sparsenet_net::zoo::{depth_sweep, fit_exponent, Family, ZOO};

use super::{save, Chart, Mark, Series};
use crate::metrics::EpochMetrics;

/// The `paths` figures; returns the files written.
pub fn paths_figures(r: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut out = |chart: &Chart, stem: &str| -> Result<()> {
        save(chart, dir, stem)?;
        written.push(dir.join(format!("{stem}.png")));
        written.push(dir.join(format!("{stem}.svg")));
        Ok(())
    };
    // Path-length distributions (the ensemble view): res and dense share one binomial curve.
    let mut series = Vec::new();
    for t in &r.topologies {
        // Plain has one path through all N layers: a spike at N that would flatten the rest.
        if t.name == "res" || t.name == "plain" {
            continue;
        }
        let Some(h) = &t.path_length_histogram else {
            continue;
        };
        let pts: Vec<(f64, f64)> = h
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != BigUint::from(0u8))
            .map(|(k, c)| (k as f64, big_ratio(c, &t.paths)))
            .collect();
        let name = if t.name == "dense" {
            "res = dense (binomial)".to_string()
        } else {
            t.pattern.clone()
        };
        let mark = if pts.len() == 1 {
            Mark::Points
        } else {
            Mark::Line
        };
        series.push(Series::new(name, pts, mark));
    }
    if !series.is_empty() {
        out(
            &Chart {
                title: format!(
                    "Paths from x₀ to x_N by number of layers, N = {} (plain: one path, N layers)",
                    r.depth
                ),
                x_label: "layers on the path".into(),
                y_label: "fraction of all paths".into(),
                series,
            },
            "path_lengths",
        )?;
    }
    // Gradient (shortest) path lengths over all pairs.
    let series: Vec<Series> = r
        .topologies
        .iter()
        .filter(|t| t.name != "res")
        .map(|t| {
            let g = &t.gradient;
            let total = (g.pairs - g.unreachable).max(1) as f64;
            let pts = g
                .histogram
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(h, c)| (h as f64, *c as f64 / total))
                .collect();
            let name = if t.name == "dense" {
                "res = dense".to_string()
            } else {
                t.pattern.clone()
            };
            Series::new(name, pts, Mark::LinePoints)
        })
        .collect();
    out(
        &Chart {
            title: format!(
                "Shortest paths between all pairs of layers, N = {}",
                r.depth
            ),
            x_label: "hops".into(),
            y_label: "fraction of pairs".into(),
            series,
        },
        "gradient_paths",
    )?;
    // Base sweep.
    let xs = |f: &dyn Fn(&sparsenet_analysis::bases::BaseRow) -> f64| -> Vec<(f64, f64)> {
        r.bases.iter().map(|b| (b.base as f64, f(b))).collect()
    };
    out(
        &Chart {
            title: format!("Gradient path against the base c, N = {}", r.depth),
            x_label: "base c".into(),
            y_label: "hops".into(),
            series: vec![
                Series::new(
                    "worst case",
                    xs(&|b| b.gradient_path_max as f64),
                    Mark::LinePoints,
                ),
                Series::new("mean", xs(&|b| b.gradient_path_mean), Mark::LinePoints),
                Series::new(
                    "bound (c−1)(⌊log_c N⌋+1)",
                    xs(&|b| b.bound as f64),
                    Mark::Thin,
                ),
            ],
        },
        "base_sweep_paths",
    )?;
    out(
        &Chart {
            title: format!("Connections against the base c, N = {}", r.depth),
            x_label: "base c".into(),
            y_label: "connections".into(),
            series: vec![Series::new(
                "sparse, base c",
                xs(&|b| b.connections as f64),
                Mark::LinePoints,
            )],
        },
        "base_sweep_connections",
    )?;
    Ok(written)
}

/// The `zoo` figures; returns the files written.
pub fn zoo_figures(dir: &Path, growth: usize, depths: &[usize]) -> Result<Vec<PathBuf>> {
    let rows = depth_sweep(growth, depths)?;
    let lx: Vec<f64> = rows.iter().map(|r| (r.0 as f64).log10()).collect();
    let ld: Vec<f64> = rows.iter().map(|r| (r.1 as f64).log10()).collect();
    let ls: Vec<f64> = rows.iter().map(|r| (r.2 as f64).log10()).collect();
    let tail = rows.len() / 2;
    let xs: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    let (ed, es) = (
        fit_exponent(
            &xs[tail..],
            &rows[tail..].iter().map(|r| r.1 as f64).collect::<Vec<_>>(),
        ),
        fit_exponent(
            &xs[tail..],
            &rows[tail..].iter().map(|r| r.2 as f64).collect::<Vec<_>>(),
        ),
    );
    let line = |ly: &[f64], e: f64| -> Vec<(f64, f64)> {
        // The fitted line through the last point: log p = log p_last + e·(log d − log d_last).
        let (x1, y1) = (lx[lx.len() - 1], ly[ly.len() - 1]);
        vec![(lx[0], y1 + e * (lx[0] - x1)), (x1, y1)]
    };
    let chart = Chart {
        title: format!("Parameters against depth (CIFAR, k = {growth}), log–log"),
        x_label: "log₁₀ depth".into(),
        y_label: "log₁₀ parameters".into(),
        series: vec![
            Series::new(
                "DenseNet",
                lx.iter().copied().zip(ld.iter().copied()).collect(),
                Mark::LinePoints,
            ),
            Series::new(
                "SparseNet",
                lx.iter().copied().zip(ls.iter().copied()).collect(),
                Mark::LinePoints,
            ),
            Series::new(
                format!("fit: slope {ed:.2} (O(n²))"),
                line(&ld, ed),
                Mark::Thin,
            ),
            Series::new(
                format!("fit: slope {es:.2} (O(n lg n))"),
                line(&ls, es),
                Mark::Thin,
            ),
        ],
    };
    save(&chart, dir, "params_vs_depth")?;
    // Parameter efficiency: the paper's parameters against its C100+ error.
    // Series in a fixed order (ResNet, DenseNet, SparseNet, Wide ResNet), whatever the table's
    // row order.
    let mut by_family: Vec<(String, Vec<(f64, f64)>)> = [
        "ResNet (pre-activation)",
        "DenseNet",
        "SparseNet",
        "Wide ResNet",
    ]
    .iter()
    .map(|f| (f.to_string(), Vec::new()))
    .collect();
    for m in ZOO {
        let (Some(err), Some(p)) = (
            m.paper_c100_error,
            m.paper_params.and_then(|p| p.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let fam = match m.family {
            Family::Sparse => 2,
            Family::Dense => 1,
            Family::Wide => 3,
            _ => 0,
        };
        by_family[fam].1.push((p, err));
    }
    by_family.retain(|(_, pts)| !pts.is_empty());
    let series = by_family
        .into_iter()
        .map(|(f, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(f, pts, Mark::Points)
        })
        .collect();
    save(
        &Chart {
            title: "Parameter efficiency on CIFAR-100+ (the paper's figures)".into(),
            x_label: "parameters (millions)".into(),
            y_label: "test error (%)".into(),
            series,
        },
        dir,
        "param_efficiency",
    )?;
    Ok(["params_vs_depth", "param_efficiency"]
        .iter()
        .flat_map(|s| [dir.join(format!("{s}.png")), dir.join(format!("{s}.svg"))])
        .collect())
}

/// Loss and accuracy curves of a training run (`loss.png/svg`, `accuracy.png/svg`).
pub fn training_curves(history: &[EpochMetrics], dir: &Path) -> Result<()> {
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    save(
        &Chart {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            series: vec![
                Series::new("train", pts(&|m| m.train_loss), Mark::LinePoints),
                Series::new("test", pts(&|m| m.test_loss), Mark::LinePoints),
            ],
        },
        dir,
        "loss",
    )?;
    save(
        &Chart {
            title: "Accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: vec![
                Series::new("train", pts(&|m| m.train_acc), Mark::LinePoints),
                Series::new("test", pts(&|m| m.test_acc), Mark::LinePoints),
            ],
        },
        dir,
        "accuracy",
    )
}
