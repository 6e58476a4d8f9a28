//! The graph metrics of a trained network (issue 26): each block's, computed by the graph crate
//! ([`sparsenet_analysis::block_metrics`]) from the aggregation view the builder recorded for
//! that very block ([`sparsenet_net::dag::Block::view`]), and the network's value of each: the
//! mean over its blocks. Study rows and summaries carry them; `study correlate` reads them.

use serde::{Deserialize, Serialize};
use sparsenet_analysis::block_metrics::{block_metrics, BlockMetrics};
use sparsenet_net::NetGraph;

/// One block's metrics, with its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedBlockMetrics {
    /// The block's scope (`block1`, `stage2`, …).
    pub block: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: BlockMetrics,
}

/// A network's graph metrics: every value is the mean over its blocks (the blocks' own are in
/// `blocks`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphMetrics {
    /// Connections per block.
    pub connections: f64,
    /// log₁₀ of the input → output path count per block.
    pub log10_paths: f64,
    /// Mean path length.
    pub mean_path_length: f64,
    /// Longest path.
    pub max_path_length: f64,
    /// Mean all-pairs gradient path.
    pub mean_gradient_path: f64,
    /// Longest all-pairs gradient path.
    pub max_gradient_path: f64,
    /// Share of a block's layers its output reads.
    pub output_reads: f64,
    /// Each block's metrics, in network order.
    pub blocks: Vec<NamedBlockMetrics>,
}

/// The metrics `study correlate` relates to test error: (name in the rows, how it reads).
pub const METRICS: [(&str, &str); 7] = [
    ("connections", "connections per block"),
    ("log10_paths", "log10 paths, input to output"),
    ("mean_path_length", "mean path length"),
    ("max_path_length", "longest path"),
    ("mean_gradient_path", "mean gradient path"),
    ("max_gradient_path", "longest gradient path"),
    ("output_reads", "share of layers the output reads"),
];

impl GraphMetrics {
    /// The network's value of the metric named `name` (one of [`METRICS`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "connections" => self.connections,
            "log10_paths" => self.log10_paths,
            "mean_path_length" => self.mean_path_length,
            "max_path_length" => self.max_path_length,
            "mean_gradient_path" => self.mean_gradient_path,
            "max_gradient_path" => self.max_gradient_path,
            "output_reads" => self.output_reads,
            _ => return None,
        })
    }
}

/// The metrics of `net`'s blocks and their means; None for a network without blocks.
pub fn graph_metrics(net: &NetGraph) -> Option<GraphMetrics> {
    let blocks: Vec<NamedBlockMetrics> = net
        .blocks
        .iter()
        .map(|b| NamedBlockMetrics {
            block: b.name.clone(),
            metrics: block_metrics(&b.view),
        })
        .collect();
    if blocks.is_empty() {
        return None;
    }
    let mean = |f: fn(&BlockMetrics) -> f64| {
        blocks.iter().map(|b| f(&b.metrics)).sum::<f64>() / blocks.len() as f64
    };
    Some(GraphMetrics {
        connections: mean(|m| m.connections as f64),
        log10_paths: mean(|m| m.log10_paths),
        mean_path_length: mean(|m| m.mean_path_length),
        max_path_length: mean(|m| m.max_path_length as f64),
        mean_gradient_path: mean(|m| m.mean_gradient_path),
        max_gradient_path: mean(|m| m.max_gradient_path as f64),
        output_reads: mean(|m| m.output_reads),
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsenet_net::zoo::{build, named};

    #[test]
    fn the_quick_grids_networks_by_hand() {
        // DenseNet-BC-40-12 on CIFAR: 3 blocks of 6 layers, each block's view the dense
        // pattern at depth 7 (node 7 the output): 28 connections, 2^6 paths of mean length
        // 1 + 6/2 = 4, every pair one hop apart, and the output reads all 6 layers.
        use sparsenet_net::zoo::{Family, Layout, NetSpec};
        let dense = NetSpec::new(Family::Dense, Layout::Cifar, 40, &[12], true, 10);
        let m = graph_metrics(&build(&dense).unwrap()).unwrap();
        assert_eq!(m.blocks.len(), 3);
        assert_eq!(m.connections, 28.0);
        assert!((m.log10_paths - 6.0 * 2f64.log10()).abs() < 1e-12);
        assert!((m.mean_path_length - 4.0).abs() < 1e-12);
        assert_eq!((m.max_path_length, m.max_gradient_path), (7.0, 1.0));
        assert_eq!(m.output_reads, 1.0);
        // ResNet-20: 3 stages of 3 units, each read by everything after it in the
        // aggregation view (res = dense connectivity, summed): 10 connections, 2^3 paths.
        let r = graph_metrics(&build(&named("resnet-20").unwrap().spec(None)).unwrap()).unwrap();
        assert_eq!(r.connections, 10.0);
        assert!((r.log10_paths - 3.0 * 2f64.log10()).abs() < 1e-12);
        assert_eq!(r.max_gradient_path, 1.0);
    }
}
