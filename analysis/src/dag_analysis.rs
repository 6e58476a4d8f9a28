//! Exact analysis of any DAG block with general algorithms (the offset patterns keep their
//! closed-form programmes in [`crate::paths`] and [`crate::distance`]):
//!
//! * paths `x_0 → x_N`: `p(0) = 1`, `p(ℓ) = Σ_{j ∈ S(ℓ)} p(j)` in node order (a topological
//!   order by construction), exact [`BigUint`];
//! * path lengths: the same programme per length, `h_k(ℓ) = Σ_{j ∈ S(ℓ)} h_{k−1}(j)`, each node
//!   keeping only the lengths between its shortest and longest path, and each node's row freed
//!   once its last reader has used it;
//! * gradient paths: one breadth-first search per node over a compressed successor list, the
//!   statistics of all pairs `j < ℓ` accumulated on the fly (no `N × N` matrix), the sources
//!   split over threads with integer sums merged in a fixed order.

use num_bigint::BigUint;
use num_traits::{One, Zero};

use crate::dag::BlockDag;
use crate::distance::GradientStats;
use crate::paths::{summarize_lengths, LengthSummary};

/// Largest `Σ_ℓ |S(ℓ)| · (longest − shortest path to ℓ + 1)` for which the length histogram is
/// computed (big-integer additions); beyond it the histogram is skipped and said so.
pub const HISTOGRAM_WORK_LIMIT: u64 = 200_000_000;

/// Largest `nodes · (nodes + edges)` (the steps of a breadth-first search from every node) for
/// which the all-pairs gradient statistics are computed unasked: a few seconds on two cores
/// (an ER block of 10 002 nodes and 100 952 edges, 1.1·10⁹ steps, takes 0.64 s). Beyond it they
/// are skipped and said so; the exact path counts are linear and always computed.
pub const GRADIENT_WORK_LIMIT: u64 = 4_000_000_000;

/// The work [`dag_gradient_stats`] may do: a breadth-first search from every node.
pub fn gradient_work(d: &BlockDag) -> u64 {
    let n = d.nodes() as u64;
    n.saturating_mul(n + d.edges() as u64)
}

/// Everything `paths` reports for a DAG block.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DagAnalysis {
    /// Nodes `N + 1`.
    pub nodes: usize,
    /// Edges.
    pub connections: u64,
    /// Paths from the block input to its output, exact; None when their big integers would
    /// pass [`PATH_COUNT_BYTES_LIMIT`] (then `log10_paths` estimates it and `paths_skipped`
    /// says why).
    #[serde(serialize_with = "opt_big_as_string")]
    pub paths: Option<BigUint>,
    /// log₁₀ of the number of paths: from the exact count, or estimated in floating point.
    pub log10_paths: f64,
    /// Why the exact count was skipped, if it was.
    pub paths_skipped: Option<String>,
    /// Shortest, longest, most common and mean path length (edges), when the histogram was
    /// computed.
    pub lengths: Option<LengthSummary>,
    /// Paths by length in edges (index = length), as decimal strings in JSON.
    #[serde(serialize_with = "hist_as_strings")]
    pub histogram: Option<Vec<BigUint>>,
    /// Why the histogram was skipped, if it was.
    pub histogram_skipped: Option<String>,
    /// Shortest paths over all pairs `j < ℓ`, unless skipped.
    pub gradient: Option<GradientStats>,
    /// Why the all-pairs statistics were skipped, if they were.
    pub gradient_skipped: Option<String>,
}

fn opt_big_as_string<S: serde::Serializer>(p: &Option<BigUint>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(v) => s.serialize_str(&v.to_string()),
        None => s.serialize_none(),
    }
}

/// The most bytes the exact path counts of one block may take (every node's count is kept
/// until the output's is known): beyond it the count is estimated and said so, unless forced.
pub const PATH_COUNT_BYTES_LIMIT: f64 = (1u64 << 30) as f64;

/// log₂ of the number of paths from node 0 to every node, in floating point (log-sum-exp over
/// each node's sources): what the exact counts will cost is known before one is added.
pub fn log2_path_counts(d: &BlockDag) -> Vec<f64> {
    let mut l = Vec::with_capacity(d.nodes());
    l.push(0.0f64);
    for v in 1..d.nodes() {
        let src = d.sources(v);
        let m = src.iter().map(|&j| l[j]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = src.iter().map(|&j| (l[j] - m).exp2()).sum();
        l.push(m + sum.log2());
    }
    l
}

/// The bytes the exact counts of [`dag_path_count`] hold at once (every node's, at its size).
pub fn path_count_bytes(log2_counts: &[f64]) -> f64 {
    log2_counts.iter().map(|b| (b.max(0.0) + 64.0) / 8.0).sum()
}

fn hist_as_strings<S: serde::Serializer>(
    h: &Option<Vec<BigUint>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match h {
        Some(v) => s.collect_seq(v.iter().map(|c| c.to_string())),
        None => s.serialize_none(),
    }
}

/// log₁₀ of a big integer (its leading bits and its length: exact to f64 precision).
pub fn big_log10(p: &BigUint) -> f64 {
    let bits = p.bits();
    if bits <= 1000 {
        return num_traits::ToPrimitive::to_f64(p)
            .unwrap_or(f64::INFINITY)
            .log10();
    }
    let shift = bits - 64;
    let top = num_traits::ToPrimitive::to_f64(&(p >> shift)).unwrap_or(0.0);
    top.log10() + shift as f64 * std::f64::consts::LOG10_2
}

/// Number of paths from node 0 to node `N`.
pub fn dag_path_count(d: &BlockDag) -> BigUint {
    let mut p: Vec<BigUint> = Vec::with_capacity(d.nodes());
    p.push(BigUint::one());
    for l in 1..d.nodes() {
        let mut s = BigUint::zero();
        for &j in d.sources(l) {
            s += &p[j];
        }
        p.push(s);
    }
    p.pop().unwrap_or_default()
}

/// Shortest and longest path length (edges) from node 0 to every node.
pub fn dag_path_length_range(d: &BlockDag) -> Vec<(usize, usize)> {
    let mut r = vec![(0usize, 0usize); d.nodes()];
    for l in 1..d.nodes() {
        let lo = d.sources(l).iter().map(|&j| r[j].0).min().unwrap_or(0) + 1;
        let hi = d.sources(l).iter().map(|&j| r[j].1).max().unwrap_or(0) + 1;
        r[l] = (lo, hi);
    }
    r
}

/// The work [`dag_path_length_histogram`] does: Σ over edges of the source's length range.
pub fn histogram_work(d: &BlockDag) -> u64 {
    let r = dag_path_length_range(d);
    (1..d.nodes())
        .flat_map(|l| d.sources(l).iter().map(|&j| (r[j].1 - r[j].0 + 1) as u64))
        .sum()
}

/// Paths from node 0 to node `N` by length in edges (index = length).
pub fn dag_path_length_histogram(d: &BlockDag) -> Vec<BigUint> {
    let n = d.nodes();
    let range = dag_path_length_range(d);
    let mut last_reader = vec![0usize; n];
    for l in 1..n {
        for &j in d.sources(l) {
            last_reader[j] = last_reader[j].max(l);
        }
    }
    // rows[v][k] = paths of length range[v].0 + k.
    let mut rows: Vec<Vec<BigUint>> = vec![Vec::new(); n];
    rows[0] = vec![BigUint::one()];
    for l in 1..n {
        let (lo, hi) = range[l];
        let mut row = vec![BigUint::zero(); hi - lo + 1];
        for &j in d.sources(l) {
            let base = range[j].0 + 1 - lo;
            for (k, c) in rows[j].iter().enumerate() {
                row[base + k] += c;
            }
        }
        for &j in d.sources(l) {
            if last_reader[j] == l {
                rows[j] = Vec::new();
            }
        }
        rows[l] = row;
    }
    let (lo, _) = range[n - 1];
    let mut h = vec![BigUint::zero(); lo];
    h.append(&mut rows[n - 1]);
    h
}

/// Shortest-path statistics over all pairs `j < ℓ` (hops from `x_j` to `x_ℓ`; pairs without a
/// path count as unreachable).
pub fn dag_gradient_stats(d: &BlockDag) -> GradientStats {
    let n = d.nodes();
    // Compressed successor lists.
    let mut start = vec![0usize; n + 1];
    for l in 1..n {
        for &j in d.sources(l) {
            start[j + 1] += 1;
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut succ = vec![0u32; start[n]];
    for l in 1..n {
        for &j in d.sources(l) {
            succ[fill[j]] = l as u32;
            fill[j] += 1;
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 16)
        .min(n);
    let chunk = n.div_ceil(threads);
    // Per thread: the histogram of hops of its sources.
    let parts: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, succ) = (&start, &succ);
                scope.spawn(move || {
                    let mut hist: Vec<u64> = Vec::new();
                    let mut stamp = vec![u32::MAX; n];
                    let mut frontier: Vec<u32> = Vec::new();
                    let mut next: Vec<u32> = Vec::new();
                    for s in t * chunk..((t + 1) * chunk).min(n) {
                        stamp[s] = s as u32;
                        frontier.clear();
                        frontier.push(s as u32);
                        let mut hops = 0usize;
                        while !frontier.is_empty() {
                            hops += 1;
                            next.clear();
                            for &x in &frontier {
                                for &y in &succ[start[x as usize]..start[x as usize + 1]] {
                                    if stamp[y as usize] != s as u32 {
                                        stamp[y as usize] = s as u32;
                                        next.push(y);
                                    }
                                }
                            }
                            if !next.is_empty() {
                                GradientStats::count(&mut hist, hops, next.len() as u64);
                            }
                            std::mem::swap(&mut frontier, &mut next);
                        }
                    }
                    hist
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a BFS thread panicked"))
            .collect()
    });
    let mut histogram: Vec<u64> = Vec::new();
    for h in parts {
        for (hops, c) in h.into_iter().enumerate() {
            GradientStats::count(&mut histogram, hops, c);
        }
    }
    GradientStats::from_histogram(histogram, n - 1)
}

/// Everything for one DAG block; the histogram only when asked and within
/// [`HISTOGRAM_WORK_LIMIT`], the all-pairs statistics within [`GRADIENT_WORK_LIMIT`] — both
/// whatever their cost when `force`.
pub fn analyze_dag(d: &BlockDag, histogram: bool, force: bool) -> DagAnalysis {
    let log2 = log2_path_counts(d);
    let bytes = path_count_bytes(&log2);
    let (paths, paths_skipped) = if bytes > PATH_COUNT_BYTES_LIMIT && !force {
        (
            None,
            Some(format!(
                "the exact counts would hold about {:.1} GB of big integers, more than the {:.0} GB this tool spends unasked; log10_paths is a floating-point estimate; --force-histograms counts exactly",
                bytes / 1e9,
                PATH_COUNT_BYTES_LIMIT / 1e9
            )),
        )
    } else {
        (Some(dag_path_count(d)), None)
    };
    let log10_paths = match &paths {
        Some(p) => big_log10(p),
        None => log2.last().copied().unwrap_or(0.0) * std::f64::consts::LOG10_2,
    };
    // The histogram holds more than the counts: without them, not without force.
    let histogram = histogram && paths.is_some();
    let work = histogram_work(d);
    let (hist, skipped) = if !histogram {
        (
            None,
            Some(if paths.is_some() {
                "not asked for".to_string()
            } else {
                "the exact path counts were skipped".to_string()
            }),
        )
    } else if work > HISTOGRAM_WORK_LIMIT && !force {
        (
            None,
            Some(format!(
                "{work} big-integer additions, more than the {HISTOGRAM_WORK_LIMIT} this tool spends on a histogram unasked; --force-histograms computes it"
            )),
        )
    } else {
        (Some(dag_path_length_histogram(d)), None)
    };
    let gwork = gradient_work(d);
    let (gradient, gradient_skipped) = if gwork > GRADIENT_WORK_LIMIT && !force {
        (
            None,
            Some(format!(
                "a search from every node, up to {gwork} steps, more than the {GRADIENT_WORK_LIMIT} this tool spends unasked; --force-histograms computes them"
            )),
        )
    } else {
        (Some(dag_gradient_stats(d)), None)
    };
    DagAnalysis {
        nodes: d.nodes(),
        connections: d.edges() as u64,
        lengths: hist.as_deref().and_then(summarize_lengths),
        paths,
        log10_paths,
        paths_skipped,
        histogram: hist,
        histogram_skipped: skipped,
        gradient,
        gradient_skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::{all_pairs_bfs, gradient_stats_from_matrix};
    use crate::paths::{path_count_graph, path_length_histogram_graph};
    use crate::{Pattern, Topology};
    use petgraph::graph::NodeIndex;

    fn of_pattern(p: Pattern, n: usize) -> BlockDag {
        Topology::new(p, n).unwrap().block_dag().unwrap()
    }

    #[test]
    fn agrees_with_the_closed_forms_on_offset_patterns() {
        // Dense at N: 2^(N−1) paths, lengths binomial C(N−1, k−1), every pair one hop.
        let d = of_pattern(Pattern::Dense, 12);
        assert_eq!(dag_path_count(&d), BigUint::from(1u32) << 11);
        let h = dag_path_length_histogram(&d);
        assert_eq!(h[1], BigUint::from(1u32));
        assert_eq!(h[4], BigUint::from(165u32)); // C(11, 3)
        let g = dag_gradient_stats(&d);
        assert_eq!((g.max, g.unreachable, g.pairs), (1, 0, 78));
        // Sparse base 2: the offset programmes.
        let n = 40;
        let s = of_pattern(Pattern::Sparse { base: 2 }, n);
        let offs = Pattern::Sparse { base: 2 }.offsets(n);
        assert_eq!(dag_path_count(&s), crate::paths::path_count(&offs, n));
        assert_eq!(
            dag_path_length_histogram(&s),
            crate::paths::path_length_histogram(&offs, n)[..dag_path_length_histogram(&s).len()]
        );
        assert_eq!(
            dag_gradient_stats(&s),
            crate::distance::gradient_stats(&offs, n)
        );
    }

    #[test]
    fn agrees_with_petgraph_algorithms_on_random_blocks() {
        for (model, seed) in [("er:p=0.2", 1), ("ba:m=3", 2), ("ws:k=4,p=0.3", 3)] {
            let d =
                BlockDag::random(crate::dag::RandomModel::parse(model).unwrap(), 30, seed).unwrap();
            let g = d.graph();
            let (a, b) = (NodeIndex::new(0), NodeIndex::new(d.nodes() - 1));
            assert_eq!(
                Some(dag_path_count(&d)),
                path_count_graph(&g, a, b),
                "{model}"
            );
            let mut h = dag_path_length_histogram(&d);
            let mut want = path_length_histogram_graph(&g, a, b).unwrap();
            h.resize(d.nodes(), BigUint::zero());
            want.resize(d.nodes(), BigUint::zero());
            assert_eq!(h, want, "{model}");
            assert_eq!(
                dag_gradient_stats(&d),
                gradient_stats_from_matrix(&all_pairs_bfs(&g)),
                "{model}"
            );
            let sum: BigUint = dag_path_length_histogram(&d).iter().sum();
            assert_eq!(sum, dag_path_count(&d));
        }
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::*;

    /// The floating-point estimate agrees with the exact count on random blocks whose counts
    /// are small and huge.
    #[test]
    fn the_log_estimate_matches_the_exact_count() {
        use crate::dag::{BlockDag, RandomModel};
        for (model, n) in [
            (RandomModel::parse("ws:k=4,p=0.2").unwrap(), 50),
            (RandomModel::parse("er:p=0.3").unwrap(), 200),
            (RandomModel::parse("ba:m=3").unwrap(), 400),
        ] {
            let d = BlockDag::random(model, n, 7).unwrap();
            let exact = big_log10(&dag_path_count(&d));
            let est = log2_path_counts(&d).last().unwrap() * std::f64::consts::LOG10_2;
            assert!(
                (exact - est).abs() < 1e-9 * exact.max(1.0),
                "{exact} vs {est}"
            );
            assert_eq!(analyze_dag(&d, false, false).log10_paths, exact);
        }
    }
}
