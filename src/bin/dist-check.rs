//! `dist-check`: join the multi-process group the environment describes and check the
//! rendezvous. A thin shell over `sparsenet::cli::dist_check`.

use sparsenet::cli::{args::parse_or_exit, dist_check};

fn main() -> std::process::ExitCode {
    let args: dist_check::DistCheckArgs = parse_or_exit();
    dist_check::run(&args)
}
