//! The softmax cross-entropy on the GPU (`softmax_xent`), read back after the reverse pass.

use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

use crate::backend::{Label, LossOps};
use crate::gpu::ctx::{GAct, GpuCtx};
use crate::gpu::kernels::Grid;
use crate::gpu::kit::addr;

/// The per-image losses and hit flags of a cross-entropy, read back after the reverse pass.
pub struct GLoss {
    loss: CudaSlice<f32>,
    hits: CudaSlice<i32>,
}

impl LossOps for GpuCtx<'_> {
    type PendingLoss = GLoss;

    fn cross_entropy(
        &mut self,
        logits: &GAct,
        labels: &[Label],
    ) -> Result<(Option<CudaSlice<f32>>, GLoss)> {
        let kit = self.kit;
        let [n, classes, h, w] = logits.dims;
        if n != labels.len() || h * w != 1 {
            bail!(
                "logits are {n}×{classes}×{h}×{w}, expected {}×classes×1×1",
                labels.len()
            );
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
            bail!("label {l} is not below the network's {classes} classes");
        }
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let labd = kit.upload(&lab)?;
        let loss = kit.alloc(n)?;
        let dz = kit.alloc(n * classes)?;
        // Uninitialised: softmax_xent writes every image's hit flag before the
        // copy back.
        let hits = kit.alloc_of::<i32>(n)?;
        kit.kernels().softmax_xent(
            Grid::Elems(n),
            logits.addr(),
            addr(&labd),
            addr(&loss),
            addr(&dz),
            addr(&hits),
            n as i32,
            classes as i32,
        )?;
        Ok((self.record.then_some(dz), GLoss { loss, hits }))
    }

    fn read_loss(&mut self, l: GLoss) -> Result<(f64, usize)> {
        let losses = self.kit.download(&l.loss)?;
        let hits = self.kit.download(&l.hits)?;
        let mean = losses.iter().map(|&v| v as f64).sum::<f64>() / losses.len().max(1) as f64;
        Ok((mean, hits.iter().filter(|&&h| h != 0).count()))
    }
}
