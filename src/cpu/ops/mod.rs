//! Every op family of the CPU backend, one file (or folder) each, each implementing its trait of
//! [`crate::backend`] for [`super::CpuBackend`]; the GPU's `gpu/ops/` and the tape's
//! `autodiff/ops/` have the same files.

pub mod combine;
pub mod conv;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod pool;
