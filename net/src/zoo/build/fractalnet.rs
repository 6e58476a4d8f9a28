//! FractalNet (Larsson et al. 2017): fractal blocks with mean joins and drop-path.

use super::*;

/// FractalNet for CIFAR (Larsson, Maire & Shakhnarovich 2017): `B` fractal blocks of `C`
/// columns, read off [`fractal_block`]'s DAG (each convolution reads the mean join of its
/// sources; a join shared by several readers is one node, so one drop-path draw), every
/// convolution a 3×3 conv-BN-ReLU unit of the block's width (64, 128, 256, 512, 512, then 512),
/// a 2×2 max pool after each block, and a linear classifier over what is left (1×1×512 at
/// 32×32 with five blocks).
pub(super) fn build_fractalnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    use sparsenet_analysis::fractal::{fractal_block, MAX_COLUMNS};
    let columns = match spec.growth.as_slice() {
        [c] if (1..=MAX_COLUMNS).contains(c) => *c,
        _ => {
            return Err(NetError::Spec(format!(
                "a FractalNet takes its columns C, 1 to {MAX_COLUMNS} (--columns 3 --blocks 5 for FractalNet-21)"
            )))
        }
    };
    let per_block = 1usize << (columns - 1);
    if spec.depth < per_block + 1 || !(spec.depth - 1).is_multiple_of(per_block) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit FractalNet blocks of {columns} columns: depth − 1 must be a positive multiple of {per_block} (the deepest column's convolutions per block); give --blocks B instead",
            spec.depth
        )));
    }
    let blocks = (spec.depth - 1) / per_block;
    let drop_path = spec
        .drop_path
        .unwrap_or_else(|| crate::op::Prob::new(0.15).expect("a probability"));
    let dag = fractal_block(columns)?;
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = b.input();
    for bi in 0..blocks {
        let width = [64, 128, 256, 512, 512].get(bi).copied().unwrap_or(512);
        b.push_scope(format!("block{}", bi + 1));
        let name = b.scope();
        let block_input = x;
        let mut outs = vec![x];
        let mut joins: std::collections::HashMap<Vec<usize>, NodeIndex> = Default::default();
        let mut record = Vec::new();
        let mut join = |b: &mut NetBuilder, sources: &[usize], outs: &[NodeIndex]| {
            let mut key = sources.to_vec();
            key.sort_unstable();
            if let Some(&n) = joins.get(&key) {
                return Ok(n);
            }
            let ins: Vec<NodeIndex> = key.iter().map(|&s| outs[s]).collect();
            let label: Vec<String> = key.iter().map(|s| s.to_string()).collect();
            let n = b.mean_join(&format!("join{}", label.join("_")), &ins, drop_path)?;
            joins.insert(key, n);
            Ok::<_, NetError>(n)
        };
        let layers = dag.depth() - 1;
        for l in 1..=layers {
            let sources = dag.sources(l).to_vec();
            let u = join(&mut b, &sources, &outs)?;
            b.push_scope(format!("conv{l}"));
            let c = b.conv("conv", u, width, 3, 1, 1)?;
            let r = b.bn_relu("", c);
            b.pop_scope();
            outs.push(r);
            record.push(BlockLayer {
                output: r,
                also: Vec::new(),
                first_conv: c,
                sources,
            });
        }
        x = join(&mut b, dag.sources(layers + 1), &outs)?;
        b.record_block(Block {
            name,
            input: block_input,
            aggregation: Aggregation::Mean,
            layers: record,
            view: dag.clone(),
        });
        x = b.max_pool("pool", x, 2, 2, 0).map_err(|_| {
            NetError::Spec(format!(
                "{blocks} FractalNet blocks (a 2×2 pool after each) do not fit a {} input: use fewer blocks (4 at 28×28) or a larger input",
                spec.input_shape()
            ))
        })?;
        b.pop_scope();
    }
    let fc = b.linear("fc", x, spec.classes);
    Ok(b.finish(fc))
}
