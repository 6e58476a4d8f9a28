//! Exact path counts `x_0 → x_N` and the histogram of their lengths.
//!
//! Let `p(ℓ)` be the number of paths `x_0 → x_ℓ`. Since layer `ℓ` aggregates `ℓ − o` for
//! `o ∈ O`, `p(0) = 1` and `p(ℓ) = Σ_{o ∈ O, o ≤ ℓ} p(ℓ − o)`: the number of *compositions* of
//! `ℓ` into parts from `O`. For dense/res (`O = {1..N}`) this gives `p(N) = 2^{N−1}`; for plain
//! `1`; for sparse base 2 the number of ordered sums of powers of two.
//!
//! The length histogram refines this: `h_k(ℓ)` = paths `x_0 → x_ℓ` through exactly `k`
//! layers (edges), `h_0(0) = 1`, `h_k(ℓ) = Σ_o h_{k−1}(ℓ − o)`. For dense this is the binomial
//! `C(N−1, k−1)` (Veit et al.'s ensemble view).
//!
//! Speed: offsets are grouped into maximal runs `a..=b` of consecutive integers, and a run's sum
//! `Σ_{o=a}^{b} p(ℓ−o)` is read from prefix sums in two big-integer operations. Dense is then one
//! run (`O(N)` additions for counts, `O(N²)` for the histogram) and sparse base 2 has `⌊log₂N⌋`
//! runs. [`path_count_graph`] and [`path_length_histogram_graph`] are the plain algorithms on
//! any DAG, used to verify these on small depths.

use num_bigint::BigUint;
use num_traits::{One, Zero};
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

/// Maximal runs of consecutive integers in an ascending offset list: `[1,2,4,8]` → `[(1,2),(4,4),(8,8)]`.
pub fn offset_runs(offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &o in offsets {
        match runs.last_mut() {
            Some((_, b)) if *b + 1 == o => *b = o,
            _ => runs.push((o, o)),
        }
    }
    runs
}

/// One step of the composition recurrence: `out[ℓ] = Σ_{o ∈ O, o ≤ ℓ} prev[ℓ − o]` for
/// `ℓ ∈ lo..=n` (entries below `lo` are set to zero). `prefix` is scratch space.
#[cfg(test)]
fn convolve_offsets(
    prev: &[BigUint],
    runs: &[(usize, usize)],
    lo: usize,
    out: &mut [BigUint],
    prefix: &mut Vec<BigUint>,
) {
    let n = prev.len() - 1;
    // prefix[i] = Σ_{j < i} prev[j]; only needed if some run has length ≥ 2.
    let need_prefix = runs.iter().any(|(a, b)| b > a);
    if need_prefix {
        prefix.resize(n + 2, BigUint::zero());
        prefix[0].set_zero();
        for i in 0..=n {
            let (head, tail) = prefix.split_at_mut(i + 1);
            tail[0].clone_from(&head[i]);
            tail[0] += &prev[i];
        }
    }
    for v in out.iter_mut().take(lo.min(n + 1)) {
        v.set_zero();
    }
    for l in lo..=n {
        let acc = &mut out[l];
        acc.set_zero();
        for &(a, b) in runs {
            if a > l {
                break;
            }
            if a == b {
                *acc += &prev[l - a];
            } else {
                // Σ_{o=a}^{min(b,l)} prev[l − o] = prefix[l − a + 1] − prefix[l − min(b,l)].
                let hi = l - a + 1;
                let low = l - b.min(l);
                *acc += &prefix[hi];
                *acc -= &prefix[low];
            }
        }
    }
}

/// `p(ℓ)` for `ℓ = 0..=n`: the number of paths `x_0 → x_ℓ` for the offset set `offsets`.
pub fn path_counts(offsets: &[usize], n: usize) -> Vec<BigUint> {
    let runs = offset_runs(offsets);
    let mut p: Vec<BigUint> = vec![BigUint::zero(); n + 1];
    p[0] = BigUint::one();
    // Prefix sums built as we go: pre[i] = Σ_{j<i} p[j].
    let mut pre: Vec<BigUint> = Vec::with_capacity(n + 2);
    pre.push(BigUint::zero());
    pre.push(BigUint::one());
    for l in 1..=n {
        let mut acc = BigUint::zero();
        for &(a, b) in &runs {
            if a > l {
                break;
            }
            if a == b {
                acc += &p[l - a];
            } else {
                acc += &pre[l - a + 1];
                acc -= &pre[l - b.min(l)];
            }
        }
        let next = &pre[l] + &acc;
        p[l] = acc;
        pre.push(next);
    }
    p
}

/// Number of paths `x_0 → x_n` (see [`path_counts`]), keeping only the last values the
/// recurrence reads: `p(ℓ − a)` for a single offset `a`, and prefix sums back to `ℓ − b` for a
/// run `a..=b` — where a run reaches past `x_0` (`b ≥ ℓ`) its lower prefix sum is `0`. The
/// window is the largest offset the recurrence can read (2 values for dense and res, whose one
/// run reaches past `x_0`; the largest power of the base for sparse), so memory is
/// `O(window · N)` bits instead of the `O(N²)` of keeping every value.
pub fn path_count(offsets: &[usize], n: usize) -> BigUint {
    let runs = offset_runs(offsets);
    // How far back each ring is read: `p` by single offsets, prefix sums by runs (a run that
    // reaches past x_0 reads only its upper prefix sum, `a − 1` back).
    let p_back = runs
        .iter()
        .filter(|(a, b)| a == b)
        .map(|&(a, _)| a)
        .max()
        .unwrap_or(0);
    let pre_back = runs
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| if b >= n { a - 1 } else { b })
        .max()
        .unwrap_or(0);
    let (wp, wq) = (p_back + 1, pre_back + 2);
    // p[i] at p_ring[i % wp]; pre[i] = Σ_{j<i} p[j] at pre_ring[i % wq].
    let mut p_ring = vec![BigUint::zero(); wp];
    let mut pre_ring = vec![BigUint::zero(); wq];
    p_ring[0] = BigUint::one();
    pre_ring[1 % wq] = BigUint::one();
    for l in 1..=n {
        let mut acc = BigUint::zero();
        for &(a, b) in &runs {
            if a > l {
                break;
            }
            if a == b {
                acc += &p_ring[(l - a) % wp];
            } else {
                acc += &pre_ring[(l - a + 1) % wq];
                if b < l {
                    acc -= &pre_ring[(l - b) % wq];
                }
            }
        }
        let next = &pre_ring[l % wq] + &acc;
        pre_ring[(l + 1) % wq] = next;
        p_ring[l % wp] = acc;
    }
    std::mem::take(&mut p_ring[n % wp])
}

/// `h[k]` = number of paths `x_0 → x_n` through exactly `k` layers, for `k = 0..=n`.
///
/// The `O(N² · runs)` table is kept in flat machine words instead of one heap big integer per
/// entry: entry `ℓ` of every row gets a fixed width of `⌈bits(max_{j≤ℓ} p(j))/64⌉` words,
/// enough because `h_k(ℓ) ≤ p(ℓ)`, so an addition costs a few word operations and nothing is
/// allocated inside the loops (see `BENCHMARKS.md`). `path_length_histogram_bigint` (in the tests) is
/// the same recurrence on `BigUint`s, kept as the reference it is tested against.
pub fn path_length_histogram(offsets: &[usize], n: usize) -> Vec<BigUint> {
    let mut hist = vec![BigUint::zero(); n + 1];
    if n == 0 {
        hist[0] = BigUint::one();
        return hist;
    }
    // Runs of one or two offsets are added entry by entry; longer runs read prefix sums (two
    // additions beat building a prefix row for every path length).
    let runs: Vec<(usize, usize)> = offset_runs(offsets)
        .into_iter()
        .flat_map(|(a, b)| {
            if b - a < 2 {
                (a..=b).map(|o| (o, o)).collect::<Vec<_>>()
            } else {
                vec![(a, b)]
            }
        })
        .collect();
    let counts = path_counts(offsets, n);
    // Widths: entries (running max of p) and prefix sums (Σ_{j<i} p(j)), in 64-bit words.
    let words = |b: &BigUint| (b.bits() as usize).div_ceil(64).max(1);
    let mut entry_off = Vec::with_capacity(n + 2);
    let mut entry_w = Vec::with_capacity(n + 1);
    let mut running = BigUint::zero();
    let mut total = 0usize;
    for c in &counts {
        if *c > running {
            running = c.clone();
        }
        entry_off.push(total);
        entry_w.push(words(&running));
        total += words(&running);
    }
    entry_off.push(total);
    let need_prefix = runs.iter().any(|(a, b)| b > a);
    let (mut pre_off, mut pre_w, mut pre_total) = (Vec::new(), Vec::new(), 0usize);
    if need_prefix {
        let mut cum = BigUint::zero();
        for i in 0..=n + 1 {
            pre_off.push(pre_total);
            pre_w.push(words(&cum));
            pre_total += words(&cum);
            if let Some(c) = counts.get(i) {
                cum += c;
            }
        }
    }
    let mut prev = vec![0u64; total];
    let mut cur = vec![0u64; total];
    let mut prefix = vec![0u64; pre_total];
    let mut tmp = vec![0u64; pre_w.last().copied().unwrap_or(1)];
    prev[entry_off[0]] = 1; // h_0(0) = 1
    let smallest = offsets.first().copied().unwrap_or(usize::MAX);
    for (k, slot) in hist.iter_mut().enumerate().skip(1) {
        // A path of k layers covers at least k·min(O) positions.
        let lo = k.saturating_mul(smallest);
        if lo > n {
            break;
        }
        if need_prefix {
            for i in 0..=n {
                let (head, tail) = prefix.split_at_mut(pre_off[i + 1]);
                let dst = &mut tail[..pre_w[i + 1]];
                let src = &head[pre_off[i]..pre_off[i] + pre_w[i]];
                dst[..src.len()].copy_from_slice(src);
                dst[src.len()..].fill(0);
                add_words(dst, &prev[entry_off[i]..entry_off[i + 1]]);
            }
        }
        cur[..entry_off[lo]].fill(0);
        for l in lo..=n {
            let (start, end) = (entry_off[l], entry_off[l + 1]);
            let dst = &mut cur[start..end];
            dst.fill(0);
            for &(a, b) in &runs {
                if a > l {
                    break;
                }
                if a == b {
                    let j = l - a;
                    add_words(dst, &prev[entry_off[j]..entry_off[j + 1]]);
                } else {
                    // Σ_{o=a}^{min(b,l)} h(l − o) = P[l − a + 1] − P[l − min(b, l)].
                    let hi = l - a + 1;
                    let low = l - b.min(l);
                    let t = &mut tmp[..pre_w[hi]];
                    t.copy_from_slice(&prefix[pre_off[hi]..pre_off[hi] + pre_w[hi]]);
                    sub_words(t, &prefix[pre_off[low]..pre_off[low] + pre_w[low]]);
                    add_words(dst, t);
                }
            }
        }
        *slot = words_to_big(&cur[entry_off[n]..entry_off[n + 1]]);
        std::mem::swap(&mut prev, &mut cur);
    }
    hist
}

/// `dst += src` on little-endian words. The caller guarantees the result fits in `dst`; words
/// of `src` beyond `dst` must be zero (the value bound of the histogram ensures it).
fn add_words(dst: &mut [u64], src: &[u64]) {
    let m = src.len().min(dst.len());
    debug_assert!(src[m..].iter().all(|&w| w == 0));
    let mut carry = false;
    for i in 0..m {
        let (s, c1) = dst[i].overflowing_add(src[i]);
        let (s, c2) = s.overflowing_add(carry as u64);
        dst[i] = s;
        carry = c1 | c2;
    }
    let mut i = m;
    while carry {
        debug_assert!(i < dst.len(), "histogram entry overflowed its width");
        let (s, c) = dst[i].overflowing_add(1);
        dst[i] = s;
        carry = c;
        i += 1;
    }
}

/// `dst −= src` on little-endian words; the caller guarantees `dst ≥ src`.
fn sub_words(dst: &mut [u64], src: &[u64]) {
    let m = src.len().min(dst.len());
    let mut borrow = false;
    for i in 0..m {
        let (s, b1) = dst[i].overflowing_sub(src[i]);
        let (s, b2) = s.overflowing_sub(borrow as u64);
        dst[i] = s;
        borrow = b1 | b2;
    }
    let mut i = m;
    while borrow {
        debug_assert!(i < dst.len(), "prefix difference went negative");
        let (s, b) = dst[i].overflowing_sub(1);
        dst[i] = s;
        borrow = b;
        i += 1;
    }
}

fn words_to_big(w: &[u64]) -> BigUint {
    let mut digits = Vec::with_capacity(2 * w.len());
    for &x in w {
        digits.push(x as u32);
        digits.push((x >> 32) as u32);
    }
    BigUint::new(digits)
}

/// The histogram recurrence on heap `BigUint`s: the straightforward reference for
/// [`path_length_histogram`] (test-only: not part of the crate's API).
#[cfg(test)]
fn path_length_histogram_bigint(offsets: &[usize], n: usize) -> Vec<BigUint> {
    let runs = offset_runs(offsets);
    let mut hist = vec![BigUint::zero(); n + 1];
    let mut prev = vec![BigUint::zero(); n + 1];
    prev[0] = BigUint::one();
    if n == 0 {
        hist[0] = BigUint::one();
        return hist;
    }
    let mut cur = vec![BigUint::zero(); n + 1];
    let mut prefix = Vec::new();
    let smallest = offsets.first().copied().unwrap_or(usize::MAX);
    for (k, slot) in hist.iter_mut().enumerate().skip(1) {
        let lo = k.saturating_mul(smallest);
        if lo > n {
            break;
        }
        convolve_offsets(&prev, &runs, lo, &mut cur, &mut prefix);
        slot.clone_from(&cur[n]);
        std::mem::swap(&mut prev, &mut cur);
    }
    hist
}

/// Number of paths `from → to` in any DAG, by dynamic programming in topological order.
/// Returns `None` if the graph has a cycle.
pub fn path_count_graph<N, E>(
    g: &DiGraph<N, E>,
    from: NodeIndex,
    to: NodeIndex,
) -> Option<BigUint> {
    let order = toposort(g, None).ok()?;
    let mut count = vec![BigUint::zero(); g.node_count()];
    count[from.index()] = BigUint::one();
    for v in order {
        if count[v.index()].is_zero() {
            continue;
        }
        let c = count[v.index()].clone();
        for w in g.neighbors(v) {
            count[w.index()] += &c;
        }
    }
    Some(std::mem::take(&mut count[to.index()]))
}

/// Histogram of path lengths (in edges) `from → to` in any DAG; `None` if it has a cycle.
/// `O(V · E)` big-integer additions: for verification on small graphs.
pub fn path_length_histogram_graph<N, E>(
    g: &DiGraph<N, E>,
    from: NodeIndex,
    to: NodeIndex,
) -> Option<Vec<BigUint>> {
    let order = toposort(g, None).ok()?;
    let v = g.node_count();
    // by_len[node][k]
    let mut by_len: Vec<Vec<BigUint>> = vec![Vec::new(); v];
    by_len[from.index()] = vec![BigUint::one()];
    for node in order {
        let here = std::mem::take(&mut by_len[node.index()]);
        if here.is_empty() {
            continue;
        }
        for w in g.neighbors(node) {
            let there = &mut by_len[w.index()];
            if there.len() < here.len() + 1 {
                there.resize(here.len() + 1, BigUint::zero());
            }
            for (k, c) in here.iter().enumerate() {
                there[k + 1] += c;
            }
        }
        by_len[node.index()] = here;
    }
    let mut h = std::mem::take(&mut by_len[to.index()]);
    h.resize(v, BigUint::zero());
    Some(h)
}

/// `a / b` as a float, exact to 1e-12 before the conversion (the operands may be far beyond
/// `f64`'s range, their ratio is not).
pub fn big_ratio(a: &BigUint, b: &BigUint) -> f64 {
    let scale = BigUint::from(1_000_000_000_000u64);
    let q = (a * &scale) / b;
    q.to_string().parse::<f64>().unwrap_or(f64::NAN) / 1e12
}

/// Summary of a length histogram: shortest and longest lengths present, the most common one,
/// and the mean length (as a float: a statistic, not a count).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LengthSummary {
    /// Fewest layers on any path.
    pub min: usize,
    /// Most layers on any path.
    pub max: usize,
    /// Length with the most paths (smallest such on ties).
    pub mode: usize,
    /// Mean number of layers over all paths.
    pub mean: f64,
}

/// Summarise a histogram; `None` when it holds no path.
pub fn summarize_lengths(hist: &[BigUint]) -> Option<LengthSummary> {
    let min = hist.iter().position(|c| !c.is_zero())?;
    let max = hist.iter().rposition(|c| !c.is_zero())?;
    let mut mode = min;
    for k in min..=max {
        if hist[k] > hist[mode] {
            mode = k;
        }
    }
    let total: BigUint = hist.iter().sum();
    let weighted: BigUint = hist
        .iter()
        .enumerate()
        .map(|(k, c)| c * BigUint::from(k))
        .sum();
    let mean = big_ratio(&weighted, &total);
    Some(LengthSummary {
        min,
        max,
        mode,
        mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Pattern, Topology};

    fn big(v: u64) -> BigUint {
        BigUint::from(v)
    }

    #[test]
    fn windowed_count_equals_the_full_table() {
        let sets: Vec<Vec<usize>> = vec![
            vec![1],
            (1..=40).collect(),
            vec![1, 2, 4, 8, 16, 32],
            vec![1, 3, 9, 27],
            vec![2, 3, 5, 8],
            vec![1, 2, 3, 10, 11, 12],
            (5..=30).collect(),
            vec![7],
        ];
        for offsets in &sets {
            for n in [0, 1, 2, 5, 17, 40, 63] {
                assert_eq!(
                    path_count(offsets, n),
                    path_counts(offsets, n)[n],
                    "{offsets:?} at {n}"
                );
            }
        }
    }

    #[test]
    fn runs() {
        assert_eq!(offset_runs(&[1, 2, 4, 8]), vec![(1, 2), (4, 4), (8, 8)]);
        assert_eq!(offset_runs(&[1, 2, 3, 5, 8]), vec![(1, 3), (5, 5), (8, 8)]);
    }

    #[test]
    fn sparse_base2_counts_by_hand() {
        // Compositions of ℓ into powers of two, worked by hand:
        // p(1) = 1 (1); p(2) = 2 (1+1, 2); p(3) = p(2)+p(1) = 3 (1+1+1, 1+2, 2+1);
        // p(4) = p(3)+p(2)+p(0) = 3+2+1 = 6; p(5) = p(4)+p(3)+p(1) = 6+3+1 = 10.
        let p = path_counts(&[1, 2, 4], 5);
        assert_eq!(p, vec![big(1), big(1), big(2), big(3), big(6), big(10)]);
    }

    #[test]
    fn dense_is_power_of_two_and_histogram_binomial() {
        // Dense N = 4: each of layers 1..3 is on or off the path → 2^3 = 8;
        // by length k: C(3, k−1) = 1, 3, 3, 1 for k = 1..4.
        let o: Vec<usize> = (1..=4).collect();
        assert_eq!(path_count(&o, 4), big(8));
        assert_eq!(
            path_length_histogram(&o, 4),
            vec![big(0), big(1), big(3), big(3), big(1)]
        );
    }

    #[test]
    fn sparse_histogram_by_hand() {
        // N = 5 with parts {1,2,4}: length 2: 1+4, 4+1 → 2; length 3: 1+2+2, 2+1+2, 2+2+1 → 3;
        // length 4: 2+1+1+1 in 4 orders → 4; length 5: 1+1+1+1+1 → 1. Total 10 = p(5).
        assert_eq!(
            path_length_histogram(&[1, 2, 4], 5),
            vec![big(0), big(0), big(2), big(3), big(4), big(1)]
        );
    }

    #[test]
    fn fast_equals_graph_algorithms() {
        for pattern in [
            Pattern::Plain,
            Pattern::Dense,
            Pattern::Sparse { base: 2 },
            Pattern::Sparse { base: 3 },
            Pattern::Custom {
                offsets: vec![2, 3, 5, 8],
            },
        ] {
            for n in 1..=24 {
                let t = Topology::new(pattern.clone(), n).unwrap();
                let g = t.graph().unwrap();
                let (s, e) = (NodeIndex::new(0), NodeIndex::new(n));
                assert_eq!(
                    path_count(&t.offsets(), n),
                    path_count_graph(&g, s, e).unwrap()
                );
                let hist = path_length_histogram(&t.offsets(), n);
                assert_eq!(
                    hist,
                    path_length_histogram_graph(&g, s, e).unwrap(),
                    "{pattern} n={n}"
                );
                assert_eq!(hist, path_length_histogram_bigint(&t.offsets(), n));
            }
        }
    }

    #[test]
    fn flat_words_equal_bigint_at_multiword_sizes() {
        // Depths where entries span several 64-bit words, with long and short runs.
        for offsets in [
            vec![1, 2, 4, 8, 16, 32, 64, 128],
            (1..=300).collect(),
            vec![1, 2, 3, 5, 8, 13],
        ] {
            assert_eq!(
                path_length_histogram(&offsets, 300),
                path_length_histogram_bigint(&offsets, 300)
            );
        }
    }

    #[test]
    fn summary() {
        let s = summarize_lengths(&[big(0), big(1), big(3), big(3), big(1)]).unwrap();
        assert_eq!((s.min, s.max, s.mode), (1, 4, 2));
        assert!((s.mean - 2.5).abs() < 1e-12);
    }
}
