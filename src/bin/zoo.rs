//! `zoo`: exact parameter and FLOP counts of whole networks beside the paper's tables.
//! A thin shell: parse, then call the library.

use sparsenet::cli::{args::parse_or_exit, zoo};
use std::io::Write;

fn main() -> std::process::ExitCode {
    let args: zoo::ZooArgs = parse_or_exit();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = zoo::run(&args, &mut out);
    let flushed = out.flush();
    std::process::ExitCode::from(sparsenet::cli::args::finish_output(code, flushed))
}
