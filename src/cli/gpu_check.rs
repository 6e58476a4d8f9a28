//! The `gpu-check` command (feature `cuda`): CPU/GPU agreement, op by op and on whole networks,
//! and the GPU training benchmark.

use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use sparsenet_net::zoo::named;
use sparsenet_net::Shape;

use crate::gpu::check::{
    bench, largest_batch, latency, network_check, op_checks, Bench, Comparison, Latency,
};
use crate::gpu::{open, ConvEngine};

use super::args::{exit_bad_input, parse_in_range};

const LONG_ABOUT: &str = "\
Check that the GPU computes what the CPU computes, then time training on the GPU.

1. Ops: every op the trainer implements (convolutions of several shapes, batch norm with and
   without the fused ReLU in training and evaluation, ReLU, concat, sum, option-A shortcut,
   pooling, linear) on random data: output, input and parameter gradients and running
   statistics, CPU (f32) against GPU (f32, no TF32).
2. Networks: small SparseNet, DenseNet, ResNet (and an ImageNet-layout DenseNet at 64×64) from
   the same initialisation and batch: logits, every gradient, running statistics, then SGD
   steps side by side.
3. Benchmark (--bench): training images/s of named models at 32×32×3 for each --batch (a number,
   or `max` for the largest power of two that fits), with TF32 off and/or on.

Every comparison prints one line with its relative error and tolerance; the exit status is 1 if
any fails. --json writes every comparison and benchmark as JSON. With SPARSENET_PROFILE=1 each
benchmark also prints milliseconds per step by op (synchronising around every op, so the
benchmark's own figure is then slower than usual).";

/// Arguments of `gpu-check`.
#[derive(Parser, Debug, Clone)]
#[command(name = "gpu-check", version, about = "CPU/GPU agreement checks and the GPU training benchmark.", long_about = LONG_ABOUT)]
pub struct GpuCheckArgs {
    /// Only report which CUDA libraries load (driver, NVRTC, cuBLAS, cuDNN, NCCL) and stop;
    /// exit status 1 if one is missing.
    #[arg(long)]
    pub libs: bool,
    /// Skip the op checks.
    #[arg(long)]
    pub skip_ops: bool,
    /// Skip the network checks.
    #[arg(long)]
    pub skip_networks: bool,
    /// Models to benchmark, comma-separated (none: no benchmark).
    #[arg(long, value_delimiter = ',')]
    pub bench: Vec<String>,
    /// Models whose batch-1 inference latency to time at their own input size (e.g.
    /// densenet-121,sparsenet-121-32: 224×224), --steps passes each, with TF32 as --tf32.
    #[arg(long, value_delimiter = ',')]
    pub latency: Vec<String>,
    /// Batch sizes of the benchmark, comma-separated numbers or `max`.
    #[arg(long, value_delimiter = ',', default_value = "64,max")]
    pub batch: Vec<String>,
    /// Timed steps per benchmark (after 3 warm-up steps).
    #[arg(long, default_value = "20", value_parser = |s: &str| parse_in_range(s, "steps", 1, 100_000))]
    pub steps: usize,
    /// Untimed warm-up steps before the timed ones.
    #[arg(long, default_value = "3", value_parser = |s: &str| parse_in_range(s, "warmup", 0, 1000))]
    pub warmup: usize,
    /// Largest batch tried by `max`.
    #[arg(long, default_value = "8192", value_parser = |s: &str| parse_in_range(s, "max batch", 1, 1 << 20))]
    pub max_batch: usize,
    /// TF32 in the benchmark: off, on, or both.
    #[arg(long, default_value = "both", value_parser = ["off", "on", "both"])]
    pub tf32: String,
    /// Convolutions: cuDNN's, ours (im2col + cuBLAS), or both (every check and benchmark once
    /// per engine).
    #[arg(long, default_value = "both", value_parser = ["own", "cudnn", "both"])]
    pub conv: String,
    /// GPU ordinal.
    #[arg(long, default_value = "0")]
    pub gpu: usize,
    /// Write the results as JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Report {
    device: String,
    comparisons: Vec<Comparison>,
    benchmarks: Vec<Bench>,
    latencies: Vec<Latency>,
    failed: usize,
}

/// Run `gpu-check`; the exit status is 0 when every comparison passes, 1 when one fails or
/// the GPU cannot be used, 2 for bad input, 3 when the report cannot be written.
pub fn run(a: &GpuCheckArgs, out: &mut dyn Write) -> ExitCode {
    if a.libs {
        return libraries(out);
    }
    for m in a.bench.iter().chain(&a.latency) {
        if named(m).is_err() {
            return exit_bad_input(format!(
                "unknown model '{m}' in --bench or --latency (see `zoo --list`)"
            ));
        }
    }
    for b in &a.batch {
        if b != "max" && b.parse::<usize>().map_or(true, |v| v == 0) {
            return exit_bad_input(format!("--batch '{b}': give positive integers or `max`"));
        }
    }
    match checks(a, out) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => super::args::fail(&e),
    }
}

/// One line per CUDA library: found, or why not.
fn libraries(out: &mut dyn Write) -> ExitCode {
    let mut missing = 0;
    for lib in crate::gpu::libs::Lib::ALL {
        let line = match crate::gpu::libs::missing(lib) {
            None => format!("ok   lib{}.so ({})", lib.stem(), lib.source()),
            Some(why) => {
                missing += 1;
                format!("MISS {why}")
            }
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(3);
        }
    }
    ExitCode::from(u8::from(missing > 0))
}

fn checks(a: &GpuCheckArgs, out: &mut dyn Write) -> Result<usize> {
    let engines: &[ConvEngine] = match a.conv.as_str() {
        "own" => &[ConvEngine::Own],
        "cudnn" => &[ConvEngine::Cudnn],
        _ => &[ConvEngine::Own, ConvEngine::Cudnn],
    };
    let kit = open(a.gpu, false, engines[0])?;
    writeln!(out, "device: {}", kit.name)?;
    let mut report = Report {
        device: kit.name.clone(),
        comparisons: Vec::new(),
        benchmarks: Vec::new(),
        latencies: Vec::new(),
        failed: 0,
    };
    let show =
        |out: &mut dyn Write, cs: Vec<Comparison>, all: &mut Vec<Comparison>| -> Result<()> {
            for c in cs {
                writeln!(
                    out,
                    "{} {:<64} err {:.2e} (tol {:.0e})",
                    if c.ok() { "ok  " } else { "FAIL" },
                    c.what,
                    c.err,
                    c.tol
                )?;
                all.push(c);
            }
            Ok(())
        };
    for &engine in engines {
        let kit = open(a.gpu, false, engine)?;
        let tag = |mut cs: Vec<Comparison>| {
            for c in &mut cs {
                c.what = format!("[{}] {}", engine.name(), c.what);
            }
            cs
        };
        if !a.skip_ops {
            writeln!(out, "# ops, CPU vs GPU (convolutions: {})", engine.name())?;
            let cs = op_checks(&kit, 1e-4)?;
            show(out, tag(cs), &mut report.comparisons)?;
        }
        if !a.skip_networks {
            writeln!(
                out,
                "# networks, CPU vs GPU (batch 8, 3 SGD steps; convolutions: {})",
                engine.name()
            )?;
            let nets: [(&str, Shape, usize); 4] = [
                ("sparsenet-40-24", Shape::new(3, 32, 32), 8),
                ("densenet-40-12", Shape::new(3, 32, 32), 8),
                ("resnet-20", Shape::new(3, 32, 32), 8),
                ("densenet-121", Shape::new(3, 64, 64), 4),
            ];
            for (name, input, batch) in nets {
                let spec = named(name).expect("named model").spec(Some(10));
                let cs = network_check(&kit, name, &spec, input, batch, 3, 1e-4)?;
                show(out, tag(cs), &mut report.comparisons)?;
            }
        }
    }
    report.failed = report.comparisons.iter().filter(|c| !c.ok()).count();
    // Every (TF32 mode, convolution engine) pair asked for, TF32 off first.
    let modes: &[bool] = match a.tf32.as_str() {
        "off" => &[false],
        "on" => &[true],
        _ => &[false, true],
    };
    let settings: Vec<(bool, ConvEngine)> = modes
        .iter()
        .flat_map(|&t| engines.iter().map(move |&e| (t, e)))
        .collect();
    if !a.bench.is_empty() {
        for &(tf32, engine) in &settings {
            let kit = open(a.gpu, tf32, engine)?;
            for m in &a.bench {
                let spec = named(m).expect("checked above").spec(Some(10));
                for b in &a.batch {
                    let batch = if b == "max" {
                        largest_batch(&kit, &spec, 128, a.max_batch)?
                    } else {
                        b.parse().expect("checked above")
                    };
                    crate::profile::reset();
                    let r = bench(&kit, m, &spec, batch, a.warmup, a.steps)?;
                    writeln!(
                        out,
                        "bench {:<18} batch {:>5} tf32 {:<5} conv {:<5} {:>9.1} img/s  median step {:.2} ms  peak {:.2} GB",
                        r.model,
                        r.batch,
                        r.tf32,
                        r.conv,
                        r.images_per_sec,
                        r.median_step_s * 1e3,
                        r.peak_bytes.map_or(f64::NAN, |v| v as f64 / 1e9)
                    )?;
                    if crate::profile::enabled() {
                        // Synchronised per op, so these add up to more than the median step.
                        let mut rows: Vec<(String, f64)> =
                            crate::profile::report().into_iter().collect();
                        rows.sort_by(|x, y| y.1.total_cmp(&x.1));
                        let per = (a.steps + a.warmup) as f64;
                        for (k, v) in rows {
                            writeln!(out, "    profile {k:<28} {:8.3} ms/step", v / per * 1e3)?;
                        }
                    }
                    writeln!(out, "json {}", serde_json::to_string(&r)?)?;
                    report.benchmarks.push(r);
                }
            }
        }
    }
    if !a.latency.is_empty() {
        for &(tf32, engine) in &settings {
            let kit = open(a.gpu, tf32, engine)?;
            for m in &a.latency {
                let spec = named(m).expect("checked above").spec(None);
                let r = latency(&kit, m, &spec, a.steps)?;
                writeln!(
                    out,
                    "latency {:<18} tf32 {:<5} conv {:<5} {:>8.2} ms (min {:.2}, max {:.2})",
                    r.model, r.tf32, r.conv, r.median_ms, r.min_ms, r.max_ms
                )?;
                writeln!(out, "json {}", serde_json::to_string(&r)?)?;
                report.latencies.push(r);
            }
        }
    }
    writeln!(
        out,
        "{} comparisons, {} failed",
        report.comparisons.len(),
        report.failed
    )?;
    if let Some(p) = &a.json {
        crate::io::write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(report.failed)
}
