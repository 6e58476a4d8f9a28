//! Connectivity patterns of one block, and the block as a DAG.
//!
//! A block of depth `N` has nodes `x_0` (block input) … `x_N` (outputs of layers `1..=N`).
//! Layer `ℓ` aggregates the nodes `S(ℓ)`. A [`Pattern`] is either a rule of offsets — translation
//! invariant: a set of positive offsets `O` and `S(ℓ) = {ℓ − o : o ∈ O, o ≤ ℓ}` (plain, res,
//! dense, sparse of any base, custom offsets; the closed-form analyses apply) — or an explicit
//! DAG ([`Pattern::Dag`], a [`crate::dag::BlockDag`]: a file or a random generator), analysed by
//! the general algorithms of [`crate::dag_analysis`]. [`Topology::inputs`] answers `S(ℓ)` for
//! both, [`Topology::graph`] turns it into edges, and the zoo wires whole networks from it, so no
//! second description of the wiring exists anywhere.

use petgraph::graph::{DiGraph, NodeIndex};
use std::fmt;

use crate::dag::BlockDag;
use crate::GraphError;

/// Largest block depth the analysis accepts.
///
/// Exact path counts grow like `2^N` (dense) or `≈1.79^N` (sparse), so every count has up to `N`
/// bits and the exact dynamic programme costs `O(N · runs · N/64)` machine words; at
/// `N = 100 000` that is a few seconds on one core. Beyond it, answers stop being interactive.
pub const MAX_BLOCK_DEPTH: usize = 100_000;

/// Largest number of edges [`Topology::graph`] will materialise (dense at depth ≈ 6 300).
/// The counting algorithms never need the graph; it is for drawing, verification and the zoo.
pub const MAX_GRAPH_EDGES: usize = 20_000_000;

/// How a layer combines the outputs it aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Join {
    /// One input, passed through (plain networks).
    Single,
    /// Element-wise sum (ResNet in its unrolled form).
    Sum,
    /// Channel concatenation (DenseNet, SparseNet, custom patterns).
    Concat,
}

/// A connectivity pattern: which earlier outputs layer `ℓ` aggregates.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "pattern", rename_all = "lowercase")]
pub enum Pattern {
    /// `S(ℓ) = {ℓ−1}`.
    Plain,
    /// `S(ℓ) = {0, …, ℓ−1}`, summed: `x_ℓ = x_0 + Σ_{j<ℓ} F_j(x_j)` unrolled.
    Res,
    /// `S(ℓ) = {0, …, ℓ−1}`, concatenated.
    Dense,
    /// `S(ℓ) = {ℓ − c^k : k ≥ 0, c^k ≤ ℓ}`, concatenated newest first.
    Sparse {
        /// The base `c ≥ 2` of the exponential offsets.
        base: usize,
    },
    /// `S(ℓ) = {ℓ − o : o ∈ offsets, o ≤ ℓ}`, concatenated newest first.
    Custom {
        /// Distinct positive offsets, ascending.
        offsets: Vec<usize>,
    },
    /// Any DAG block ([`BlockDag`]): `S(ℓ)` is node `ℓ`'s sources, concatenated newest first;
    /// its depth is fixed by the graph, and the block's output is its last node.
    Dag(BlockDag),
}

impl Pattern {
    /// A sparse pattern of base `c`, validated.
    pub fn sparse(base: usize) -> Result<Self, GraphError> {
        if base < 2 {
            return Err(GraphError::Base(base));
        }
        Ok(Pattern::Sparse { base })
    }

    /// A custom pattern from user offsets, validated (non-empty, positive, distinct) and sorted.
    pub fn custom(offsets: &[usize]) -> Result<Self, GraphError> {
        if offsets.is_empty() {
            return Err(GraphError::Offsets("the list is empty".into()));
        }
        if offsets.contains(&0) {
            return Err(GraphError::Offsets(
                "0 is not an offset (a layer cannot aggregate itself)".into(),
            ));
        }
        let mut sorted = offsets.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(GraphError::Offsets(format!(
                "{} appears more than once",
                w[0]
            )));
        }
        Ok(Pattern::Custom { offsets: sorted })
    }

    /// Short name used in tables and JSON: `plain`, `res`, `dense`, `sparse`, `custom`.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Plain => "plain",
            Pattern::Res => "res",
            Pattern::Dense => "dense",
            Pattern::Sparse { .. } => "sparse",
            Pattern::Custom { .. } => "custom",
            Pattern::Dag(_) => "dag",
        }
    }

    /// How the pattern combines its inputs.
    pub fn aggregation(&self) -> Join {
        match self {
            Pattern::Plain => Join::Single,
            Pattern::Res => Join::Sum,
            _ => Join::Concat,
        }
    }

    /// The offsets `o` with `o ≤ max` that this pattern uses, ascending (none for a DAG, whose
    /// sources are not a rule of offsets).
    pub fn offsets(&self, max: usize) -> Vec<usize> {
        match self {
            Pattern::Dag(_) => Vec::new(),
            Pattern::Plain => vec![1].into_iter().filter(|&o| o <= max).collect(),
            Pattern::Res | Pattern::Dense => (1..=max).collect(),
            Pattern::Sparse { base } => {
                let mut v = Vec::new();
                let mut p = 1usize;
                while p <= max {
                    v.push(p);
                    match p.checked_mul(*base) {
                        Some(q) => p = q,
                        None => break,
                    }
                }
                v
            }
            Pattern::Custom { offsets } => offsets.iter().copied().filter(|&o| o <= max).collect(),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Sparse { base } if *base != 2 => write!(f, "sparse(base {base})"),
            Pattern::Custom { offsets } => {
                let list: Vec<String> = offsets.iter().map(|o| o.to_string()).collect();
                write!(f, "custom({})", list.join(","))
            }
            Pattern::Dag(d) => write!(
                f,
                "dag({} nodes, {} edges, #{:06x})",
                d.nodes(),
                d.edges(),
                d.fingerprint() & 0xff_ffff
            ),
            p => f.write_str(p.name()),
        }
    }
}

/// One block: a pattern at a depth. Node `i` of its graph is `x_i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// The connectivity rule.
    pub pattern: Pattern,
    /// Number of layers `N` (the block has `N + 1` nodes).
    pub depth: usize,
}

pub use crate::block_graph::BlockGraph;

impl Topology {
    /// A validated block: `1 ≤ depth ≤ MAX_BLOCK_DEPTH`; a DAG block takes its own depth, or one
    /// more (its output aggregation, as the zoo reads it).
    pub fn new(pattern: Pattern, depth: usize) -> Result<Self, GraphError> {
        if depth == 0 || depth > MAX_BLOCK_DEPTH {
            return Err(GraphError::Depth(depth));
        }
        if let Pattern::Dag(d) = &pattern {
            if depth > d.depth() + 1 {
                return Err(GraphError::Dag(format!(
                    "the DAG block has {} layers; it cannot be read at depth {depth}",
                    d.depth()
                )));
            }
        }
        Ok(Topology { pattern, depth })
    }

    /// Number of nodes, `N + 1`.
    pub fn nodes(&self) -> usize {
        self.depth + 1
    }

    /// The offsets used at this depth, ascending.
    pub fn offsets(&self) -> Vec<usize> {
        self.pattern.offsets(self.depth)
    }

    /// `S(ℓ)` in aggregation order (newest first: `ℓ−1, ℓ−2, …`). Valid for `1 ≤ ℓ ≤ N + 1`;
    /// `ℓ = N + 1` is the block's output aggregation used by the zoo (the same rule applied
    /// one step further: all of `x_0 … x_N` for dense, `x_{N+1−c^k}` for sparse).
    pub fn inputs(&self, layer: usize) -> Vec<usize> {
        if let Pattern::Dag(d) = &self.pattern {
            // Node N + 1, the block's output aggregation, is the DAG's output node alone.
            return match layer {
                l if l <= d.depth() => d.sources(l).to_vec(),
                l if l == d.depth() + 1 => vec![d.depth()],
                _ => Vec::new(),
            };
        }
        self.pattern
            .offsets(layer)
            .into_iter()
            .map(|o| layer - o)
            .collect()
    }

    /// Edge count `Σ_ℓ |S(ℓ)|`, computed by counting, for each offset, the layers that use it:
    /// offset `o` is used by `ℓ = o … N`, i.e. `N + 1 − o` layers.
    pub fn connections(&self) -> u64 {
        if let Pattern::Dag(_) = &self.pattern {
            return (1..=self.depth).map(|l| self.inputs(l).len() as u64).sum();
        }
        self.offsets()
            .iter()
            .map(|&o| (self.depth + 1 - o) as u64)
            .sum()
    }

    /// The block as a [`BlockDag`] (node `ℓ`'s sources are `S(ℓ)`), for the general DAG
    /// algorithms.
    pub fn block_dag(&self) -> Result<BlockDag, GraphError> {
        let edges: Vec<(usize, usize)> = (1..=self.depth)
            .flat_map(|l| self.inputs(l).into_iter().map(move |j| (j, l)))
            .collect();
        BlockDag::from_edges(Some(self.depth + 1), &edges)
    }

    /// The block as a DAG. Fails if it would have more than [`MAX_GRAPH_EDGES`] edges.
    pub fn graph(&self) -> Result<BlockGraph, GraphError> {
        let edges = self.connections();
        if edges > MAX_GRAPH_EDGES as u64 {
            return Err(GraphError::GraphTooLarge {
                edges,
                limit: MAX_GRAPH_EDGES,
            });
        }
        let mut g = BlockGraph::with_capacity(self.nodes(), edges as usize);
        for i in 0..=self.depth {
            g.add_node(i);
        }
        for layer in 1..=self.depth {
            for (slot, j) in self.inputs(layer).into_iter().enumerate() {
                g.add_edge(NodeIndex::new(j), NodeIndex::new(layer), slot);
            }
        }
        Ok(g)
    }
}

/// The block's inputs of node `x_ℓ` in a [`BlockGraph`], in slot order.
pub fn graph_inputs(g: &BlockGraph, node: NodeIndex) -> Vec<NodeIndex> {
    inputs_in_slot_order(g, node)
}

/// The sources of `node`'s incoming edges ordered by the edge weight, the input slot: the one
/// rule for reading the inputs of a node in any DAG whose edges carry slots (block graphs here,
/// network DAGs in the network crate).
pub fn inputs_in_slot_order<N>(g: &DiGraph<N, usize>, node: NodeIndex) -> Vec<NodeIndex> {
    let mut v: Vec<(usize, NodeIndex)> = g
        .edges_directed(node, petgraph::Direction::Incoming)
        .map(|e| {
            use petgraph::visit::EdgeRef;
            (*e.weight(), e.source())
        })
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_inputs_are_exponential_offsets_newest_first() {
        let t = Topology::new(Pattern::Sparse { base: 2 }, 16).unwrap();
        // ℓ = 7: 7−1, 7−2, 7−4 (8 > 7 is not allowed).
        assert_eq!(t.inputs(7), vec![6, 5, 3]);
        // ℓ = 8: 7, 6, 4, 0.
        assert_eq!(t.inputs(8), vec![7, 6, 4, 0]);
        let t3 = Topology::new(Pattern::Sparse { base: 3 }, 16).unwrap();
        // ℓ = 10, base 3: offsets 1, 3, 9 → 9, 7, 1.
        assert_eq!(t3.inputs(10), vec![9, 7, 1]);
    }

    #[test]
    fn dense_and_plain_inputs() {
        let d = Topology::new(Pattern::Dense, 5).unwrap();
        assert_eq!(d.inputs(4), vec![3, 2, 1, 0]);
        // Output aggregation (ℓ = N + 1) takes every node of the block.
        assert_eq!(d.inputs(6), vec![5, 4, 3, 2, 1, 0]);
        let p = Topology::new(Pattern::Plain, 5).unwrap();
        assert_eq!(p.inputs(3), vec![2]);
    }

    #[test]
    fn connections_by_hand() {
        // Sparse base 2, N = 5: |S(ℓ)| = 1, 2, 2, 3, 3 → 11.
        let t = Topology::new(Pattern::Sparse { base: 2 }, 5).unwrap();
        assert_eq!(t.connections(), 11);
        assert_eq!(t.graph().unwrap().edge_count(), 11);
        // Dense N = 5: 1 + 2 + 3 + 4 + 5 = 15.
        assert_eq!(Topology::new(Pattern::Dense, 5).unwrap().connections(), 15);
    }

    #[test]
    fn validation() {
        assert!(Topology::new(Pattern::Dense, 0).is_err());
        assert!(Topology::new(Pattern::Dense, MAX_BLOCK_DEPTH + 1).is_err());
        assert!(Pattern::sparse(1).is_err());
        assert!(Pattern::custom(&[]).is_err());
        assert!(Pattern::custom(&[1, 0]).is_err());
        assert!(Pattern::custom(&[1, 2, 2]).is_err());
        assert_eq!(
            Pattern::custom(&[5, 1, 3]).unwrap(),
            Pattern::Custom {
                offsets: vec![1, 3, 5]
            }
        );
    }

    #[test]
    fn graph_slots_keep_aggregation_order() {
        let t = Topology::new(Pattern::Sparse { base: 2 }, 8).unwrap();
        let g = t.graph().unwrap();
        let ins: Vec<usize> = graph_inputs(&g, NodeIndex::new(8))
            .into_iter()
            .map(|n| g[n])
            .collect();
        assert_eq!(ins, t.inputs(8));
    }
}
