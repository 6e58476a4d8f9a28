//! `study lesion`: test accuracy of a trained network with layers removed at test time (after
//! Veit et al., NIPS 2016): each layer of each block alone, then `k = 1, 2, …` layers drawn at
//! random (several seeded draws per `k`).
//!
//! What "removed" means follows the block's aggregation and is stated in the output: in a
//! summing block (ResNet) the unit's residual branch is dropped and its skip kept (the branch
//! output is replaced by zeros before the sum); in a concatenating block (DenseNet, SparseNet)
//! the layer's output is replaced by zeros wherever it is read; in a chain (plain network) the
//! layer's output is replaced by zeros, and everything after it sees only zeros from it.

use anyhow::{bail, Context, Result};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};

use sparsenet_net::dag::Aggregation;

use crate::data::Images;
use crate::io::write_atomic;
use crate::model::Model;
use crate::plot::{self, Chart, Mark, Series};
use crate::train::{checkpoint, evaluate, Engine};

/// One layer removed alone.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Single {
    /// Block, 1-based.
    pub block: usize,
    /// Layer within the block, 1-based.
    pub layer: usize,
    /// Test accuracy without it.
    pub acc: f64,
}

/// `k` random layers removed, several draws.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RandomK {
    /// Layers removed at once.
    pub k: usize,
    /// Test accuracy of each draw.
    pub accs: Vec<f64>,
}

/// What `study lesion` writes per checkpoint.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Lesion {
    /// The checkpoint.
    pub checkpoint: String,
    /// The network.
    pub network: String,
    /// The test data.
    pub data: String,
    /// Test images evaluated.
    pub images: usize,
    /// Test accuracy of the whole network.
    pub baseline_acc: f64,
    /// Each layer removed alone.
    pub single: Vec<Single>,
    /// Random removals by `k`.
    pub random: Vec<RandomK>,
    /// What removing a layer means here.
    pub rule: String,
    /// The seed of the random draws.
    pub seed: u64,
}

/// The rule for a network's blocks, as stated in the output.
pub fn rule(model: &Model<f32>) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for b in &model.net.blocks {
        let r = match b.aggregation {
            Aggregation::Sum => "summing blocks: the layer's output (a ResNet unit's residual branch) is replaced by zeros in every sum that reads it, the skip kept (Veit et al. 2016)",
            Aggregation::Max => "maximum blocks: the layer's output is replaced by zeros in every maximum that reads it",
            Aggregation::Concat => "concatenating blocks: the layer's output is replaced by zeros wherever it is read",
            Aggregation::Chain => "chained blocks: the layer's output is replaced by zeros (no other route exists, so every later layer sees zeros from it)",
            Aggregation::Mean => "fractal blocks: the convolution's output is replaced by zeros in every join that reads it (the join still divides by its inputs)",
            Aggregation::Mixed | Aggregation::Dual => "mixed and dual-path blocks: both parts of the layer's output (summed and concatenated) are replaced by zeros wherever they are read",
        };
        if !parts.contains(&r) {
            parts.push(r);
        }
    }
    parts.join("; ")
}

/// Every removable layer: (block, layer) 1-based, and the nodes whose outputs are zeroed.
pub fn layers(model: &Model<f32>) -> Vec<(usize, usize, Vec<usize>)> {
    model
        .net
        .blocks
        .iter()
        .enumerate()
        .flat_map(|(bi, b)| {
            b.layers.iter().enumerate().map(move |(li, l)| {
                let nodes = std::iter::once(l.output)
                    .chain(l.also.iter().copied())
                    .map(|n| n.index())
                    .collect();
                (bi + 1, li + 1, nodes)
            })
        })
        .collect()
}

/// How far the sweep goes.
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    /// Largest number of layers removed at once.
    pub max_k: usize,
    /// Random draws per `k`.
    pub draws: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Images per evaluation batch.
    pub batch: usize,
    /// Evaluate on at most this many test images (all when `None`).
    pub limit: Option<usize>,
}

/// Run the sweep on `test` (normalised with the checkpoint's `mean`/`std`); `progress` is told
/// each finished evaluation and the total. The model is left whole.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    model: &mut Model<f32>,
    engine: &mut Engine,
    test: &Images,
    mean: &[f32],
    std: &[f32],
    s: Sweep,
    mut progress: impl FnMut(usize, usize),
) -> Result<(f64, Vec<Single>, Vec<RandomK>)> {
    let all = layers(model);
    if all.is_empty() {
        bail!("this network has no blocks of layers to remove");
    }
    let max_k = s.max_k.min(all.len());
    let total = 1 + all.len() + max_k * s.draws;
    let mut done = 0;
    let mut acc_without = |model: &mut Model<f32>, nodes: &[usize]| -> Result<f64> {
        model.set_zeroed(nodes)?;
        let r = evaluate(model, engine, test, mean, std, s.batch, s.limit);
        model.set_zeroed(&[])?;
        done += 1;
        progress(done, total);
        Ok(r?.1)
    };
    let baseline = acc_without(model, &[])?;
    let mut single = Vec::new();
    for (block, layer, nodes) in &all {
        let acc = acc_without(model, nodes)?;
        single.push(Single {
            block: *block,
            layer: *layer,
            acc,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut random = Vec::new();
    for k in 1..=max_k {
        let mut accs = Vec::new();
        for _ in 0..s.draws {
            let nodes: Vec<usize> = sample(&mut rng, all.len(), k)
                .into_iter()
                .flat_map(|i| all[i].2.iter().copied())
                .collect();
            accs.push(acc_without(model, &nodes)?);
        }
        random.push(RandomK { k, accs });
    }
    Ok((baseline, single, random))
}

/// `study lesion` for one checkpoint: evaluate on its test data with layers removed.
pub fn run(
    path: &Path,
    sweep: Sweep,
    data_dir: Option<&Path>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Lesion> {
    let (checkpoint::Loaded { meta, mut model }, split) =
        checkpoint::open_for_eval(path, data_dir, crate::data::DataChoice::Auto)?;
    let test = split.test;
    let mut engine = Engine::Cpu;
    let (baseline, single, random) = self::sweep(
        &mut model,
        &mut engine,
        &test,
        &meta.mean,
        &meta.std,
        sweep,
        &mut progress,
    )?;
    Ok(Lesion {
        checkpoint: path.display().to_string(),
        network: super::network_name(&meta),
        data: split.source,
        images: sweep.limit.map_or(test.n(), |l| l.min(test.n())),
        baseline_acc: baseline,
        single,
        random,
        rule: rule(&model),
        seed: sweep.seed,
    })
}

/// Write each lesion result as `lesion-<i>.json` (`lesion.json` for one) and the figures
/// `lesion_single` (accuracy drop per removed layer) and `lesion_random` (accuracy against
/// the number of layers removed, one line per network) in `out`.
pub fn report(results: &[Lesion], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let name = if results.len() == 1 {
            "lesion.json".to_string()
        } else {
            format!("lesion-{}.json", i + 1)
        };
        let p = out.join(name);
        write_atomic(&p, serde_json::to_string_pretty(r)?.as_bytes())?;
        written.push(p);
    }
    let label = |r: &Lesion| format!("{} ({} images)", r.network, r.images);
    let single = Chart {
        title: "Accuracy lost by removing one layer at test time".into(),
        x_label: "layer (blocks in order)".into(),
        y_label: "accuracy drop (percentage points)".into(),
        series: results
            .iter()
            .map(|r| {
                Series::new(
                    label(r),
                    r.single
                        .iter()
                        .enumerate()
                        .map(|(i, s)| ((i + 1) as f64, 100.0 * (r.baseline_acc - s.acc)))
                        .collect(),
                    Mark::LinePoints,
                )
            })
            .collect(),
    };
    plot::save(&single, out, "lesion_single")?;
    let random = Chart {
        title: "Test accuracy with k random layers removed (mean over draws)".into(),
        x_label: "layers removed k".into(),
        y_label: "test accuracy (%)".into(),
        series: results
            .iter()
            .map(|r| {
                let mut pts = vec![(0.0, 100.0 * r.baseline_acc)];
                pts.extend(r.random.iter().map(|k| {
                    (
                        k.k as f64,
                        100.0 * k.accs.iter().sum::<f64>() / k.accs.len().max(1) as f64,
                    )
                }));
                Series::new(label(r), pts, Mark::LinePoints)
            })
            .collect(),
    };
    plot::save(&random, out, "lesion_random")?;
    for stem in ["lesion_single", "lesion_random"] {
        written.push(out.join(format!("{stem}.png")));
        written.push(out.join(format!("{stem}.svg")));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsenet_net::zoo::{Family, Layout, NetSpec};
    use sparsenet_net::Shape;

    #[test]
    fn removing_a_layer_zeroes_its_contribution_only_where_the_rule_says() {
        // A zeroed residual branch leaves x + 0: a ResNet unit whose branch is removed passes
        // its input through (post-activation: ReLU of a non-negative input is the input).
        let spec = NetSpec::new(Family::Res, Layout::Cifar, 8, &[], false, 3);
        let mut m = Model::<f32>::new(&spec, Shape::new(1, 8, 8), 1).unwrap();
        let x: Vec<f32> = (0..2 * 64)
            .map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.3)
            .collect();
        let whole = m.logits(x.clone(), 2, false).unwrap();
        let ls = layers(&m);
        assert_eq!(ls.len(), 3, "one unit per stage");
        m.set_zeroed(&ls[0].2).unwrap();
        let without = m.logits(x.clone(), 2, false).unwrap();
        assert_ne!(whole, without);
        m.set_zeroed(&[]).unwrap();
        assert_eq!(m.logits(x.clone(), 2, false).unwrap(), whole, "restored");
        assert!(rule(&m).contains("skip kept"));

        // In a concatenating block, a zeroed layer contributes zero channels to every reader:
        // with every layer of every block removed, the blocks carry only their inputs.
        let spec = NetSpec::new(Family::Dense, Layout::Cifar, 10, &[2], false, 3);
        let mut m = Model::<f32>::new(&spec, Shape::new(1, 8, 8), 1).unwrap();
        assert!(rule(&m).contains("replaced by zeros wherever it is read"));
        let nodes: Vec<usize> = layers(&m).iter().flat_map(|l| l.2.clone()).collect();
        assert_eq!(nodes.len(), 6);
        m.set_zeroed(&nodes).unwrap();
        let a = m.logits(x.clone(), 2, false).unwrap();
        // Changing a removed layer's weights changes nothing.
        let conv = m.net.blocks[0].layers[0].output.index();
        let pi = m.params.iter().position(|p| p.node == conv).unwrap();
        m.values[pi].iter_mut().for_each(|v| *v = 3.0);
        assert_eq!(m.logits(x, 2, false).unwrap(), a);
        assert!(m.set_zeroed(&[10_000]).is_err());

        // A dual-path layer is two nodes (residual and dense parts), both removed.
        let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 7, &[2], false, 3);
        spec.aggregate = sparsenet_net::zoo::Aggregate::Dual;
        let m = Model::<f32>::new(&spec, Shape::new(1, 8, 8), 1).unwrap();
        assert!(layers(&m).iter().all(|l| l.2.len() == 2));
        assert!(rule(&m).contains("both parts"));
    }
}
