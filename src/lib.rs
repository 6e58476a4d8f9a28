//! # sparsenet
//!
//! The command-line tools, the trainer and the figures of the sparsenet toolkit. The graph model
//! and every count live in [`sparsenet_analysis`]; this crate renders them (`paths`, `zoo`,
//! `plot`) and trains the networks they describe (`ops` on dfdx, `model`, `data`, `train`).

#![warn(missing_docs)]

pub mod alloc;
pub mod cli;
pub mod data;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod model;
pub mod ops;
pub mod plot;
pub mod train;

pub use sparsenet_analysis as analysis;
