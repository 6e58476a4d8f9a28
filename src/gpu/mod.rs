//! The trainer on an NVIDIA GPU (feature `cuda`): a [`Backend`] for the DAG interpreter whose
//! ops are our own kernels (`kernels.cu`, compiled by NVRTC at start-up), cuBLAS products and
//! cuDNN convolutions ([`ConvEngine`]), through cudarc, which loads every CUDA library at run
//! time ([`libs`]): building needs no CUDA.
//!
//! Why not dfdx's CUDA tensors directly: dfdx 0.13 puts its convolution and pooling behind the
//! `nightly` feature (a nightly compiler), and its CUDA storage is crate-private, so custom ops
//! cannot reach device memory. The GPU path therefore mirrors the CPU one: the same
//! [`Model::walk`] over the zoo's DAG, the same reverse pass ([`crate::autodiff::Tape`] calling
//! this backend's backward primitives), the same initialisation, loss and optimiser rules, with
//! every tensor on the device.
//!
//! Per training step the batch (images and labels) goes to the device once; the forward pass,
//! the loss, the backward pass and the optimiser update run there, and only the per-image losses
//! and hits come back. Parameters, gradients and optimiser state are single flat buffers (one
//! optimiser launch per step); the host copy in [`Model::values`] is refreshed by
//! [`GpuTrainer::download`] before checkpoints.

pub mod check;
mod ctx;
pub mod distributed;
mod dnn;
pub mod kernels;
mod kit;
pub mod libs;
mod ops;
pub mod parallel;
mod trainer;

pub use ctx::{GAct, GParam, GStats, GpuCtx};
pub use kit::{open, ConvEngine, Kit};
pub use trainer::{GpuTrainer, StepResult};
