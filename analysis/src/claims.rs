//! The paper's claims, each checked in code at a given depth and base.
//!
//! Every check compares a quantity computed one way (the DP or the graph) with a formula or a
//! second, independent computation; none compares a value with itself.

use num_bigint::BigUint;
use num_traits::{One, Zero};

use crate::analysis::TopologyAnalysis;
use crate::bases::BaseRow;
use crate::bijection::{bijection_counts, check_bijection, MAX_ENUMERATED_UNITS};
use crate::distance::{
    all_pairs_bfs, digit_sum, floor_log, max_digit_sum_upto, min_hops, sparse_gradient_bound,
};
use crate::topology::{BlockGraph, Pattern, Topology};
use crate::GraphError;

/// Largest depth at which claims are re-checked against a BFS on the materialised graph.
pub const BFS_CHECK_DEPTH: usize = 2_000;

/// One claim and its verdict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Claim {
    /// Stable identifier.
    pub name: String,
    /// What the claim says.
    pub statement: String,
    /// Whether it holds at this depth and base.
    pub holds: bool,
    /// The numbers behind the verdict.
    pub detail: String,
}

/// A claim from its parts.
pub(crate) fn claim(name: &str, statement: String, holds: bool, detail: String) -> Claim {
    Claim {
        name: name.to_string(),
        statement,
        holds,
        detail,
    }
}

/// `Σ_{ℓ=1}^{N} (⌊log_c ℓ⌋ + 1)`: the paper's closed form for sparse connections.
pub fn sparse_connections_closed_form(n: usize, c: usize) -> u64 {
    (1..=n as u64)
        .map(|l| floor_log(l, c as u64) as u64 + 1)
        .sum()
}

/// `C(m, 0), …, C(m, m)` by `C(m, j+1) = C(m, j)·(m−j)/(j+1)` (each division is exact).
pub fn binomial_row(m: usize) -> Vec<BigUint> {
    let mut row = Vec::with_capacity(m + 1);
    let mut c = BigUint::one();
    for j in 0..=m {
        row.push(c.clone());
        c = c * BigUint::from(m - j) / BigUint::from(j + 1);
    }
    row
}

fn find<'a>(tops: &'a [TopologyAnalysis], name: &str) -> Result<&'a TopologyAnalysis, GraphError> {
    tops.iter()
        .find(|t| t.name == name)
        .ok_or_else(|| GraphError::Missing(format!("claims need the {name} topology")))
}

/// What every claim is checked against: the depth and base, the analyses of the four
/// topologies, the base sweep, and the sparse block itself (its graph built once).
pub struct ClaimInputs<'a> {
    n: usize,
    c: usize,
    tops: &'a [TopologyAnalysis],
    bases: &'a [BaseRow],
    plain: &'a TopologyAnalysis,
    res: &'a TopologyAnalysis,
    dense: &'a TopologyAnalysis,
    sparse: &'a TopologyAnalysis,
    sparse_top: Topology,
    sparse_graph: BlockGraph,
}

/// A claim's check: its statement, verdict and numbers, or `None` where it does not apply (base
/// 2 outside the sweep).
type ClaimCheck = fn(&ClaimInputs<'_>) -> Result<Option<(String, bool, String)>, GraphError>;

/// The paper's claims about offset patterns, in the order `paths` prints them: each name with
/// its check. The DAG report lists these names as not applicable to a general DAG.
pub const CLAIMS: &[(&str, ClaimCheck)] = &[
    ("connections_closed_form", connections_closed_form),
    ("sparse_connections_n_log_n", sparse_connections_n_log_n),
    ("dense_res_paths_power_of_two", dense_res_paths_power_of_two),
    ("path_length_histograms", path_length_histograms),
    ("res_dense_bijection", res_dense_bijection),
    ("sparse_gradient_digit_sum", sparse_gradient_digit_sum),
    ("sparse_gradient_bound", sparse_gradient_bound_claim),
    (
        "gradient_path_res_dense_one_plain_n",
        gradient_path_res_dense_one_plain_n,
    ),
    ("base_two_shortest_worst_case", base_two_shortest_worst_case),
];

/// Check every claim at depth `n` and sparse base `c`, from the analyses of plain, res, dense
/// and sparse (and the base sweep).
pub fn check_claims(
    n: usize,
    c: usize,
    tops: &[TopologyAnalysis],
    bases: &[BaseRow],
) -> Result<Vec<Claim>, GraphError> {
    let sparse_top = Topology::new(Pattern::sparse(c)?, n)?;
    let sparse_graph = sparse_top.graph()?;
    let inputs = ClaimInputs {
        n,
        c,
        tops,
        bases,
        plain: find(tops, "plain")?,
        res: find(tops, "res")?,
        dense: find(tops, "dense")?,
        sparse: find(tops, "sparse")?,
        sparse_top,
        sparse_graph,
    };
    let mut out = Vec::new();
    for (name, check) in CLAIMS {
        if let Some((statement, holds, detail)) = check(&inputs)? {
            out.push(claim(name, statement, holds, detail));
        }
    }
    Ok(out)
}

type Checked = Result<Option<(String, bool, String)>, GraphError>;

/// Connections: the graph's edge count against the closed forms.
fn connections_closed_form(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        c,
        plain,
        res,
        dense,
        sparse,
        ref sparse_graph,
        ..
    } = i;
    let closed = sparse_connections_closed_form(n, c);
    let dense_closed = (n as u64) * (n as u64 + 1) / 2;
    Ok(Some((
        format!("sparse connections = Σ_{{ℓ=1..N}} (⌊log_{c} ℓ⌋+1); dense and res = N(N+1)/2; plain = N"),
        sparse_graph.edge_count() as u64 == closed
            && sparse.connections == closed
            && dense.connections == dense_closed
            && res.connections == dense_closed
            && plain.connections == n as u64,
        format!(
            "sparse: graph {} edges, formula {closed}; dense: {} vs {dense_closed}; plain: {}",
            sparse_graph.edge_count(),
            dense.connections,
            plain.connections
        ),
    )))
}

/// O(N lg N) connections.
fn sparse_connections_n_log_n(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        c,
        dense,
        sparse,
        ..
    } = i;
    let bound = n as u64 * (floor_log(n as u64, c as u64) as u64 + 1);
    Ok(Some((
        format!(
            "sparse has at most N·(⌊log_{c} N⌋+1) = O(N lg N) connections, dense N(N+1)/2 = O(N²)"
        ),
        sparse.connections <= bound && sparse.connections <= dense.connections,
        format!(
            "sparse {} ≤ {bound}; {:.3}·N·log₂N; dense {} ({:.1}× sparse)",
            sparse.connections,
            sparse.connections_per_n_log2_n,
            dense.connections,
            dense.connections as f64 / sparse.connections as f64
        ),
    )))
}

/// Path counts: dense and res have 2^(N−1) paths, plain 1.
fn dense_res_paths_power_of_two(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        plain,
        res,
        dense,
        ..
    } = i;
    let two_pow = BigUint::one() << (n - 1);
    Ok(Some((
        "dense and res blocks have 2^(N−1) paths x_0 → x_N; plain has 1".to_string(),
        dense.paths == two_pow && res.paths == two_pow && plain.paths == BigUint::one(),
        format!(
            "dense {} decimal digits, 2^{} has {}; plain {}",
            dense.paths.to_str_radix(10).len(),
            n - 1,
            two_pow.to_str_radix(10).len(),
            plain.paths
        ),
    )))
}

/// Histograms sum to the path counts; dense/res are binomial.
fn path_length_histograms(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        tops,
        res,
        dense,
        sparse,
        ..
    } = i;
    let computed: Vec<&TopologyAnalysis> = tops
        .iter()
        .filter(|t| t.path_length_histogram.is_some())
        .collect();
    if computed.is_empty() {
        Ok(Some((
            "path-length histograms sum to the path counts; dense/res are binomial C(N−1, k−1)"
                .into(),
            true,
            "not checked: histograms skipped at this depth (use --force-histograms)".into(),
        )))
    } else {
        let sums_ok = computed.iter().all(|t| {
            let h = t.path_length_histogram.as_ref().expect("filtered");
            h.iter().sum::<BigUint>() == t.paths
        });
        let row = binomial_row(n - 1);
        let binomial_ok = [dense, res].iter().all(|t| match &t.path_length_histogram {
            None => true,
            Some(h) => {
                h.len() == n + 1 && h[0].is_zero() && h[1..].iter().zip(&row).all(|(a, b)| a == b)
            }
        });
        Ok(Some((
            "path-length histograms sum to the path counts; dense/res are binomial C(N−1, k−1)"
                .into(),
            sums_ok && binomial_ok,
            format!(
                "{} histograms summed; binomial check {}; sparse path lengths {}",
                computed.len(),
                if binomial_ok { "passed" } else { "FAILED" },
                sparse
                    .path_length_summary
                    .as_ref()
                    .map(|s| format!("{}..{} (mode {}, mean {:.2})", s.min, s.max, s.mode, s.mean))
                    .unwrap_or_else(|| "skipped".into())
            ),
        )))
    }
}

/// Res ↔ Dense bijection.
fn res_dense_bijection(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs { n, .. } = i;
    let units = n.min(MAX_ENUMERATED_UNITS);
    let check = check_bijection(units)?;
    let (rc, dc) = bijection_counts(n);
    Ok(Some((
        "paths of an unraveled ResNet with N units ↔ paths of a DenseNet block of N layers with output aggregation (path ↦ layers it passes through); both 2^N".into(),
        check.bijective && check.inverse_ok && rc == dc,
        format!(
            "enumerated at N = {units}: {} ResNet paths, {} DenseNet paths, bijective {}, inverse {}; counts at N = {n} equal: {}",
            check.res_paths, check.dense_paths, check.bijective, check.inverse_ok, rc == dc
        ),
    )))
}

/// Sparse gradient path = digit sum, for every distance, and by BFS on the graph.
fn sparse_gradient_digit_sum(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        c,
        ref sparse_top,
        ref sparse_graph,
        ..
    } = i;
    let d = min_hops(&sparse_top.offsets(), n);
    let digit_ok = (1..=n).all(|x| d[x] == Some(digit_sum(x as u64, c as u64) as u32));
    let bfs_detail;
    let bfs_ok = if n <= BFS_CHECK_DEPTH {
        let m = all_pairs_bfs(sparse_graph);
        let ok = (0..=n).all(|j| {
            (j + 1..=n).all(|l| m[j][l] == Some(digit_sum((l - j) as u64, c as u64) as u32))
        });
        bfs_detail = format!("BFS over all {} pairs agrees: {ok}", n * (n + 1) / 2);
        ok
    } else {
        bfs_detail = format!("BFS check skipped above depth {BFS_CHECK_DEPTH}");
        true
    };
    Ok(Some((
        format!("the shortest path between x_j and x_ℓ in sparse base {c} has s_{c}(ℓ−j) hops (base-{c} digit sum; popcount for 2)"),
        digit_ok && bfs_ok,
        format!("DP over d = 1..{n} agrees: {digit_ok}; {bfs_detail}"),
    )))
}

/// The exact worst case and its bound.
fn sparse_gradient_bound_claim(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs { n, c, sparse, .. } = i;
    let exact = max_digit_sum_upto(n as u64, c as u64);
    let b = sparse_gradient_bound(n as u64, c as u64);
    Ok(Some((
        format!("sparse worst-case gradient path = max_{{d≤N}} s_{c}(d) ≤ (c−1)(⌊log_c N⌋+1)"),
        sparse.gradient_path_max as u64 == exact && exact <= b,
        format!(
            "max {} = closed form {exact} ≤ bound {b}; (c−1)·log_c N = {:.2}",
            sparse.gradient_path_max,
            (c as f64 - 1.0) * (n as f64).ln() / (c as f64).ln()
        ),
    )))
}

/// Res and dense: every pair one hop apart; plain: N.
fn gradient_path_res_dense_one_plain_n(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs {
        n,
        plain,
        res,
        dense,
        ..
    } = i;
    Ok(Some((
        "res and dense join every pair of layers by one hop; plain needs N for the farthest pair"
            .into(),
        res.gradient_path_max == 1
            && dense.gradient_path_max == 1
            && plain.gradient_path_max as usize == n,
        format!(
            "res {}, dense {}, plain {} (mean {:.2})",
            res.gradient_path_max,
            dense.gradient_path_max,
            plain.gradient_path_max,
            plain.gradient_path_mean
        ),
    )))
}

/// Base 2 is best.
fn base_two_shortest_worst_case(i: &ClaimInputs<'_>) -> Checked {
    let &ClaimInputs { bases, .. } = i;
    let Some(two) = bases.iter().find(|r| r.base == 2) else {
        return Ok(None);
    };
    let worst_min = bases.iter().map(|r| r.gradient_path_max).min().unwrap_or(0);
    let beaten: Vec<usize> = bases
        .iter()
        .filter(|r| r.gradient_path_max < two.gradient_path_max)
        .map(|r| r.base)
        .collect();
    let last = bases.last().expect("non-empty");
    Ok(Some((
        format!(
            "among bases {}..={}, c = 2 gives the shortest worst-case gradient path",
            bases[0].base, last.base
        ),
        two.gradient_path_max == worst_min,
        if beaten.is_empty() {
            format!(
                "c = 2: {} hops with {} connections; c = {}: {} hops with {} connections",
                two.gradient_path_max,
                two.connections,
                last.base,
                last.gradient_path_max,
                last.connections
            )
        } else {
            format!("bases with a shorter worst case: {beaten:?}")
        },
    )))
}
