//! `gpu-check`: CPU/GPU agreement checks and the GPU training benchmark (built with the `cuda`
//! feature). A thin shell over `sparsenet::cli::gpu_check`.

use sparsenet::cli::{args::parse_or_exit, gpu_check};
use std::io::Write;

fn main() -> std::process::ExitCode {
    sparsenet::alloc::retain_freed_memory();
    let args: gpu_check::GpuCheckArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = gpu_check::run(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
