//! The training loop: epochs of shuffled, augmented batches, SGD/Adam with the paper's schedule,
//! test evaluation, metrics, atomic checkpoints and exact resumption.

pub mod checkpoint;
pub mod folder;
pub mod memory;
pub mod torchvision;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sparsenet_net::count::count;
use sparsenet_net::zoo::{build_and_count, NetSpec};
use sparsenet_net::Shape;

use crate::backend::Label;
use crate::data::{self, BatchPlan, DataChoice, DataIdentity, DatasetKind, Images, Split};
use crate::error::bad_input;
use crate::metrics::{self, EpochMetrics};
use crate::model::Model;
use crate::optim::{self, Config as OptConfig, Schedule, State};
use checkpoint::Meta;

/// How a weights file names its tensors (`--key-map`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyMap {
    /// Our names (a checkpoint of ours, or an export's weights file).
    #[default]
    Ours,
    /// torchvision's names for the same network (the ImageNet ResNets: `conv1`, `layer1.0.conv1`,
    /// …, `fc`; the DenseNet-BCs of growth 32: `features.conv0`, …, `classifier`), e.g. a
    /// torchvision state dict saved with `safetensors.torch.save_file`.
    Torchvision,
}

crate::choice_table!(KeyMap {
    Ours => "ours", "Our names (a checkpoint of ours, or an export's weights file)",
    Torchvision => "torchvision", "torchvision's names for the same network (the ImageNet ResNets: `conv1`, `layer1.0.conv1`, …, `fc`; the DenseNet-BCs of growth 32: `features.conv0`, …, `classifier`), e.g. a torchvision state dict saved with `safetensors.torch.save_file`",
});

impl KeyMap {
    /// Whether this is the default (left out of recorded recipes).
    pub fn is_ours(&self) -> bool {
        *self == KeyMap::Ours
    }
}

/// Everything a run needs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// The network (its head is set to the dataset's classes).
    pub spec: NetSpec,
    /// Display name of the model.
    pub name: String,
    /// Dataset.
    pub dataset: DatasetKind,
    /// Folder with the dataset's files (None: defaults, see `data::load`).
    pub data_dir: Option<PathBuf>,
    /// Which copy of the data when `data_dir` is None (`--data`). Left out of the record
    /// when it is the default, so that recorded recipes keep their hashes.
    #[serde(default, skip_serializing_if = "DataChoice::is_auto")]
    pub data: DataChoice,
    /// How a folder dataset is read, split and transformed (`--dataset folder`; None for the
    /// other datasets, and then left out of the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<data::folder::FolderOptions>,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Optimiser.
    pub optimizer: OptConfig,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Stop each epoch after this many steps (quick runs, tests).
    pub max_steps: Option<usize>,
    /// Output folder (metrics, checkpoints).
    pub out: PathBuf,
    /// Continue from `out/last.safetensors`.
    pub resume: bool,
    /// A fresh run into a folder that holds another run replaces it ([`folder::claim`]);
    /// without it such a run is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
    /// Start from these weights (a checkpoint of ours, or an `export`ed weights file with our
    /// names) instead of a fresh initialisation: fine-tuning. Ignored by `resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// How `init_from` names its tensors.
    #[serde(default, skip_serializing_if = "KeyMap::is_ours")]
    pub key_map: KeyMap,
    /// Show a progress bar.
    pub progress: bool,
    /// A bar of the run's epochs that the caller draws (`study` shows one per run in
    /// progress): set to the epochs done at the start, advanced after each epoch.
    #[serde(skip)]
    pub epoch_bar: Option<ProgressBar>,
    /// Test images evaluated per epoch (None: all).
    pub max_test: Option<usize>,
    /// Stop after this epoch (1-based) as if interrupted; `--resume` continues.
    pub stop_after: Option<usize>,
    /// Where the steps run.
    pub device: DeviceKind,
    /// With `device` cuda: data-parallel training over NCCL on GPUs `0..n` (the batch size is
    /// the global batch, cut into n shards); None: one GPU without NCCL.
    pub gpus: Option<usize>,
    /// With `device` cuda: this process is one rank of a multi-process group (torchrun's or
    /// srun's variables; `dist`): the ranks train one run data-parallel over NCCL, rank 0
    /// alone writes the folder. None: a process of its own.
    #[serde(skip)]
    pub group: Option<crate::dist::Join>,
    /// The memory limit the run's estimate is checked against ([`memory::limit`]); None: the
    /// machine's own limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
}

/// Where training runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU (all cores, or --threads).
    #[default]
    Cpu,
    /// GPU 0 through CUDA (binaries built with the `cuda` feature); TF32 off, so the numbers
    /// match the CPU's to f32 rounding.
    Cuda,
}

impl crate::choice::Choice for DeviceKind {
    const ALL: &'static [Self] = &[DeviceKind::Cpu, DeviceKind::Cuda];
    fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
    fn help(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "The CPU (all cores, or --threads)",
            DeviceKind::Cuda => "GPU 0 through CUDA (binaries built with the `cuda` feature); TF32 off, so the numbers match the CPU's to f32 rounding",
        }
    }
    /// Offered in every build (a CPU build says why it cannot), listed only in a CUDA build.
    fn hidden(self) -> bool {
        self == DeviceKind::Cuda && !cfg!(feature = "cuda")
    }
}

/// The device-specific half of training: one step (forward, loss, backward, update) and the
/// copy of parameters back to the host for checkpoints. The host [`Model`] always holds the
/// DAG; on the GPU its values are refreshed by [`Engine::sync_host`].
pub enum Engine {
    /// Our kernels on the CPU (the `ops` backend).
    Cpu,
    /// Our kernels on an NVIDIA GPU.
    #[cfg(feature = "cuda")]
    Cuda(Box<crate::gpu::GpuTrainer>),
    /// Data-parallel over several GPUs (NCCL).
    #[cfg(feature = "cuda")]
    CudaParallel(Box<crate::gpu::parallel::DataParallel>),
    /// One rank of a multi-process group (one GPU per process, NCCL across processes/nodes).
    #[cfg(feature = "cuda")]
    CudaDistributed(Box<crate::gpu::distributed::Distributed>),
}

impl Engine {
    /// The engine for `kind`, holding `model`'s parameters and the optimiser `state`.
    pub fn new(
        kind: DeviceKind,
        gpus: Option<usize>,
        group: Option<&crate::dist::Join>,
        model: &Model<f32>,
        cfg: &OptConfig,
        state: &State,
    ) -> Result<Self> {
        match kind {
            DeviceKind::Cpu => {
                if gpus.is_some() {
                    bail!("--gpus needs --device cuda");
                }
                if group.is_some() {
                    bail!("training across processes needs --device cuda");
                }
                let _ = (model, cfg, state);
                Ok(Engine::Cpu)
            }
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda if group.is_some() => Ok(Engine::CudaDistributed(Box::new(
                crate::gpu::distributed::Distributed::new(
                    group.expect("matched"),
                    model,
                    cfg,
                    state,
                )?,
            ))),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda if gpus.is_some() => Ok(Engine::CudaParallel(Box::new(
                crate::gpu::parallel::DataParallel::new(gpus.expect("matched"), model, cfg, state)?,
            ))),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => {
                let kit = crate::gpu::open(0, false, crate::gpu::ConvEngine::auto()?)?;
                Ok(Engine::Cuda(Box::new(crate::gpu::GpuTrainer::new(
                    kit, model, cfg, state,
                )?)))
            }
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => {
                let _ = group;
                bail!("--device cuda: this binary was built without CUDA; build it with `cargo build --release --features cuda`")
            }
        }
    }

    /// A training step on one batch and, when its loss is finite, an optimiser update with
    /// learning rate `lr`; `key` draws the step's dropout masks (a data-parallel rank mixes in
    /// its rank, as its shard is its own batch). Returns (mean loss, correct predictions).
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &mut self,
        model: &mut Model<f32>,
        state: &mut State,
        cfg: &OptConfig,
        x: Vec<f32>,
        y: &[Label],
        lr: f32,
        key: u64,
    ) -> Result<(f64, usize)> {
        model.step_key = key;
        match self {
            Engine::Cpu => {
                let (l, c, grads) = model.step(x, y, true)?;
                if l.is_finite() {
                    optim::update(cfg, state, lr, &mut model.values, &grads, &model.masks);
                }
                Ok((l, c))
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => {
                let r = t.step(model, &x, y, true)?;
                if r.loss.is_finite() {
                    t.update(cfg, lr)?;
                }
                Ok((r.loss, r.correct))
            }
            #[cfg(feature = "cuda")]
            Engine::CudaParallel(dp) => {
                let _ = (model, state);
                dp.train_step(&x, y, cfg, lr, key)
            }
            #[cfg(feature = "cuda")]
            Engine::CudaDistributed(d) => {
                let _ = state;
                model.step_key = crate::backend::layer_key(key, d.rank());
                d.train_step(model, &x, y, cfg, lr)
            }
        }
    }

    /// Loss and correct predictions of one batch in evaluation mode.
    pub fn eval_step(
        &mut self,
        model: &mut Model<f32>,
        x: Vec<f32>,
        y: &[Label],
    ) -> Result<(f64, usize)> {
        match self {
            Engine::Cpu => model.step(x, y, false).map(|(l, c, _)| (l, c)),
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => t.step(model, &x, y, false).map(|r| (r.loss, r.correct)),
            #[cfg(feature = "cuda")]
            Engine::CudaParallel(dp) => {
                let _ = model;
                dp.eval_step(x, y)
            }
            #[cfg(feature = "cuda")]
            Engine::CudaDistributed(d) => d.eval_step(model, &x, y),
        }
    }

    /// Bring parameters, running statistics and optimiser state back to the host copies.
    pub fn sync_host(&mut self, model: &mut Model<f32>, state: &mut State) -> Result<()> {
        match self {
            Engine::Cpu => {
                let _ = (model, state);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(t) => t.download(model, state),
            #[cfg(feature = "cuda")]
            Engine::CudaParallel(dp) => dp.sync_host(model, state),
            #[cfg(feature = "cuda")]
            Engine::CudaDistributed(d) => d.sync_host(model, state),
        }
    }

    /// The end of a run: a rank of a group leaves it cleanly (rank 0 waits for the others).
    pub fn finish(self) -> Result<()> {
        match self {
            #[cfg(feature = "cuda")]
            Engine::CudaDistributed(d) => d.finish(),
            _ => Ok(()),
        }
    }
}

/// Whether this process writes the run's folder: yes, unless it is a rank other than 0 of a
/// group (those train in step with rank 0 and leave the files to it).
pub fn writes_folder(opts: &TrainOptions) -> bool {
    opts.group.as_ref().is_none_or(|j| j.launch.rank == 0)
}

/// What a run returns.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Every epoch's metrics (resumed runs include the earlier ones).
    pub epochs: Vec<EpochMetrics>,
    /// Best test accuracy and its epoch.
    pub best: Option<(f64, usize)>,
    /// Instantiated parameter count.
    pub params: u64,
    /// Epochs trained by this call (0: the run was already finished and was read back).
    pub trained_now: usize,
}

/// The shuffle/augmentation seed of an epoch: a pure function of (seed, epoch), so a resumed
/// run draws exactly what the uninterrupted run would have drawn.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Evaluate on a dataset in evaluation mode: (mean loss, accuracy).
pub fn evaluate(
    model: &mut Model<f32>,
    engine: &mut Engine,
    d: &Images,
    mean: &[f32],
    std: &[f32],
    batch: usize,
    limit: Option<usize>,
) -> Result<(f64, f64)> {
    let n = limit.map_or(d.n(), |l| l.min(d.n()));
    let plan = BatchPlan {
        batch_size: batch,
        shuffle_seed: None,
        crop_pad: 0,
        flip: false,
        mean: mean.to_vec(),
        std: std.to_vec(),
        augment: false,
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let (mut loss, mut correct, mut seen) = (0.0, 0usize, 0usize);
    let idx: Vec<usize> = (0..n).collect();
    for (k, chunk) in idx.chunks(batch).enumerate() {
        let b = d.batch(&plan, chunk, k * batch, &mut rng)?;
        for s in &b.skipped {
            eprintln!("warning: skipped an unreadable image: {s}");
        }
        if b.y.is_empty() {
            continue;
        }
        let (l, c) = engine.eval_step(model, b.x, &b.y)?;
        loss += l * b.y.len() as f64;
        correct += c;
        seen += b.y.len();
    }
    if seen == 0 {
        bail!("no test image could be read");
    }
    Ok((loss / seen as f64, correct as f64 / seen as f64))
}

fn check_compatible(meta: &Meta, spec: &NetSpec, opts: &TrainOptions, input: Shape) -> Result<()> {
    if meta.spec != *spec || meta.input != input {
        bail!("--resume: the checkpoint in {} is of another network ({} on {} inputs) than this run's ({} on {} inputs); use the same model flags or another --out", opts.out.display(), meta.spec, meta.input, spec, input);
    }
    if meta.dataset != opts.dataset {
        bail!(
            "--resume: the checkpoint in {} was trained on {:?}, this run trains on {:?}; use the same --dataset or another --out",
            opts.out.display(),
            meta.dataset,
            opts.dataset
        );
    }
    if meta.epochs != opts.epochs
        || meta.batch_size != opts.batch_size
        || meta.seed != opts.seed
        || meta.lr != opts.lr
        || meta.schedule != opts.schedule
        || meta.optimizer != opts.optimizer
        || meta.max_steps != opts.max_steps
    {
        bail!("--resume: settings differ from the checkpoint's (checkpoint: epochs {}, batch {}, lr {}, seed {}, schedule {:?}, optimizer {:?}, max steps {:?}; this run: epochs {}, batch {}, lr {}, seed {}, schedule {:?}, optimizer {:?}, max steps {:?}); resume with the same settings to continue the same run", meta.epochs, meta.batch_size, meta.lr, meta.seed, meta.schedule, meta.optimizer.kind, meta.max_steps, opts.epochs, opts.batch_size, opts.lr, opts.seed, opts.schedule, opts.optimizer.kind, opts.max_steps);
    }
    Ok(())
}

/// The lock file of a run folder: one writer at a time (`train`, or the study shard training
/// that run).
pub const FOLDER_LOCK: &str = ".lock";

/// Train as `opts` says, printing a header and one line per epoch to `log`. The run holds its
/// folder's lock ([`FOLDER_LOCK`]) throughout: a second run into the same folder is refused.
pub fn run(opts: &TrainOptions, log: &mut dyn Write) -> Result<RunSummary> {
    let _lock = if writes_folder(opts) {
        Some(crate::io::try_lock_folder(
            &opts.out,
            FOLDER_LOCK,
            "training run",
        )?)
    } else {
        None
    };
    run_holding_lock(opts, log)
}

/// [`run`] for a caller that already holds the folder's lock.
pub fn run_holding_lock(opts: &TrainOptions, log: &mut dyn Write) -> Result<RunSummary> {
    let log = &mut NamedOutput(log);
    let Prepared {
        split,
        input,
        spec,
        mut model,
        mut opt,
    } = prepare(opts)?;
    if writes_folder(opts) {
        folder::claim(opts)?;
        // A run killed while writing leaves a hidden temp file; nothing reads it, so drop it.
        crate::io::remove_stale_temps(&opts.out)?;
    }
    let data_id = split.identity();
    let run_id = run_id(opts, &spec, input, &data_id);
    let mut p = Progress {
        start: 0,
        history: Vec::new(),
        norm: split.train.channel_stats().map_err(bad_input)?,
        best: None,
    };
    if let (Some(init), false) = (&opts.init_from, opts.resume) {
        init_weights(init, opts.key_map, &spec, &mut model, log)?;
    }
    if opts.resume {
        resume(
            opts,
            (&spec, input),
            (&data_id, &run_id),
            &split,
            &mut model,
            &mut opt,
            &mut p,
        )?;
        if p.start >= opts.epochs {
            writeln!(
                log,
                "{} already trained for {} of {} epochs; nothing to do",
                opts.name, p.start, opts.epochs
            )?;
            return Ok(p.summary(&model));
        }
    }
    write_header(log, opts, &model, &split, input, p.start)?;
    if let Some(bar) = &opts.epoch_bar {
        bar.set_length(opts.epochs as u64);
        bar.set_position(p.start as u64);
    }
    let mut engine = Engine::new(
        opts.device,
        opts.gpus,
        opts.group.as_ref(),
        &model,
        &opts.optimizer,
        &opt,
    )?;
    let run = RunIdentity::new(spec, input, &split, data_id, run_id);
    let test = split.test;
    let train = Arc::new(split.train);
    for epoch in p.start..opts.epochs {
        let mut state = Training {
            engine: &mut engine,
            model: &mut model,
            opt: &mut opt,
        };
        let m = train_and_test(opts, &run, &mut state, (&train, &test), &p, epoch)?;
        let test_acc = m.test_acc;
        let improved = p.record(m, opts, log)?;
        let meta = run.meta(opts, &p, epoch + 1, &state, test_acc);
        finish_epoch(
            opts,
            state.engine,
            state.model,
            state.opt,
            &p.history,
            &meta,
            improved,
        )?;
        if opts.stop_after == Some(epoch + 1) && epoch + 1 < opts.epochs {
            writeln!(
                log,
                "stopped after epoch {} as asked; continue with --resume",
                epoch + 1
            )?;
            break;
        }
    }
    engine.finish()?;
    if let (DeviceKind::Cpu, Some(peak)) = (opts.device, memory::peak_resident_bytes()) {
        writeln!(log, "peak resident memory: {}", memory::human_bytes(peak))?;
    }
    Ok(p.summary(&model))
}

/// `--init-from`: every tensor by name and shape from `init` (named as `key_map` says), the
/// first mismatch named (bad input).
fn init_weights(
    init: &std::path::Path,
    key_map: KeyMap,
    spec: &NetSpec,
    model: &mut Model<f32>,
    log: &mut dyn Write,
) -> Result<()> {
    let loaded = match key_map {
        KeyMap::Ours => checkpoint::load_into(init, model, None),
        KeyMap::Torchvision => match torchvision::twin(spec) {
            None => Err(anyhow::anyhow!(
                "--key-map torchvision maps {}, not {spec}",
                torchvision::TWINS
            )),
            Some(twin) => torchvision::load(init, model, &twin),
        },
    };
    loaded.map_err(|e| bad_input(e.context(format!("--init-from {}", init.display()))))?;
    writeln!(
        log,
        "init:  weights and batch-norm statistics from {}",
        init.display()
    )?;
    Ok(())
}

/// What every epoch's checkpoint says of the run it belongs to.
struct RunIdentity {
    spec: NetSpec,
    input: Shape,
    source: String,
    classes: Option<Vec<String>>,
    data_id: DataIdentity,
    run_id: String,
}

/// What an epoch trains: the engine, the host model and the optimiser state.
struct Training<'a> {
    engine: &'a mut Engine,
    model: &'a mut Model<f32>,
    opt: &'a mut State,
}

impl RunIdentity {
    fn new(
        spec: NetSpec,
        input: Shape,
        split: &Split,
        data_id: DataIdentity,
        run_id: String,
    ) -> Self {
        RunIdentity {
            spec,
            input,
            source: split.source.clone(),
            classes: split.train.class_names().map(<[String]>::to_vec),
            data_id,
            run_id,
        }
    }

    /// The checkpoint's description after `epoch` (1-based) with test accuracy `test_acc`.
    fn meta(
        &self,
        opts: &TrainOptions,
        p: &Progress,
        epoch: usize,
        state: &Training<'_>,
        test_acc: f64,
    ) -> Meta {
        Meta {
            version: checkpoint::FORMAT_VERSION,
            spec: self.spec.clone(),
            input: self.input,
            dataset: opts.dataset,
            data_source: self.source.clone(),
            data_dir: opts.data_dir.as_deref().map(data::absolute),
            data: Some(self.data_id.clone()),
            run: Some(self.run_id.clone()),
            epoch,
            epochs: opts.epochs,
            lr: opts.lr,
            schedule: opts.schedule,
            optimizer: opts.optimizer,
            optimizer_steps: state.opt.steps,
            batch_size: opts.batch_size,
            seed: opts.seed,
            max_steps: opts.max_steps,
            mean: p.norm.0.clone(),
            std: p.norm.1.clone(),
            best: p.best,
            test_acc: Some(test_acc),
            params: state.model.param_count(),
            folder: opts.folder.clone(),
            classes: self.classes.clone(),
        }
    }
}

/// Epoch `epoch` (0-based): one pass over the training images, then the test set; its row of
/// metrics. A test loss that is not finite ends the run (the checkpoints so far are intact).
fn train_and_test(
    opts: &TrainOptions,
    run: &RunIdentity,
    state: &mut Training<'_>,
    (train, test): (&Arc<Images>, &Images),
    p: &Progress,
    epoch: usize,
) -> Result<EpochMetrics> {
    let lr = optim::learning_rate(opts.schedule, opts.lr, epoch, opts.epochs);
    let plan = BatchPlan {
        batch_size: opts.batch_size,
        shuffle_seed: Some(epoch_seed(opts.seed, epoch)),
        crop_pad: run.input.h / 8,
        flip: opts.dataset.flips(),
        mean: p.norm.0.clone(),
        std: p.norm.1.clone(),
        augment: true,
    };
    let started = Instant::now();
    let t = run_epoch(
        opts,
        state.engine,
        state.model,
        state.opt,
        train,
        plan,
        epoch,
        lr,
    )?;
    let (test_loss, test_acc) = evaluate(
        state.model,
        state.engine,
        test,
        &p.norm.0,
        &p.norm.1,
        opts.batch_size.max(100),
        opts.max_test,
    )?;
    if !test_loss.is_finite() {
        bail!(
            "the test loss became {test_loss} after epoch {} (lr {lr}); try a lower --lr. Checkpoints of earlier epochs are intact",
            epoch + 1
        );
    }
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr,
        train_loss: t.loss_sum / t.seen as f64,
        train_acc: t.correct as f64 / t.seen as f64,
        test_loss,
        test_acc,
        images_per_sec: t.seen as f64 / t.seconds,
        seconds: started.elapsed().as_secs_f64(),
        steps: t.steps,
        run: Some(run.run_id.clone()),
        skipped_images: (opts.dataset == DatasetKind::Folder).then_some(t.skipped),
    })
}

/// What a run starts from: the data, the input shape, the spec as built for it, the freshly
/// initialised model and its optimiser state.
struct Prepared {
    split: Split,
    input: Shape,
    spec: NetSpec,
    model: Model<f32>,
    opt: State,
}

/// Check the options, load the data and build the network for its images (all bad input).
fn prepare(opts: &TrainOptions) -> Result<Prepared> {
    if opts.epochs == 0 || opts.batch_size == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "epochs and batch size must be at least 1"
        )));
    }
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        return Err(bad_input(anyhow::anyhow!(
            "learning rate {} is not a positive number",
            opts.lr
        )));
    }
    if opts.folder.is_some() != (opts.dataset == DatasetKind::Folder) {
        return Err(bad_input(anyhow::anyhow!(
            "folder options go with --dataset folder, and it needs them"
        )));
    }
    let split: Split = data::load_choice(
        opts.dataset,
        opts.data_dir.as_deref(),
        opts.data,
        opts.folder.as_ref(),
    )
    .map_err(bad_input)?;
    let (c, h, w) = split.train.dims();
    let input = Shape::new(c, h, w);
    let (tc, th, tw) = split.test.dims();
    if (tc, th, tw) != (c, h, w) {
        return Err(bad_input(anyhow::anyhow!(
            "test images are {tc}×{th}×{tw} but training images are {input}"
        )));
    }
    let mut spec = opts.spec.clone();
    spec.classes = split.train.classes();
    spec.input = Some(input);
    let net = sparsenet_net::zoo::build(&spec)
        .with_context(|| format!("{} cannot be built for {input} inputs", opts.name))
        .map_err(bad_input)?;
    // Before a single weight is allocated: will the run fit?
    let data_bytes = data_bytes(&split, opts.batch_size);
    let est = memory::estimate(&net, opts.batch_size, opts.optimizer.kind, data_bytes);
    memory::check(
        &opts.name,
        &est,
        opts.batch_size,
        memory::limit(opts.max_memory).as_ref(),
    )
    .map_err(bad_input)?;
    let model = Model::<f32>::from_net(spec.clone(), net, opts.seed);
    let sizes: Vec<usize> = model.values.iter().map(|v| v.len()).collect();
    let opt = State::new(&opts.optimizer, &sizes);
    Ok(Prepared {
        split,
        input,
        spec,
        model,
        opt,
    })
}

/// Where a run stands: the first epoch to train, the metrics so far, the normalisation
/// (per-channel mean and std) and the best test accuracy with its epoch.
struct Progress {
    start: usize,
    history: Vec<EpochMetrics>,
    norm: (Vec<f32>, Vec<f32>),
    best: Option<(f64, usize)>,
}

impl Progress {
    /// An epoch's row: logged, shown on the run's bar, kept; whether its test accuracy is the
    /// best so far.
    fn record(
        &mut self,
        m: EpochMetrics,
        opts: &TrainOptions,
        log: &mut dyn Write,
    ) -> Result<bool> {
        writeln!(log, "epoch {:>3}/{}  lr {:.4}  train loss {:.4} acc {:.4}  test loss {:.4} acc {:.4}  {:.1} img/s  {:.1}s", m.epoch, opts.epochs, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.images_per_sec, m.seconds)?;
        if let Some(bar) = &opts.epoch_bar {
            bar.set_position(m.epoch as u64);
            bar.set_message(format!("test acc {:.4}", m.test_acc));
        }
        let (epoch, test_acc) = (m.epoch, m.test_acc);
        self.history.push(m);
        let improved = self.best.is_none_or(|(b, _)| test_acc > b);
        if improved {
            self.best = Some((test_acc, epoch));
        }
        Ok(improved)
    }

    fn summary(self, model: &Model<f32>) -> RunSummary {
        RunSummary {
            trained_now: self.history.len().saturating_sub(self.start),
            epochs: self.history,
            best: self.best,
            params: model.param_count(),
        }
    }
}

/// `--resume`: the weights, optimiser state and progress of the run in `opts.out` (its
/// checkpoint must describe this run: [`check_compatible`]).
fn resume(
    opts: &TrainOptions,
    (spec, input): (&NetSpec, Shape),
    (data_id, run_id): (&DataIdentity, &str),
    split: &Split,
    model: &mut Model<f32>,
    opt: &mut State,
    p: &mut Progress,
) -> Result<()> {
    let (st_path, _) = checkpoint::paths(&opts.out, "last");
    if !st_path.exists() {
        return Err(bad_input(anyhow::anyhow!(
            "--resume: no checkpoint at {} (train without --resume first)",
            st_path.display()
        )));
    }
    let meta = checkpoint::load_meta(&st_path).map_err(bad_input)?;
    check_compatible(&meta, spec, opts, input).map_err(bad_input)?;
    checkpoint::check_classes(&meta, split).map_err(|e| bad_input(e.context("--resume")))?;
    check_same_data(&meta, opts, data_id).map_err(bad_input)?;
    if meta.folder.is_some() && meta.folder != opts.folder {
        return Err(bad_input(anyhow::anyhow!(
            "--resume: the checkpoint in {} read its class folders with other options (validation split or transforms) than this run; resume with the same flags",
            opts.out.display()
        )));
    }
    checkpoint::load_into(&st_path, model, Some(opt)).map_err(bad_input)?;
    opt.steps = meta.optimizer_steps;
    p.start = meta.epoch;
    p.norm = (meta.mean.clone(), meta.std.clone());
    p.best = meta.best;
    p.history = metrics::read(&opts.out).map_err(bad_input)?;
    check_rows(&p.history, &meta, opts, run_id).map_err(bad_input)?;
    p.history.truncate(p.start);
    Ok(())
}

/// The identity of a run: its network, data (by content) and recipe — what two runs must
/// share for their metrics rows to be one run's. Sixteen hex digits, written in every row of
/// `metrics.jsonl` and in the checkpoint.
pub fn run_id(opts: &TrainOptions, spec: &NetSpec, input: Shape, data: &DataIdentity) -> String {
    use sha2::Digest;
    let mut text = serde_json::to_string(&(
        spec,
        input,
        opts.dataset,
        &data.sha256,
        (
            opts.epochs,
            opts.batch_size,
            opts.lr,
            opts.seed,
            opts.max_steps,
        ),
        opts.schedule,
        opts.optimizer,
    ))
    .expect("a recipe serialises");
    // A folder dataset's reading and transforms are part of the recipe (appended only then, so
    // the ids of the other datasets' runs stay what they were).
    if let Some(f) = &opts.folder {
        text.push_str(&serde_json::to_string(f).expect("folder options serialise"));
    }
    crate::dist::store::hex(&sha2::Sha256::digest(text.as_bytes())[..8])
}

/// `--resume` continues only on the data the checkpoint was trained on (by content: a moved
/// folder is the same data, another set of the same shape is not).
fn check_same_data(meta: &Meta, opts: &TrainOptions, now: &DataIdentity) -> Result<()> {
    match &meta.data {
        Some(then) if (then.train, then.test, &then.sha256) != (now.train, now.test, &now.sha256) => bail!(
            "--resume: the checkpoint in {} was trained on other data ({}) than this run reads ({}); use the same --data-dir/--data, or another --out",
            opts.out.display(),
            then.describe(),
            now.describe()
        ),
        _ => Ok(()),
    }
}

/// Every `metrics.jsonl` row a resumed run keeps must be this run's: epochs 1, 2, … in order,
/// each marked with the checkpoint's run (rows of another run, left by a run into the same
/// folder, would otherwise be mixed into this one's history).
fn check_rows(rows: &[EpochMetrics], meta: &Meta, opts: &TrainOptions, run_id: &str) -> Result<()> {
    let file = opts.out.join("metrics.jsonl");
    if rows.len() < meta.epoch {
        bail!(
            "--resume: {} has {} rows but the checkpoint is at epoch {}; the metrics of this run are incomplete (train again into another --out)",
            file.display(),
            rows.len(),
            meta.epoch
        );
    }
    for (i, r) in rows.iter().enumerate().take(meta.epoch) {
        if r.epoch != i + 1 {
            bail!(
                "--resume: row {} of {} is epoch {}, not {}; the file is not one run's in order",
                i + 1,
                file.display(),
                r.epoch,
                i + 1
            );
        }
        if meta.run.is_some() && r.run.as_deref() != meta.run.as_deref() {
            bail!(
                "--resume: row {} of {} belongs to run {}, not to the checkpoint's run {} (rows of two runs are mixed); move the folder aside or train into another --out",
                i + 1,
                file.display(),
                r.run.as_deref().unwrap_or("(unmarked)"),
                meta.run.as_deref().unwrap_or_default()
            );
        }
    }
    if meta.run.as_deref().is_some_and(|m| m != run_id) {
        bail!(
            "--resume: the checkpoint in {} is of run {}, this run is {}; resume with the same settings and data",
            opts.out.display(),
            meta.run.as_deref().unwrap_or_default(),
            run_id
        );
    }
    Ok(())
}

/// The run's log stream, whose failed writes say what failed ("could not write output: No
/// space left on device") instead of the bare system message, so that a full or closed stdout
/// ends the run with one line a user can act on.
struct NamedOutput<'a>(&'a mut dyn Write);

impl Write for NamedOutput<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(named_output_error)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(named_output_error)
    }
}

fn named_output_error(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("could not write output: {e}"))
}

/// The run's first lines: the network and its counts, the data, the recipe.
fn write_header(
    log: &mut dyn Write,
    opts: &TrainOptions,
    model: &Model<f32>,
    split: &Split,
    input: Shape,
    start: usize,
) -> Result<()> {
    let paper = build_and_count(&opts.spec).map(|(_, c)| c).ok();
    let here = count(&model.net);
    writeln!(
        log,
        "model: {} — {} trainable parameters, {:.1} MFLOPs per {input} image (this network)",
        opts.name,
        model.param_count(),
        here.flops as f64 / 1e6
    )?;
    if let Some(p) = paper {
        if p.params != model.param_count() {
            writeln!(
                log,
                "       the zoo's count at the paper's input and head: {} parameters",
                p.params
            )?;
        }
    }
    writeln!(log, "data:  {}", split.source)?;
    writeln!(
        log,
        "train: {} epochs × {} steps of {} images, lr {} ({:?}), {:?}, seed {}{}",
        opts.epochs,
        steps_per_epoch(opts, split.train.n()),
        opts.batch_size,
        opts.lr,
        opts.schedule,
        opts.optimizer.kind,
        opts.seed,
        if start > 0 {
            format!(", resuming after epoch {start}")
        } else {
            String::new()
        }
    )?;
    let data_bytes = data_bytes(split, opts.batch_size);
    let est = memory::estimate(&model.net, opts.batch_size, opts.optimizer.kind, data_bytes);
    let limit = memory::limit(opts.max_memory)
        .map(|l| format!(" (limit {}: {})", memory::human_bytes(l.bytes), l.source))
        .unwrap_or_default();
    writeln!(log, "memory: about {}{limit}", est.describe())?;
    Ok(())
}

/// The data's share of a run's memory: the images held in memory, and the batches a loader
/// prepares ahead (a folder dataset: its prefetch depth, plus the batch in training).
fn data_bytes(split: &Split, batch: usize) -> u64 {
    let (c, h, w) = split.train.dims();
    let ahead = split.train.prefetch() + 1;
    split.train.resident_bytes()
        + split.test.resident_bytes()
        + (ahead * batch * c * h * w * std::mem::size_of::<f32>()) as u64
}

/// Steps per epoch over `n` training images: whole batches, at most `--max-steps`.
fn steps_per_epoch(opts: &TrainOptions, n: usize) -> usize {
    let all = n.div_ceil(opts.batch_size);
    opts.max_steps.map_or(all, |m| m.min(all))
}

/// What one epoch's training steps added up to.
struct EpochTraining {
    loss_sum: f64,
    correct: usize,
    seen: usize,
    steps: usize,
    /// Seconds spent in the steps themselves (not waiting for batches).
    seconds: f64,
    /// Images left out because they could not be read (folder datasets).
    skipped: usize,
}

/// The key of the dropout masks of step `step` (from 0) of epoch `epoch` in a run of `seed`: a
/// function of the three only, so an interrupted and resumed run draws the same masks.
pub fn step_key(seed: u64, epoch: usize, step: usize) -> u64 {
    use crate::backend::splitmix64;
    splitmix64(
        splitmix64(seed ^ 0x6472_6f70_6f75_7421) ^ splitmix64(((epoch as u64) << 32) | step as u64),
    )
}

/// One epoch's training steps, with a progress bar; a non-finite loss ends the run (the
/// checkpoints of earlier epochs are intact).
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    opts: &TrainOptions,
    engine: &mut Engine,
    model: &mut Model<f32>,
    opt: &mut State,
    train: &Arc<Images>,
    plan: BatchPlan,
    epoch: usize,
    lr: f32,
) -> Result<EpochTraining> {
    let bar = if opts.progress {
        ProgressBar::new(steps_per_epoch(opts, train.n()) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, opts.epochs));
    let mut t = EpochTraining {
        loss_sum: 0.0,
        correct: 0,
        seen: 0,
        steps: 0,
        seconds: 0.0,
        skipped: 0,
    };
    for batch in data::spawn_loader(train.clone(), plan, opts.max_steps) {
        let batch = batch.map_err(bad_input)?;
        for s in &batch.skipped {
            bar.suspend(|| eprintln!("warning: skipped an unreadable image: {s}"));
        }
        t.skipped += batch.skipped.len();
        let n = batch.y.len();
        if n == 0 {
            continue;
        }
        let started = Instant::now();
        let key = step_key(opts.seed, epoch, t.steps);
        let (l, c) = engine.train_step(model, opt, &opts.optimizer, batch.x, &batch.y, lr, key)?;
        if !l.is_finite() {
            bail!("the loss became {l} at epoch {} step {} (lr {lr}); try a lower --lr. Checkpoints of earlier epochs are intact", epoch + 1, t.steps + 1);
        }
        t.seconds += started.elapsed().as_secs_f64();
        t.loss_sum += l * n as f64;
        t.correct += c;
        t.seen += n;
        t.steps += 1;
        bar.set_message(format!(
            "loss {:.3} acc {:.3} {:.1} img/s",
            t.loss_sum / t.seen as f64,
            t.correct as f64 / t.seen as f64,
            t.seen as f64 / t.seconds
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(t)
}

/// After an epoch: the host copy of the weights, the metrics and their figures, and the
/// checkpoints (`best` when it improved, then `last`).
fn finish_epoch(
    opts: &TrainOptions,
    engine: &mut Engine,
    model: &mut Model<f32>,
    opt: &mut State,
    history: &[EpochMetrics],
    meta: &Meta,
    improved: bool,
) -> Result<()> {
    engine.sync_host(model, opt)?;
    if !writes_folder(opts) {
        return Ok(());
    }
    metrics::write(&opts.out, history)?;
    crate::plot::figures::training_curves(history, &opts.out)?;
    // `best` before `last`: a run killed between the two resumes from the older `last`,
    // repeats the epoch and writes both again; the other order could leave `best` behind
    // for good (the resumed `last` would already claim the improvement).
    if improved {
        checkpoint::save(&opts.out, "best", model, opt, meta)?;
    }
    checkpoint::save(&opts.out, "last", model, opt, meta)?;
    // A run that replaced another (`--overwrite`) now has a checkpoint of its own.
    folder::remove_replaced(&opts.out)?;
    Ok(())
}
