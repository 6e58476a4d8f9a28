//! Each op's part of the tape, one file per op family (the same files as `cpu/ops/` and
//! `gpu/ops/`): the backward state it keeps, how its forward primitive is called, and how its
//! backward primitive is called on the reverse pass.

pub(super) mod combine;
pub(super) mod conv;
pub(super) mod linear;
pub(super) mod norm;
pub(super) mod pool;
