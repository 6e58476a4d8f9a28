//! The report on one DAG block: its exact analysis ([`crate::dag_analysis`]), the checks that
//! hold for every DAG block, and the paper's claims, which are about offset patterns and are
//! listed as not applicable. What `paths --dag-file` / `--random` prints; the offset patterns'
//! counterpart is [`crate::report`].

use serde::Serialize;

use crate::claims::{claim, Claim, CLAIMS};
use crate::dag::BlockDag;
use crate::dag_analysis::{analyze_dag, DagAnalysis};

/// What `paths` reports for a DAG block (its JSON).
#[derive(Clone, Debug, Serialize)]
pub struct DagReport {
    /// Where the block came from (a file, or the random model, size and seed).
    pub source: String,
    /// The analysis.
    pub analysis: DagAnalysis,
    /// The checks that apply to any DAG.
    pub checks: Vec<Claim>,
    /// The paper's claims ([`CLAIMS`]), which need an offset pattern and are not checked here.
    pub claims_not_applicable: Vec<String>,
}

/// Analyse a block (with its path-length histogram when `histogram`; whatever the cost when
/// `force`) and run the checks.
pub fn report(d: &BlockDag, source: String, histogram: bool, force: bool) -> DagReport {
    let a = analyze_dag(d, histogram, force);
    let mut checks = Vec::new();
    if let (Some(h), Some(paths)) = (&a.histogram, &a.paths) {
        let sum: num_bigint::BigUint = h.iter().sum();
        checks.push(claim(
            "paths_equal_histogram_sum",
            "the number of paths x_0 → x_N equals the sum of their length histogram".into(),
            sum == *paths,
            format!("paths {paths}, histogram sum {sum}"),
        ));
    }
    let n = d.depth();
    let longest = a.lengths.as_ref().map(|l| l.max);
    if let Some(g) = &a.gradient {
        checks.push(claim(
            "gradient_path_within_depth",
            "no shortest path between two nodes is longer than N hops".into(),
            g.max as usize <= n,
            format!(
                "worst shortest path {} hops, N = {n}{}",
                g.max,
                longest.map_or(String::new(), |l| format!(
                    ", longest input→output path {l}"
                ))
            ),
        ));
    }
    checks.push(claim(
        "output_reached",
        "every layer lies on a path from the input to the output (validated on reading)".into(),
        a.paths
            .as_ref()
            .map_or(a.log10_paths.is_finite(), |p| !num_traits::Zero::is_zero(p)),
        match &a.paths {
            Some(p) => format!("{p} paths"),
            None => format!("about 10^{:.1} paths", a.log10_paths),
        },
    ));
    DagReport {
        source,
        analysis: a,
        checks,
        claims_not_applicable: CLAIMS.iter().map(|(name, _)| name.to_string()).collect(),
    }
}

/// Whether every check holds.
pub fn all_hold(r: &DagReport) -> bool {
    r.checks.iter().all(|c| c.holds)
}
