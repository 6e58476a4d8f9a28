//! The architecture zoo: network families as small specs ([`spec`]), built into a
//! [`crate::dag::NetGraph`] by [`build()`]; named variants as one line of data each ([`table`]).
//!
//! Block wiring is never written here:
//! DenseNet/SparseNet blocks are read off the block DAG of [`sparsenet_analysis::Topology`] (layer `ℓ` concatenates
//! the sources of node `ℓ`'s incoming edges; the block output is node `L + 1` of the same pattern
//! at depth `L + 1`), and ResNet stages are read off the [`sparsenet_analysis::unraveled::UnraveledResNet`] DAG (each unit's
//! identity route and residual route, summed). Conventions follow the reference implementations;
//! see the README's zoo section for which stem and head each named model uses.

pub mod build;
pub mod row;
pub mod spec;
pub mod sweep;
pub mod table;
#[cfg(test)]
mod tests;

pub use build::{build, build_and_count};
pub use row::{agrees, model_row, named_row, ModelRow};
pub use spec::{Aggregate, AggregateKind, Family, Head, Layout, NetSpec};
pub use sweep::{depth_sweep, fit_exponent};
pub use table::{named, Named, ZOO};
