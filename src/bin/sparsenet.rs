//! `sparsenet <command>`: the one program (`sparsenet --help` lists the commands). A thin shell
//! over `sparsenet::cli::app`.

use sparsenet::cli::{app, args::parse_or_exit};

fn main() -> std::process::ExitCode {
    let args: app::Sparsenet = parse_or_exit();
    app::exec(&args.command)
}
