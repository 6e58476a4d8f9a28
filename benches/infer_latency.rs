//! Inference latency of any zoo model, the paper's Time (ms) column: batch 1 at the model's own
//! input (224×224×3 for the ImageNet rows), evaluation mode (running statistics), median of
//! RUNS forward passes after two warm-up passes. Random weights: latency does not depend on
//! them. Results in BENCHMARKS.md; `benches/infer_latency.sh` runs the paper's four ImageNet
//! rows and prints the SparseNet/DenseNet ratio beside the paper's.
//!
//! usage: cargo bench --bench infer_latency -- MODEL [RUNS] [THREADS]

mod common;

use rand::{Rng, SeedableRng};
use sparsenet::model::Model;
use sparsenet_net::zoo::named;
use std::time::Instant;

fn main() {
    sparsenet::alloc::retain_freed_memory();
    let args = common::Args::from_env();
    let model = args.text(0, "densenet-121");
    let runs = args.number(1, 10);
    let threads = args.number(2, 2);
    common::threads(threads);
    let named_model = match named(&model) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let spec = named_model.spec(None);
    let input = spec.input_shape();
    let mut m = Model::<f32>::new(&spec, input, 0).expect("model");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..input.numel())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let mut times = Vec::new();
    // The weights as the passes read them, made once (as a deployed model holds them).
    let params = m.cpu_params();
    for run in 0..runs + 2 {
        let t = Instant::now();
        let logits = m
            .logits_with(&params, x.clone(), 1, false)
            .expect("forward");
        assert_eq!(logits.len(), spec.classes);
        if run >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    common::print_profile(runs + 2, 1e3, "ms/pass");
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[times.len() / 2];
    println!(
        "{{\"impl\": \"sparsenet\", \"model\": \"{model}\", \"input\": \"{input}\", \"batch\": 1, \"threads\": {threads}, \"params\": {}, \"median_ms\": {med:.2}, \"min_ms\": {:.2}, \"max_ms\": {:.2}, \"runs\": {runs}}}",
        m.param_count(),
        times[0],
        times[times.len() - 1]
    );
}
