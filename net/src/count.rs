//! Parameter and FLOP counts of a network DAG — computed here and nowhere else, so the trainer's
//! instantiated model is tested against these numbers.
//!
//! * Trainable parameters as PyTorch counts them: convolution weights `out·in·k²` (no bias),
//!   batch norm `γ, β` (`2C`), linear `in·out + out`.
//! * Batch-norm running statistics (mean and variance, `2C`) are reported separately.
//! * MACs: convolution `out·in·k²·H_out·W_out`, linear `in·out` (batch 1).
//! * FLOPs as the paper counts them: `2·MACs + 2·(elements entering every batch norm)`.

use crate::dag::{NetGraph, Node};
use crate::op::Op;

/// Counts of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeCount {
    /// Trainable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub bn_running: u64,
    /// Multiply-accumulates for one input.
    pub macs: u64,
    /// Elements entering a batch norm.
    pub bn_elements: u64,
}

/// Counts of one node, from its operation ([`Op::params`], [`Op::running_stats`]) and output shape.
pub fn node_count(node: &Node) -> NodeCount {
    let s = node.shape;
    let params: u64 = node.op.params().iter().map(|p| p.numel() as u64).sum();
    let macs = match node.op {
        // Every weight is used once per output position.
        Op::Conv { .. } => params * (s.h * s.w) as u64,
        Op::Linear {
            in_features,
            out_features,
        } => (in_features * out_features) as u64,
        _ => 0,
    };
    let bn_elements = match node.op {
        Op::BatchNorm { .. } => s.numel() as u64,
        _ => 0,
    };
    NodeCount {
        params,
        bn_running: node.op.running_stats() as u64,
        macs,
        bn_elements,
    }
}

/// Totals over a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetCount {
    /// Trainable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub bn_running: u64,
    /// Multiply-accumulates for one input.
    pub macs: u64,
    /// The paper's FLOPs: `2·macs + 2·bn_elements`.
    pub flops: u64,
    /// Convolution layers.
    pub convs: u64,
    /// Nodes of the DAG.
    pub nodes: u64,
}

/// Sum the node counts of a network.
pub fn count(net: &NetGraph) -> NetCount {
    let mut t = NetCount::default();
    let mut bn_elements = 0;
    for n in net.graph.node_weights() {
        let c = node_count(n);
        t.params += c.params;
        t.bn_running += c.bn_running;
        t.macs += c.macs;
        bn_elements += c.bn_elements;
        if matches!(n.op, Op::Conv { .. }) {
            t.convs += 1;
        }
        t.nodes += 1;
    }
    t.flops = 2 * t.macs + 2 * bn_elements;
    t
}
