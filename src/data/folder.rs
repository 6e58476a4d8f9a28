//! Class-per-folder image datasets (torchvision's `ImageFolder` convention): `DIR/<class>/*.png`
//! or `*.jpg`, classes numbered in the sorted order of their folder names, images read from
//! disk batch by batch — only the file list is held in memory.
//!
//! A folder is scanned once: every image's header is read (in parallel) for its size and
//! channels, so an unreadable file, a class left without images, mixed channel counts or an
//! image too small for the crop are found before training, each named. A file whose header
//! reads but whose pixels do not is skipped when a batch meets it, with a warning that names
//! it (`--strict-data`: an error).

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::transform::{self, Decoded, Transforms};
use crate::backend::Label;

/// How a folder dataset is read, split and transformed (`--dataset folder`): recorded in the
/// checkpoint, so that `evaluate` and `--resume` read it the same way.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FolderOptions {
    /// The evaluation images (class folders); None: `DIR/val` or `DIR/test` when `DIR/train`
    /// exists, else a held-out share of `DIR`.
    pub val_dir: Option<PathBuf>,
    /// The share of each class held out for evaluation when there is no evaluation folder.
    pub val_fraction: f64,
    /// The transforms.
    pub transforms: Transforms,
    /// Convert every image to this many channels (1: grey, 3: RGB); None: the images' own,
    /// which must then agree.
    pub channels: Option<usize>,
    /// An unreadable image is an error instead of a skipped file.
    pub strict: bool,
    /// Decoding threads (do not change results).
    #[serde(skip, default = "default_workers")]
    pub workers: usize,
    /// Batches prepared ahead of the trainer (do not change results; bound the memory).
    #[serde(skip, default = "default_prefetch")]
    pub prefetch: usize,
}

impl FolderOptions {
    /// A preset's transforms at its default size, a 10 % held-out share, the images' own
    /// channels, skipped unreadable files, all cores decoding, three batches ahead.
    pub fn default_for(p: transform::Preset) -> Self {
        FolderOptions {
            val_dir: None,
            val_fraction: 0.1,
            transforms: Transforms::preset(p, None),
            channels: None,
            strict: false,
            workers: default_workers(),
            prefetch: default_prefetch(),
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn default_prefetch() -> usize {
    3
}

/// The image files a folder dataset reads, by extension (case ignored), as torchvision's
/// loader would find them among PNG and JPEG.
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The most pixels an image may have to be decoded: PIL's decompression-bomb limit
/// (`Image.MAX_IMAGE_PIXELS`), read from the header before anything is allocated. A 29 kB PNG
/// can claim 10⁷ × 1 pixels; past this it is skipped with a warning (an error with
/// `--strict-data`).
pub const MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// The most pixels `Resize` may produce from one image: an extreme aspect ratio (10⁶ × 1
/// resized so that its short side is 256) would otherwise ask for gigabytes.
pub const MAX_RESIZED_PIXELS: u64 = 1 << 24;

/// Whether an image of `w×h` can go through the transforms `t` within the bounds above; the
/// reason otherwise.
pub fn check_geometry(w: usize, h: usize, t: &transform::Transforms) -> Result<()> {
    let pixels = w as u64 * h as u64;
    if pixels > MAX_IMAGE_PIXELS {
        bail!("{w}×{h} is {pixels} pixels, more than the {MAX_IMAGE_PIXELS} this loader decodes");
    }
    if t.resize != 0 && w > 0 && h > 0 {
        let short = w.min(h) as u64;
        let long = w.max(h) as u64;
        let resized = (t.resize as u64)
            .saturating_mul(t.resize as u64)
            .saturating_mul(long)
            / short;
        if resized > MAX_RESIZED_PIXELS {
            bail!(
                "{w}×{h} resized to a short side of {} would be about {resized} pixels, more than the {MAX_RESIZED_PIXELS} allowed (an extreme aspect ratio)",
                t.resize
            );
        }
    }
    Ok(())
}

/// One image of a folder dataset.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its file.
    pub path: PathBuf,
    /// Its class.
    pub label: Label,
    /// The file's size in bytes at the scan (part of the data's identity).
    pub bytes: u64,
}

/// One side (training or evaluation) of a folder dataset.
#[derive(Debug)]
pub struct ImageFolder {
    /// Where it was read.
    pub root: PathBuf,
    /// Class names, sorted; a label is an index into them.
    pub classes: Vec<String>,
    /// The images, by class then file name.
    pub items: Vec<Item>,
    /// Channels of every image as the network sees it.
    pub channels: usize,
    /// Files whose header could not be read (skipped), with the reason.
    pub skipped: Vec<String>,
    /// The transforms.
    pub transforms: Transforms,
    /// Whether this side is augmented (the training side).
    pub train: bool,
    /// See [`FolderOptions::strict`].
    pub strict: bool,
    /// Decoding threads.
    pub pool: Arc<rayon::ThreadPool>,
    /// Batches prepared ahead of the trainer.
    pub prefetch: usize,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    v.retain(|p| {
        !p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
    });
    v.sort();
    Ok(v)
}

/// Warn about each entry of `dir` that cannot be inspected (a symbolic link to itself or to
/// nothing): it is left out, and named rather than passed over in silence.
fn unreadable_entries(dir: &Path, warn: &mut dyn FnMut(&str)) -> Result<()> {
    for p in sorted_entries(dir)? {
        if let Err(e) = std::fs::metadata(&p) {
            let why = if e.raw_os_error() == Some(libc::ELOOP) {
                "a symbolic link loop".to_string()
            } else {
                e.to_string()
            };
            warn(&format!("warning: skipped {}: {why}", p.display()));
        }
    }
    Ok(())
}

/// The class folders of `dir`, sorted by name.
pub fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let classes: Vec<(String, PathBuf)> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                p,
            )
        })
        .collect();
    if classes.is_empty() {
        bail!(
            "{}: no class folders (expected DIR/<class>/*.png|jpg, one folder per class)",
            dir.display()
        );
    }
    if classes.len() > Label::MAX as usize + 1 {
        bail!(
            "{}: {} class folders; at most {} are supported",
            dir.display(),
            classes.len(),
            Label::MAX as usize + 1
        );
    }
    Ok(classes)
}

/// What a header says: (width, height, channels as the network would see them, file size);
/// an image the transforms `t` cannot take within the loader's bounds is an error (skipped).
fn header(p: &Path, t: &transform::Transforms) -> Result<(usize, usize, usize, u64)> {
    use image::ImageDecoder;
    let bytes = std::fs::metadata(p)?.len();
    let d = image::ImageReader::open(p)?
        .with_guessed_format()?
        .into_decoder()?;
    let (w, h) = d.dimensions();
    check_geometry(w as usize, h as usize, t)?;
    Ok((w as usize, h as usize, channels_of(d.color_type()), bytes))
}

/// The image crate's own limits, as a second line behind [`check_geometry`]: a file that grew
/// between the scan and the decoding is still bounded.
fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(MAX_IMAGE_PIXELS * 4 + (64 << 20));
    l
}

fn channels_of(c: image::ColorType) -> usize {
    use image::ColorType as C;
    match c {
        C::L8 | C::L16 | C::La8 | C::La16 => 1,
        _ => 3,
    }
}

/// Decode one image to `channels` (1: grey, 3: RGB; alpha dropped, palettes expanded).
pub fn decode(p: &Path, channels: usize) -> Result<Decoded> {
    let mut reader = image::ImageReader::open(p)?.with_guessed_format()?;
    reader.limits(limits());
    let img = reader.decode()?;
    if img.width() as u64 * img.height() as u64 > MAX_IMAGE_PIXELS {
        bail!(
            "{}×{} is more than the {MAX_IMAGE_PIXELS} pixels this loader decodes",
            img.width(),
            img.height()
        );
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pixels = if channels == 1 {
        img.into_luma8().into_raw()
    } else {
        img.into_rgb8().into_raw()
    };
    Ok(Decoded {
        pixels,
        w,
        h,
        c: channels,
    })
}

impl ImageFolder {
    /// Scan `root`'s class folders with `classes` (None: the folder's own); `train` marks the
    /// augmented side. Warnings (skipped files) go to `warn`.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        root: &Path,
        classes: Option<&[String]>,
        opts: &FolderOptions,
        train: bool,
        pool: Arc<rayon::ThreadPool>,
        holdout: Option<(bool, f64)>,
        warn: &mut dyn FnMut(&str),
    ) -> Result<ImageFolder> {
        unreadable_entries(root, warn)?;
        let found = class_folders(root)?;
        let names: Vec<String> = found.iter().map(|(n, _)| n.clone()).collect();
        if let Some(want) = classes {
            if want != names.as_slice() {
                bail!(
                    "{}: its classes differ from the training folder's ({}): {}",
                    root.display(),
                    first_difference(want, &names),
                    "every split needs the same class folders"
                );
            }
        }
        let mut items: Vec<(PathBuf, Label)> = Vec::new();
        for (label, (name, dir)) in found.iter().enumerate() {
            unreadable_entries(dir, warn)?;
            let files: Vec<PathBuf> = sorted_entries(dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if files.is_empty() {
                bail!(
                    "{}: the class folder {name} has no images (.png, .jpg, .jpeg); remove it or add images",
                    dir.display()
                );
            }
            let files = match holdout {
                Some((keep_held, fraction)) => held_out(files, fraction, keep_held),
                None => files,
            };
            items.extend(files.into_iter().map(|p| (p, label as Label)));
        }
        let headers: Vec<Result<(usize, usize, usize, u64)>> = pool.install(|| {
            items
                .par_iter()
                .map(|(p, _)| header(p, &opts.transforms))
                .collect()
        });
        let t = &opts.transforms;
        // Without a resize the centre crop (evaluation, and the training set's statistics)
        // needs the whole square.
        let min = if t.resize == 0 { t.size } else { 1 };
        let mut kept = Vec::with_capacity(items.len());
        let mut skipped = Vec::new();
        let mut seen: [Option<&Path>; 4] = [None; 4];
        for ((p, label), h) in items.iter().zip(&headers) {
            match h {
                Ok((w, hh, c, bytes)) => {
                    if seen[*c].is_none() {
                        seen[*c] = Some(p);
                    }
                    if *w < min || *hh < min {
                        bail!(
                            "{}: {w}×{hh} is smaller than the {s}×{s} crop (give --resize, or a smaller --size)",
                            p.display(),
                            s = t.size
                        );
                    }
                    kept.push(Item {
                        path: p.clone(),
                        label: *label,
                        bytes: *bytes,
                    });
                }
                Err(e) => {
                    let msg = format!("{}: {e}", p.display());
                    if opts.strict {
                        bail!("{msg} (--strict-data)");
                    }
                    warn(&format!("warning: skipped an unreadable image: {msg}"));
                    skipped.push(msg);
                }
            }
        }
        let channels = match (opts.channels, seen[1], seen[3]) {
            (Some(c), _, _) => c,
            (None, Some(g), Some(rgb)) => bail!(
                "mixed channel counts: {} is grey, {} is colour; give --channels 1 or --channels 3 to convert every image",
                g.display(),
                rgb.display()
            ),
            (None, Some(_), None) => 1,
            _ => 3,
        };
        t.validate(channels)?;
        for (label, name) in names.iter().enumerate() {
            if !kept.iter().any(|it| it.label as usize == label) {
                bail!(
                    "{}: the class folder {name} has no readable images",
                    root.display()
                );
            }
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes: names,
            items: kept,
            channels,
            skipped,
            transforms: t.clone(),
            train,
            strict: opts.strict,
            pool,
            prefetch: opts.prefetch.max(1),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none (never, after a scan).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Hash the listing: class names, then every image's path below the root, label and size
    /// in bytes at the scan (the contents are not read — hashing ImageNet's 140 GB would take
    /// longer than an epoch —, so a file rewritten in place with the same size is not noticed).
    pub fn hash_into(&self, h: &mut sha2::Sha256) {
        use sha2::Digest;
        h.update((self.classes.len() as u64).to_le_bytes());
        for c in &self.classes {
            h.update((c.len() as u64).to_le_bytes());
            h.update(c.as_bytes());
        }
        h.update((self.items.len() as u64).to_le_bytes());
        for it in &self.items {
            let rel = it
                .path
                .strip_prefix(&self.root)
                .unwrap_or(&it.path)
                .to_string_lossy();
            h.update((rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            h.update(it.label.to_le_bytes());
            h.update(it.bytes.to_le_bytes());
        }
    }

    /// Transform the images at `indices` (positions `first..` of the epoch, whose draws seed
    /// from `epoch_seed`) into `out` (`indices.len()` slots of `c×size×size`) on the pool.
    /// Returns, per slot, None or why that image was skipped.
    pub fn fill(
        &self,
        indices: &[usize],
        first: usize,
        epoch_seed: u64,
        augment: bool,
        (mean, std): (&[f32], &[f32]),
        out: &mut [f32],
    ) -> Vec<Option<String>> {
        let per = self.channels * self.transforms.size * self.transforms.size;
        self.pool.install(|| {
            out.par_chunks_mut(per)
                .zip(indices.par_iter().enumerate())
                .map(|(slot, (k, &i))| {
                    let p = &self.items[i].path;
                    let mut rng = transform::sample_rng(epoch_seed, first + k);
                    decode(p, self.channels)
                        .and_then(|img| {
                            transform::apply(
                                &self.transforms,
                                &img,
                                augment && self.train,
                                mean,
                                std,
                                &mut rng,
                                slot,
                            )
                        })
                        .err()
                        .map(|e| format!("{}: {e}", p.display()))
                })
                .collect()
        })
    }

    /// Per-channel mean and std of the training images after the evaluation transforms,
    /// in [0, 1] (sums per image in parallel, added in file order: the same bits on any
    /// number of threads).
    pub fn channel_stats(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let s = self.transforms.size;
        let c = self.channels;
        let ones = vec![1.0f32; c];
        let zeros = vec![0.0f32; c];
        let sums: Vec<Result<Vec<(f64, f64)>>> = self.pool.install(|| {
            self.items
                .par_iter()
                .map(|it| {
                    let img = decode(&it.path, c)?;
                    let mut buf = vec![0f32; c * s * s];
                    let mut rng = transform::sample_rng(0, 0);
                    transform::apply(
                        &self.transforms,
                        &img,
                        false,
                        &zeros,
                        &ones,
                        &mut rng,
                        &mut buf,
                    )?;
                    Ok(buf
                        .chunks(s * s)
                        .map(|plane| {
                            plane.iter().fold((0f64, 0f64), |(a, b), &v| {
                                (a + v as f64, b + (v as f64) * (v as f64))
                            })
                        })
                        .collect())
                })
                .collect()
        });
        let mut total = vec![(0f64, 0f64); c];
        let mut n = 0usize;
        for (r, it) in sums.into_iter().zip(&self.items) {
            match r {
                Ok(v) => {
                    for (t, x) in total.iter_mut().zip(v) {
                        t.0 += x.0;
                        t.1 += x.1;
                    }
                    n += 1;
                }
                Err(e) if self.strict => bail!("{}: {e:#} (--strict-data)", it.path.display()),
                Err(_) => {}
            }
        }
        if n == 0 {
            bail!("{}: no image could be read", self.root.display());
        }
        let count = (n * s * s) as f64;
        let mean: Vec<f32> = total.iter().map(|t| (t.0 / count) as f32).collect();
        let std: Vec<f32> = total
            .iter()
            .map(|t| ((t.1 / count - (t.0 / count).powi(2)).max(1e-12)).sqrt() as f32)
            .collect();
        Ok((mean, std))
    }
}

/// The files of one class kept for training (`keep_held` false) or held out for evaluation:
/// a `fraction` of them (at least one, and never all when there are two or more), chosen by a
/// fixed seed, so every run's split is the same whatever its `--seed`.
fn held_out(files: Vec<PathBuf>, fraction: f64, keep_held: bool) -> Vec<PathBuf> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let n = files.len();
    let k = if n < 2 {
        0
    } else {
        ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x5EED_F01D));
    let mut held = vec![false; n];
    for &i in &order[..k] {
        held[i] = true;
    }
    files
        .into_iter()
        .zip(held)
        .filter(|(_, h)| *h == keep_held)
        .map(|(f, _)| f)
        .collect()
}

/// "class 2 is dog here, cat there" — the first place two class lists part.
pub fn first_difference(a: &[String], b: &[String]) -> String {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("class {i} is {x} in one and {y} in the other");
        }
    }
    format!("{} classes against {}", a.len(), b.len())
}

/// The training and evaluation folders of `dir` (see [`FolderOptions::val_dir`]), and
/// whether the evaluation side is a held-out share of the training folder.
pub fn layout(dir: &Path, opts: &FolderOptions) -> Result<(PathBuf, PathBuf, bool)> {
    if !dir.is_dir() {
        bail!("--data-dir {}: not a folder", dir.display());
    }
    let train = dir.join("train");
    let (train, split_dir) = if train.is_dir() {
        (train, true)
    } else {
        (dir.to_path_buf(), false)
    };
    if let Some(v) = &opts.val_dir {
        if !v.is_dir() {
            bail!("--val-dir {}: not a folder", v.display());
        }
        return Ok((train, v.clone(), false));
    }
    if split_dir {
        for name in ["val", "test"] {
            let v = dir.join(name);
            if v.is_dir() {
                return Ok((train, v, false));
            }
        }
    }
    if !(opts.val_fraction > 0.0 && opts.val_fraction < 1.0) {
        bail!(
            "--val-fraction {}: give a share between 0 and 1 (or --val-dir)",
            opts.val_fraction
        );
    }
    Ok((train.clone(), train, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_files_are_a_fixed_share_and_disjoint_from_the_kept() {
        let files: Vec<PathBuf> = (0..20)
            .map(|i| PathBuf::from(format!("{i:02}.png")))
            .collect();
        let held = held_out(files.clone(), 0.1, true);
        let kept = held_out(files.clone(), 0.1, false);
        assert_eq!((held.len(), kept.len()), (2, 18));
        assert!(held.iter().all(|f| !kept.contains(f)));
        assert_eq!(held, held_out(files, 0.1, true));
        // A single image stays in training; two give one to each side.
        assert!(held_out(vec!["a.png".into()], 0.5, true).is_empty());
        assert_eq!(
            held_out(vec!["a.png".into(), "b.png".into()], 0.01, true).len(),
            1
        );
    }

    #[test]
    fn the_first_difference_of_two_class_lists_is_named() {
        let a: Vec<String> = ["cat", "dog"].map(String::from).to_vec();
        let b: Vec<String> = ["cat", "emu"].map(String::from).to_vec();
        assert_eq!(
            first_difference(&a, &b),
            "class 1 is dog in one and emu in the other"
        );
        assert_eq!(first_difference(&a, &a[..1]), "2 classes against 1");
    }
}
