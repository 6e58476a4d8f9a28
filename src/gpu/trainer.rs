//! Training on the GPU: parameters, gradients, running statistics and optimiser state as flat
//! device buffers, and the step (forward, loss, backward, update) over them.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;
use std::rc::Rc;

use super::ctx::{GParam, GStats, GpuCtx};
use super::kernels::Grid;
use super::kit::{addr, Kit};
use crate::backend::Label;
use crate::model::Model;
use crate::optim::{Config as OptConfig, Optimizer as OptKind, State, ADAM};

/// A model's parameters, batch-norm statistics and optimiser state on the GPU, and the
/// training step over them.
pub struct GpuTrainer {
    /// The device.
    pub kit: Rc<Kit>,
    pub(super) params: CudaSlice<f32>,
    pub(super) grads: CudaSlice<f32>,
    pub(super) handles: Vec<GParam>,
    pub(super) stats: Vec<Option<GStats>>,
    pub(super) moment1: CudaSlice<f32>,
    pub(super) moment2: Option<CudaSlice<f32>>,
    /// A pruned model's masks, flat like the parameters (1 kept, 0 pruned); None when dense.
    pub(super) keep: Option<CudaSlice<f32>>,
    /// Optimiser updates taken (mirrors [`State::steps`]).
    pub steps: u64,
}

/// What one step returns: mean loss and number of correct predictions.
#[derive(Clone, Copy, Debug)]
pub struct StepResult {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Images whose arg-max logit is the label.
    pub correct: usize,
}

impl GpuTrainer {
    /// Upload `model`'s parameters and statistics and the optimiser `state`.
    pub fn new(kit: Rc<Kit>, model: &Model<f32>, opt: &OptConfig, state: &State) -> Result<Self> {
        let mut handles = Vec::new();
        let mut flat = Vec::new();
        for v in &model.values {
            handles.push(GParam {
                off: flat.len(),
                len: v.len(),
            });
            flat.extend_from_slice(v);
        }
        let params = kit.upload(&flat)?;
        let grads = kit.zeros(flat.len())?;
        let stats = model
            .bn
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| {
                        Ok(GStats {
                            mean: kit.upload(&s.mean)?,
                            var: kit.upload(&s.var)?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let flatten = |v: &[Vec<f32>]| -> Vec<f32> {
            if v.is_empty() {
                vec![0.0; flat.len()]
            } else {
                v.concat()
            }
        };
        let moment1 = kit.upload(&flatten(&state.m))?;
        let moment2 = match opt.kind {
            OptKind::Adam => Some(kit.upload(&flatten(&state.v))?),
            OptKind::Sgd => None,
        };
        let keep = if model.is_pruned() {
            let flat: Vec<f32> = model
                .values
                .iter()
                .enumerate()
                .flat_map(|(k, v)| match model.masks.get(k).and_then(Option::as_ref) {
                    Some(m) => m
                        .iter()
                        .map(|&b| f32::from(u8::from(b)))
                        .collect::<Vec<_>>(),
                    None => vec![1.0; v.len()],
                })
                .collect();
            Some(kit.upload(&flat)?)
        } else {
            None
        };
        Ok(GpuTrainer {
            kit,
            params,
            grads,
            handles,
            stats,
            moment1,
            moment2,
            keep,
            steps: state.steps,
        })
    }

    /// Forward (and, when `train`, backward) on one batch: the images go to the device once.
    /// Training mode uses batch statistics and updates the running ones; the parameter
    /// gradients are left in the flat gradient buffer for [`GpuTrainer::update`].
    pub fn step(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[Label],
        train: bool,
    ) -> Result<StepResult> {
        let (loss, correct, _) = self.run(model, x, labels, train, false)?;
        Ok(StepResult { loss, correct })
    }

    /// Logits of a forward pass (batch statistics when `train`; running statistics updated
    /// then, as in a training step). For agreement checks.
    pub fn logits(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[Label],
        train: bool,
    ) -> Result<Vec<f32>> {
        Ok(self.run(model, x, labels, train, true)?.2)
    }

    fn run(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        labels: &[Label],
        train: bool,
        want_logits: bool,
    ) -> Result<(f64, usize, Vec<f32>)> {
        let s = model.net.input_shape();
        let n = labels.len();
        if x.len() != n * s.c * s.h * s.w {
            bail!("batch of {} values is not {n} images of {}", x.len(), s);
        }
        let kit: &Kit = &self.kit;
        let xd = kit.upload(x)?;
        if train {
            kit.fill_zero(&mut self.grads)?;
        }
        let mut ctx = GpuCtx::new(kit, addr(&self.params), addr(&self.grads), train, train);
        let input = ctx.new_act(xd, [n, s.c, s.h, s.w]);
        let (logits, loss, correct) =
            model.pass(&mut ctx, input, labels, &self.handles, &mut self.stats)?;
        let lv = if want_logits {
            kit.download(&logits.buf)?
        } else {
            Vec::new()
        };
        Ok((loss, correct, lv))
    }

    /// Set the gradients to zero (a data-parallel rank with no images this step).
    pub fn zero_gradients(&mut self) -> Result<()> {
        self.kit.fill_zero(&mut self.grads)
    }

    /// Multiply the last step's gradients by `a` (a data-parallel rank's share, `n_rank / n`).
    pub fn scale_gradients(&mut self, a: f32) -> Result<()> {
        let n = self.grads.len();
        self.kit
            .kernels()
            .scale_by(Grid::Elems(n), addr(&self.grads), a, n as i64)
    }

    /// Sum the last step's gradients over every rank of `comm` (in place, on the kit's stream).
    pub fn all_reduce_gradients(&mut self, comm: &cudarc::nccl::Comm) -> Result<()> {
        comm.all_reduce_in_place(&mut self.grads, &cudarc::nccl::ReduceOp::Sum)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("NCCL all-reduce: {:?}", e.0))
    }

    /// A data-parallel rank's forward and backward on its shard: (mean loss, hits) of the
    /// shard; an empty shard (a batch smaller than the world) contributes zero gradients.
    pub fn shard_step(
        &mut self,
        model: &Model<f32>,
        x: &[f32],
        y: &[Label],
    ) -> Result<(f64, usize)> {
        if y.is_empty() {
            self.zero_gradients()?;
            return Ok((0.0, 0));
        }
        self.step(model, x, y, true).map(|r| (r.loss, r.correct))
    }

    /// A data-parallel rank's second half of a step: its gradients scaled by its share of the
    /// batch, summed over `comm`, then the update when `update` gives one (the global loss was
    /// finite).
    pub fn reduce_and_update(
        &mut self,
        comm: &cudarc::nccl::Comm,
        scale: f32,
        update: Option<(&OptConfig, f32)>,
    ) -> Result<()> {
        if scale != 1.0 {
            self.scale_gradients(scale)?;
        }
        self.all_reduce_gradients(comm)?;
        if let Some((cfg, lr)) = update {
            self.update(cfg, lr)?;
        }
        Ok(())
    }

    /// The parameter gradients of the last training step, per parameter (for checks).
    pub fn gradients(&self) -> Result<Vec<Vec<f32>>> {
        let flat = self.kit.download(&self.grads)?;
        Ok(self
            .handles
            .iter()
            .map(|h| flat[h.off..h.off + h.len].to_vec())
            .collect())
    }

    /// One optimiser update of every parameter from the last step's gradients (PyTorch's
    /// rules, as [`crate::optim::update`]), in one launch over the flat buffers.
    pub fn update(&mut self, cfg: &OptConfig, lr: f32) -> Result<()> {
        self.steps += 1;
        let n = self.handles.iter().map(|h| h.len).sum::<usize>();
        let (w, g, m) = (addr(&self.params), addr(&self.grads), addr(&self.moment1));
        if let Some(keep) = &self.keep {
            self.kit
                .kernels()
                .mask_grad(Grid::Elems(n), addr(keep), g, n as i64)?;
        }
        match (cfg.kind, &self.moment2) {
            (OptKind::Sgd, _) => self.kit.kernels().sgd_update(
                Grid::Elems(n),
                w,
                g,
                m,
                n as i64,
                lr,
                cfg.momentum,
                cfg.weight_decay,
                cfg.nesterov as i32,
                (self.steps == 1) as i32,
            ),
            (OptKind::Adam, Some(v)) => {
                let (c1, c2) = ADAM.bias_corrections(self.steps);
                self.kit.kernels().adam_update(
                    Grid::Elems(n),
                    w,
                    g,
                    m,
                    addr(v),
                    n as i64,
                    lr,
                    cfg.weight_decay,
                    c1,
                    c2,
                    ADAM.beta1,
                    ADAM.beta2,
                    ADAM.eps,
                )
            }
            (OptKind::Adam, None) => bail!("Adam state missing on the device"),
        }
    }

    /// Copy parameters, running statistics and optimiser state back into the host copies
    /// (before a checkpoint or an evaluation on the CPU).
    pub fn download(&self, model: &mut Model<f32>, state: &mut State) -> Result<()> {
        let split = |flat: Vec<f32>| -> Vec<Vec<f32>> {
            self.handles
                .iter()
                .map(|h| flat[h.off..h.off + h.len].to_vec())
                .collect()
        };
        model.values = split(self.kit.download(&self.params)?);
        for (host, dev) in model.bn.iter_mut().zip(&self.stats) {
            if let (Some(h), Some(d)) = (host.as_mut(), dev.as_ref()) {
                h.mean = self.kit.download(&d.mean)?;
                h.var = self.kit.download(&d.var)?;
            }
        }
        state.m = split(self.kit.download(&self.moment1)?);
        if let Some(v) = &self.moment2 {
            state.v = split(self.kit.download(v)?);
        }
        state.steps = self.steps;
        Ok(())
    }

    /// Peak device memory of the allocation pool (bytes) since [`Kit::reset_peak`].
    pub fn peak_memory(&self) -> Option<u64> {
        self.kit.peak_memory()
    }
}
