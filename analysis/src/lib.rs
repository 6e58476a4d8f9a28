//! # sparsenet-analysis
//!
//! Block-graph theory: the connectivity of deep convolutional networks as graphs, after *Sparsely Aggregated
//! Convolutional Networks* (Zhu, Deng, Maire, Deng, Mori, Tan; ECCV 2018).
//!
//! ## The model
//! One block of depth `N` has nodes `x_0` (the block input) … `x_N` (outputs of layers
//! `1..=N`). Layer `ℓ` aggregates the set `S(ℓ)` of earlier outputs:
//!
//! | pattern | `S(ℓ)` | aggregation | connections |
//! |---|---|---|---|
//! | plain | `{ℓ−1}` | — | `N` |
//! | res | `{0, …, ℓ−1}` | sum (unrolled `x_ℓ = x_0 + Σ F_j`) | `N(N+1)/2` |
//! | dense | `{0, …, ℓ−1}` | concatenation | `N(N+1)/2` |
//! | sparse, base `c` | `{ℓ − c^k : k ≥ 0, c^k ≤ ℓ}` | concatenation, newest first | `Σ_{ℓ=1}^{N} (⌊log_c ℓ⌋+1) = O(N lg N)` |
//! | custom | `{ℓ − o : o ∈ O, o ≤ ℓ}` | concatenation, newest first | `Σ_{o∈O, o≤N} (N+1−o)` |
//!
//! An edge `x_j → x_ℓ` is one aggregation link ("connection"). Every pattern is a set of
//! offsets `O`, which makes each computation a one-dimensional dynamic programme:
//!
//! * **paths** ([`paths`]): `p(0) = 1`, `p(ℓ) = Σ_{o∈O, o≤ℓ} p(ℓ−o)`; dense/res give
//!   `p(N) = 2^{N−1}`. The length histogram `h_k(ℓ) = Σ_o h_{k−1}(ℓ−o)` is binomial
//!   `C(N−1, k−1)` for dense/res. All counts are exact [`num_bigint::BigUint`].
//! * **gradient paths** ([`distance`]): the shortest path `x_j → x_ℓ` depends only on `ℓ − j`
//!   and, for sparse base `c`, equals the base-`c` digit sum `s_c(ℓ − j)` (proved in
//!   [`distance`]). The exact worst case is `max_{d≤N} s_c(d) ≤ (c−1)(⌊log_c N⌋+1)`.
//! * **the Res ↔ Dense bijection** ([`bijection`]): an unraveled ResNet ([`unraveled`]) with
//!   `N` units and a DenseNet block of `N` layers with output aggregation both have `2^N` paths,
//!   matched by "the set of layers a path passes through".
//! * **the base sweep** ([`bases`]) and **the claims** ([`claims`]), each checked in code.
//!
//! Graphs are petgraph DAGs ([`topology::Topology::graph`]); the generic algorithms on them
//! ([`paths::path_count_graph`], [`distance::all_pairs_bfs`]) verify the fast ones.
//!
//! ```
//! use sparsenet_analysis::{Pattern, Topology, paths::path_count};
//! let t = Topology::new(Pattern::Dense, 100).unwrap();
//! assert_eq!(path_count(&t.offsets(), 100), num_bigint::BigUint::from(1u8) << 99);
//! ```

#![warn(missing_docs)]

pub mod analysis;
pub mod bases;
pub mod bijection;
pub mod block_graph;
pub mod block_metrics;
pub mod claims;
pub mod dag;
pub mod dag_analysis;
pub mod dag_report;
pub mod distance;
mod error;
pub mod fractal;
pub mod paths;
pub mod report;
pub mod topology;
pub mod unraveled;

pub use analysis::{analyze, analyze_many, TopologyAnalysis};
pub use error::GraphError;
pub use report::{Report, ReportOptions};
pub use topology::{BlockGraph, Join, Pattern, Topology};
