//! # sparsenet-net
//!
//! Whole convolutional networks as typed DAGs — the network half of the toolkit, with no
//! deep-learning dependency. [`op`] is the one description of each operation (its parameter
//! shapes and output shape); [`dag`] builds and exports networks node by node, checking shapes;
//! [`count`] gives exact parameter, MAC and FLOP counts; [`zoo`] holds the families as small
//! specs and the paper's named models as one line of data each. Block wiring comes from the
//! graph crate ([`sparsenet_analysis`]), so no second description of a pattern exists.
//!
//! ```
//! use sparsenet_net::zoo::{build_and_count, named};
//! let (_, c) = build_and_count(&named("densenet-121").unwrap().spec(None)).unwrap();
//! assert_eq!(c.params, 7_978_856);
//! ```

#![warn(missing_docs)]

pub mod count;
pub mod dag;
mod error;
pub mod op;
pub mod zoo;

pub use dag::{NetBuilder, NetGraph};
pub use error::NetError;
pub use op::{Op, Shape};
