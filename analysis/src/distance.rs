//! Gradient paths: the shortest hop count between every pair of nodes `x_j`, `x_ℓ` (`j < ℓ`).
//!
//! Every pattern is translation invariant, so the shortest path `x_j → x_ℓ` depends only on the
//! distance `d = ℓ − j` (a path between them never leaves `j..=ℓ`): it is the fewest parts
//! `D(d)` in a sum of offsets equal to `d` (unbounded coin change), computed for all `d ≤ N` in
//! `O(N · |O|)`. The pair statistics follow without visiting pairs: distance `d` occurs for
//! `N + 1 − d` pairs.
//!
//! **Theorem (sparse, base c).** `D(d) = s_c(d)`, the base-`c` digit sum of `d`.
//! *Proof.* Writing `d` in base `c` gives a sum of `s_c(d)` powers of `c`, each `≤ d ≤ N`, so
//! `D(d) ≤ s_c(d)`. Conversely take a shortest sum; if some power `c^i` appeared `≥ c` times,
//! replacing `c` copies by one `c^{i+1}` (also `≤ d`, hence an offset) would shorten it by
//! `c − 1 ≥ 1`. So every power appears at most `c − 1` times and the sum is the base-`c`
//! representation of `d`, which is unique: `D(d) = s_c(d)`. ∎
//!
//! **Corollary (the exact worst case).** `max_{1≤d≤N} s_c(d)` is given by
//! [`max_digit_sum_upto`]; it is at most `(c − 1)·(⌊log_c N⌋ + 1)` and equals
//! `(c − 1)·m` when `N = c^m − 1`. In base-2 terms that is `log₂N · (c−1)/log₂c`, whose factor
//! `(c−1)/log₂c` is smallest (`= 1`) at `c = 2`.
//!
//! [`all_pairs_bfs`] is the plain algorithm (a BFS from every node of any DAG), used to verify
//! the above on small depths.

use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::VecDeque;

/// `D(d)` for `d = 0..=n`: fewest offsets summing to `d`; `None` where `d` is not reachable.
pub fn min_hops(offsets: &[usize], n: usize) -> Vec<Option<u32>> {
    let mut member = vec![false; n + 1];
    for &o in offsets {
        if o <= n {
            member[o] = true;
        }
    }
    let mut d = vec![None; n + 1];
    d[0] = Some(0);
    for x in 1..=n {
        if member[x] {
            // One hop is the minimum possible: no need to scan (keeps dense at O(N)).
            d[x] = Some(1);
            continue;
        }
        let mut best: Option<u32> = None;
        for &o in offsets {
            if o > x {
                break;
            }
            if let Some(h) = d[x - o] {
                if best.is_none_or(|b| h + 1 < b) {
                    best = Some(h + 1);
                }
            }
        }
        d[x] = best;
    }
    d
}

/// Statistics of the shortest hop count over all pairs `0 ≤ j < ℓ ≤ N`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GradientStats {
    /// Longest shortest path over reachable pairs.
    pub max: u32,
    /// Mean shortest path over reachable pairs.
    pub mean: f64,
    /// `histogram[h]` = number of pairs whose shortest path has `h` hops.
    pub histogram: Vec<u64>,
    /// Number of pairs `j < ℓ`, `N(N+1)/2`.
    pub pairs: u64,
    /// Pairs with no path at all (only custom offset sets without 1 can have them).
    pub unreachable: u64,
}

impl GradientStats {
    /// The statistics of a hop histogram (`histogram[h]` pairs at `h` hops) over the
    /// `N(N+1)/2` pairs of a block of `n` layers; pairs not in the histogram are unreachable.
    pub fn from_histogram(histogram: Vec<u64>, n: usize) -> Self {
        let reachable: u64 = histogram.iter().sum();
        let total: u128 = histogram
            .iter()
            .enumerate()
            .map(|(h, &c)| h as u128 * c as u128)
            .sum();
        let pairs = (n as u64) * (n as u64 + 1) / 2;
        GradientStats {
            max: histogram.len().saturating_sub(1) as u32,
            mean: if reachable == 0 {
                0.0
            } else {
                total as f64 / reachable as f64
            },
            histogram,
            pairs,
            unreachable: pairs - reachable,
        }
    }

    /// Add `count` pairs at `hops` hops to a histogram.
    pub fn count(histogram: &mut Vec<u64>, hops: usize, count: u64) {
        if histogram.len() <= hops {
            histogram.resize(hops + 1, 0);
        }
        histogram[hops] += count;
    }
}

/// Pair statistics from `D(d)` (see module docs): distance `d` occurs for `N + 1 − d` pairs.
pub fn gradient_stats(offsets: &[usize], n: usize) -> GradientStats {
    let d = min_hops(offsets, n);
    stats_from_distances(&d, n)
}

fn stats_from_distances(d: &[Option<u32>], n: usize) -> GradientStats {
    let mut histogram: Vec<u64> = Vec::new();
    for (dist, hops) in d.iter().enumerate().skip(1) {
        if let Some(h) = hops {
            GradientStats::count(&mut histogram, *h as usize, (n + 1 - dist) as u64);
        }
    }
    GradientStats::from_histogram(histogram, n)
}

/// Shortest hop counts from every node of any DAG by BFS: `dist[j][ℓ]` (`None` if unreachable).
/// `O(V · (V + E))`: for verification on small graphs.
pub fn all_pairs_bfs<N, E>(g: &DiGraph<N, E>) -> Vec<Vec<Option<u32>>> {
    let v = g.node_count();
    let mut all = Vec::with_capacity(v);
    let mut queue = VecDeque::new();
    for s in 0..v {
        let mut dist = vec![None; v];
        dist[s] = Some(0u32);
        queue.clear();
        queue.push_back(NodeIndex::new(s));
        while let Some(x) = queue.pop_front() {
            let dx = dist[x.index()].unwrap_or(0);
            for y in g.neighbors(x) {
                if dist[y.index()].is_none() {
                    dist[y.index()] = Some(dx + 1);
                    queue.push_back(y);
                }
            }
        }
        all.push(dist);
    }
    all
}

/// Pair statistics from a BFS distance matrix over pairs `j < ℓ` of a block graph.
pub fn gradient_stats_from_matrix(dist: &[Vec<Option<u32>>]) -> GradientStats {
    let n = dist.len().saturating_sub(1);
    let mut histogram: Vec<u64> = Vec::new();
    for (j, row) in dist.iter().enumerate() {
        for h in row.iter().skip(j + 1).flatten() {
            GradientStats::count(&mut histogram, *h as usize, 1);
        }
    }
    GradientStats::from_histogram(histogram, n)
}

/// Sum of the base-`c` digits of `d`.
pub fn digit_sum(mut d: u64, c: u64) -> u64 {
    let mut s = 0;
    while d > 0 {
        s += d % c;
        d /= c;
    }
    s
}

/// `⌊log_c n⌋` for `n ≥ 1`, exactly (integer arithmetic).
pub fn floor_log(n: u64, c: u64) -> u32 {
    let mut k = 0;
    let mut p = c;
    while p <= n {
        k += 1;
        match p.checked_mul(c) {
            Some(q) => p = q,
            None => break,
        }
    }
    k
}

/// `max_{0 ≤ d ≤ n} s_c(d)` in closed form.
///
/// Write `n = (n_m … n_0)_c`. Any `d ≤ n` other than `n` agrees with `n` above some digit `i`,
/// has a smaller digit there, and is free below; its digit sum is largest with digit `n_i − 1`
/// at `i` and `c − 1` everywhere below. So the maximum is the larger of `s_c(n)` and
/// `max_{i: n_i > 0} (Σ_{t>i} n_t) + n_i − 1 + (c − 1)·i`.
pub fn max_digit_sum_upto(n: u64, c: u64) -> u64 {
    let mut digits = Vec::new();
    let mut x = n;
    while x > 0 {
        digits.push(x % c);
        x /= c;
    }
    let mut best = digits.iter().sum::<u64>();
    let mut above = 0u64;
    for i in (0..digits.len()).rev() {
        if digits[i] > 0 {
            best = best.max(above + digits[i] - 1 + (c - 1) * i as u64);
        }
        above += digits[i];
    }
    best
}

/// The bound `(c − 1)·(⌊log_c N⌋ + 1)` on the sparse worst-case gradient path.
pub fn sparse_gradient_bound(n: u64, c: u64) -> u64 {
    (c - 1) * (floor_log(n, c) as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Pattern, Topology};

    #[test]
    fn digit_sums_from_the_slides() {
        // 23 = 10111₂ → 4 steps; 14 = 1110₂ → 3 steps.
        assert_eq!(digit_sum(23, 2), 4);
        assert_eq!(digit_sum(14, 2), 3);
        let d = min_hops(&[1, 2, 4, 8, 16], 23);
        assert_eq!(d[23], Some(4));
        assert_eq!(d[14], Some(3));
    }

    #[test]
    fn max_digit_sum_by_hand() {
        // n = 100 = 1100100₂: the best d ≤ 100 is 63 = 111111₂ → 6.
        assert_eq!(max_digit_sum_upto(100, 2), 6);
        // n = 100 = 10201₃: 80 = 2222₃ → 8.
        assert_eq!(max_digit_sum_upto(100, 3), 8);
        // n = 127 = 1111111₂ → 7 (n itself).
        assert_eq!(max_digit_sum_upto(127, 2), 7);
        for c in 2..=7u64 {
            for n in 0..=500u64 {
                let brute = (0..=n).map(|d| digit_sum(d, c)).max().unwrap();
                assert_eq!(max_digit_sum_upto(n, c), brute, "n={n} c={c}");
            }
        }
    }

    #[test]
    fn stats_by_hand() {
        // Plain N = 3: pairs at distance 1 (3 pairs), 2 (2), 3 (1) → mean (3+4+3)/6 = 10/6.
        let s = gradient_stats(&[1], 3);
        assert_eq!(s.max, 3);
        assert_eq!(s.histogram, vec![0, 3, 2, 1]);
        assert!((s.mean - 10.0 / 6.0).abs() < 1e-12);
        // Dense: every pair adjacent.
        let d = gradient_stats(&[1, 2, 3], 3);
        assert_eq!((d.max, d.mean), (1, 1.0));
    }

    #[test]
    fn fast_equals_bfs() {
        for pattern in [
            Pattern::Plain,
            Pattern::Dense,
            Pattern::Sparse { base: 2 },
            Pattern::Sparse { base: 5 },
            Pattern::Custom {
                offsets: vec![3, 5],
            },
        ] {
            let t = Topology::new(pattern, 40).unwrap();
            let m = all_pairs_bfs(&t.graph().unwrap());
            assert_eq!(
                gradient_stats(&t.offsets(), 40),
                gradient_stats_from_matrix(&m)
            );
        }
    }

    #[test]
    fn unreachable_pairs_are_counted() {
        // Offsets {2}: odd distances are unreachable. N = 4: distances 1 (4 pairs), 3 (2 pairs).
        let s = gradient_stats(&[2], 4);
        assert_eq!(s.unreachable, 6);
        assert_eq!(s.max, 2);
    }
}
