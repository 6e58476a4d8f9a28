//! `paths --dag-file F` and `paths --random MODEL`: the same analysis for any DAG block, with
//! general exact algorithms (`sparsenet_analysis::dag_analysis`) and the checks that hold for
//! every DAG (`sparsenet_analysis::dag_report`): this file reads or generates the block and
//! prints the report.

use std::io::Write;

use sparsenet_analysis::dag::{BlockDag, RandomModel};
pub use sparsenet_analysis::dag_report::{report, DagReport};

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
    /// FractalNet's block of this many columns.
    Fractal {
        /// Columns.
        columns: usize,
    },
}

/// The largest DAG file read: 256 MiB, room for the node limit's edge lists many times over.
pub const MAX_DAG_FILE_BYTES: u64 = 256 << 20;

/// Read or generate the block; errors are bad input, except an unreadable file (I/O).
pub fn load_dag(src: &DagSource<'_>) -> anyhow::Result<(BlockDag, String)> {
    match src {
        DagSource::File(p) => {
            let bytes = crate::io::read_regular(p, "the DAG file", MAX_DAG_FILE_BYTES)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                crate::error::bad_input(anyhow::anyhow!(
                    "the DAG file {} is not UTF-8 text (an edge list: one `from to` pair per line)",
                    p.display()
                ))
            })?;
            let d = BlockDag::parse_file(&text, &p.display().to_string())
                .map_err(|e| crate::error::bad_input(e.into()))?;
            Ok((d, p.display().to_string()))
        }
        DagSource::Random { model, nodes, seed } => {
            let m = RandomModel::parse(model).map_err(|e| crate::error::bad_input(e.into()))?;
            let d = BlockDag::random(m, *nodes, *seed)
                .map_err(|e| crate::error::bad_input(e.into()))?;
            Ok((d, format!("random {m}, {nodes} nodes, seed {seed}")))
        }
        DagSource::Fractal { columns } => {
            let d = sparsenet_analysis::fractal::fractal_block(*columns)
                .map_err(|e| crate::error::bad_input(e.into()))?;
            Ok((d, format!("fractal block of {columns} columns")))
        }
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
