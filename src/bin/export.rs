//! `export`: a checkpoint's network as a PyTorch module. A thin shell over `sparsenet::cli::export`.

use sparsenet::cli::{args::parse_or_exit, export};
use std::io::Write;

fn main() -> std::process::ExitCode {
    sparsenet::alloc::retain_freed_memory();
    let args: export::ExportArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = export::run_export(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
