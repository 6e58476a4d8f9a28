//! Data-parallel training over several GPUs (`train --device cuda --gpus N`): one thread per
//! GPU, each with its own context, its own copy of the parameters and optimiser state, and an
//! NCCL communicator.
//!
//! Every step the global batch (`--batch-size`, the *effective* batch) is cut into N
//! contiguous shards, one per rank. Each rank runs forward and backward on its shard (batch-norm
//! statistics are the shard's, as in PyTorch's DistributedDataParallel without SyncBatchNorm),
//! scales its gradient by `n_rank / n` and the ranks sum the gradients with an NCCL all-reduce:
//! every rank then holds the gradient of the mean loss over the whole batch, exactly what one
//! GPU would compute from the whole batch up to summation order, so the learning rate needs no
//! change. Each rank applies the same update to the same parameters; [`DataParallel::sync_host`]
//! checks that the parameters are bit-identical on every rank before a checkpoint is written
//! (once, from rank 0, whose running statistics it keeps). Evaluation runs on rank 0.
//!
//! With N = 1 the shard is the batch, the scale is exactly 1 and the all-reduce of one rank is a
//! copy, so the run gives the single-GPU result bit for bit.
//!
//! A step is two rounds: forward/backward on every rank (losses come back), then, only if every
//! rank succeeded, the all-reduce and (when the global loss is finite) the update. A rank that
//! fails in the first round therefore never leaves the others waiting inside a collective.

use anyhow::{anyhow, bail, Context, Result};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use super::kit::{open, ConvEngine};
use super::libs;
use super::trainer::GpuTrainer;
use crate::backend::Label;
use crate::model::{BnStats, Model};
use crate::optim::{Config as OptConfig, State};

enum Cmd {
    /// Forward and backward on this rank's shard (training mode).
    Step {
        x: Vec<f32>,
        y: Vec<Label>,
        /// The step's dropout key (the rank mixes in its rank).
        key: u64,
    },
    /// All-reduce the gradients (scaled by `scale` first), then update with `lr` if given.
    Reduce {
        scale: f32,
        update: Option<(OptConfig, f32)>,
    },
    /// Loss and hits of a batch in evaluation mode.
    Eval { x: Vec<f32>, y: Vec<Label> },
    /// Parameters, running statistics and optimiser state back to the host.
    Download,
}

/// What a rank sends back to the host after a download.
type HostState = (Vec<Vec<f32>>, Vec<Option<BnStats<f32>>>, State);

enum Reply {
    Ready(Result<()>),
    Step(Result<(f64, usize)>),
    Done(Result<()>),
    Host(Box<Result<HostState>>),
}

struct Rank {
    tx: Sender<Cmd>,
    rx: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
}

/// The libraries NCCL training needs, loaded, the driver initialised, and the number of GPUs
/// of this machine.
pub(super) fn nccl_devices() -> Result<usize> {
    libs::require(&[
        libs::Lib::Driver,
        libs::Lib::Nvrtc,
        libs::Lib::Cublas,
        libs::Lib::Nccl,
    ])?;
    // SAFETY: cuInit takes a flags value (0) and no pointers; it may be called more than once.
    unsafe { cudarc::driver::sys::cuInit(0) }
        .result()
        .map_err(|e| anyhow!("no usable NVIDIA driver/GPU ({:?})", e.0))?;
    Ok(
        cudarc::driver::CudaContext::device_count().map_err(|e| anyhow!("CUDA: {:?}", e.0))?
            as usize,
    )
}

/// N ranks, one per GPU.
pub struct DataParallel {
    ranks: Vec<Rank>,
}

/// The sizes of `n` images cut into `world` contiguous shards (the first `n % world` one larger).
pub fn shard_sizes(n: usize, world: usize) -> Vec<usize> {
    (0..world)
        .map(|r| n / world + usize::from(r < n % world))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn rank_main(
    rank: usize,
    world: usize,
    id: cudarc::nccl::Id,
    conv: ConvEngine,
    model: Model<f32>,
    opt: OptConfig,
    state: State,
    rx: Receiver<Cmd>,
    tx: Sender<Reply>,
) {
    let mut model = model;
    let setup = (|| -> Result<_> {
        // TF32 off, as in single-GPU training: the GPU computes what the CPU computes.
        let kit = open(rank, false, conv)?;
        let comm = cudarc::nccl::Comm::from_rank(kit.stream.clone(), rank, world, id)
            .map_err(|e| anyhow!("NCCL: joining as rank {rank} of {world}: {:?}", e.0))?;
        let trainer = GpuTrainer::new(kit, &model, &opt, &state)?;
        Ok((comm, trainer))
    })();
    let (comm, mut t) = match setup {
        Ok(v) => {
            let _ = tx.send(Reply::Ready(Ok(())));
            v
        }
        Err(e) => {
            let _ = tx.send(Reply::Ready(Err(e)));
            return;
        }
    };
    let mut state = state;
    for cmd in rx {
        let reply = match cmd {
            Cmd::Step { x, y, key } => {
                model.step_key = crate::backend::layer_key(key, rank);
                Reply::Step(t.shard_step(&model, &x, &y))
            }
            Cmd::Reduce { scale, update } => Reply::Done(t.reduce_and_update(
                &comm,
                scale,
                update.as_ref().map(|(c, lr)| (c, *lr)),
            )),
            Cmd::Eval { x, y } => {
                Reply::Step(t.step(&model, &x, &y, false).map(|r| (r.loss, r.correct)))
            }
            Cmd::Download => Reply::Host(Box::new(
                t.download(&mut model, &mut state)
                    .map(|()| (model.values.clone(), model.bn.clone(), state.clone())),
            )),
        };
        if tx.send(reply).is_err() {
            return;
        }
    }
}

impl DataParallel {
    /// Start `world` ranks on GPUs `0..world`, each with a copy of `model` and `state`.
    pub fn new(world: usize, model: &Model<f32>, opt: &OptConfig, state: &State) -> Result<Self> {
        if world == 0 {
            bail!("--gpus 0: give at least 1");
        }
        let count = nccl_devices()?;
        if world > count {
            bail!("--gpus {world}: this machine has {count} GPU(s)");
        }
        let conv = ConvEngine::auto()?;
        let id = cudarc::nccl::Id::new().map_err(|e| anyhow!("NCCL unique id: {:?}", e.0))?;
        let mut ranks = Vec::new();
        for rank in 0..world {
            let (ctx, crx) = channel();
            let (rtx, rx) = channel();
            let copy = model.clone();
            let (opt, state) = (*opt, state.clone());
            let thread = std::thread::Builder::new()
                .name(format!("gpu-rank-{rank}"))
                .spawn(move || rank_main(rank, world, id, conv, copy, opt, state, crx, rtx))
                .context("starting a GPU thread")?;
            ranks.push(Rank {
                tx: ctx,
                rx,
                thread: Some(thread),
            });
        }
        let dp = DataParallel { ranks };
        for (r, rank) in dp.ranks.iter().enumerate() {
            match rank.rx.recv() {
                Ok(Reply::Ready(Ok(()))) => {}
                Ok(Reply::Ready(Err(e))) => return Err(e.context(format!("GPU rank {r}"))),
                _ => bail!("GPU rank {r} stopped while starting"),
            }
        }
        Ok(dp)
    }

    /// The number of ranks.
    pub fn world(&self) -> usize {
        self.ranks.len()
    }

    fn send(&self, r: usize, cmd: Cmd) -> Result<()> {
        self.ranks[r]
            .tx
            .send(cmd)
            .map_err(|_| anyhow!("GPU rank {r} has stopped"))
    }

    fn recv(&self, r: usize) -> Result<Reply> {
        self.ranks[r]
            .rx
            .recv()
            .map_err(|_| anyhow!("GPU rank {r} has stopped"))
    }

    /// One training step on the global batch (`x` holding `y.len()` images of `image` values):
    /// shards, forward/backward, all-reduce, and the update when the mean loss is finite.
    /// Returns the mean loss over the batch and the correct predictions.
    pub fn train_step(
        &mut self,
        x: &[f32],
        y: &[Label],
        cfg: &OptConfig,
        lr: f32,
        key: u64,
    ) -> Result<(f64, usize)> {
        let n = y.len();
        let image = x.len() / n.max(1);
        let sizes = shard_sizes(n, self.world());
        let mut at = 0;
        for (r, &s) in sizes.iter().enumerate() {
            self.send(
                r,
                Cmd::Step {
                    x: x[at * image..(at + s) * image].to_vec(),
                    y: y[at..at + s].to_vec(),
                    key,
                },
            )?;
            at += s;
        }
        let (mut loss, mut correct) = (0.0, 0);
        let mut failed = None;
        for (r, &s) in sizes.iter().enumerate() {
            match self.recv(r)? {
                Reply::Step(Ok((l, c))) => {
                    loss += l * s as f64;
                    correct += c;
                }
                Reply::Step(Err(e)) => failed = failed.or(Some(e.context(format!("GPU rank {r}")))),
                _ => bail!("GPU rank {r}: unexpected reply"),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let loss = loss / n.max(1) as f64;
        let update = loss.is_finite().then_some((*cfg, lr));
        for (r, &s) in sizes.iter().enumerate() {
            let scale = s as f32 / n as f32;
            self.send(r, Cmd::Reduce { scale, update })?;
        }
        for r in 0..self.world() {
            match self.recv(r)? {
                Reply::Done(Ok(())) => {}
                Reply::Done(Err(e)) => return Err(e.context(format!("GPU rank {r}"))),
                _ => bail!("GPU rank {r}: unexpected reply"),
            }
        }
        Ok((loss, correct))
    }

    /// Loss and correct predictions of one batch in evaluation mode, on rank 0.
    pub fn eval_step(&mut self, x: Vec<f32>, y: &[Label]) -> Result<(f64, usize)> {
        self.send(0, Cmd::Eval { x, y: y.to_vec() })?;
        match self.recv(0)? {
            Reply::Step(r) => r,
            _ => bail!("GPU rank 0: unexpected reply"),
        }
    }

    /// Rank 0's parameters, running statistics and optimiser state into the host copies, after
    /// checking that every rank holds bit-identical parameters.
    pub fn sync_host(&mut self, model: &mut Model<f32>, state: &mut State) -> Result<()> {
        for r in 0..self.world() {
            self.send(r, Cmd::Download)?;
        }
        let mut first: Option<HostState> = None;
        for r in 0..self.world() {
            let (values, bn, st) = match self.recv(r)? {
                Reply::Host(h) => (*h).with_context(|| format!("GPU rank {r}"))?,
                _ => bail!("GPU rank {r}: unexpected reply"),
            };
            match &first {
                None => first = Some((values, bn, st)),
                Some((v0, _, _)) => {
                    let same = v0.len() == values.len()
                        && v0.iter().zip(&values).all(|(a, b)| {
                            a.len() == b.len()
                                && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
                        });
                    if !same {
                        bail!("data-parallel ranks 0 and {r} hold different parameters");
                    }
                }
            }
        }
        let (values, bn, st) = first.expect("at least one rank");
        model.values = values;
        model.bn = bn;
        *state = st;
        Ok(())
    }
}

impl Drop for DataParallel {
    fn drop(&mut self) {
        for rank in &mut self.ranks {
            // Closing the command channel ends the rank's loop.
            let (dead, _) = channel();
            drop(std::mem::replace(&mut rank.tx, dead));
            if let Some(t) = rank.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shard_sizes;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shard_sizes(64, 1), vec![64]);
        assert_eq!(shard_sizes(64, 4), vec![16; 4]);
        assert_eq!(shard_sizes(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(shard_sizes(2, 4), vec![1, 1, 0, 0]);
        for (n, w) in [(127, 3), (1, 1), (500, 8)] {
            assert_eq!(shard_sizes(n, w).iter().sum::<usize>(), n);
        }
    }
}
