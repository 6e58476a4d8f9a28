//! `paths --dag-file F` and `paths --random MODEL`: the same analysis for any DAG block, with
//! general exact algorithms (`sparsenet_analysis::dag_analysis`).

use std::io::Write;

use serde::Serialize;
use sparsenet_analysis::dag::{BlockDag, RandomModel};
use sparsenet_analysis::dag_analysis::{analyze_dag, DagAnalysis};

/// The paper's claims, which are about offset patterns and do not apply to a general DAG.
pub const OFFSET_CLAIMS: [&str; 9] = [
    "connections_closed_form",
    "sparse_connections_n_log_n",
    "dense_res_paths_power_of_two",
    "path_length_histograms",
    "res_dense_bijection",
    "sparse_gradient_digit_sum",
    "sparse_gradient_bound",
    "gradient_path_res_dense_one_plain_n",
    "base_two_shortest_worst_case",
];

/// A check that holds for every DAG block, verified on this one.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable identifier.
    pub name: String,
    /// What it says.
    pub statement: String,
    /// Whether it holds.
    pub holds: bool,
    /// The numbers.
    pub detail: String,
}

/// What `paths` reports for a DAG block (its JSON).
#[derive(Clone, Debug, Serialize)]
pub struct DagReport {
    /// Where the block came from (a file, or the random model, size and seed).
    pub source: String,
    /// The analysis.
    pub analysis: DagAnalysis,
    /// The checks that apply to any DAG.
    pub checks: Vec<Check>,
    /// The paper's claims, which need an offset pattern and are not checked here.
    pub claims_not_applicable: Vec<String>,
}

/// Where the DAG comes from.
pub enum DagSource<'a> {
    /// A file (edge list or DOT).
    File(&'a std::path::Path),
    /// A generated graph.
    Random {
        /// The model (`ba:m=2`, …).
        model: &'a str,
        /// Random nodes.
        nodes: usize,
        /// Seed.
        seed: u64,
    },
}

/// Read or generate the block; errors are bad input, except an unreadable file (I/O).
pub fn load_dag(src: &DagSource<'_>) -> anyhow::Result<(BlockDag, String)> {
    match src {
        DagSource::File(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                anyhow::Error::new(e).context(format!("cannot read {}", p.display()))
            })?;
            let d = BlockDag::parse_file(&text, &p.display().to_string())
                .map_err(|e| crate::error::bad_input(anyhow::anyhow!("{e}")))?;
            Ok((d, p.display().to_string()))
        }
        DagSource::Random { model, nodes, seed } => {
            let m = RandomModel::parse(model)
                .map_err(|e| crate::error::bad_input(anyhow::anyhow!("{e}")))?;
            let d = BlockDag::random(m, *nodes, *seed)
                .map_err(|e| crate::error::bad_input(anyhow::anyhow!("{e}")))?;
            Ok((d, format!("random {m}, {nodes} nodes, seed {seed}")))
        }
    }
}

/// Analyse a block and run the checks.
pub fn report(d: &BlockDag, source: String, histogram: bool) -> DagReport {
    let a = analyze_dag(d, histogram);
    let mut checks = Vec::new();
    if let Some(h) = &a.histogram {
        let sum: num_bigint::BigUint = h.iter().sum();
        checks.push(Check {
            name: "paths_equal_histogram_sum".into(),
            statement: "the number of paths x_0 → x_N equals the sum of their length histogram"
                .into(),
            holds: sum == a.paths,
            detail: format!("paths {}, histogram sum {sum}", a.paths),
        });
    }
    let n = d.depth();
    let longest = a.lengths.as_ref().map(|l| l.max);
    checks.push(Check {
        name: "gradient_path_within_depth".into(),
        statement: "no shortest path between two nodes is longer than N hops".into(),
        holds: a.gradient.max as usize <= n,
        detail: format!(
            "worst shortest path {} hops, N = {n}{}",
            a.gradient.max,
            longest.map_or(String::new(), |l| format!(
                ", longest input→output path {l}"
            ))
        ),
    });
    checks.push(Check {
        name: "output_reached".into(),
        statement: "every layer lies on a path from the input to the output (validated on reading)"
            .into(),
        holds: !num_traits::Zero::is_zero(&a.paths),
        detail: format!("{} paths", a.paths),
    });
    DagReport {
        source,
        analysis: a,
        checks,
        claims_not_applicable: OFFSET_CLAIMS.iter().map(|s| s.to_string()).collect(),
    }
}

/// The report as text.
pub fn write_table(r: &DagReport, w: &mut dyn Write) -> std::io::Result<()> {
    let a = &r.analysis;
    let n = a.nodes - 1;
    let nlgn = n as f64 * (n as f64).log2();
    writeln!(
        w,
        "DAG block ({}): {} nodes (0 = input, {n} = output), {} connections (conn/NlgN {:.3})",
        r.source,
        a.nodes,
        a.connections,
        if nlgn > 0.0 {
            a.connections as f64 / nlgn
        } else {
            f64::NAN
        }
    )?;
    writeln!(w, "paths x0→x{n} (exact): {}", a.paths)?;
    match (&a.lengths, &a.histogram_skipped) {
        (Some(l), _) => writeln!(
            w,
            "path lengths: {}..{} (mode {}, mean {:.2})",
            l.min, l.max, l.mode, l.mean
        )?,
        (None, Some(why)) => writeln!(w, "path lengths: skipped ({why})")?,
        _ => {}
    }
    let g = &a.gradient;
    writeln!(
        w,
        "gradient paths over {} pairs j < l: max {} hops, mean {:.3}, {} pairs without a path",
        g.pairs, g.max, g.mean, g.unreachable
    )?;
    let hist: Vec<String> = g
        .histogram
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(k, c)| format!("{k}: {c}"))
        .collect();
    writeln!(w, "  pairs by hops: {}", hist.join(", "))?;
    writeln!(w, "\nChecks (hold for every DAG block)")?;
    for c in &r.checks {
        writeln!(
            w,
            " {} {}: {}\n     {}",
            if c.holds { "✓" } else { "✗" },
            c.name,
            c.statement,
            c.detail
        )?;
    }
    writeln!(
        w,
        "\nThe paper's claims ({}) are about offset patterns (S(l) = l − offsets) and do not apply to a general DAG.",
        r.claims_not_applicable.join(", ")
    )
}

/// Whether every check holds.
pub fn all_hold(r: &DagReport) -> bool {
    r.checks.iter().all(|c| c.holds)
}
