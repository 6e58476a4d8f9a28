//! `export`: a trained network out of the tool, as a PyTorch module (`--format pytorch`) or an
//! ONNX model (`--format onnx`).

use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

use crate::data::DataChoice;
use crate::export::{onnx, pytorch, ExportJob};

use super::args::parse_in_range;

const LONG_ABOUT: &str = "Export a checkpoint's network.

--format pytorch writes NAME.py, a self-contained PyTorch module (only torch imported) whose
state_dict has exactly the checkpoint's keys and shapes; NAME.safetensors, the weights and
batch-norm statistics under those names (the checkpoint without its optimiser state), so that
`net.load_state_dict(load_weights(\"NAME.safetensors\"), strict=True)` works; and
NAME.sample.safetensors, the first --sample test images (normalised) with our logits and labels,
so the export can be checked by running it:

  python3 NAME.py --check NAME.sample.safetensors   # max relative error, same classes (exit 1 if not)
  python3 NAME.py --to-pt NAME.pt                   # the state dict for torch.load

For the networks torchvision builds the same way (the ImageNet ResNets resnet-50/101/152 and the
DenseNet-BCs densenet-121/169/201) it also writes NAME.torchvision.safetensors, the same tensors
under torchvision's names: torchvision.models.resnet50(num_classes=K) (or densenet121(…)) loads
it with strict=True.

--format onnx writes NAME.onnx (opset 13): the evaluation-mode graph with the trained weights and
batch-norm statistics, input `input` (N x C x H x W, N dynamic, normalised: the metadata holds
mean and std), output `logits` (N x classes); and the same sample. Check it with onnxruntime:

  python3 scripts/check-onnx.py NAME.onnx NAME.sample.safetensors

Every file is written atomically.";

/// Formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A PyTorch module file with its weights and a checking sample.
    Pytorch,
    /// An ONNX model (opset 13) and a checking sample.
    Onnx,
}

/// Arguments of `export`.
#[derive(Parser, Debug, Clone)]
#[command(name = "export", version, about = "Export a checkpoint's network: a PyTorch module with its weights, or an ONNX model.", long_about = LONG_ABOUT)]
pub struct ExportArgs {
    /// A checkpoint written by train (e.g. runs/sparsenet-40-24/best.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Pytorch)]
    pub format: Format,

    /// The file to write: NAME.py for pytorch (NAME: letters, digits and _), NAME.onnx for
    /// onnx; the other files go beside it.
    #[arg(long)]
    pub out: PathBuf,

    /// Test images in the checking sample (0: no sample, and no data is read).
    #[arg(long, default_value = "16", value_parser = |s: &str| parse_in_range(s, "sample", 0, 10_000))]
    pub sample: usize,

    /// The sample's data folder (default: the data the checkpoint was trained on).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Which copy of Fashion-MNIST for the sample without --data-dir (auto, embedded, installed).
    #[arg(long, value_enum, default_value_t = DataChoice::Auto, conflicts_with = "data_dir")]
    pub data: DataChoice,
}

/// Run `export`.
pub fn exec(a: &ExportArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    let e = ExportJob {
        checkpoint: a.checkpoint.clone(),
        out: a.out.clone(),
        sample: a.sample,
        data_dir: a.data_dir.clone(),
        data: a.data,
    };
    let (files, check) = match a.format {
        Format::Pytorch => (pytorch(&e)?, "python3 {model} --check {sample}"),
        Format::Onnx => (onnx(&e)?, "python3 scripts/check-onnx.py {model} {sample}"),
    };
    for f in &files {
        let _ = writeln!(w, "wrote {}", f.display());
    }
    if let (Some(model), Some(sample)) = (files.first(), files.last()) {
        if sample.to_string_lossy().ends_with(".sample.safetensors") {
            let line = check
                .replace("{model}", &model.display().to_string())
                .replace("{sample}", &sample.display().to_string());
            let _ = writeln!(w, "check it: {line}");
        }
    }
    Ok(())
}
