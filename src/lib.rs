//! # sparsenet
//!
//! The command-line tools and (later) the trainer of the sparsenet toolkit. The graph model and
//! every count live in [`sparsenet_analysis`]; this crate renders them (`paths`, `zoo`) and
//! trains the networks they describe.

pub mod alloc;
pub mod cli;
pub mod data;
pub mod model;
pub mod ops;
pub mod plot;
pub mod train;

pub use sparsenet_analysis as analysis;
