//! Whole networks: logits, every gradient, running statistics, then a few SGD steps side by
//! side, each judged against the drift two CPU runs show.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::rc::Rc;

use sparsenet_net::zoo::NetSpec;
use sparsenet_net::Shape;

use crate::backend::Label;
use crate::gpu::{GpuTrainer, Kit};
use crate::model::Model;
use crate::optim::{self, Config as OptConfig, Optimizer as OptKind, State};

use super::{random, rel_diff, Comparison};

/// What a few training steps produced, on either device.
struct Trajectory {
    /// Logits of a forward pass (training mode) from the initial weights.
    logits: Vec<f32>,
    /// Every parameter's gradient in the first step.
    grads: Vec<Vec<f32>>,
    /// Running means and variances after the first step (all batch norms, concatenated).
    stats: (Vec<f32>, Vec<f32>),
    /// The loss of every step.
    losses: Vec<f32>,
    /// All parameters after the last update.
    params: Vec<f32>,
}

fn sgd() -> OptConfig {
    OptConfig {
        kind: OptKind::Sgd,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    }
}

/// Learning rate of the side-by-side steps.
const CHECK_LR: f32 = 0.05;

fn all_stats(m: &Model<f32>) -> (Vec<f32>, Vec<f32>) {
    let (mut mean, mut var) = (Vec::new(), Vec::new());
    for s in m.bn.iter().flatten() {
        mean.extend_from_slice(&s.mean);
        var.extend_from_slice(&s.var);
    }
    (mean, var)
}

fn cpu_trajectory(
    spec: &NetSpec,
    input: Shape,
    batches: &[(Vec<f32>, Vec<Label>)],
) -> Result<Trajectory> {
    let opt = sgd();
    let n = batches[0].1.len();
    let logits = Model::<f32>::new(spec, input, 3)?.logits(batches[0].0.clone(), n, true)?;
    let mut m = Model::<f32>::new(spec, input, 3)?;
    let sizes: Vec<usize> = m.values.iter().map(|v| v.len()).collect();
    let mut st = State::new(&opt, &sizes);
    let (mut grads0, mut stats, mut losses) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
    for (i, (x, y)) in batches.iter().enumerate() {
        let (l, _, g) = m.step(x.clone(), y, true)?;
        losses.push(l as f32);
        if i == 0 {
            stats = all_stats(&m);
            grads0 = g.clone();
        }
        optim::update(&opt, &mut st, CHECK_LR, &mut m.values, &g, &m.masks);
    }
    Ok(Trajectory {
        logits,
        grads: grads0,
        stats,
        losses,
        params: m.values.concat(),
    })
}

fn gpu_trajectory(
    kit: &Rc<Kit>,
    spec: &NetSpec,
    input: Shape,
    batches: &[(Vec<f32>, Vec<Label>)],
) -> Result<Trajectory> {
    let opt = sgd();
    let host = Model::<f32>::new(spec, input, 3)?;
    let (x0, y0) = &batches[0];
    let logits = GpuTrainer::new(kit.clone(), &host, &opt, &State::new(&opt, &[]))?
        .logits(&host, x0, y0, true)?;
    let mut copy = Model::<f32>::new(spec, input, 3)?;
    let mut st = State::new(&opt, &[]);
    let mut gpu = GpuTrainer::new(kit.clone(), &host, &opt, &st)?;
    let (mut grads0, mut stats, mut losses) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
    for (i, (x, y)) in batches.iter().enumerate() {
        let r = gpu.step(&host, x, y, true)?;
        losses.push(r.loss as f32);
        if i == 0 {
            grads0 = gpu.gradients()?;
            gpu.download(&mut copy, &mut st)?;
            stats = all_stats(&copy);
        }
        gpu.update(&opt, CHECK_LR)?;
    }
    gpu.download(&mut copy, &mut st)?;
    Ok(Trajectory {
        logits,
        grads: grads0,
        stats,
        losses,
        params: copy.values.concat(),
    })
}

/// A whole network, CPU against GPU from the same initialisation and batches: logits
/// (training mode), every parameter gradient and the running statistics of the first step, the
/// losses of `steps` SGD steps and the parameters after them.
///
/// Training amplifies rounding differences (ReLU masks flip, near-constant channels divide by
/// a tiny deviation), so beside each GPU–CPU difference stands a floor: the same difference
/// between two CPU runs whose inputs differ by one part in a million. A quantity passes when
/// it is within `tol` (scaled per quantity) or within 10× its floor.
pub fn network_check(
    kit: &Rc<Kit>,
    name: &str,
    spec: &NetSpec,
    input: Shape,
    batch: usize,
    steps: usize,
    tol: f64,
) -> Result<Vec<Comparison>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let classes = spec.classes;
    let per = input.c * input.h * input.w;
    let batches: Vec<(Vec<f32>, Vec<Label>)> = (0..steps.max(1))
        .map(|_| {
            let x = random(batch * per, &mut rng);
            let y = (0..batch)
                .map(|_| rng.gen_range(0..classes) as Label)
                .collect();
            (x, y)
        })
        .collect();
    let nudged: Vec<(Vec<f32>, Vec<Label>)> = batches
        .iter()
        .map(|(x, y)| {
            let x = x
                .iter()
                .map(|v| v * (1.0 + 1e-6 * rng.gen_range(-1.0f32..1.0)))
                .collect();
            (x, y.clone())
        })
        .collect();
    let cpu = cpu_trajectory(spec, input, &batches)?;
    let twin = cpu_trajectory(spec, input, &nudged)?;
    let gpu = gpu_trajectory(kit, spec, input, &batches)?;
    let mut out = Vec::new();
    let mut cmp = |what: String, pick: &dyn Fn(&Trajectory) -> Vec<f32>, t: f64| {
        let (c, w, g) = (pick(&cpu), pick(&twin), pick(&gpu));
        let floor = rel_diff(&c, &w);
        out.push(Comparison {
            what: format!("{name}: {what}"),
            err: rel_diff(&c, &g),
            tol: t.max(10.0 * floor),
            floor: Some(floor),
        });
    };
    cmp("logits".into(), &|t| t.logits.clone(), tol);
    cmp(
        "gradients (all parameters)".into(),
        &|t| t.grads.concat(),
        10.0 * tol,
    );
    cmp(
        "running means after one step".into(),
        &|t| t.stats.0.clone(),
        10.0 * tol,
    );
    cmp(
        "running variances after one step".into(),
        &|t| t.stats.1.clone(),
        10.0 * tol,
    );
    let k = batches.len();
    cmp(
        format!("losses of {k} SGD steps"),
        &|t| t.losses.clone(),
        10.0 * tol,
    );
    cmp(
        format!("parameters after {k} SGD steps"),
        &|t| t.params.clone(),
        10.0 * tol,
    );
    // The parameter tensor whose gradient differs most, against its own floor.
    let names: Vec<String> = Model::<f32>::new(spec, input, 3)?
        .params
        .into_iter()
        .map(|p| p.name)
        .collect();
    let worst = (0..names.len())
        .map(|i| (rel_diff(&cpu.grads[i], &gpu.grads[i]), i))
        .fold((0.0, 0), |m, e| if e.0 > m.0 { e } else { m })
        .1;
    cmp(
        format!("worst single gradient ({})", names[worst]),
        &|t| t.grads[worst].clone(),
        100.0 * tol,
    );
    Ok(out)
}
