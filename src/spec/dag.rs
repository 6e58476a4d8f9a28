//! Where a block DAG comes from — a file (edge list or DOT), a random graph model, FractalNet's
//! block — read or generated for `--dag-file`, `--random` and `paths`.

use sparsenet_analysis::dag::{BlockDag, RandomModel};

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
