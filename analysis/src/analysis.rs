//! The analysis of one block (and of several at once): connections, exact path counts and
//! length histograms, all-pairs gradient-path statistics. [`crate::claims`] and
//! [`crate::report`] both read it.

use num_bigint::BigUint;
use serde::{Serialize, Serializer};

use crate::distance::{gradient_stats, GradientStats};
use crate::paths::{path_count, path_length_histogram, summarize_lengths, LengthSummary};
use crate::topology::Topology;

/// Depth above which path-length histograms are skipped unless forced: the histogram costs
/// `O(N² · runs)` big-integer additions (see `BENCHMARKS.md`: ≈ 1 s at this depth).
pub const HISTOGRAM_DEPTH_LIMIT: usize = 3_000;

/// Serialize a big integer as its exact decimal string.
pub fn big_as_string<S: Serializer>(v: &BigUint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_str_radix(10))
}

fn big_vec_as_strings<S: Serializer>(v: &Option<Vec<BigUint>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(v) => s.collect_seq(v.iter().map(|b| b.to_str_radix(10))),
    }
}

/// Everything computed about one block.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyAnalysis {
    /// `plain`, `res`, `dense`, `sparse` or `custom`.
    pub name: String,
    /// Human description (e.g. `sparse(base 3)`, `custom(1,2,3,5,8)`).
    pub pattern: String,
    /// `N + 1`.
    pub nodes: usize,
    /// Aggregation links.
    pub connections: u64,
    /// `connections / (N·log₂N)` (0 at `N = 1`, where `log₂N = 0`).
    pub connections_per_n_log2_n: f64,
    /// Exact number of paths `x_0 → x_N`.
    #[serde(serialize_with = "big_as_string")]
    pub paths: BigUint,
    /// `[k]` = paths through exactly `k` layers; `None` when skipped (depth above the limit).
    #[serde(serialize_with = "big_vec_as_strings")]
    pub path_length_histogram: Option<Vec<BigUint>>,
    /// Summary of the histogram, when computed.
    pub path_length_summary: Option<LengthSummary>,
    /// Longest shortest path over all pairs `j < ℓ`.
    pub gradient_path_max: u32,
    /// Mean shortest path over all pairs.
    pub gradient_path_mean: f64,
    /// Shortest-path statistics in full.
    pub gradient: GradientStats,
}

/// Analyse one block; `histogram` chooses whether to compute the path-length histogram.
pub fn analyze(t: &Topology, histogram: bool) -> TopologyAnalysis {
    let n = t.depth;
    let offsets = t.offsets();
    let hist = histogram.then(|| path_length_histogram(&offsets, n));
    let gradient = gradient_stats(&offsets, n);
    let connections = t.connections();
    let nlogn = n as f64 * (n as f64).log2();
    TopologyAnalysis {
        name: t.pattern.name().to_string(),
        pattern: t.pattern.to_string(),
        nodes: t.nodes(),
        connections,
        connections_per_n_log2_n: if nlogn > 0.0 {
            connections as f64 / nlogn
        } else {
            0.0
        },
        paths: path_count(&offsets, n),
        path_length_summary: hist.as_deref().and_then(summarize_lengths),
        path_length_histogram: hist,
        gradient_path_max: gradient.max,
        gradient_path_mean: gradient.mean,
        gradient,
    }
}

/// Analyse several blocks. Blocks with the same offset set (res and dense) are computed once
/// and relabelled; the distinct ones run on threads of their own (they are independent).
pub fn analyze_many(tops: &[Topology], histogram: bool) -> Vec<TopologyAnalysis> {
    let offsets: Vec<Vec<usize>> = tops.iter().map(|t| t.offsets()).collect();
    let mut distinct: Vec<usize> = Vec::new();
    for i in 0..tops.len() {
        if !distinct.iter().any(|&d| offsets[d] == offsets[i]) {
            distinct.push(i);
        }
    }
    let computed: Vec<TopologyAnalysis> = std::thread::scope(|s| {
        let handles: Vec<_> = distinct
            .iter()
            .map(|&i| {
                let t = &tops[i];
                s.spawn(move || analyze(t, histogram))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("analysis thread panicked"))
            .collect()
    });
    tops.iter()
        .enumerate()
        .map(|(i, t)| {
            let k = distinct
                .iter()
                .position(|&d| offsets[d] == offsets[i])
                .expect("every block has a representative");
            let mut a = computed[k].clone();
            a.name = t.pattern.name().to_string();
            a.pattern = t.pattern.to_string();
            a
        })
        .collect()
}
