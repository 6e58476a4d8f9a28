//! `study`: experiments on trained networks. A thin shell over `sparsenet::cli::study`.

use sparsenet::cli::{args::parse_or_exit, study};
use std::io::Write;

fn main() -> std::process::ExitCode {
    sparsenet::alloc::retain_freed_memory();
    let args: study::StudyArgs = parse_or_exit();
    let mut out = std::io::stdout();
    let code = study::run_study(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
