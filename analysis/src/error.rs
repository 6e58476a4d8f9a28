//! Errors of the graph crate: each says what was wrong and what is accepted.

use thiserror::Error;

/// What can go wrong when building or analysing a block topology.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Depth outside `1..=MAX_BLOCK_DEPTH`.
    #[error("depth {0} is out of range: a block needs at least 1 layer and at most {max} (exact path counts have up to N bits and cost O(N² log N / 64) word operations, a few seconds at the limit)", max = crate::topology::MAX_BLOCK_DEPTH)]
    Depth(usize),
    /// Base below 2.
    #[error("base {0} is not allowed: the sparse pattern needs a base of at least 2")]
    Base(usize),
    /// Bad custom offsets.
    #[error("bad offsets: {0}; give distinct positive integers, e.g. 1,2,3,5,8")]
    Offsets(String),
    /// Too many edges to materialise.
    #[error("the graph would have {edges} edges, more than the {limit} this tool materialises; use a smaller depth (counts and gradient statistics need no graph)")]
    GraphTooLarge {
        /// Edges the graph would have.
        edges: u64,
        /// The limit.
        limit: usize,
    },
    /// Enumeration outside its range.
    #[error("cannot enumerate paths for {units} units: enumeration takes 1 to {limit} units (2^{limit} paths)")]
    Enumeration {
        /// Units asked for.
        units: usize,
        /// The limit.
        limit: usize,
    },
    /// A DAG block that is not one (cycle, backward edge, unreachable node, bad file).
    #[error("{0}")]
    Dag(String),
    /// A claim asked for a topology the analysis did not compute.
    #[error("{0}")]
    Missing(String),
}
