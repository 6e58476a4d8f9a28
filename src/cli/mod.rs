//! The command-line front ends. Each binary in `src/bin/` only parses its arguments and calls
//! `run` here, so the commands can be driven from tests and notebooks too.

pub mod app;
pub mod args;
pub mod choices;
pub mod dist_check;
pub mod export;
mod flag_sweep;
#[cfg(feature = "cuda")]
pub mod gpu_check;
pub mod paths;
pub mod paths_dag;
pub mod spec;
pub mod study;
pub mod train;
pub mod zoo;
