//! ResNet in its explicit, unraveled form (Veit et al., NeurIPS 2016).
//!
//! `N` residual units `x_i = x_{i−1} + F_i(x_{i−1})`, each drawn as two parallel routes from
//! `x_{i−1}` to `x_i`: the identity edge, and the residual function `F_i` as a node of its own.
//! A path `x_0 → x_N` chooses one route per unit, so there are exactly `2^N` of them: the
//! "ensemble of relatively shallow networks" view.

use petgraph::graph::{DiGraph, NodeIndex};

/// A node of the unraveled ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum UnitNode {
    /// `x_i`, the state after unit `i` (`x_0` is the input).
    State(usize),
    /// `F_i`, the residual function of unit `i` (1-based).
    Residual(usize),
}

/// An edge of the unraveled ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Route {
    /// `x_{i−1} → x_i` directly.
    Identity,
    /// Into or out of `F_i`.
    Residual,
}

/// The unraveled ResNet: node `2i` is `x_i`, node `2i − 1` is `F_i`.
#[derive(Clone, Debug)]
pub struct UnraveledResNet {
    /// Number of residual units.
    pub units: usize,
    /// The graph.
    pub graph: DiGraph<UnitNode, Route>,
}

impl UnraveledResNet {
    /// Build `units` residual units.
    pub fn new(units: usize) -> Self {
        let mut graph = DiGraph::with_capacity(2 * units + 1, 3 * units);
        let mut prev = graph.add_node(UnitNode::State(0));
        for i in 1..=units {
            let f = graph.add_node(UnitNode::Residual(i));
            let x = graph.add_node(UnitNode::State(i));
            graph.add_edge(prev, x, Route::Identity);
            graph.add_edge(prev, f, Route::Residual);
            graph.add_edge(f, x, Route::Residual);
            prev = x;
        }
        UnraveledResNet { units, graph }
    }

    /// Index of `x_i`.
    pub fn state(&self, i: usize) -> NodeIndex {
        NodeIndex::new(2 * i)
    }

    /// Index of `F_i`.
    pub fn residual(&self, i: usize) -> NodeIndex {
        NodeIndex::new(2 * i - 1)
    }

    /// The input `x_0`.
    pub fn input(&self) -> NodeIndex {
        self.state(0)
    }

    /// The output `x_N`.
    pub fn output(&self) -> NodeIndex {
        self.state(self.units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{path_count_graph, path_length_histogram_graph};
    use num_bigint::BigUint;

    #[test]
    fn three_units_have_eight_paths_binomially_distributed() {
        // Each unit: identity (1 edge) or residual (2 edges). Paths through k residual functions:
        // C(3, k) = 1, 3, 3, 1, with 3 + k edges.
        let r = UnraveledResNet::new(3);
        assert_eq!(
            path_count_graph(&r.graph, r.input(), r.output()).unwrap(),
            BigUint::from(8u32)
        );
        let h = path_length_histogram_graph(&r.graph, r.input(), r.output()).unwrap();
        let h: Vec<u32> = h[3..=6].iter().map(|b| b.try_into().unwrap()).collect();
        assert_eq!(h, vec![1, 3, 3, 1]);
    }
}
