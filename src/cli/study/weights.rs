//! `study weights`: connection usage of a trained concatenating network.

use clap::Args;
use std::io::Write;
use std::path::PathBuf;

use super::checkpoint_dir;
use crate::study;

/// Arguments of `study weights`.
#[derive(Args, Debug)]
#[command(long_about = "\
Connection usage of a trained DenseNet/SparseNet (any concatenating pattern): per block, the mean
|weight| of each layer's first convolution per source (DenseNet Fig. 5), as weights.json and a
heat map (weights.png/.svg).")]
pub struct WeightsArgs {
    /// A checkpoint of a concatenating network (DenseNet, SparseNet, …) written by train.
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// Output folder for weights.json and weights.png/.svg (default: the checkpoint's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `study weights`.
pub fn exec(a: &WeightsArgs, w: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| checkpoint_dir(&a.checkpoint));
    let (usage, files) = study::weights::report(&a.checkpoint, &out)?;
    for b in &usage.blocks {
        let read = b.raw.iter().flatten().flatten().count();
        let _ = writeln!(w, "{}: {} layers, {read} connections", b.name, b.layers);
    }
    for f in files {
        let _ = writeln!(w, "wrote {}", f.display());
    }
    Ok(())
}
