//! `paths`: connectivity of plain / res / dense / sparse blocks and the paper's claims — the
//! same command as `sparsenet paths`, as a binary of its own (the README's main job).

use sparsenet::cli::{app, args::parse_or_exit, paths};

fn main() -> std::process::ExitCode {
    let args: paths::PathsArgs = parse_or_exit();
    app::exec(&app::Command::Paths(args))
}
