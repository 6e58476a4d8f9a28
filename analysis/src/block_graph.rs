//! The graph type every block is analysed as, below both the named patterns (`topology`) and
//! arbitrary DAG blocks (`dag`), which build it.

use petgraph::graph::DiGraph;

/// A block as a petgraph DAG: node weight = index `i` of `x_i`; an edge `x_j → x_ℓ` means layer
/// `ℓ` aggregates `x_j`, and its weight is the slot of `x_j` in that aggregation (0 = first).
pub type BlockGraph = DiGraph<usize, usize>;
