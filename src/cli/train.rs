//! The `train` and `evaluate` commands.

use clap::{Args, Parser};
use std::io::Write;
use std::path::PathBuf;

use crate::data::{DataChoice, DatasetKind};
use crate::optim::{Config as OptConfig, Optimizer as OptKind, Schedule};
use crate::train::{checkpoint, evaluate, run, DeviceKind, Engine, KeyMap, TrainOptions};

use super::args::parse_in_range;
use super::spec::bad;
use super::spec::SpecArgs;

const LONG_ABOUT: &str = "\
Train a network built directly from the zoo's DAG — any named model or free spec that `zoo`
describes — on Fashion-MNIST (default), MNIST or CIFAR, on the CPU or (--device cuda) on an
NVIDIA GPU; the GPU needs a binary built with the `cuda` feature (scripts/build-cuda.sh).

Data: Fashion-MNIST comes from /usr/share/datasets/fashion-mnist when the Debian package
dataset-fashion-mnist is installed (60 000 / 10 000 images), else from a 2 000 / 500 subset embedded
in the binary; --data-dir reads IDX (MNIST, Fashion-MNIST) or CIFAR binary batches. The network's
input and classifier follow the data. Every run prints the model, its parameter count and the data.

Output (--out, default runs/<model>): metrics.jsonl (one JSON object per epoch: epoch, lr,
train_loss, train_acc, test_loss, test_acc, images_per_sec, seconds, steps), metrics.csv,
last.safetensors / best.safetensors (+ .json copies of their descriptions), all written
atomically. --resume continues from last.safetensors and gives the same numbers as an
uninterrupted run with the same settings.";

/// The training recipe `train` and `study efficiency` share: data, optimiser, limits, device.
#[derive(Args, Debug, Clone)]
pub struct RecipeArgs {
    /// Dataset.
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMnist)]
    pub dataset: DatasetKind,

    /// Folder with the dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Which copy of Fashion-MNIST without --data-dir: auto (the full set when installed, else
    /// the embedded 2 000/500 subset), embedded (the subset, even when the full set is
    /// installed), installed (the full set; an error when it is not).
    #[arg(long, value_enum, default_value_t = DataChoice::Auto, conflicts_with = "data_dir")]
    pub data: DataChoice,

    /// Images per batch.
    #[arg(long, default_value = "64", allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "batch size", 1, 65_536))]
    pub batch_size: usize,

    /// Base learning rate.
    #[arg(long, default_value = "0.1", allow_hyphen_values = true)]
    pub lr: f32,

    /// Learning-rate schedule: step (÷10 at 50 % and 75 % of the epochs), cosine, constant.
    #[arg(long, value_enum, default_value_t = Schedule::Step)]
    pub schedule: Schedule,

    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptKind::Sgd)]
    pub optimizer: OptKind,

    /// SGD momentum (Nesterov).
    #[arg(long, default_value = "0.9")]
    pub momentum: f32,

    /// Weight decay.
    #[arg(long, default_value = "1e-4")]
    pub weight_decay: f32,

    /// Stop every epoch after this many steps.
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "max steps", 1, usize::MAX / 2))]
    pub max_steps: Option<usize>,

    /// Evaluate on at most this many test images per epoch.
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "max test", 1, usize::MAX / 2))]
    pub max_test: Option<usize>,

    /// Where to train: cpu, or cuda (GPU 0; needs a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,

    /// The memory a run may need (e.g. 16G, 800MiB). Each run's estimate (activations of a
    /// batch, their gradients, weights, gradients and optimiser state, data) is checked before
    /// anything is allocated; default: the machine's available memory, `ulimit -v` and the
    /// cgroup's limit, whichever is smallest.
    #[arg(long, value_parser = crate::train::memory::parse_size)]
    pub max_memory: Option<u64>,

    /// How class folders are read and transformed.
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// The options of `--dataset folder`: where the evaluation images are, and torchvision's
/// transforms with their parameters.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Class folders (--dataset folder)")]
pub struct FolderArgs {
    /// The evaluation images (class folders). Default: DIR/val or DIR/test when DIR/train
    /// holds the training classes, else --val-fraction of each class of DIR held out.
    #[arg(long)]
    pub val_dir: Option<PathBuf>,

    /// The share of each class held out for evaluation when there is no evaluation folder
    /// (chosen with a fixed seed: the same split for every run).
    #[arg(long)]
    pub val_fraction: Option<f64>,

    /// The transforms' starting point: imagenet (RandomResizedCrop 224 + flip; evaluation
    /// Resize 256 + CenterCrop 224; ImageNet mean/std) or cifar (Resize + CenterCrop 32,
    /// training adds RandomCrop padding 4 + flip; mean/std computed over the training images).
    /// Default: imagenet for the ImageNet-layout networks, cifar otherwise.
    #[arg(long, value_enum)]
    pub transforms: Option<crate::data::transform::Preset>,

    /// Side of the square images the network sees (default 224 or 32, by --transforms).
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "size", 1, 4096))]
    pub size: Option<usize>,

    /// Resize: the shorter side before the centre crop (evaluation, and training unless
    /// --train-crop random-resized); 0 resizes nothing. Default: size/0.875 (imagenet), size (cifar).
    #[arg(long)]
    pub resize: Option<usize>,

    /// The training crop: random-resized (RandomResizedCrop), random-padded (Resize,
    /// CenterCrop, then RandomCrop with --pad), center (as evaluation).
    #[arg(long, value_enum)]
    pub train_crop: Option<crate::data::transform::TrainCrop>,

    /// RandomResizedCrop's area range, as shares of the image: MIN,MAX (default 0.08,1).
    #[arg(long, value_parser = parse_pair)]
    pub scale: Option<(f64, f64)>,

    /// RandomResizedCrop's aspect-ratio range, width/height: MIN,MAX (default 0.75,1.3333).
    #[arg(long, value_parser = parse_pair)]
    pub ratio: Option<(f64, f64)>,

    /// RandomCrop's zero padding on each side (default size/8 for cifar).
    #[arg(long)]
    pub pad: Option<usize>,

    /// No random horizontal flips in training.
    #[arg(long)]
    pub no_flip: bool,

    /// Normalize's per-channel mean, comma-separated (with --std); default: the preset's
    /// (imagenet), or computed once over the training images and stored in the checkpoint.
    #[arg(long, value_delimiter = ',', value_parser = parse_float)]
    pub mean: Option<Vec<f32>>,

    /// Normalize's per-channel std, comma-separated (with --mean).
    #[arg(long, value_delimiter = ',', value_parser = parse_float)]
    pub std: Option<Vec<f32>>,

    /// Convert every image to 1 (grey) or 3 (RGB) channels; default: the images' own, which
    /// must agree.
    #[arg(long, value_parser = |s: &str| match s { "1" => Ok(1usize), "3" => Ok(3), _ => Err(format!("--channels {s}: give 1 (grey) or 3 (RGB)")) })]
    pub channels: Option<usize>,

    /// An unreadable image is an error (default: skipped with a warning that names it, and
    /// counted in metrics.jsonl's skipped_images).
    #[arg(long)]
    pub strict_data: bool,

    /// Threads decoding images (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "workers", 1, 1024))]
    pub workers: Option<usize>,

    /// Batches decoded ahead of the trainer (default 3); memory grows with it, results do
    /// not change.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "prefetch", 1, 64))]
    pub prefetch: Option<usize>,
}

fn parse_pair(s: &str) -> Result<(f64, f64), String> {
    let v: Vec<&str> = s.split(',').collect();
    match v.as_slice() {
        [a, b] => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("{s}: give two numbers, MIN,MAX")),
        },
        _ => Err(format!("{s}: give two numbers, MIN,MAX")),
    }
}

/// One number of a comma-separated list (clap splits the list: the field is a `Vec<f32>`,
/// which clap's derive reads element by element).
fn parse_float(s: &str) -> Result<f32, String> {
    s.trim()
        .parse::<f32>()
        .map_err(|_| format!("{s}: give numbers separated by commas, e.g. 0.5,0.5,0.5"))
}

impl FolderArgs {
    /// Whether any of these flags was given.
    fn any(&self) -> bool {
        self.val_dir.is_some()
            || self.val_fraction.is_some()
            || self.transforms.is_some()
            || self.size.is_some()
            || self.resize.is_some()
            || self.train_crop.is_some()
            || self.scale.is_some()
            || self.ratio.is_some()
            || self.pad.is_some()
            || self.no_flip
            || self.mean.is_some()
            || self.std.is_some()
            || self.channels.is_some()
            || self.strict_data
            || self.workers.is_some()
            || self.prefetch.is_some()
    }

    /// The options for `dataset` (None but for folder datasets; a folder flag given to
    /// another dataset is bad input), with the preset chosen by the network's `layout`.
    pub fn options(
        &self,
        dataset: DatasetKind,
        layout: sparsenet_net::zoo::Layout,
    ) -> anyhow::Result<Option<crate::data::folder::FolderOptions>> {
        use crate::data::transform::{Preset, Transforms};
        if dataset != DatasetKind::Folder {
            if self.any() {
                return Err(bad(
                    "--val-dir, --transforms, --size and the other class-folder flags go with --dataset folder",
                ));
            }
            return Ok(None);
        }
        let preset = self.transforms.unwrap_or(match layout {
            sparsenet_net::zoo::Layout::Imagenet => Preset::Imagenet,
            sparsenet_net::zoo::Layout::Cifar | sparsenet_net::zoo::Layout::Mnist => Preset::Cifar,
        });
        let base = Transforms::preset(preset, self.size);
        let mut t = Transforms {
            resize: self.resize.unwrap_or(base.resize),
            train_crop: self.train_crop.unwrap_or(base.train_crop),
            scale: self.scale.unwrap_or(base.scale),
            ratio: self.ratio.unwrap_or(base.ratio),
            pad: self.pad.unwrap_or(base.pad),
            flip: !self.no_flip,
            ..base
        };
        if self.mean.is_some() || self.std.is_some() {
            t.mean = self.mean.clone();
            t.std = self.std.clone();
        }
        // Everything that does not need the images' channels is checked now.
        t.validate(t.mean.as_ref().map_or(3, Vec::len))
            .map_err(bad)?;
        let mut o = crate::data::folder::FolderOptions::default_for(preset);
        o.transforms = t;
        o.val_dir = self.val_dir.clone();
        if let Some(f) = self.val_fraction {
            if !(f > 0.0 && f < 1.0) {
                return Err(bad(format!(
                    "--val-fraction {f}: give a share between 0 and 1, e.g. 0.1"
                )));
            }
            o.val_fraction = f;
        }
        o.channels = self.channels;
        o.strict = self.strict_data;
        if let Some(w) = self.workers {
            o.workers = w;
        }
        if let Some(p) = self.prefetch {
            o.prefetch = p;
        }
        Ok(Some(o))
    }
}

/// Arguments of `train`.
#[derive(Parser, Debug, Clone)]
// `--help` offers only what train accepts: the classifier follows the dataset (so no
// --classes), and a binary built without CUDA hides the GPU flags (it refuses them, saying how
// to build one that takes them).
#[command(name = "train", version, about = "Train a network built from its DAG (CPU, or CUDA GPU).", long_about = LONG_ABOUT, mut_arg("classes", |a| a.hide(true)))]
pub struct TrainArgs {
    /// Which network (default sparsenet-40-24).
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Free spec: layout cifar|imagenet (default cifar).
    #[arg(long)]
    pub layout: Option<String>,

    /// Data, optimiser, limits and device.
    #[command(flatten)]
    pub recipe: RecipeArgs,

    /// Epochs.
    #[arg(long, default_value = "10", allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "epochs", 1, 100_000))]
    pub epochs: usize,

    /// Data-parallel training on GPUs 0..N over NCCL (with --device cuda): --batch-size is the
    /// global batch, cut into N shards; the learning rate applies unchanged (the gradients are
    /// averaged over the whole batch). 1 runs the same path as world size 1.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "gpus", 1, 64))]
    #[cfg_attr(not(feature = "cuda"), arg(hide = true))]
    pub gpus: Option<usize>,

    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value = "0")]
    pub seed: u64,

    /// Worker threads (default: all cores).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,

    /// Output folder (default runs/MODEL).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Stop after this epoch as if interrupted (continue later with --resume).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "stop after", 1, 100_000))]
    pub stop_after: Option<usize>,

    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,

    /// Replace the run --out holds (a fresh run into another run's folder is refused without
    /// it). The old files are moved into --out/.replaced and deleted once the new run has
    /// written its first checkpoint.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,

    /// Start from the weights in this file instead of a fresh initialisation (fine-tuning): a
    /// checkpoint of ours, or the NAME.safetensors `export` writes. Every tensor of the network
    /// must be there with its shape; the first one missing or of another shape is named.
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,

    /// How --init-from names its tensors: ours, or torchvision (the ImageNet ResNets and
    /// DenseNet-121/169/201; e.g.
    /// `safetensors.torch.save_file(torchvision.models.resnet50(weights=…).state_dict(), F)`).
    #[arg(long, value_enum, default_value_t = KeyMap::Ours, requires = "init_from")]
    pub key_map: KeyMap,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Under torchrun or srun (RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS set, world > 1):
    /// seconds a rank waits for the others to join or answer before it fails with a message.
    #[arg(long, default_value = "300", value_parser = |s: &str| parse_in_range(s, "dist timeout", 1, 86_400))]
    #[cfg_attr(not(feature = "cuda"), arg(hide = true))]
    pub dist_timeout: usize,
}

/// Set the worker-thread count once per process.
pub fn set_threads(threads: Option<usize>) {
    if let Some(t) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
}

/// Translate arguments into options (errors are bad input).
pub fn options(a: &TrainArgs) -> anyhow::Result<TrainOptions> {
    if a.spec.classes.is_some() {
        return Err(bad(
            "train takes no --classes: the classifier follows the dataset's classes",
        ));
    }
    if !(a.recipe.lr.is_finite() && a.recipe.lr > 0.0) {
        return Err(bad(format!(
            "learning rate {} is not allowed: give a positive number, e.g. 0.1",
            a.recipe.lr
        )));
    }
    if !(0.0..1.0).contains(&a.recipe.momentum)
        || a.recipe.weight_decay < 0.0
        || !a.recipe.weight_decay.is_finite()
    {
        return Err(bad(
            "momentum must be in [0, 1) and weight decay a non-negative number",
        ));
    }
    let mut s = a.spec.clone();
    // No network named at all: the default model (a DAG flag alone names a network).
    let default_model = s.model.is_none() && s.family.is_none() && !s.has_free_spec();
    if default_model {
        s.model = Some("sparsenet-40-24".into());
    }
    let spec = s
        .to_spec(a.layout.as_deref())?
        .expect("a model or family is set");
    // A spec that does not fit its family is bad input, whatever the data.
    sparsenet_net::zoo::build(&spec).map_err(bad)?;
    let name = s.model.clone().unwrap_or_else(|| spec.to_string());
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(name.replace([' ', '(', ')', ',', '[', ']'], ""))
    });
    if a.gpus.is_some() && a.recipe.device != DeviceKind::Cuda {
        return Err(bad(
            "--gpus needs --device cuda (data-parallel training on GPUs)",
        ));
    }
    let folder = a.recipe.folder.options(a.recipe.dataset, spec.layout)?;
    Ok(TrainOptions {
        spec,
        name,
        dataset: a.recipe.dataset,
        data_dir: a.recipe.data_dir.clone(),
        data: a.recipe.data,
        folder,
        epochs: a.epochs,
        batch_size: a.recipe.batch_size,
        lr: a.recipe.lr,
        schedule: a.recipe.schedule,
        optimizer: OptConfig {
            kind: a.recipe.optimizer,
            momentum: a.recipe.momentum,
            nesterov: true,
            weight_decay: a.recipe.weight_decay,
        },
        seed: a.seed,
        max_steps: a.recipe.max_steps,
        out,
        resume: a.resume,
        overwrite: a.overwrite,
        init_from: a.init_from.clone(),
        key_map: a.key_map,
        progress: !a.quiet,
        epoch_bar: None,
        max_test: a.recipe.max_test,
        stop_after: a.stop_after,
        device: a.recipe.device,
        gpus: a.gpus,
        group: None,
        max_memory: a.recipe.max_memory,
    })
}

/// The multi-process group this process belongs to, from torchrun's or srun's variables
/// ([`crate::dist::env`]); None for a process of its own. Training across processes runs on
/// GPUs, one per process, so the CPU and `--gpus` are refused there (bad input).
pub fn group_from_env(a: &TrainArgs) -> anyhow::Result<Option<crate::dist::Join>> {
    let Some(launch) = crate::dist::launch().map_err(crate::error::bad_input)? else {
        return Ok(None);
    };
    let vars = if launch.source == "slurm" {
        "SLURM_PROCID/SLURM_NTASKS"
    } else {
        "RANK/WORLD_SIZE"
    };
    if a.recipe.device != DeviceKind::Cuda {
        return Err(bad(format!(
            "{vars} say this is rank {} of {}: training across processes runs with --device cuda (one GPU per process); unset them for a run of its own on the CPU",
            launch.rank, launch.world
        )));
    }
    if a.gpus.is_some() {
        return Err(bad(format!(
            "--gpus is for one process driving several GPUs; under torchrun or srun ({vars} set) each process drives the GPU LOCAL_RANK names"
        )));
    }
    Ok(Some(crate::dist::Join {
        launch,
        timeout: std::time::Duration::from_secs(a.dist_timeout as u64),
    }))
}

/// Run `train`.
pub fn exec_train(a: &TrainArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    let opts = options(a)?;
    let opts = TrainOptions {
        group: group_from_env(a)?,
        ..opts
    };
    set_threads(a.threads);
    let s = run(&opts, w).inspect_err(|_| {
        let _ = w.flush();
        if opts.group.is_some() && !crate::dist::claim_failure() {
            // The group's watch thread is reporting its failure and ending the process.
            loop {
                std::thread::park();
            }
        }
    })?;
    if let Some((acc, ep)) = s.best {
        let _ = writeln!(
            w,
            "best test accuracy {acc:.4} at epoch {ep}; outputs in {}",
            opts.out.display()
        );
    }
    Ok(())
}

/// Arguments of `evaluate`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "evaluate",
    version,
    about = "Report a checkpoint's test loss and accuracy."
)]
pub struct EvalArgs {
    /// A checkpoint written by train (e.g. runs/sparsenet-40-24/best.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// Folder with the dataset's files (default: the data the checkpoint was trained on).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Which copy of Fashion-MNIST without --data-dir: auto (as in training), embedded (the
    /// 2 000/500 subset), installed (the full set of the Debian package).
    #[arg(long, value_enum, default_value_t = DataChoice::Auto, conflicts_with = "data_dir")]
    pub data: DataChoice,

    /// Images per batch.
    #[arg(long, default_value = "100", value_parser = |s: &str| parse_in_range(s, "batch size", 1, 65_536))]
    pub batch_size: usize,

    /// Worker threads.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "threads", 1, 1024))]
    pub threads: Option<usize>,
}

/// Run `evaluate`.
pub fn exec_evaluate(a: &EvalArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    set_threads(a.threads);
    {
        let (checkpoint::Loaded { meta, mut model }, split) =
            checkpoint::open_for_eval(&a.checkpoint, a.data_dir.as_deref(), a.data)?;
        let mut engine = Engine::Cpu;
        let (loss, acc) = evaluate(
            &mut model,
            &mut engine,
            &split.test,
            &meta.mean,
            &meta.std,
            a.batch_size,
            None,
        )?;
        writeln!(
            w,
            "checkpoint: {} (epoch {} of {}, {} parameters)",
            a.checkpoint.display(),
            meta.epoch,
            meta.epochs,
            model.param_count()
        )?;
        if model.is_pruned() {
            writeln!(
                w,
                "pruned:     {} of {} parameters nonzero ({:.2} %), {:.1} of {:.1} MFLOPs per image remain",
                model.nonzero_param_count(),
                model.param_count(),
                100.0 * model.nonzero_param_count() as f64 / model.param_count() as f64,
                crate::study::prune::flops_remaining(&model) as f64 / 1e6,
                crate::study::prune::flops_dense(&model) as f64 / 1e6
            )?;
        }
        writeln!(w, "data:       {}", split.source)?;
        writeln!(
            w,
            "test loss {loss:.4}  test accuracy {acc:.4}  ({} images)",
            split.test.n()
        )?;
        Ok(())
    }
}
