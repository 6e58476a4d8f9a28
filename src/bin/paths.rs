//! `paths`: connectivity of plain / res / dense / sparse blocks and the paper's claims.
//! A thin shell: parse, then call the library.

use sparsenet::cli::{args::parse_or_exit, paths};
use std::io::Write;

fn main() -> std::process::ExitCode {
    let args: paths::PathsArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = paths::run(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
