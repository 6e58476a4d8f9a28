//! `evaluate`: a checkpoint's test accuracy. A thin shell over `sparsenet::cli::train`.

use sparsenet::cli::{args::parse_or_exit, train};
use std::io::Write;

fn main() -> std::process::ExitCode {
    sparsenet::alloc::retain_freed_memory();
    let args: train::EvalArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = train::run_evaluate(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
