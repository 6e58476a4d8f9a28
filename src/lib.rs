//! # sparsenet
//!
//! The trainer crate of the sparsenet toolkit, with the command-line tools and the figures. The
//! block-graph theory lives in [`sparsenet_analysis`] (re-exported as [`graph`]) and the network
//! DAGs and every count in [`sparsenet_net`] ([`net`]); this crate renders them (`paths`, `zoo`,
//! `plot`) and trains the networks they describe (`model` interprets the DAG, `autodiff` is the one
//! reverse pass, `cpu` the CPU backend, `gpu` the NVIDIA one, `data`, `optim`, `train`). See
//! `ARCHITECTURE.md`.

#![warn(missing_docs)]

pub mod alloc;
pub mod autodiff;
pub mod backend;
pub mod choice;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod dist;
pub mod error;
pub mod export;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod io;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod parse;
pub mod plot;
pub mod profile;
pub mod real;
pub mod spec;
pub mod study;
#[cfg(test)]
mod testutil;
pub mod train;

pub use sparsenet_analysis as graph;
pub use sparsenet_net as net;
