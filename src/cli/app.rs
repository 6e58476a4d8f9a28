//! `sparsenet <command>`: one program, as cargo and git are. Each command keeps its own
//! arguments (`PathsArgs`, `TrainArgs`, …, with their help) and its `run` function; this file
//! only names them and sends each to its function. `paths` is also a binary of its own (the
//! README's first command).

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use std::io::Write;
use std::process::ExitCode;

use super::args::finish_output;
use super::{dist_check, export, paths, study, train, zoo};

const LONG_ABOUT: &str = "\
Connectivity of deep convolutional networks as graphs: exact analysis of block patterns (ResNet,
DenseNet, SparseNet and any DAG), exact parameter and FLOP counts of whole networks, and the
training of the very networks it analyses, on the CPU or an NVIDIA GPU.

  sparsenet paths --depth 100                        compare the topologies, check the claims
  sparsenet zoo                                      every named network beside the papers' counts
  sparsenet train --model sparsenet-40-24            train one (--help for data and recipe)
  sparsenet evaluate --checkpoint runs/x/best.safetensors
  sparsenet study efficiency --preset quick          experiments: efficiency, search, weights, …
  sparsenet export --checkpoint … --out net.py       a PyTorch module or an ONNX model

`sparsenet <command> --help` describes each command. Exit status: 0 success, 1 a failed claim or
run, 2 bad input, 3 an input or output file that cannot be read or written.";

/// The program's arguments: one command. The subcommands are each command's own clap
/// description (`TrainArgs::command()`, …): the same help, hidden flags and checks as its
/// binary had, not a second description of them.
#[derive(Debug)]
pub struct Sparsenet {
    /// The command to run.
    pub command: Command,
}

/// The commands.
#[derive(Debug)]
pub enum Command {
    /// `paths`.
    Paths(paths::PathsArgs),
    /// `zoo`.
    Zoo(zoo::ZooArgs),
    /// `train`.
    Train(Box<train::TrainArgs>),
    /// `evaluate`.
    Evaluate(train::EvalArgs),
    /// `study`.
    Study(study::StudyArgs),
    /// `export`.
    Export(export::ExportArgs),
    /// `dist-check`.
    DistCheck(dist_check::DistCheckArgs),
    /// `gpu-check` (built with `--features cuda`).
    #[cfg(feature = "cuda")]
    GpuCheck(super::gpu_check::GpuCheckArgs),
}

impl CommandFactory for Sparsenet {
    fn command() -> clap::Command {
        let app = clap::Command::new("sparsenet")
            .version(env!("CARGO_PKG_VERSION"))
            .about("Connectivity of deep convolutional networks as graphs: analysis, exact counts and training.")
            .long_about(LONG_ABOUT)
            .subcommand_required(true)
            .arg_required_else_help(true)
            .subcommand(paths::PathsArgs::command())
            .subcommand(zoo::ZooArgs::command())
            .subcommand(train::TrainArgs::command())
            .subcommand(train::EvalArgs::command())
            .subcommand(study::StudyArgs::command())
            .subcommand(export::ExportArgs::command())
            .subcommand(dist_check::DistCheckArgs::command());
        #[cfg(feature = "cuda")]
        let app = app.subcommand(super::gpu_check::GpuCheckArgs::command());
        app
    }

    fn command_for_update() -> clap::Command {
        Self::command()
    }
}

impl FromArgMatches for Sparsenet {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = m
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let command = match name {
            "paths" => Command::Paths(paths::PathsArgs::from_arg_matches(sub)?),
            "zoo" => Command::Zoo(zoo::ZooArgs::from_arg_matches(sub)?),
            "train" => Command::Train(Box::new(train::TrainArgs::from_arg_matches(sub)?)),
            "evaluate" => Command::Evaluate(train::EvalArgs::from_arg_matches(sub)?),
            "study" => Command::Study(study::StudyArgs::from_arg_matches(sub)?),
            "export" => Command::Export(export::ExportArgs::from_arg_matches(sub)?),
            "dist-check" => Command::DistCheck(dist_check::DistCheckArgs::from_arg_matches(sub)?),
            #[cfg(feature = "cuda")]
            "gpu-check" => {
                Command::GpuCheck(super::gpu_check::GpuCheckArgs::from_arg_matches(sub)?)
            }
            _ => return Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        };
        Ok(Sparsenet { command })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Parser for Sparsenet {}

/// Run a command on standard output (buffered where it writes tables, line by line where it
/// reports progress), flush, and map its outcome to the exit status — the one place that does,
/// for every command ([`crate::error`]; a failed write of standard output is status 3).
fn on_stdout(
    buffered: bool,
    run: impl FnOnce(&mut (dyn Write + Send)) -> anyhow::Result<()>,
) -> ExitCode {
    let (code, flushed) = if buffered {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        let code = status(run(&mut out));
        (code, out.flush())
    } else {
        let mut out = std::io::stdout();
        let code = status(run(&mut out));
        (code, out.flush())
    };
    ExitCode::from(finish_output(code, flushed))
}

/// The exit status of a command's outcome: its error printed on one line.
fn status(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::args::fail(&e),
    }
}

/// Run the command: its exit status ([`crate::error`]).
pub fn exec(cmd: &Command) -> ExitCode {
    if !matches!(
        cmd,
        Command::Paths(_) | Command::Zoo(_) | Command::DistCheck(_)
    ) {
        // The training commands keep freed memory for reuse (see `alloc`).
        crate::alloc::retain_freed_memory();
    }
    match cmd {
        Command::Paths(a) => on_stdout(true, |w| paths::exec(a, w)),
        Command::Zoo(a) => on_stdout(true, |w| zoo::exec(a, w)),
        Command::DistCheck(a) => on_stdout(false, |_| dist_check::exec(a)),
        Command::Train(a) => on_stdout(false, |w| train::exec_train(a, w)),
        Command::Evaluate(a) => on_stdout(false, |w| train::exec_evaluate(a, w)),
        Command::Export(a) => on_stdout(false, |w| export::exec(a, w)),
        Command::Study(a) => on_stdout(false, |w| study::exec(a, w)),
        // gpu-check reports each comparison itself and decides its own status (1 when one
        // fails, 3 when a library is missing).
        #[cfg(feature = "cuda")]
        Command::GpuCheck(a) => {
            let mut out = std::io::stdout();
            let code = super::gpu_check::run(a, &mut out);
            let flushed = out.flush();
            ExitCode::from(finish_output(code, flushed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_is_named_as_its_own_binary_was() {
        let mut app = Sparsenet::command();
        app.build();
        let names: Vec<&str> = app.get_subcommands().map(|c| c.get_name()).collect();
        for want in [
            "paths",
            "zoo",
            "train",
            "evaluate",
            "study",
            "export",
            "dist-check",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // Each keeps its own long help and hidden flags (its binary's description).
        let train = app.find_subcommand("train").unwrap();
        assert!(train.get_long_about().is_some());
        let classes = train
            .get_arguments()
            .find(|a| a.get_id() == "classes")
            .unwrap();
        assert!(classes.is_hide_set());
        Sparsenet::command().debug_assert();
        // Every subcommand parses into its command.
        for (argv, want) in [
            (vec!["sparsenet", "paths", "--depth", "3"], "Paths"),
            (vec!["sparsenet", "study", "merge", "x"], "Study"),
            (vec!["sparsenet", "dist-check"], "DistCheck"),
        ] {
            let got = format!("{:?}", Sparsenet::try_parse_from(&argv).unwrap().command);
            assert!(got.starts_with(want), "{argv:?}: {got}");
        }
    }
}
