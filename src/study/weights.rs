//! `study weights`: how much a trained concatenating network uses each connection.
//!
//! For each block, entry `(s, ℓ)` is the mean absolute weight of layer `ℓ`'s first convolution
//! over the input channels that come from source `s` (0 = the block input, `j` = layer `j`),
//! over all its output channels and kernel taps: the L1 norm of those weights divided by their
//! number, the convention of the DenseNet paper's Fig. 5. `matrix` divides every entry by the
//! block's largest, so 1 is the most used connection of the block; `raw` keeps the means.
//! Sources a layer does not read are `null`, not zero.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

use sparsenet_net::dag::Aggregation;
use sparsenet_net::Op;

use crate::io::write_atomic;
use crate::model::Model;
use crate::plot::heatmap::{self, Labels, Panel};
use crate::train::checkpoint;

/// The connection usage of one block.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BlockUsage {
    /// The block's name (`block1`).
    pub name: String,
    /// Its number of layers `L`.
    pub layers: usize,
    /// `matrix[s][ℓ − 1]` for sources `s = 0 … L − 1` and layers `ℓ = 1 … L`: the mean absolute
    /// weight divided by the block's largest; `null` where layer `ℓ` does not read `s`.
    pub matrix: Vec<Vec<Option<f64>>>,
    /// The same means before that division.
    pub raw: Vec<Vec<Option<f64>>>,
}

/// What `study weights` writes as JSON.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Usage {
    /// The checkpoint.
    pub checkpoint: String,
    /// The network.
    pub network: String,
    /// How the entries are computed and normalised.
    pub rule: String,
    /// One entry per concatenating block.
    pub blocks: Vec<BlockUsage>,
}

/// The rule, as stated in the output.
pub const RULE: &str = "entry (s, l) = mean |w| of layer l's first convolution over the input channels that come from source s (0 = block input, j = layer j), all output channels and kernel taps (DenseNet Fig. 5); 'matrix' divides by the block's largest entry, 'raw' does not; null = layer l does not read s";

/// Connection usage of every concatenating block of `model` (with its trained weights).
pub fn usage(model: &Model<f32>) -> Result<Vec<BlockUsage>> {
    let net = &model.net;
    let blocks: Vec<_> = net
        .blocks
        .iter()
        .filter(|b| b.aggregation == Aggregation::Concat)
        .collect();
    if blocks.is_empty() {
        bail!(
            "this network has no concatenating blocks (its blocks sum or chain their layers); study weights needs a DenseNet, SparseNet or other concatenating pattern"
        );
    }
    let mut out = Vec::new();
    for b in blocks {
        let l_count = b.layers.len();
        let mut raw = vec![vec![None; l_count]; l_count];
        for (li, layer) in b.layers.iter().enumerate() {
            let conv = layer.first_conv;
            let Op::Conv {
                in_ch,
                out_ch,
                kernel,
                ..
            } = net.graph[conv].op
            else {
                bail!("{}: not a convolution", net.graph[conv].name);
            };
            let w = model
                .params
                .iter()
                .position(|p| p.node == conv.index())
                .map(|i| &model.values[i])
                .ok_or_else(|| anyhow::anyhow!("no weight for {}", net.graph[conv].name))?;
            // The sources' channels, in the slot order the layer concatenates them.
            let widths: Vec<usize> = layer
                .sources
                .iter()
                .map(|&s| {
                    let node = if s == 0 {
                        b.input
                    } else {
                        b.layers[s - 1].output
                    };
                    net.graph[node].shape.c
                })
                .collect();
            if widths.iter().sum::<usize>() != in_ch {
                bail!(
                    "{}: {} input channels, its sources give {}",
                    net.graph[conv].name,
                    in_ch,
                    widths.iter().sum::<usize>()
                );
            }
            let kk = kernel * kernel;
            let mut start = 0;
            for (&s, &c) in layer.sources.iter().zip(&widths) {
                let mut sum = 0.0f64;
                for o in 0..out_ch {
                    let row = &w[(o * in_ch + start) * kk..(o * in_ch + start + c) * kk];
                    sum += row.iter().map(|v| v.abs() as f64).sum::<f64>();
                }
                raw[s][li] = Some(sum / (out_ch * c * kk) as f64);
                start += c;
            }
        }
        let max = raw
            .iter()
            .flatten()
            .flatten()
            .fold(0.0f64, |m, &v| m.max(v));
        let matrix = raw
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| v.map(|x| if max > 0.0 { x / max } else { 0.0 }))
                    .collect()
            })
            .collect();
        out.push(BlockUsage {
            name: b.name.clone(),
            layers: l_count,
            matrix,
            raw,
        });
    }
    Ok(out)
}

/// `study weights`: the connection usage of `checkpoint` as `weights.json` and the heat map
/// `weights.png`/`.svg` in `out`. Returns the files written.
pub fn report(path: &Path, out: &Path) -> Result<(Usage, Vec<PathBuf>)> {
    let l = checkpoint::open(path)?;
    let blocks = usage(&l.model).map_err(crate::error::bad_input)?;
    let usage = Usage {
        checkpoint: path.display().to_string(),
        network: super::network_name(&l.meta),
        rule: RULE.into(),
        blocks,
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("weights.json");
    write_atomic(&json, serde_json::to_string_pretty(&usage)?.as_bytes())?;
    let panels: Vec<Panel> = usage
        .blocks
        .iter()
        .map(|b| Panel {
            title: format!("{} ({} layers)", b.name, b.layers),
            matrix: b.matrix.clone(),
        })
        .collect();
    let labels = Labels {
        title: format!(
            "{}: mean |w| of each layer's first convolution per source (epoch {})",
            usage.network, l.meta.epoch
        ),
        x: "target layer ℓ".into(),
        y: "source s (0 = block input)".into(),
        scale: "mean |w| / block max".into(),
        first_col: 1,
    };
    heatmap::save(&panels, &labels, out, "weights")?;
    Ok((
        usage,
        vec![json, out.join("weights.png"), out.join("weights.svg")],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsenet_net::zoo::{Family, Layout, NetSpec};
    use sparsenet_net::Shape;

    #[test]
    fn entries_are_per_source_means_and_absent_where_unread() {
        // SparseNet, 2 blocks... depth 10 → 2 layers per block, growth 2: layer 2 reads layers 1
        // and 0 (the block input), layer 1 reads 0 only.
        let spec = NetSpec::new(Family::Sparse, Layout::Cifar, 10, &[2], false, 3);
        let mut m = Model::<f32>::new(&spec, Shape::new(1, 8, 8), 1).unwrap();
        // Set layer 2's first convolution of block 1 by hand: input channels [layer 1 (2 ch),
        // block input (4 ch)], each source's weights a constant.
        let b = &m.net.blocks[0];
        let conv = b.layers[1].first_conv.index();
        let pi = m.params.iter().position(|p| p.node == conv).unwrap();
        let (in_ch, kk) = (6, 9);
        for o in 0..2 {
            for c in 0..in_ch {
                for t in 0..kk {
                    m.values[pi][(o * in_ch + c) * kk + t] = if c < 2 { -0.5 } else { 0.25 };
                }
            }
        }
        let u = usage(&m).unwrap();
        assert_eq!(u.len(), 3);
        let b1 = &u[0];
        assert_eq!(b1.layers, 2);
        // Column of layer 2: source 1 (layer 1) 0.5, source 0 (block input) 0.25.
        assert_eq!(b1.raw[1][1], Some(0.5));
        assert_eq!(b1.raw[0][1], Some(0.25));
        // Layer 1 does not read layer 1 (itself): absent, not zero.
        assert_eq!(b1.raw[1][0], None);
        assert!(b1.raw[0][0].unwrap() > 0.0);
        let max = b1
            .raw
            .iter()
            .flatten()
            .flatten()
            .fold(0.0f64, |a, &b| a.max(b));
        assert_eq!(b1.matrix[1][1], Some(0.5 / max));
    }

    #[test]
    fn summing_networks_are_refused() {
        let spec = NetSpec::new(Family::Res, Layout::Cifar, 8, &[], false, 3);
        let m = Model::<f32>::new(&spec, Shape::new(1, 8, 8), 1).unwrap();
        let e = usage(&m).unwrap_err().to_string();
        assert!(e.contains("no concatenating blocks"), "{e}");
    }
}
