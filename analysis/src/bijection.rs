//! The Res ↔ Dense path bijection.
//!
//! Take the unraveled ResNet with `N` units and a DenseNet block of `N` layers whose output
//! aggregates all of `x_0 … x_N` (the dense pattern at depth `N + 1`, node `x_{N+1}` being the
//! output aggregation). A ResNet path picks a set `A ⊆ {1..N}` of units whose residual function
//! it runs; the matching DenseNet path visits exactly the layers of `A`, in order:
//! `x_0 → x_{a_1} → … → x_{a_k} → out`. Runs of consecutive identity routes in the ResNet become
//! one skip edge in the DenseNet, which is why a DenseNet path never takes "two skip connections
//! in a row": between two visited layers there is always exactly one edge. The inverse maps a
//! DenseNet path to the set of layers it passes through. Both sides have `2^N` paths.

use num_bigint::BigUint;
use num_traits::One;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashSet;

use crate::topology::{Pattern, Topology};
use crate::unraveled::{UnitNode, UnraveledResNet};
use crate::GraphError;

/// A path as its node sequence.
pub type NodePath = Vec<NodeIndex>;

/// Every path `from → to` in a DAG, depth first. Exponential: for small graphs.
pub fn enumerate_paths<N, E>(g: &DiGraph<N, E>, from: NodeIndex, to: NodeIndex) -> Vec<NodePath> {
    let mut out = Vec::new();
    let mut stack = vec![from];
    fn walk<N, E>(
        g: &DiGraph<N, E>,
        to: NodeIndex,
        stack: &mut Vec<NodeIndex>,
        out: &mut Vec<NodePath>,
    ) {
        let here = *stack.last().expect("non-empty");
        if here == to {
            out.push(stack.clone());
            return;
        }
        for next in g.neighbors(here) {
            stack.push(next);
            walk(g, to, stack, out);
            stack.pop();
        }
    }
    walk(g, to, &mut stack, &mut out);
    out
}

/// ResNet path ↦ DenseNet path: visit `x_i` for every unit `i` whose residual `F_i` the path
/// runs. The dense block has `N + 1` as its output-aggregation node.
pub fn res_to_dense(res: &UnraveledResNet, path: &[NodeIndex]) -> NodePath {
    let mut out = vec![NodeIndex::new(0)];
    for &n in path {
        if let UnitNode::Residual(i) = res.graph[n] {
            out.push(NodeIndex::new(i));
        }
    }
    out.push(NodeIndex::new(res.units + 1));
    out
}

/// DenseNet path ↦ ResNet path: run `F_i` exactly for the layers `i` the path passes through.
pub fn dense_to_res(res: &UnraveledResNet, path: &[NodeIndex]) -> NodePath {
    let visited: HashSet<usize> = path.iter().map(|n| n.index()).collect();
    let mut out = vec![res.input()];
    for i in 1..=res.units {
        if visited.contains(&i) {
            out.push(res.residual(i));
        }
        out.push(res.state(i));
    }
    out
}

/// Outcome of checking the bijection by enumeration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BijectionCheck {
    /// Number of residual units / dense layers.
    pub units: usize,
    /// Paths in the unraveled ResNet.
    pub res_paths: usize,
    /// Paths in the DenseNet block (input to output aggregation).
    pub dense_paths: usize,
    /// `res_to_dense` is injective and its image is exactly the DenseNet paths.
    pub bijective: bool,
    /// `dense_to_res ∘ res_to_dense` is the identity.
    pub inverse_ok: bool,
}

/// Largest `N` [`check_bijection`] enumerates (2^16 = 65 536 paths a side).
pub const MAX_ENUMERATED_UNITS: usize = 16;

/// Every path `from → to` in a DAG of at most 64 nodes, as the set of its nodes (bit `i` =
/// node `i`), depth first. In a DAG the node set determines the path (its nodes in topological
/// order), so this is [`enumerate_paths`] without a vector per path.
pub fn enumerate_path_masks<N, E>(g: &DiGraph<N, E>, from: NodeIndex, to: NodeIndex) -> Vec<u64> {
    assert!(g.node_count() <= 64, "path masks need at most 64 nodes");
    fn walk<N, E>(
        g: &DiGraph<N, E>,
        here: NodeIndex,
        to: NodeIndex,
        mask: u64,
        out: &mut Vec<u64>,
    ) {
        let mask = mask | 1 << here.index();
        if here == to {
            out.push(mask);
            return;
        }
        for next in g.neighbors(here) {
            walk(g, next, to, mask, out);
        }
    }
    let mut out = Vec::new();
    walk(g, from, to, 0, &mut out);
    out
}

/// [`res_to_dense`] on node sets: `x_0`, the output `x_{N+1}`, and `x_i` for every `F_i` taken.
fn res_mask_to_dense(res: &UnraveledResNet, mask: u64) -> u64 {
    let mut out = 1 | 1 << (res.units + 1);
    for i in 1..=res.units {
        if mask >> res.residual(i).index() & 1 == 1 {
            out |= 1 << i;
        }
    }
    out
}

/// [`dense_to_res`] on node sets: the input, every state `x_i`, and `F_i` for every layer `i`
/// visited.
fn dense_mask_to_res(res: &UnraveledResNet, mask: u64) -> u64 {
    let mut out = 1 << res.input().index();
    for i in 1..=res.units {
        if mask >> i & 1 == 1 {
            out |= 1 << res.residual(i).index();
        }
        out |= 1 << res.state(i).index();
    }
    out
}

/// Enumerate both sides for `units ≤ MAX_ENUMERATED_UNITS` and check the map is a bijection
/// (paths as node sets: [`enumerate_path_masks`]).
pub fn check_bijection(units: usize) -> Result<BijectionCheck, GraphError> {
    if units == 0 || units > MAX_ENUMERATED_UNITS {
        return Err(GraphError::Enumeration {
            units,
            limit: MAX_ENUMERATED_UNITS,
        });
    }
    let res = UnraveledResNet::new(units);
    let dense = Topology::new(Pattern::Dense, units + 1)?.graph()?;
    let res_paths = enumerate_path_masks(&res.graph, res.input(), res.output());
    let mut dense_paths =
        enumerate_path_masks(&dense, NodeIndex::new(0), NodeIndex::new(units + 1));
    let mut image: Vec<u64> = res_paths
        .iter()
        .map(|&p| res_mask_to_dense(&res, p))
        .collect();
    image.sort_unstable();
    image.dedup();
    dense_paths.sort_unstable();
    let bijective = image.len() == res_paths.len()
        && dense_paths.windows(2).all(|w| w[0] != w[1])
        && image == dense_paths;
    let inverse_ok = res_paths
        .iter()
        .all(|&p| dense_mask_to_res(&res, res_mask_to_dense(&res, p)) == p);
    Ok(BijectionCheck {
        units,
        res_paths: res_paths.len(),
        dense_paths: dense_paths.len(),
        bijective,
        inverse_ok,
    })
}

/// Both path counts for any `N`, by the exact DP on each graph's structure: ResNet `2^N`
/// (one binary choice per unit) and DenseNet with output aggregation = compositions of `N + 1`
/// into parts `1..=N+1` = `2^N`.
pub fn bijection_counts(units: usize) -> (BigUint, BigUint) {
    let res = BigUint::one() << units;
    let offsets: Vec<usize> = (1..=units + 1).collect();
    let dense = crate::paths::path_count(&offsets, units + 1);
    (res, dense)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_agree_with_node_sequences() {
        // The set-based check against the sequence-based maps, side by side, up to N = 9.
        for n in 1..=9 {
            let res = UnraveledResNet::new(n);
            let seqs = enumerate_paths(&res.graph, res.input(), res.output());
            let mut masks = enumerate_path_masks(&res.graph, res.input(), res.output());
            let mask_of = |p: &[NodeIndex]| p.iter().fold(0u64, |m, v| m | 1 << v.index());
            let mut from_seqs: Vec<u64> = seqs.iter().map(|p| mask_of(p)).collect();
            masks.sort_unstable();
            from_seqs.sort_unstable();
            assert_eq!(masks, from_seqs);
            for p in &seqs {
                let d = res_to_dense(&res, p);
                assert_eq!(res_mask_to_dense(&res, mask_of(p)), mask_of(&d));
                assert_eq!(
                    dense_mask_to_res(&res, mask_of(&d)),
                    mask_of(&dense_to_res(&res, &d))
                );
            }
        }
    }

    #[test]
    fn a_broken_map_is_caught() {
        // Dropping F_1 from every image makes two ResNet paths collide.
        let res = UnraveledResNet::new(3);
        let broken: Vec<u64> = enumerate_path_masks(&res.graph, res.input(), res.output())
            .into_iter()
            .map(|p| res_mask_to_dense(&res, p) & !(1 << 1))
            .collect();
        let mut distinct = broken.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() < broken.len());
    }

    #[test]
    fn small_bijections() {
        for n in 1..=10 {
            let c = check_bijection(n).unwrap();
            assert_eq!(c.res_paths, 1 << n);
            assert_eq!(c.dense_paths, 1 << n);
            assert!(c.bijective && c.inverse_ok);
        }
    }

    #[test]
    fn map_by_hand() {
        // N = 3, ResNet path x0 → F1 → x1 → x2 → F3 → x3 (residual at units 1 and 3)
        // ↦ dense path x0 → x1 → x3 → out(=x4).
        let r = UnraveledResNet::new(3);
        let p = vec![
            r.state(0),
            r.residual(1),
            r.state(1),
            r.state(2),
            r.residual(3),
            r.state(3),
        ];
        let d: Vec<usize> = res_to_dense(&r, &p).iter().map(|n| n.index()).collect();
        assert_eq!(d, vec![0, 1, 3, 4]);
        assert_eq!(dense_to_res(&r, &res_to_dense(&r, &p)), p);
    }

    #[test]
    fn counts_equal_for_large_n() {
        let (a, b) = bijection_counts(200);
        assert_eq!(a, b);
    }
}
