//! One rank of a multi-process data-parallel run (`train --device cuda` under torchrun or
//! srun): one process per GPU, on one node or many. The group forms through rank 0's store
//! ([`crate::dist`]), which carries NCCL's unique id to every rank; from there a step is the
//! in-process [`super::parallel`] step spread over processes:
//!
//! - every rank loads the same data and draws the same shuffled, augmented global batch (the
//!   draws are a function of seed and epoch alone), and trains on its contiguous shard
//!   ([`super::parallel::shard_sizes`]);
//! - the ranks sum (loss × images, hits) with an NCCL all-reduce, so every rank sees the
//!   global mean loss and takes the same decision on a non-finite one;
//! - gradients are scaled by `n_rank / n` and all-reduced, and every rank applies the same
//!   update;
//! - before each checkpoint the ranks compare a SHA-256 of their parameters through the store
//!   ([`crate::dist::Group::check_same`]); rank 0 alone writes the folder (its running
//!   statistics, as with `--gpus N`). Every rank evaluates, so they stay in step; rank 0's
//!   numbers are the ones written.
//!
//! A rank that dies — or fails — ends every other rank through the group's watch, even one
//! blocked inside an NCCL collective: its store connection closes, the store tells the
//! others, and they exit with the reason.
//!
//! What has run: nothing of the NCCL half, which needs GPUs; the group, the store and the
//! watch are tested over loopback with several processes (`tests/dist_cli.rs`).

use anyhow::{anyhow, bail, Result};
use std::rc::Rc;

use super::kit::{open, ConvEngine, Kit};
use super::parallel::shard_sizes;
use super::trainer::GpuTrainer;
use crate::backend::Label;
use crate::dist::{self, Group, Join};
use crate::model::Model;
use crate::optim::{Config as OptConfig, State};

/// This process's rank: its group, its NCCL communicator and its GPU trainer.
pub struct Distributed {
    group: Group,
    comm: cudarc::nccl::Comm,
    kit: Rc<Kit>,
    trainer: GpuTrainer,
}

/// NCCL's unique id as bytes (it is 128 C chars).
fn id_bytes(id: &cudarc::nccl::Id) -> Vec<u8> {
    id.internal().iter().map(|&c| c as u8).collect()
}

fn id_from(bytes: &[u8]) -> Result<cudarc::nccl::Id> {
    let mut internal = [0 as std::ffi::c_char; 128];
    if bytes.len() != internal.len() {
        bail!(
            "rank 0's NCCL id has {} bytes, not {}",
            bytes.len(),
            internal.len()
        );
    }
    for (d, &b) in internal.iter_mut().zip(bytes) {
        *d = b as std::ffi::c_char;
    }
    Ok(cudarc::nccl::Id::uninit(internal))
}

impl Distributed {
    /// Join the group `j` describes and open GPU `LOCAL_RANK` with a copy of `model` and
    /// `state` (every rank starts from the same initialisation or checkpoint).
    pub fn new(j: &Join, model: &Model<f32>, opt: &OptConfig, state: &State) -> Result<Self> {
        let count = super::parallel::nccl_devices()?;
        let l = &j.launch;
        if l.local_rank >= count {
            bail!(
                "rank {}: LOCAL_RANK {} but this node has {count} GPU(s)",
                l.rank,
                l.local_rank
            );
        }
        let group = Group::join(j, || {
            cudarc::nccl::Id::new()
                .map(|id| id_bytes(&id))
                .map_err(|e| anyhow!("NCCL unique id: {:?}", e.0))
        })?;
        group.watch(dist::exit_on_failure(l.rank))?;
        let id = id_from(group.id())?;
        let kit = open(l.local_rank, false, ConvEngine::auto()?)?;
        let comm = cudarc::nccl::Comm::from_rank(kit.stream.clone(), l.rank, l.world, id)
            .map_err(|e| anyhow!("NCCL: joining as rank {} of {}: {:?}", l.rank, l.world, e.0))?;
        let trainer = GpuTrainer::new(kit.clone(), model, opt, state)?;
        Ok(Distributed {
            group,
            comm,
            kit,
            trainer,
        })
    }

    /// This process's rank in its group.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// One training step of the global batch (`x` holding `y.len()` images): this rank's
    /// shard forward and backward, the global loss and hits, the gradient all-reduce and the
    /// update when the loss is finite. Returns (global mean loss, global hits).
    pub fn train_step(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        y: &[Label],
        cfg: &OptConfig,
        lr: f32,
    ) -> Result<(f64, usize)> {
        let n = y.len();
        let image = x.len() / n.max(1);
        let sizes = shard_sizes(n, self.group.world());
        let rank = self.group.rank();
        let at: usize = sizes[..rank].iter().sum();
        let s = sizes[rank];
        let (loss, hits) =
            self.trainer
                .shard_step(model, &x[at * image..(at + s) * image], &y[at..at + s])?;
        let mut sums = self.kit.upload(&[loss * s as f64, hits as f64])?;
        self.comm
            .all_reduce_in_place(&mut sums, &cudarc::nccl::ReduceOp::Sum)
            .map_err(|e| anyhow!("NCCL all-reduce of the loss: {:?}", e.0))?;
        let sums = self.kit.download(&sums)?;
        let loss = sums[0] / n.max(1) as f64;
        let scale = s as f32 / n.max(1) as f32;
        self.trainer
            .reduce_and_update(&self.comm, scale, loss.is_finite().then_some((cfg, lr)))?;
        Ok((loss, sums[1] as usize))
    }

    /// Loss and hits of a batch in evaluation mode, with this rank's running statistics.
    pub fn eval_step(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        y: &[Label],
    ) -> Result<(f64, usize)> {
        self.trainer
            .step(model, x, y, false)
            .map(|r| (r.loss, r.correct))
    }

    /// This rank's parameters, statistics and optimiser state into the host copies, after
    /// checking through the store that every rank holds bit-identical parameters.
    pub fn sync_host(&mut self, model: &mut Model<f32>, state: &mut State) -> Result<()> {
        self.trainer.download(model, state)?;
        let digest = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for v in &model.values {
                for x in v {
                    h.update(x.to_bits().to_le_bytes());
                }
            }
            h.finalize()
        };
        self.group.check_same("parameters", &digest)
    }

    /// Leave the group cleanly.
    pub fn finish(self) -> Result<()> {
        self.group.finish()
    }
}
