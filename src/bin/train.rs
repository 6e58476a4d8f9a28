//! `train`: train a network built from its DAG. A thin shell over `sparsenet::cli::train`.

use sparsenet::cli::{args::parse_or_exit, train};
use std::io::Write;

// mimalloc keeps freed activation buffers for reuse instead of returning them to the system and
// faulting fresh pages in on every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args: train::TrainArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = train::run_train(&args, &mut out);
    let _ = out.flush();
    code
}
