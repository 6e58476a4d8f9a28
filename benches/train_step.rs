//! Training throughput of the DAG-interpreting trainer: median time of a full training step
//! (forward, loss, backward, SGD update) on random batches, and peak memory. One model per
//! process so the peak is the model's own. Peer: `benches/torch_peer.py` (same DAG, PyTorch),
//! run side by side by `benches/train_vs_pytorch.sh`. Results in BENCHMARKS.md.
//!
//! usage: cargo bench --bench train_step -- MODEL [BATCH] [STEPS] [THREADS]

mod common;

use rand::{Rng, SeedableRng};
use sparsenet::model::Model;
use sparsenet::optim::{self, Config, Optimizer, State};
use sparsenet_net::zoo::named;
use std::time::Instant;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    sparsenet::alloc::retain_freed_memory();
    let args = common::Args::from_env();
    let model = args.text(0, "densenet-40-12");
    let batch = args.number(1, 64);
    let steps = args.number(2, 10);
    let threads = args.number(3, 2);
    common::threads(threads);
    let spec = named(&model).expect("a named model").spec(Some(10));
    let input = spec.input_shape();
    let mut m = Model::<f32>::new(&spec, input, 0).expect("model");
    let cfg = Config {
        kind: Optimizer::Sgd,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    };
    let sizes: Vec<usize> = m.values.iter().map(|v| v.len()).collect();
    let mut st = State::new(&cfg, &sizes);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..batch * input.numel())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let y: Vec<sparsenet::backend::Label> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
    let mut times = Vec::new();
    for step in 0..steps + 2 {
        let t = Instant::now();
        let (_, _, g) = m.step(x.clone(), &y, true).expect("step");
        optim::update(&cfg, &mut st, 0.1, &mut m.values, &g, &m.masks);
        if step >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    common::print_profile(steps + 2, 1.0, "s/step");
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let med = times[times.len() / 2];
    println!(
        "{{\"impl\": \"sparsenet\", \"model\": \"{model}\", \"batch\": {batch}, \"threads\": {threads}, \"params\": {}, \"median_step_s\": {med}, \"images_per_sec\": {}, \"peak_rss_mb\": {}}}",
        m.param_count(),
        batch as f64 / med,
        peak_rss_mb()
    );
}
