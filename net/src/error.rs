//! Errors of the network crate: each says what was wrong and what is accepted.

use sparsenet_analysis::GraphError;
use thiserror::Error;

/// What can go wrong when building or counting a network.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NetError {
    /// A network specification that does not fit its family, or an op that does not fit its
    /// input.
    #[error("{0}")]
    Spec(String),
    /// A block pattern the graph crate rejected.
    #[error(transparent)]
    Graph(#[from] GraphError),
}
