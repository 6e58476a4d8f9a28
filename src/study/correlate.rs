//! `study correlate RESULTS…`: which graph metric of a topology goes with test error? Over the
//! runs of one or more studies (their `results.jsonl` rows, each with its network's
//! [`GraphMetrics`]), the Spearman rank correlation of every metric with the final test error,
//! raw and partial on log₁₀ parameters (the metric's relation to error at matched size: the
//! rank correlation of the two after removing what parameters explain of each), each with a
//! bootstrap 95 % interval (percentile, resampling runs with replacement, seeded).
//!
//! Points are runs, so a network trained with several seeds counts once per seed. A metric that
//! is the same for every run, or studies with fewer networks than a rank correlation needs,
//! are said to be so instead of given a number.

use anyhow::{anyhow, Context, Result};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::error::bad_input;
use crate::io::write_atomic;
use crate::plot::{self, Chart, Mark, Series};
use crate::study::efficiency::{read_results_file, RunResult};
use crate::study::graph_metrics::{GraphMetrics, METRICS};

/// How to correlate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Fewest distinct networks for which correlations are given.
    pub min_networks: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bootstrap: 2000,
            seed: 0,
            min_networks: 5,
        }
    }
}

/// A correlation with its bootstrap interval.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Estimate {
    /// Spearman's ρ over the runs.
    pub rho: f64,
    /// The 2.5 % and 97.5 % bootstrap percentiles.
    pub ci95: [f64; 2],
}

/// One metric against test error.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MetricCorrelation {
    /// The metric's name in the rows (`graph.<metric>`).
    pub metric: String,
    /// What it is.
    pub label: String,
    /// Distinct values over the runs.
    pub distinct: usize,
    /// Rank correlation with test error; None when the metric is constant.
    pub raw: Option<Estimate>,
    /// Partial rank correlation given log₁₀ parameters; None when the metric is constant or
    /// a function of the parameter count's rank.
    pub given_params: Option<Estimate>,
    /// Why a number is missing, if one is.
    pub note: Option<String>,
}

/// `correlate.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Correlation {
    /// The results files read.
    pub studies: Vec<String>,
    /// Runs (points).
    pub runs: usize,
    /// Distinct networks among them.
    pub networks: usize,
    /// The error correlated with.
    pub error: String,
    /// How the numbers are made.
    pub rule: String,
    /// Per metric; empty when there are too few networks.
    pub metrics: Vec<MetricCorrelation>,
    /// Why there are no correlations, if there are none.
    pub too_few: Option<String>,
}

/// Ranks from 1, ties given the mean of their ranks.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation; NaN when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's ρ: Pearson's correlation of the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// The partial Spearman correlation of `x` and `y` given `z`:
/// `(ρxy − ρxz·ρyz) / √((1 − ρxz²)(1 − ρyz²))` on ranks; NaN when `z` determines either.
pub fn partial_spearman(x: &[f64], y: &[f64], z: &[f64]) -> f64 {
    let (rx, ry, rz) = (ranks(x), ranks(y), ranks(z));
    let (xy, xz, yz) = (pearson(&rx, &ry), pearson(&rx, &rz), pearson(&ry, &rz));
    let (ux, uy) = (1.0 - xz * xz, 1.0 - yz * yz);
    // Rounding leaves 1 − ρ² a few ulps from 0 where z's ranks are x's or y's.
    if !(ux > 1e-9 && uy > 1e-9) {
        return f64::NAN;
    }
    (xy - xz * yz) / (ux * uy).sqrt()
}

/// `stat` on the data and its bootstrap interval: `b` resamples of the indices with
/// replacement, the NaN ones (a resample with a constant side) left out; None when the
/// statistic itself is NaN or most resamples are.
fn estimate(
    n: usize,
    b: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    stat: impl Fn(&[usize]) -> f64,
) -> Option<Estimate> {
    let all: Vec<usize> = (0..n).collect();
    let rho = stat(&all);
    if rho.is_nan() {
        return None;
    }
    let mut samples: Vec<f64> = Vec::with_capacity(b);
    let mut idx = vec![0usize; n];
    for _ in 0..b {
        for i in idx.iter_mut() {
            *i = rng.gen_range(0..n);
        }
        let s = stat(&idx);
        if !s.is_nan() {
            samples.push(s);
        }
    }
    if samples.len() * 2 < b {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((p * (samples.len() - 1) as f64).round()) as usize];
    Some(Estimate {
        rho,
        ci95: [q(0.025), q(0.975)],
    })
}

/// Read the rows of each RESULTS (a study folder or its `results.jsonl`).
pub fn read(paths: &[PathBuf]) -> Result<Vec<(String, Vec<RunResult>)>> {
    paths
        .iter()
        .map(|p| {
            let file = if p.is_dir() {
                p.join("results.jsonl")
            } else {
                p.clone()
            };
            let rows = read_results_file(&file)?;
            if let Some(r) = rows.iter().find(|r| r.graph.is_none()) {
                return Err(bad_input(anyhow!(
                    "{}: the row of {} (seed {}) has no graph metrics (written before rows had them): run `study efficiency` again with the same --out to add them — nothing is trained again",
                    file.display(),
                    r.name,
                    r.seed
                )));
            }
            Ok((file.display().to_string(), rows))
        })
        .collect()
}

/// The most work `correlate` takes on: resamples × runs × log₂ runs, summed over its metrics
/// and both correlations (about a minute on one core). A million resamples of 10⁵ runs would
/// otherwise spin for days.
pub const MAX_WORK: f64 = 2e10;

/// Refuse, before any resampling, a request whose work passes [`MAX_WORK`].
pub fn check_work(studies: &[(String, Vec<RunResult>)], o: &Options) -> Result<()> {
    let n: usize = studies.iter().map(|(_, r)| r.len()).sum();
    let work = 2.0 * METRICS.len() as f64 * o.bootstrap as f64 * n as f64 * (n as f64 + 1.0).log2();
    if work > MAX_WORK {
        return Err(bad_input(anyhow!(
            "{n} runs × {} resamples is about {work:.1e} steps of work, more than the {MAX_WORK:.0e} correlate takes on: give a smaller --bootstrap",
            o.bootstrap
        )));
    }
    Ok(())
}

/// The correlations over every row of `studies`.
pub fn correlate(studies: &[(String, Vec<RunResult>)], o: &Options) -> Correlation {
    let rows: Vec<&RunResult> = studies.iter().flat_map(|(_, r)| r).collect();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let error: Vec<f64> = rows
        .iter()
        .map(|r| 100.0 * (1.0 - r.final_test_acc))
        .collect();
    let log_params: Vec<f64> = rows.iter().map(|r| (r.params as f64).log10()).collect();
    let rule = format!(
        "Spearman's rho over runs (ties ranked by their mean rank); 'given params': the partial rank correlation given log10 parameters; 95 % intervals: percentiles of {} bootstrap resamples of the runs (seed {})",
        o.bootstrap, o.seed
    );
    let mut c = Correlation {
        studies: studies.iter().map(|(s, _)| s.clone()).collect(),
        runs: rows.len(),
        networks: names.len(),
        error: "final test error (%)".into(),
        rule,
        metrics: Vec::new(),
        too_few: None,
    };
    if names.len() < o.min_networks {
        c.too_few = Some(format!(
            "{} networks ({} runs): too few for a rank correlation to mean anything — at least {} distinct networks are needed",
            names.len(),
            rows.len(),
            o.min_networks
        ));
        return c;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed);
    for (metric, label) in METRICS {
        let x: Vec<f64> = rows
            .iter()
            .map(|r| metric_of(r.graph.as_ref(), metric))
            .collect();
        let mut distinct = x.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let raw = estimate(rows.len(), o.bootstrap, &mut rng, |idx| {
            spearman(&pick(&x, idx), &pick(&error, idx))
        });
        let given = estimate(rows.len(), o.bootstrap, &mut rng, |idx| {
            partial_spearman(&pick(&x, idx), &pick(&error, idx), &pick(&log_params, idx))
        });
        let note = if distinct.len() < 2 {
            Some("the same for every run".to_string())
        } else if given.is_none() {
            Some(
                "determined by the parameter count's rank: nothing is left at matched size"
                    .to_string(),
            )
        } else {
            None
        };
        c.metrics.push(MetricCorrelation {
            metric: metric.to_string(),
            label: label.to_string(),
            distinct: distinct.len(),
            raw,
            given_params: given,
            note,
        });
    }
    c
}

fn metric_of(g: Option<&GraphMetrics>, metric: &str) -> f64 {
    g.and_then(|g| g.get(metric)).unwrap_or(f64::NAN)
}

/// The table of a correlation, as text.
pub fn table(c: &Correlation) -> String {
    use prettytable::{format, Cell, Row, Table};
    let mut head = format!(
        "{} runs of {} networks from {}\n",
        c.runs,
        c.networks,
        c.studies.join(", ")
    );
    if let Some(why) = &c.too_few {
        head.push_str(why);
        head.push('\n');
        return head;
    }
    let mut t = Table::new();
    t.set_format(*format::consts::FORMAT_BOX_CHARS);
    t.set_titles(Row::new(
        [
            "metric (mean over blocks)",
            "values",
            "rho with error [95 % CI]",
            "given log params [95 % CI]",
        ]
        .iter()
        .map(|s| Cell::new(s))
        .collect(),
    ));
    let show = |e: &Option<Estimate>| match e {
        Some(e) => format!("{:+.2} [{:+.2}, {:+.2}]", e.rho, e.ci95[0], e.ci95[1]),
        None => "—".to_string(),
    };
    for m in &c.metrics {
        t.add_row(Row::new(vec![
            Cell::new(&m.label),
            Cell::new(&m.distinct.to_string()),
            Cell::new(&show(&m.raw)),
            Cell::new(&show(&m.given_params)),
        ]));
    }
    let notes: String = c
        .metrics
        .iter()
        .filter_map(|m| m.note.as_ref().map(|n| format!("{}: {n}\n", m.label)))
        .collect();
    format!("{head}{t}{notes}{}\n", c.rule)
}

/// Write `correlate.json`, `correlate.txt` and one figure per metric that varies
/// (`correlate_<metric>`: error against the metric, one point per run, coloured by parameter
/// count) in `out`.
/// Returns the files written.
pub fn report(
    studies: &[(String, Vec<RunResult>)],
    c: &Correlation,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut files = Vec::new();
    let json = out.join("correlate.json");
    write_atomic(&json, serde_json::to_string_pretty(c)?.as_bytes())?;
    files.push(json);
    let txt = out.join("correlate.txt");
    write_atomic(&txt, table(c).as_bytes())?;
    files.push(txt);
    if c.too_few.is_some() {
        return Ok(files);
    }
    let rows: Vec<&RunResult> = studies.iter().flat_map(|(_, r)| r).collect();
    let bins = size_bins(&rows);
    // A metric that is the same for every run has nothing to draw.
    for m in c.metrics.iter().filter(|m| m.distinct > 1) {
        let mut series = Vec::new();
        for (bi, (lo, hi)) in bins.iter().enumerate() {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| (r.params as f64) >= *lo && (r.params as f64) <= *hi)
                .map(|r| {
                    (
                        metric_of(r.graph.as_ref(), &m.metric),
                        100.0 * (1.0 - r.final_test_acc),
                    )
                })
                .collect();
            series.push(
                Series::new(
                    format!("{} – {} params", short(*lo), short(*hi)),
                    pts,
                    Mark::Points,
                )
                .colour(bi),
            );
        }
        let rho = m
            .raw
            .as_ref()
            .map_or("—".to_string(), |e| format!("{:+.2}", e.rho));
        let partial = m
            .given_params
            .as_ref()
            .map_or("—".to_string(), |e| format!("{:+.2}", e.rho));
        let chart = Chart {
            title: format!(
                "Test error against {} (rho {rho}; given size {partial})",
                m.label
            ),
            x_label: format!("{} (mean over blocks)", m.label),
            y_label: "final test error (%)".into(),
            series,
        };
        let stem = format!("correlate_{}", m.metric);
        plot::save(&chart, out, &stem)?;
        files.push(out.join(format!("{stem}.png")));
    }
    Ok(files)
}

/// Up to four parameter ranges with about as many runs in each (for the figures' colours).
fn size_bins(rows: &[&RunResult]) -> Vec<(f64, f64)> {
    let mut p: Vec<f64> = rows.iter().map(|r| r.params as f64).collect();
    p.sort_by(f64::total_cmp);
    p.dedup();
    let k = p.len().clamp(1, 4);
    (0..k)
        .map(|i| (p[i * p.len() / k], p[((i + 1) * p.len() / k).max(1) - 1]))
        .collect()
}

fn short(p: f64) -> String {
    if p >= 1e6 {
        format!("{:.2}M", p / 1e6)
    } else {
        format!("{:.0}K", p / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 30.0, 20.0, 30.0]), [1.0, 3.5, 2.0, 3.5]);
    }

    #[test]
    fn spearman_by_hand() {
        // A monotone relation is ±1 whatever its shape.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3)).collect();
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-12);
        let neg: Vec<f64> = x.iter().map(|v| -v.exp()).collect();
        assert!((spearman(&x, &neg) + 1.0).abs() < 1e-12);
        // d = rank differences (0, 0, 1, -1, 0): ρ = 1 − 6·2 / (5·24) = 0.9.
        assert!((spearman(&x, &[1.0, 2.0, 4.0, 3.0, 5.0]) - 0.9).abs() < 1e-12);
        assert!(spearman(&x, &[2.0; 5]).is_nan());
    }

    #[test]
    fn partial_correlation_removes_what_size_explains() {
        // x and y both follow z, with independent noise: raw, ρ ≈ var z / (var z + var noise)
        // = 133 / (133 + 33) ≈ 0.8; given z, ≈ 0.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let z: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let mut noisy =
            |z: &[f64]| -> Vec<f64> { z.iter().map(|v| v + rng.gen_range(-10.0..10.0)).collect() };
        let (x, y) = (noisy(&z), noisy(&z));
        let raw = spearman(&x, &y);
        let partial = partial_spearman(&x, &y, &z);
        assert!(raw > 0.6, "{raw}");
        assert!(partial.abs() < 0.3, "{partial} vs {raw}");
        // Given itself, nothing is left.
        assert!(partial_spearman(&x, &y, &x).is_nan());
    }
}
