//! The transforms of a class-per-folder dataset, as torchvision names them: `Resize` (the
//! shorter side), `RandomResizedCrop` (scale, ratio), `CenterCrop`, `RandomCrop` with padding,
//! `RandomHorizontalFlip` and `Normalize`, applied to one decoded image and written straight
//! into its slot of a batch.
//!
//! Every random draw of an image comes from its own generator, seeded by the epoch's seed and
//! the image's position in the epoch ([`sample_rng`]), so a batch is the same whichever worker
//! decodes which image, and a resumed epoch draws what the uninterrupted one drew.

use anyhow::{bail, Result};
use fast_image_resize as fr;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Named starting points of the transforms (`--transforms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// torchvision's ImageNet recipe: training `RandomResizedCrop(224)` + flip; evaluation
    /// `Resize(256)` + `CenterCrop(224)`; the ImageNet mean and std.
    Imagenet,
    /// CIFAR-style: `Resize(32)` + `CenterCrop(32)`, training adds `RandomCrop(32, padding=4)` +
    /// flip; mean and std computed over the training images.
    Cifar,
}

crate::choice_table!(Preset {
    Imagenet => "imagenet", "torchvision's ImageNet recipe: training `RandomResizedCrop(224)` + flip; evaluation `Resize(256)` + `CenterCrop(224)`; the ImageNet mean and std",
    Cifar => "cifar", "CIFAR-style: `Resize(32)` + `CenterCrop(32)`, training adds `RandomCrop(32, padding=4)` + flip; mean and std computed over the training images",
});

/// How a training image is cropped (`--train-crop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainCrop {
    /// `RandomResizedCrop(size, scale, ratio)` of the whole image.
    RandomResized,
    /// `Resize(resize)`, `CenterCrop(size)`, then `RandomCrop(size, padding=pad)`.
    RandomPadded,
    /// As at evaluation: `Resize(resize)`, `CenterCrop(size)`.
    Center,
}

crate::choice_table!(TrainCrop {
    RandomResized => "random-resized", "`RandomResizedCrop(size, scale, ratio)` of the whole image",
    RandomPadded => "random-padded", "`Resize(resize)`, `CenterCrop(size)`, then `RandomCrop(size, padding=pad)`",
    Center => "center", "As at evaluation: `Resize(resize)`, `CenterCrop(size)`",
});

/// The ImageNet statistics torchvision's models are trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The transforms of one dataset (recorded in the checkpoint: evaluation reads it back).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transforms {
    /// The side of the square images the network sees.
    pub size: usize,
    /// `Resize`: the shorter side before the centre crop (evaluation, and training unless it
    /// crops `random-resized`); 0: no resize.
    pub resize: usize,
    /// The training crop.
    pub train_crop: TrainCrop,
    /// `RandomResizedCrop`'s range of the crop's area, as fractions of the image's.
    pub scale: (f64, f64),
    /// `RandomResizedCrop`'s range of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
    /// `RandomCrop`'s zero padding on each side.
    pub pad: usize,
    /// `RandomHorizontalFlip(0.5)` in training.
    pub flip: bool,
    /// `Normalize`'s per-channel mean (None: computed over the training images).
    pub mean: Option<Vec<f32>>,
    /// `Normalize`'s per-channel std (None: computed with the mean).
    pub std: Option<Vec<f32>>,
}

impl Transforms {
    /// A preset at its default size (224 or 32), or at `size`.
    pub fn preset(p: Preset, size: Option<usize>) -> Self {
        match p {
            Preset::Imagenet => {
                let size = size.unwrap_or(224);
                Transforms {
                    size,
                    // 256 for 224: torchvision's ratio of 0.875.
                    resize: (size as f64 / 0.875).round() as usize,
                    train_crop: TrainCrop::RandomResized,
                    scale: (0.08, 1.0),
                    ratio: (3.0 / 4.0, 4.0 / 3.0),
                    pad: 0,
                    flip: true,
                    mean: Some(IMAGENET_MEAN.to_vec()),
                    std: Some(IMAGENET_STD.to_vec()),
                }
            }
            Preset::Cifar => {
                let size = size.unwrap_or(32);
                Transforms {
                    size,
                    resize: size,
                    train_crop: TrainCrop::RandomPadded,
                    scale: (0.08, 1.0),
                    ratio: (3.0 / 4.0, 4.0 / 3.0),
                    pad: size / 8,
                    flip: true,
                    mean: None,
                    std: None,
                }
            }
        }
    }

    /// Check the parameters (bad input otherwise) against the images' channels.
    pub fn validate(&self, channels: usize) -> Result<()> {
        if self.size == 0 || self.size > 4096 {
            bail!("--size {}: give a side from 1 to 4096 pixels", self.size);
        }
        if self.resize > 16_384 {
            bail!(
                "--resize {}: give a short side from 1 to 16384 pixels (0 resizes nothing)",
                self.resize
            );
        }
        if self.resize != 0 && self.resize < self.size {
            bail!(
                "--resize {} is below --size {}: the centre crop would not fit (0 resizes nothing)",
                self.resize,
                self.size
            );
        }
        let (a, b) = self.scale;
        if !(a > 0.0 && a <= b && b <= 1.0) {
            bail!("--scale {a},{b}: give 0 < min ≤ max ≤ 1 (the crop's share of the image's area)");
        }
        let (a, b) = self.ratio;
        if !(a > 0.0 && a <= b && b.is_finite()) {
            bail!("--ratio {a},{b}: give 0 < min ≤ max (width / height)");
        }
        for (what, v) in [("mean", &self.mean), ("std", &self.std)] {
            if let Some(v) = v {
                if v.len() != channels {
                    bail!(
                        "--{what} has {} values but the images have {channels} channel{}",
                        v.len(),
                        if channels == 1 { "" } else { "s" }
                    );
                }
            }
        }
        if self.mean.is_some() != self.std.is_some() {
            bail!("give --mean and --std together (or neither, to compute both over the training images)");
        }
        if let Some(s) = &self.std {
            if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                bail!("--std values must be positive");
            }
        }
        Ok(())
    }
}

/// A decoded image: `h×w×c` bytes, interleaved (as decoders give them).
pub struct Decoded {
    /// Pixels, row by row, `c` bytes each.
    pub pixels: Vec<u8>,
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
    /// Channels: 1 or 3.
    pub c: usize,
}

/// The generator of one image's draws: a pure function of the epoch's seed and the image's
/// position in the epoch.
pub fn sample_rng(epoch_seed: u64, position: usize) -> ChaCha8Rng {
    let mut z = epoch_seed ^ (position as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 32))
}

/// `RandomResizedCrop`'s box `(top, left, height, width)` for a `w×h` image, drawn as
/// torchvision draws it: ten tries of an area in `scale` and a log-uniform ratio in `ratio`,
/// then the whole image clamped to the ratio range, centred.
pub fn random_resized_box(
    w: usize,
    h: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut ChaCha8Rng,
) -> (usize, usize, usize, usize) {
    let area = (w * h) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(scale.0..=scale.1);
        let aspect = if lr0 < lr1 {
            rng.gen_range(lr0..lr1).exp()
        } else {
            ratio.0
        };
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let top = rng.gen_range(0..=h - ch);
            let left = rng.gen_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round() as usize).clamp(1, h))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round() as usize).clamp(1, w), h)
    } else {
        (w, h)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// `Resize(side)`'s output size for a `w×h` image: the shorter side becomes `side`, the other
/// keeps the aspect ratio (truncated, as torchvision does).
pub fn resized_size(w: usize, h: usize, side: usize) -> (usize, usize) {
    if w <= h {
        (side, ((side * h) as f64 / w as f64) as usize)
    } else {
        (((side * w) as f64 / h as f64) as usize, side)
    }
}

/// Resample the `src` box `(top, left, height, width)` of `img` to `ow×oh` (bilinear, with the
/// filter widened when shrinking, as PIL's resize does).
fn resize_box(
    img: &Decoded,
    (top, left, bh, bw): (usize, usize, usize, usize),
    ow: usize,
    oh: usize,
) -> Result<Decoded> {
    if (top, left, bh, bw) == (0, 0, img.h, img.w) && (ow, oh) == (img.w, img.h) {
        return Ok(Decoded {
            pixels: img.pixels.clone(),
            w: ow,
            h: oh,
            c: img.c,
        });
    }
    let pixel = if img.c == 1 {
        fr::PixelType::U8
    } else {
        fr::PixelType::U8x3
    };
    let src = fr::images::ImageRef::new(img.w as u32, img.h as u32, &img.pixels, pixel)
        .map_err(|e| anyhow::anyhow!("image buffer: {e}"))?;
    let mut dst = fr::images::Image::new(ow as u32, oh as u32, pixel);
    let opts = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(left as f64, top as f64, bw as f64, bh as f64);
    fr::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| anyhow::anyhow!("resize: {e}"))?;
    Ok(Decoded {
        pixels: dst.into_vec(),
        w: ow,
        h: oh,
        c: img.c,
    })
}

/// Apply the training (`train`) or evaluation transforms to `img` and write the normalised
/// `c×size×size` floats into `out`; `rng` gives the image's draws (unused at evaluation).
pub fn apply(
    t: &Transforms,
    img: &Decoded,
    train: bool,
    mean: &[f32],
    std: &[f32],
    rng: &mut ChaCha8Rng,
    out: &mut [f32],
) -> Result<()> {
    let s = t.size;
    let (square, pad) = if train && t.train_crop == TrainCrop::RandomResized {
        let b = random_resized_box(img.w, img.h, t.scale, t.ratio, rng);
        (resize_box(img, b, s, s)?, 0)
    } else {
        let resized = if t.resize == 0 {
            None
        } else {
            let (rw, rh) = resized_size(img.w, img.h, t.resize);
            Some(resize_box(img, (0, 0, img.h, img.w), rw, rh)?)
        };
        let r = resized.as_ref().unwrap_or(img);
        if r.w < s || r.h < s {
            bail!("{}×{} is smaller than the {s}×{s} crop", img.w, img.h);
        }
        // CenterCrop's offsets, rounded as torchvision rounds them (Python's round: halves to
        // even, so 58.5 is 58).
        let top = ((r.h - s) as f64 / 2.0).round_ties_even() as usize;
        let left = ((r.w - s) as f64 / 2.0).round_ties_even() as usize;
        let mut px = Vec::with_capacity(s * s * r.c);
        for row in top..top + s {
            let at = (row * r.w + left) * r.c;
            px.extend_from_slice(&r.pixels[at..at + s * r.c]);
        }
        let crop = Decoded {
            pixels: px,
            w: s,
            h: s,
            c: r.c,
        };
        let pad = if train && t.train_crop == TrainCrop::RandomPadded {
            t.pad
        } else {
            0
        };
        (crop, pad)
    };
    // RandomCrop(size, padding): the window's offset in the padded image, then the flip.
    let (dy, dx) = if pad > 0 {
        (rng.gen_range(0..=2 * pad), rng.gen_range(0..=2 * pad))
    } else {
        (pad, pad)
    };
    let flip = train && t.flip && rng.gen_bool(0.5);
    let c = square.c;
    debug_assert_eq!(out.len(), c * s * s);
    for ch in 0..c {
        let (m, sd) = (mean[ch], std[ch]);
        let scale = 1.0 / (255.0 * sd);
        let zero = -m / sd;
        let plane = &mut out[ch * s * s..(ch + 1) * s * s];
        for r in 0..s {
            // Source row in the unpadded crop (outside it: the zero padding).
            let sr = (r + dy) as isize - pad as isize;
            let row = &mut plane[r * s..(r + 1) * s];
            if sr < 0 || sr >= s as isize {
                row.fill(zero);
                continue;
            }
            let src = &square.pixels[sr as usize * s * c..(sr as usize + 1) * s * c];
            for (col, v) in row.iter_mut().enumerate() {
                let cc = if flip { s - 1 - col } else { col };
                let sc = (cc + dx) as isize - pad as isize;
                *v = if sc < 0 || sc >= s as isize {
                    zero
                } else {
                    src[sc as usize * c + ch] as f32 * scale - m / sd
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize, c: usize) -> Decoded {
        let mut pixels = Vec::with_capacity(w * h * c);
        for y in 0..h {
            for x in 0..w {
                for k in 0..c {
                    pixels.push(((x * 7 + y * 3 + k * 50) % 256) as u8);
                }
            }
        }
        Decoded { pixels, w, h, c }
    }

    #[test]
    fn resize_keeps_the_aspect_ratio_of_the_shorter_side() {
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(32, 32, 32), (32, 32));
    }

    #[test]
    fn random_resized_boxes_lie_inside_and_respect_scale_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let (t, l, h, w) =
                random_resized_box(500, 375, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(t + h <= 375 && l + w <= 500 && h > 0 && w > 0);
            let share = (h * w) as f64 / (500.0 * 375.0);
            // Rounding of the sides moves the area a little off the drawn one.
            assert!(share > 0.07 && share <= 1.0, "{share}");
            let r = w as f64 / h as f64;
            assert!(r > 0.70 && r < 1.40, "{r}");
        }
        // A ratio no crop can have (a 1×100 strip asked for squares) falls back to the centre.
        let (t, l, h, w) = random_resized_box(1, 100, (0.9, 1.0), (1.0, 1.0), &mut rng);
        assert_eq!((t, l, h, w), (49, 0, 1, 1));
    }

    #[test]
    fn evaluation_centre_crop_reads_the_middle_of_the_image() {
        // No resize: the 4×4 centre of a 6×8 image, normalised with mean 0 and std 1.
        let img = gradient(8, 6, 1);
        let t = Transforms {
            resize: 0,
            ..Transforms::preset(Preset::Cifar, Some(4))
        };
        let mut out = vec![0f32; 16];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        apply(&t, &img, false, &[0.0], &[1.0], &mut rng, &mut out).unwrap();
        // Centre offsets: top round(1.0) = 1, left round(2.0) = 2.
        for r in 0..4 {
            for c in 0..4 {
                let want = img.pixels[(r + 1) * 8 + (c + 2)] as f32 / 255.0;
                assert!((out[r * 4 + c] - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn padded_crops_and_flips_are_shifts_and_mirrors_of_the_image() {
        let img = gradient(8, 8, 3);
        let t = Transforms {
            resize: 0,
            pad: 2,
            ..Transforms::preset(Preset::Cifar, Some(8))
        };
        let mean = [0.5, 0.5, 0.5];
        let std = [0.25, 0.25, 0.25];
        let mut centred = vec![0f32; 3 * 64];
        apply(
            &t,
            &img,
            false,
            &mean,
            &std,
            &mut sample_rng(0, 0),
            &mut centred,
        )
        .unwrap();
        let mut seen_shift = false;
        for pos in 0..40 {
            let mut out = vec![0f32; 3 * 64];
            let mut rng = sample_rng(7, pos);
            apply(&t, &img, true, &mean, &std, &mut rng, &mut out).unwrap();
            // Replay the draws to know the shift and the flip.
            let mut replay = sample_rng(7, pos);
            let (dy, dx) = (replay.gen_range(0..=4usize), replay.gen_range(0..=4usize));
            let flip = replay.gen_bool(0.5);
            seen_shift |= (dy, dx) != (2, 2);
            let zero = -0.5 / 0.25;
            for ch in 0..3 {
                for r in 0..8 {
                    for c in 0..8 {
                        let cc = if flip { 7 - c } else { c };
                        let (sr, sc) =
                            (r as isize + dy as isize - 2, cc as isize + dx as isize - 2);
                        let want = if (0..8).contains(&sr) && (0..8).contains(&sc) {
                            centred[ch * 64 + sr as usize * 8 + sc as usize]
                        } else {
                            zero
                        };
                        assert!((out[ch * 64 + r * 8 + c] - want).abs() < 1e-5);
                    }
                }
            }
        }
        assert!(seen_shift);
    }

    #[test]
    fn the_same_position_draws_the_same_crop_and_flip() {
        let img = gradient(64, 48, 3);
        let t = Transforms::preset(Preset::Imagenet, Some(16));
        let (m, s) = (IMAGENET_MEAN, IMAGENET_STD);
        let mut a = vec![0f32; 3 * 256];
        let mut b = vec![0f32; 3 * 256];
        apply(&t, &img, true, &m, &s, &mut sample_rng(5, 11), &mut a).unwrap();
        apply(&t, &img, true, &m, &s, &mut sample_rng(5, 11), &mut b).unwrap();
        assert_eq!(a, b);
        apply(&t, &img, true, &m, &s, &mut sample_rng(5, 12), &mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_too_small_image_is_refused_without_resize() {
        let t = Transforms {
            resize: 0,
            ..Transforms::preset(Preset::Cifar, Some(32))
        };
        let mut out = vec![0f32; 32 * 32];
        let e = apply(
            &t,
            &gradient(20, 40, 1),
            false,
            &[0.0],
            &[1.0],
            &mut sample_rng(0, 0),
            &mut out,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("20×40 is smaller than the 32×32 crop"),
            "{e}"
        );
    }

    #[test]
    fn presets_validate_and_bad_parameters_are_named() {
        Transforms::preset(Preset::Imagenet, None)
            .validate(3)
            .unwrap();
        Transforms::preset(Preset::Cifar, None).validate(1).unwrap();
        let bad = Transforms {
            scale: (0.5, 0.2),
            ..Transforms::preset(Preset::Imagenet, None)
        };
        assert!(bad.validate(3).unwrap_err().to_string().contains("--scale"));
        let e = Transforms::preset(Preset::Imagenet, None)
            .validate(1)
            .unwrap_err();
        assert!(e.to_string().contains("--mean has 3 values"), "{e}");
    }
}
