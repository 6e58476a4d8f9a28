//! The graph metrics a study sets beside each trained network (`study efficiency`'s rows,
//! `study correlate`): for one block in the aggregation view — node 0 the block input, node
//! `N` its output — the connections, the exact number of input → output paths (as log₁₀, since
//! it can pass `f64`'s range only in its logarithm), the mean and longest path length, the mean
//! and longest all-pairs gradient path, and the share of the block's layers its output reads.
//!
//! The mean path length is computed exactly without the length histogram: beside the path
//! counts `p(ℓ) = Σ_{j∈S(ℓ)} p(j)`, the summed lengths `s(ℓ) = Σ_{j∈S(ℓ)} (s(j) + p(j))` (each
//! path into `j` is one edge longer into `ℓ`), so the mean is `s(N) / p(N)` — linear in the
//! edges, as the path count is.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

use crate::dag::BlockDag;
use crate::dag_analysis::{dag_gradient_stats, dag_path_length_range};
use crate::paths::big_ratio;

/// A block's graph metrics (see the module).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockMetrics {
    /// Edges (aggregation links), the block output's included.
    pub connections: u64,
    /// log₁₀ of the number of paths from the block input to its output.
    pub log10_paths: f64,
    /// Mean length (edges) of those paths.
    pub mean_path_length: f64,
    /// Longest of them.
    pub max_path_length: usize,
    /// Mean shortest path over all pairs `j < ℓ` with a path (the gradient's distance from a
    /// node to an earlier one).
    pub mean_gradient_path: f64,
    /// Longest shortest path over those pairs.
    pub max_gradient_path: u32,
    /// The share of the block's layers `1..N−1` that its output reads directly.
    pub output_reads: f64,
}

/// The metrics of a block whose last node is its output.
pub fn block_metrics(d: &BlockDag) -> BlockMetrics {
    let n = d.nodes();
    let mut p: Vec<BigUint> = vec![BigUint::zero(); n];
    let mut s: Vec<BigUint> = vec![BigUint::zero(); n];
    p[0] = BigUint::one();
    for l in 1..n {
        let (mut pl, mut sl) = (BigUint::zero(), BigUint::zero());
        for &j in d.sources(l) {
            pl += &p[j];
            sl += &s[j];
            sl += &p[j];
        }
        p[l] = pl;
        s[l] = sl;
    }
    let out = n - 1;
    let paths = &p[out];
    let gradient = dag_gradient_stats(d);
    let layers = out.saturating_sub(1);
    let read = d
        .sources(out)
        .iter()
        .filter(|&&j| j >= 1 && j < out)
        .count();
    BlockMetrics {
        connections: d.edges() as u64,
        log10_paths: log10(paths),
        mean_path_length: if paths.is_zero() {
            0.0
        } else {
            big_ratio(&s[out], paths)
        },
        max_path_length: if paths.is_zero() {
            0
        } else {
            dag_path_length_range(d)[out].1
        },
        mean_gradient_path: gradient.mean,
        max_gradient_path: gradient.max,
        output_reads: if layers == 0 {
            0.0
        } else {
            read as f64 / layers as f64
        },
    }
}

/// log₁₀ of a count of any size (−∞ for zero): exact to `f64` precision, by the leading 64
/// bits and the count of the rest.
pub fn log10(x: &BigUint) -> f64 {
    let bits = x.bits();
    if bits <= 1000 {
        return x.to_f64().map_or(f64::NAN, f64::log10);
    }
    let shift = bits - 64;
    let top = (x >> shift).to_f64().unwrap_or(f64::NAN);
    top.log10() + shift as f64 * std::f64::consts::LOG10_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag_analysis::{dag_path_count, dag_path_length_histogram};
    use crate::paths::summarize_lengths;
    use crate::{Pattern, Topology};

    fn dag_of(pattern: Pattern, depth: usize) -> BlockDag {
        Topology::new(pattern, depth).unwrap().block_dag().unwrap()
    }

    #[test]
    fn a_dense_block_by_hand() {
        // Dense, 3 nodes after the input: paths 0→3 are the subsets of {1, 2} on the way,
        // 4 of them, of lengths 1, 2, 2, 3 (mean 2); every pair is one hop apart; the output
        // reads both layers.
        let m = block_metrics(&dag_of(Pattern::Dense, 3));
        assert_eq!(m.connections, 6);
        assert!((m.log10_paths - 4f64.log10()).abs() < 1e-12);
        assert_eq!(m.mean_path_length, 2.0);
        assert_eq!(m.max_path_length, 3);
        assert_eq!((m.mean_gradient_path, m.max_gradient_path), (1.0, 1));
        assert_eq!(m.output_reads, 1.0);
    }

    #[test]
    fn a_chain_by_hand() {
        // Plain, 4 nodes after the input: one path of 4 edges; pair (j, ℓ) is ℓ − j hops:
        // 4 pairs at 1, 3 at 2, 2 at 3, 1 at 4 → mean 20/10; the output reads layer 3 of 3.
        let m = block_metrics(&dag_of(Pattern::Plain, 4));
        assert_eq!(m.connections, 4);
        assert_eq!(m.log10_paths, 0.0);
        assert_eq!((m.mean_path_length, m.max_path_length), (4.0, 4));
        assert_eq!((m.mean_gradient_path, m.max_gradient_path), (2.0, 4));
        assert!((m.output_reads - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn agrees_with_the_histogram_and_the_path_count() {
        // The linear programme against the length histogram and the path count.
        for (pattern, depth) in [
            (Pattern::Dense, 30),
            (Pattern::Sparse { base: 2 }, 41),
            (Pattern::Sparse { base: 3 }, 29),
            (
                Pattern::Custom {
                    offsets: vec![1, 3, 4],
                },
                25,
            ),
        ] {
            let d = dag_of(pattern.clone(), depth);
            let m = block_metrics(&d);
            let h = summarize_lengths(&dag_path_length_histogram(&d)).unwrap();
            assert!((m.mean_path_length - h.mean).abs() < 1e-9, "{pattern:?}");
            assert_eq!(m.max_path_length, h.max, "{pattern:?}");
            let paths = dag_path_count(&d).to_f64().unwrap();
            assert!((m.log10_paths - paths.log10()).abs() < 1e-12, "{pattern:?}");
        }
        // Dense has 2^(N−1) paths from x_0 to x_N.
        let m = block_metrics(&dag_of(Pattern::Dense, 300));
        assert!((m.log10_paths - 299.0 * 2f64.log10()).abs() < 1e-9);
    }

    #[test]
    fn log10_of_counts_beyond_f64() {
        let x = BigUint::one() << 5000u32;
        assert!((log10(&x) - 5000.0 * std::f64::consts::LOG10_2).abs() < 1e-9);
        assert_eq!(log10(&BigUint::from(1000u32)), 3.0);
        assert_eq!(log10(&BigUint::zero()), f64::NEG_INFINITY);
    }
}
