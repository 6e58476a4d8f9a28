//! Datasets: IDX (MNIST, Fashion-MNIST; raw or gzipped) and CIFAR-10/100 binary batches held
//! in memory, class-per-folder PNG/JPEG images read from disk batch by batch (`folder`, with
//! torchvision's transforms in `transform`), per-channel normalisation, augmentation, seeded
//! shuffling, and a loader thread that prepares batches while the previous one trains.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod transform;

use crate::backend::Label;
use folder::{FolderOptions, ImageFolder};

use anyhow::{bail, Context, Result};
use ndarray::{s, Array4, ArrayView4, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// Images as bytes, `N×C×H×W`, with labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Pixels, `n·c·h·w` bytes.
    pub images: Vec<u8>,
    /// One label per image, `< classes`.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// The images as an `N×C×H×W` array view (the layout [`Dataset::validate`] checks).
    pub fn view(&self) -> ArrayView4<'_, u8> {
        ArrayView4::from_shape((self.n, self.c, self.h, self.w), &self.images)
            .expect("images hold n·c·h·w bytes (checked by Dataset::validate)")
    }

    /// Check sizes and labels; `what` names the data in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        if self.images.len() != self.n * self.c * self.h * self.w {
            bail!(
                "{what}: {} pixel bytes for {} images of {}×{}×{}",
                self.images.len(),
                self.n,
                self.c,
                self.h,
                self.w
            );
        }
        if self.labels.len() != self.n {
            bail!("{what}: {} labels for {} images", self.labels.len(), self.n);
        }
        if let Some(&l) = self.labels.iter().find(|&&l| l as usize >= self.classes) {
            bail!(
                "{what}: label {l} out of range for {} classes",
                self.classes
            );
        }
        if self.n == 0 {
            bail!("{what}: no images");
        }
        Ok(())
    }
}

/// Which dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST (28×28×1, 10 classes): embedded subset, the Debian package, or --data-dir.
    FashionMnist,
    /// MNIST (28×28×1, 10 classes) from --data-dir.
    Mnist,
    /// CIFAR-10 (32×32×3) binary batches from --data-dir.
    Cifar10,
    /// CIFAR-100 (32×32×3, fine labels) binary batches from --data-dir.
    Cifar100,
    /// Your own images: class folders of PNG/JPEG files in --data-dir (torchvision's
    /// ImageFolder layout), read from disk batch by batch.
    Folder,
}

crate::choice_table!(DatasetKind {
    FashionMnist => "fashion-mnist", "Fashion-MNIST (28×28×1, 10 classes): embedded subset, the Debian package, or --data-dir",
    Mnist => "mnist", "MNIST (28×28×1, 10 classes) from --data-dir",
    Cifar10 => "cifar10", "CIFAR-10 (32×32×3) binary batches from --data-dir",
    Cifar100 => "cifar100", "CIFAR-100 (32×32×3, fine labels) binary batches from --data-dir",
    Folder => "folder", "Your own images: class folders of PNG/JPEG files in --data-dir (torchvision's ImageFolder layout), read from disk batch by batch",
});

impl DatasetKind {
    /// Whether horizontal flips are a sensible augmentation (not for digits).
    pub fn flips(&self) -> bool {
        !matches!(self, DatasetKind::Mnist)
    }
}

/// Where the Debian package `dataset-fashion-mnist` puts the full set.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

const SUBSET: [&[u8]; 4] = [
    include_bytes!("fashion-mnist-subset/train-images-idx3-ubyte.gz"),
    include_bytes!("fashion-mnist-subset/train-labels-idx1-ubyte.gz"),
    include_bytes!("fashion-mnist-subset/t10k-images-idx3-ubyte.gz"),
    include_bytes!("fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"),
];

/// The images of one side of a split: held in memory (IDX, CIFAR), or read from disk batch by
/// batch (class folders).
#[derive(Debug)]
pub enum Images {
    /// Every image in memory.
    Memory(Dataset),
    /// A class-per-folder dataset.
    Folder(ImageFolder),
}

impl Images {
    /// Number of images.
    pub fn n(&self) -> usize {
        match self {
            Images::Memory(d) => d.n,
            Images::Folder(f) => f.len(),
        }
    }

    /// (channels, height, width) of the images the network sees.
    pub fn dims(&self) -> (usize, usize, usize) {
        match self {
            Images::Memory(d) => (d.c, d.h, d.w),
            Images::Folder(f) => (f.channels, f.transforms.size, f.transforms.size),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Images::Memory(d) => d.classes,
            Images::Folder(f) => f.classes.len(),
        }
    }

    /// The class names of a folder dataset (label order).
    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            Images::Memory(_) => None,
            Images::Folder(f) => Some(&f.classes),
        }
    }

    /// Bytes of images held in memory (a folder dataset holds none but its batches ahead).
    pub fn resident_bytes(&self) -> u64 {
        match self {
            Images::Memory(d) => d.images.len() as u64,
            Images::Folder(_) => 0,
        }
    }

    /// How many batches the loader prepares ahead.
    pub fn prefetch(&self) -> usize {
        match self {
            Images::Memory(_) => 2,
            Images::Folder(f) => f.prefetch,
        }
    }

    /// Per-channel mean and std of the images in [0, 1]: over the pixels (in memory), or as a
    /// folder dataset's transforms give them, else over its images after the evaluation
    /// transforms.
    pub fn channel_stats(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        match self {
            Images::Memory(d) => Ok(channel_stats(d)),
            Images::Folder(f) => match (&f.transforms.mean, &f.transforms.std) {
                (Some(m), Some(s)) => Ok((m.clone(), s.clone())),
                _ => f.channel_stats(),
            },
        }
    }

    /// The batch of the images at `indices`, positions `first..` of their epoch (a folder
    /// dataset's draws are seeded by position; the in-memory sets draw from `rng` in order).
    /// A folder image that cannot be read is left out of the batch and named in
    /// [`Batch::skipped`] (with `--strict-data`: an error).
    pub fn batch(
        &self,
        plan: &BatchPlan,
        indices: &[usize],
        first: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Batch> {
        match self {
            Images::Memory(d) => Ok(make_batch(d, plan, indices, rng)),
            Images::Folder(f) => {
                let (c, h, w) = self.dims();
                let per = c * h * w;
                let mut x = vec![0f32; indices.len() * per];
                let why = f.fill(
                    indices,
                    first,
                    plan.shuffle_seed.unwrap_or(0),
                    plan.augment,
                    (&plan.mean, &plan.std),
                    &mut x,
                );
                let mut y = Vec::with_capacity(indices.len());
                let mut skipped = Vec::new();
                let mut keep = 0;
                for (slot, (&i, why)) in indices.iter().zip(why).enumerate() {
                    match why {
                        Some(msg) if f.strict => bail!("{msg} (--strict-data)"),
                        Some(msg) => skipped.push(msg),
                        None => {
                            if keep != slot {
                                x.copy_within(slot * per..(slot + 1) * per, keep * per);
                            }
                            keep += 1;
                            y.push(f.items[i].label);
                        }
                    }
                }
                x.truncate(keep * per);
                Ok(Batch { x, y, skipped })
            }
        }
    }
}

/// A train/test pair and a description of where it came from.
#[derive(Debug)]
pub struct Split {
    /// Training set.
    pub train: Images,
    /// Test set.
    pub test: Images,
    /// Human description, printed at the start of every run.
    pub source: String,
    /// The dataset.
    pub kind: DatasetKind,
    /// Where it was read: [`EMBEDDED`], or the absolute folder.
    pub location: String,
}

/// The [`Split::location`] of the embedded subset.
pub const EMBEDDED: &str = "embedded";

/// Which copy of the data to read when no `--data-dir` is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataChoice {
    /// `--data-dir` when given; else Fashion-MNIST's full set when installed, else the embedded
    /// subset.
    #[default]
    Auto,
    /// The embedded 2 000/500 Fashion-MNIST subset, even when the full set is installed.
    Embedded,
    /// The full Fashion-MNIST set of the Debian package; an error when it is not installed.
    Installed,
}

crate::choice_table!(DataChoice {
    Auto => "auto", "`--data-dir` when given; else Fashion-MNIST's full set when installed, else the embedded subset",
    Embedded => "embedded", "The embedded 2 000/500 Fashion-MNIST subset, even when the full set is installed",
    Installed => "installed", "The full Fashion-MNIST set of the Debian package; an error when it is not installed",
});

impl DataChoice {
    /// Whether this is the default (left out of recorded recipes, so their hashes do not change).
    pub fn is_auto(&self) -> bool {
        *self == DataChoice::Auto
    }
}

/// What a run was trained on, recorded in its checkpoint so that a resumed run or a study
/// that reads a run back can tell the same data from other data of the same shape.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataIdentity {
    /// Where it was read: `embedded`, or the absolute folder.
    pub location: String,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
    /// SHA-256 (hex) of the training images, training labels, test images and test labels,
    /// each preceded by its length.
    pub sha256: String,
}

impl DataIdentity {
    /// One line for messages: "embedded, 2000 train / 500 test, sha256 1a2b3c4d…".
    pub fn describe(&self) -> String {
        format!(
            "{}, {} train / {} test, sha256 {}…",
            self.location,
            self.train,
            self.test,
            self.sha256.get(..12).unwrap_or(&self.sha256)
        )
    }
}

impl Split {
    /// The data's identity: its location, counts and a hash of its contents (about 0.2 s for
    /// the full Fashion-MNIST set; a folder dataset's listing, see [`ImageFolder::hash_into`]).
    pub fn identity(&self) -> DataIdentity {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        match (&self.train, &self.test) {
            (Images::Memory(train), Images::Memory(test)) => {
                for part in [&train.images, &train.labels, &test.images, &test.labels] {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part);
                }
            }
            (train, test) => {
                // Folder datasets: their listings (names, labels, sizes), not their pixels.
                for side in [train, test] {
                    if let Images::Folder(f) = side {
                        f.hash_into(&mut h);
                    }
                }
            }
        }
        DataIdentity {
            location: self.location.clone(),
            train: self.train.n(),
            test: self.test.n(),
            sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// A folder as an absolute path (for the record; not resolving links), or as given when the
/// current folder cannot be read.
pub fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn idx_pair(dir: &Path, prefix: &str, classes: usize) -> Result<Dataset> {
    let find = |stem: &str| -> Result<PathBuf> {
        for name in [format!("{prefix}-{stem}"), format!("{prefix}-{stem}.gz")] {
            let p = dir.join(&name);
            if p.exists() {
                return Ok(p);
            }
        }
        bail!("{}: missing {prefix}-{stem}[.gz]", dir.display())
    };
    let images = find("images-idx3-ubyte")?;
    let labels = find("labels-idx1-ubyte")?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    idx::pair(
        &read(&images)?,
        &images.display().to_string(),
        &read(&labels)?,
        &labels.display().to_string(),
        classes,
    )
}

/// Load a dataset: from `dir` when given, else (Fashion-MNIST only) the Debian package when
/// installed, else the embedded 2 000/500 subset.
pub fn load(kind: DatasetKind, dir: Option<&Path>) -> Result<Split> {
    load_choice(kind, dir, DataChoice::Auto, None)
}

fn embedded_subset(kind: DatasetKind) -> Result<Split> {
    let train = idx::pair(
        SUBSET[0],
        "embedded train images",
        SUBSET[1],
        "embedded train labels",
        10,
    )?;
    let test = idx::pair(
        SUBSET[2],
        "embedded test images",
        SUBSET[3],
        "embedded test labels",
        10,
    )?;
    Ok(Split {
        source: format!("Fashion-MNIST, embedded subset ({} train / {} test; the full set: apt-get install dataset-fashion-mnist)", train.n, test.n),
        train: Images::Memory(train),
        test: Images::Memory(test),
        kind,
        location: EMBEDDED.to_string(),
    })
}

fn installed_full_set(kind: DatasetKind) -> Result<Split> {
    let debian = Path::new(DEBIAN_FASHION_MNIST);
    let train = idx_pair(debian, "train", 10)?;
    let test = idx_pair(debian, "t10k", 10)?;
    Ok(Split {
        source: format!(
            "Fashion-MNIST, full set from {DEBIAN_FASHION_MNIST} ({} train / {} test)",
            train.n, test.n
        ),
        train: Images::Memory(train),
        test: Images::Memory(test),
        kind,
        location: DEBIAN_FASHION_MNIST.to_string(),
    })
}

/// [`load`], with the copy `choice` names when no `dir` is given (`--data`).
/// A folder dataset is read as `folder` says (None: the CIFAR-style defaults).
pub fn load_choice(
    kind: DatasetKind,
    dir: Option<&Path>,
    choice: DataChoice,
    folder: Option<&FolderOptions>,
) -> Result<Split> {
    match (choice, kind, dir) {
        (DataChoice::Auto, _, _) => {}
        (_, _, Some(d)) => bail!(
            "--data {} and --data-dir {} name two sources: give one",
            crate::choice::Choice::name(choice),
            d.display()
        ),
        (_, k, None) if k != DatasetKind::FashionMnist => bail!(
            "--data embedded and --data installed are Fashion-MNIST's; {k:?} reads --data-dir"
        ),
        (DataChoice::Embedded, _, None) => return embedded_subset(kind),
        (DataChoice::Installed, _, None) => {
            if !Path::new(DEBIAN_FASHION_MNIST)
                .join("train-images-idx3-ubyte.gz")
                .exists()
            {
                bail!("--data installed: the full Fashion-MNIST set is not in {DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist, or --data embedded for the subset)");
            }
            return installed_full_set(kind);
        }
    }
    match (kind, dir) {
        (DatasetKind::FashionMnist | DatasetKind::Mnist, Some(d)) => {
            let name = if kind == DatasetKind::Mnist { "MNIST" } else { "Fashion-MNIST" };
            let train = idx_pair(d, "train", 10)?;
            let test = idx_pair(d, "t10k", 10)?;
            Ok(Split { source: format!("{name} from {} ({} train / {} test)", d.display(), train.n, test.n), train: Images::Memory(train), test: Images::Memory(test), kind, location: absolute(d).display().to_string() })
        }
        (DatasetKind::Mnist, None) => bail!("MNIST needs --data-dir with train-images-idx3-ubyte[.gz] and friends"),
        (DatasetKind::FashionMnist, None) => {
            if Path::new(DEBIAN_FASHION_MNIST).join("train-images-idx3-ubyte.gz").exists() {
                return installed_full_set(kind);
            }
            embedded_subset(kind)
        }
        (DatasetKind::Cifar10 | DatasetKind::Cifar100, Some(d)) => cifar::load(kind, d),
        (DatasetKind::Cifar10 | DatasetKind::Cifar100, None) => bail!("CIFAR needs --data-dir with the binary batches (cifar-10-batches-bin or cifar-100-binary)"),
        (DatasetKind::Folder, Some(d)) => {
            let default = FolderOptions::default_for(transform::Preset::Cifar);
            load_folder(d, folder.unwrap_or(&default), &mut |w| eprintln!("{w}"))
        }
        (DatasetKind::Folder, None) => bail!("--dataset folder needs --data-dir DIR with one folder of PNG/JPEG images per class (DIR/<class>/*.jpg, or DIR/train/<class> and DIR/val/<class>)"),
    }
}

/// Scan a class-per-folder dataset (see [`folder::layout`] for where its two sides are found);
/// warnings about skipped files go to `warn`.
pub fn load_folder(dir: &Path, opts: &FolderOptions, warn: &mut dyn FnMut(&str)) -> Result<Split> {
    let (train_dir, val_dir, holdout) = folder::layout(dir, opts)?;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(opts.workers.max(1))
            .thread_name(|i| format!("decode-{i}"))
            .build()
            .context("cannot start the decoding threads")?,
    );
    let hold = |keep_held: bool| holdout.then_some((keep_held, opts.val_fraction));
    let train = ImageFolder::scan(
        &train_dir,
        None,
        opts,
        true,
        pool.clone(),
        hold(false),
        warn,
    )?;
    let test = ImageFolder::scan(
        &val_dir,
        Some(&train.classes),
        opts,
        false,
        pool,
        hold(true),
        warn,
    )?;
    if test.channels != train.channels {
        bail!(
            "mixed channel counts: the training images have {} channels, the evaluation images {}; give --channels 1 or --channels 3 to convert every image",
            train.channels,
            test.channels
        );
    }
    let skipped = train.skipped.len() + test.skipped.len();
    let source = format!(
        "class folders in {} ({} classes, {} train / {} {}{}; {}×{}×{} after the transforms)",
        dir.display(),
        train.classes.len(),
        train.len(),
        test.len(),
        if holdout {
            format!(
                "held out ({:.0} % of each class)",
                opts.val_fraction * 100.0
            )
        } else {
            format!("evaluation from {}", val_dir.display())
        },
        if skipped > 0 {
            format!(", {skipped} unreadable files skipped")
        } else {
            String::new()
        },
        train.channels,
        opts.transforms.size,
        opts.transforms.size
    );
    Ok(Split {
        source,
        train: Images::Folder(train),
        test: Images::Folder(test),
        kind: DatasetKind::Folder,
        location: absolute(dir).display().to_string(),
    })
}

/// Per-channel mean and standard deviation of a dataset's pixels scaled to [0, 1].
pub fn channel_stats(d: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0f64; d.c];
    let mut sq = vec![0f64; d.c];
    for img in d.view().outer_iter() {
        for (ch, plane) in img.outer_iter().enumerate() {
            for &p in plane.iter() {
                let v = p as f64 / 255.0;
                mean[ch] += v;
                sq[ch] += v * v;
            }
        }
    }
    let count = (d.n * d.h * d.w) as f64;
    let m: Vec<f32> = mean.iter().map(|s| (s / count) as f32).collect();
    let s: Vec<f32> = sq
        .iter()
        .zip(&mean)
        .map(|(q, s)| ((q / count - (s / count).powi(2)).max(1e-12)).sqrt() as f32)
        .collect();
    (m, s)
}

/// How batches are made.
#[derive(Clone, Debug)]
pub struct BatchPlan {
    /// Images per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Shuffle with this seed (None: dataset order).
    pub shuffle_seed: Option<u64>,
    /// Random-crop padding (0: no crop).
    pub crop_pad: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Per-channel normalisation.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
    /// A folder dataset applies its training transforms (in-memory sets augment as
    /// `crop_pad` and `flip` say).
    pub augment: bool,
}

/// One batch: normalised `B×C×H×W` floats and labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Pixels.
    pub x: Vec<f32>,
    /// Labels.
    pub y: Vec<Label>,
    /// Images left out because they could not be read (folder datasets), each "FILE: why".
    pub skipped: Vec<String>,
}

/// Build every batch of an epoch in order (deterministic for a seed).
pub fn make_batch(d: &Dataset, plan: &BatchPlan, indices: &[usize], rng: &mut ChaCha8Rng) -> Batch {
    let (c, h, w) = (d.c, d.h, d.w);
    let images = d.view();
    let mut x = Array4::<f32>::zeros((indices.len(), c, h, w));
    let mut y = Vec::with_capacity(indices.len());
    for (b, &i) in indices.iter().enumerate() {
        let (dy, dx, flip) = if plan.crop_pad > 0 || plan.flip {
            let p = plan.crop_pad as isize;
            let dy = if p > 0 { rng.gen_range(-p..=p) } else { 0 };
            let dx = if p > 0 { rng.gen_range(-p..=p) } else { 0 };
            (dy, dx, plan.flip && rng.gen_bool(0.5))
        } else {
            (0, 0, false)
        };
        let img = images.index_axis(Axis(0), i);
        for ch in 0..c {
            let (m, s) = (plan.mean[ch], plan.std[ch]);
            let zero = (0.0 - m) / s;
            let src = img.index_axis(Axis(0), ch);
            for ((r, col), v) in x.slice_mut(s![b, ch, .., ..]).indexed_iter_mut() {
                // Output pixel (r, col) reads the source shifted by the crop offset; outside
                // the image it is the zero padding.
                let sr = r as isize + dy;
                let sc0 = col as isize + dx;
                let sc = if flip { w as isize - 1 - sc0 } else { sc0 };
                *v = if sr < 0 || sc < 0 || sr >= h as isize || sc >= w as isize {
                    zero
                } else {
                    (src[[sr as usize, sc as usize]] as f32 / 255.0 - m) / s
                };
            }
        }
        y.push(d.labels[i] as Label);
    }
    let (x, _) = x.into_raw_vec_and_offset();
    Batch {
        x,
        y,
        skipped: Vec::new(),
    }
}

/// The order of an epoch: a seeded shuffle, or the dataset order.
pub fn epoch_order(n: usize, seed: Option<u64>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if let Some(s) = seed {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
    }
    idx
}

/// Prepare an epoch's batches on a background thread (two ahead in memory, three for a folder
/// dataset, whose images are decoded on its own threads), so loading and augmentation overlap
/// with training; memory is bounded by those batches, not by the dataset. `max_batches` stops
/// early. A batch that could not be made ends the epoch with its error.
pub fn spawn_loader(
    d: Arc<Images>,
    plan: BatchPlan,
    max_batches: Option<usize>,
) -> Receiver<Result<Batch>> {
    let (tx, rx) = sync_channel(d.prefetch());
    std::thread::spawn(move || {
        let order = epoch_order(d.n(), plan.shuffle_seed);
        // Augmentation draws from its own stream, derived from the shuffle seed.
        let mut rng =
            ChaCha8Rng::seed_from_u64(plan.shuffle_seed.unwrap_or(0) ^ 0xA5A5_5A5A_1234_5678);
        for (k, chunk) in order.chunks(plan.batch_size).enumerate() {
            if max_batches.is_some_and(|m| k >= m) {
                break;
            }
            let b = d.batch(&plan, chunk, k * plan.batch_size, &mut rng);
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_subset_loads_and_is_balanced_enough() {
        let s = load(
            DatasetKind::FashionMnist,
            Some(Path::new("src/data/fashion-mnist-subset")),
        )
        .unwrap();
        assert_eq!((s.train.n(), s.test.n()), (2000, 500));
        assert_eq!(s.train.dims(), (1, 28, 28));
        let Images::Memory(train) = &s.train else {
            panic!("the subset is held in memory")
        };
        for k in 0..10u8 {
            assert!(train.labels.iter().filter(|&&l| l == k).count() > 150);
        }
    }

    #[test]
    fn batches_normalise_and_crop_deterministically() {
        let d = Dataset {
            images: (0..2 * 4 * 4).map(|v| v as u8 * 10).collect(),
            labels: vec![0, 1],
            n: 2,
            c: 1,
            h: 4,
            w: 4,
            classes: 2,
        };
        let plan = BatchPlan {
            batch_size: 2,
            shuffle_seed: None,
            crop_pad: 0,
            flip: false,
            mean: vec![0.0],
            std: vec![1.0],
            augment: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let b = make_batch(&d, &plan, &[1, 0], &mut rng);
        assert_eq!(b.y, vec![1, 0]);
        assert!((b.x[0] - 160.0 / 255.0).abs() < 1e-6);
        let aug = BatchPlan {
            crop_pad: 1,
            flip: true,
            ..plan
        };
        let a1 = make_batch(&d, &aug, &[0, 1], &mut ChaCha8Rng::seed_from_u64(9));
        let a2 = make_batch(&d, &aug, &[0, 1], &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a1.x, a2.x);
        assert_eq!(epoch_order(10, Some(3)), epoch_order(10, Some(3)));
        assert_ne!(epoch_order(10, Some(3)), epoch_order(10, Some(4)));
    }
}
