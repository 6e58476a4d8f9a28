//! `paths --dag-file F` and `paths --random MODEL`: the same analysis for any DAG block, with
//! general exact algorithms (`sparsenet_analysis::dag_analysis`) and the checks that hold for
//! every DAG (`sparsenet_analysis::dag_report`): this file reads or generates the block and
//! prints the report.

use std::io::Write;

pub use sparsenet_analysis::dag_report::{report, DagReport};

pub use crate::spec::{load_dag, DagSource, MAX_DAG_FILE_BYTES};

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
    match (&a.paths, &a.paths_skipped) {
        (Some(p), _) => writeln!(w, "paths x0→x{n} (exact): {p}")?,
        (None, why) => writeln!(
            w,
            "paths x0→x{n}: about 10^{:.3} (estimated; exact count skipped: {})",
            a.log10_paths,
            why.as_deref().unwrap_or("")
        )?,
    }
    match (&a.lengths, &a.histogram_skipped) {
        (Some(l), _) => writeln!(
            w,
            "path lengths: {}..{} (mode {}, mean {:.2})",
            l.min, l.max, l.mode, l.mean
        )?,
        (None, Some(why)) => writeln!(w, "path lengths: skipped ({why})")?,
        _ => {}
    }
    match (&a.gradient, &a.gradient_skipped) {
        (Some(g), _) => {
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
        }
        (None, Some(why)) => writeln!(w, "gradient paths over all pairs: skipped ({why})")?,
        (None, None) => {}
    }
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
