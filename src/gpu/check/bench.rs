//! The GPU training benchmark, the search for the largest batch that fits, and batch-1
//! inference latency (the paper's Time column).

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::rc::Rc;
use std::time::Instant;

use sparsenet_net::zoo::NetSpec;

use crate::backend::Label;
use crate::gpu::{GpuTrainer, Kit};
use crate::model::Model;
use crate::optim::{Config as OptConfig, Optimizer as OptKind, State};

use super::random;

/// Training throughput on the GPU.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bench {
    /// Model name.
    pub model: String,
    /// Images per step.
    pub batch: usize,
    /// Median seconds of a full step (upload, forward, loss, backward, SGD update).
    pub median_step_s: f64,
    /// `batch / median_step_s`.
    pub images_per_sec: f64,
    /// Peak device memory of the pool (bytes), when reported.
    pub peak_bytes: Option<u64>,
    /// Whether TF32 tensor-core products were allowed.
    pub tf32: bool,
    /// The convolution engine (`cudnn` or `own`).
    pub conv: &'static str,
}

/// `spec` initialised at its own input size, the benchmark's optimiser (SGD, Nesterov 0.9,
/// weight decay 1e-4), and both on the GPU.
fn fresh(kit: &Rc<Kit>, spec: &NetSpec) -> Result<(Model<f32>, OptConfig, GpuTrainer)> {
    let model = Model::<f32>::new(spec, spec.input_shape(), 0)?;
    let opt = OptConfig {
        kind: OptKind::Sgd,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    };
    let sizes: Vec<usize> = model.values.iter().map(|v| v.len()).collect();
    let gpu = GpuTrainer::new(kit.clone(), &model, &opt, &State::new(&opt, &sizes))?;
    Ok((model, opt, gpu))
}

/// Median step time over `steps` steps after `warmup` untimed ones, on one random batch held on the
/// host (so each step uploads it, as training does).
pub fn bench(
    kit: &Rc<Kit>,
    name: &str,
    spec: &NetSpec,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<Bench> {
    let input = spec.input_shape();
    kit.sync()?;
    kit.reset_peak();
    let (model, opt, mut gpu) = fresh(kit, spec)?;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random(batch * input.c * input.h * input.w, &mut rng);
    let y: Vec<Label> = (0..batch)
        .map(|_| rng.gen_range(0..spec.classes) as Label)
        .collect();
    let mut times = Vec::new();
    for i in 0..steps + warmup {
        let t = Instant::now();
        let r = gpu.step(&model, &x, &y, true)?;
        gpu.update(&opt, 0.1)?;
        kit.sync()?;
        if !r.loss.is_finite() {
            bail!("{name}: the loss became {} in the benchmark", r.loss);
        }
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    Ok(Bench {
        model: name.to_string(),
        batch,
        median_step_s: med,
        images_per_sec: batch as f64 / med,
        peak_bytes: gpu.peak_memory(),
        tf32: kit.tf32,
        conv: kit.conv.name(),
    })
}

/// Batch-1 inference latency on the GPU.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Latency {
    /// Model name.
    pub model: String,
    /// Median milliseconds of one pass: the image to the device, the forward pass in
    /// evaluation mode, the logits back.
    pub median_ms: f64,
    /// Fastest pass.
    pub min_ms: f64,
    /// Slowest pass.
    pub max_ms: f64,
    /// Timed passes (after two untimed ones).
    pub runs: usize,
    /// Whether TF32 tensor-core products were allowed.
    pub tf32: bool,
    /// The convolution engine (`cudnn` or `own`).
    pub conv: &'static str,
}

/// Batch-1 latency of `spec` at its own input size, in evaluation mode (random weights:
/// latency does not depend on them).
pub fn latency(kit: &Rc<Kit>, name: &str, spec: &NetSpec, runs: usize) -> Result<Latency> {
    let input = spec.input_shape();
    let (model, _, mut gpu) = fresh(kit, spec)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = random(input.c * input.h * input.w, &mut rng);
    let mut times = Vec::new();
    for i in 0..runs.max(1) + 2 {
        kit.sync()?;
        let t = Instant::now();
        let logits = gpu.logits(&model, &x, &[0], false)?;
        if logits.len() != spec.classes {
            bail!("{name}: {} logits, expected {}", logits.len(), spec.classes);
        }
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(Latency {
        model: name.to_string(),
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        runs: times.len(),
        tf32: kit.tf32,
        conv: kit.conv.name(),
    })
}

/// Whether an error is the device running out of memory (from the allocator or cuBLAS).
pub fn is_out_of_memory(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("OUT_OF_MEMORY") || s.contains("ALLOC_FAILED")
}

/// The largest power-of-two batch (from `start`, at most `cap`) whose training step runs
/// without running out of device memory.
pub fn largest_batch(kit: &Rc<Kit>, spec: &NetSpec, start: usize, cap: usize) -> Result<usize> {
    let mut ok = 0;
    let mut b = start;
    while b <= cap {
        match bench(kit, "probe", spec, b, 1, 1) {
            Ok(_) => ok = b,
            Err(e) if is_out_of_memory(&e) => break,
            Err(e) => return Err(e),
        }
        b *= 2;
    }
    kit.trim()?;
    if ok == 0 {
        bail!("even a batch of {start} does not fit");
    }
    Ok(ok)
}
