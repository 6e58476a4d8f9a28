//! 2-D convolution on the CPU (k×k, stride, zero padding, optional bias): one dispatcher over
//! named algorithms, as candle's `conv2d` chooses among its own.
//!
//! [`ConvAlgo::choose`] picks the algorithm once from the layer's [`ConvCfg`]:
//! * [`ConvAlgo::Pointwise`] (`pointwise.rs`): 1×1, stride 1, unpadded — one product per
//!   sample, no column matrix;
//! * [`ConvAlgo::Direct3x3`] (`direct3x3.rs`): 3×3, stride 1, padding 1, fewer than
//!   [`WIDE_3X3`] outputs — every 3×3 layer of DenseNet, SparseNet and the CIFAR ResNets — by
//!   the SIMD kernels of `direct.rs` over a zero-padded copy of the sample;
//! * [`ConvAlgo::Winograd`] (`winograd.rs`): 3×3, stride 1, padding 1, at least [`WIDE_3X3`]
//!   outputs and [`WINOGRAD_MIN_IN`] inputs — Wide ResNet's, VGG's and FractalNet's wide
//!   layers — by Winograd's F(2×2, 3×3): 16 products with 2.25× fewer multiplications than
//!   im2col's one;
//! * [`ConvAlgo::Im2col`] (`im2col.rs`): everything else (strided layers, the 7×7 stem, other
//!   kernel sizes, wide 3×3 layers of few inputs) — the column matrix and one product.
//!
//! A grouped convolution (DPN's 3×3 layers) is one plan per group of the algorithm its
//! per-group shape chooses, each on its own slice of the weight and of every sample's
//! channels (`grouped.rs`).
//!
//! Each algorithm has one forward (per sample) and one backward (per chunk of samples). How the
//! work is spread over threads is this file's business alone, and the same for every algorithm:
//! the forward pass runs samples in parallel, or — below [`SMALL_BATCH`] samples — one sample
//! at a time with its output columns cut into [`COLUMN_BLOCKS`] blocks; the backward pass runs
//! fixed chunks of samples ([`CHUNKS`]) in parallel and sums their weight gradients in chunk
//! order. The cuts are constants, never the thread count, so results do not depend on it.

use anyhow::{bail, Result};
use ndarray::{s, Array4, ArrayView4};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::Arc;

pub(crate) mod direct;
mod direct3x3;
mod grouped;
mod im2col;
mod pointwise;
#[cfg(test)]
mod tests;
mod winograd;

use self::direct3x3::Direct3x3;
use self::grouped::Grouped;
use self::im2col::Im2col;
use self::pointwise::Pointwise;
use self::winograd::Winograd;
pub use crate::backend::ConvCfg;
use crate::backend::ConvOps;
use crate::cpu::gemm::{Gemm, Strided};
use crate::cpu::{accumulate, Act, CpuBackend, Elem, Grad, Param};

/// Samples per backward chunk: partial weight gradients are summed per fixed chunk and then in
/// chunk order, so results do not depend on the number of threads.
const CHUNKS: usize = 8;

/// Forward passes over fewer samples than this (batch-1 inference) split each sample's output
/// columns into [`COLUMN_BLOCKS`] blocks computed in parallel; parallelism over samples alone
/// left all but one core idle.
const SMALL_BATCH: usize = 4;

/// Column blocks per sample of a small-batch forward pass. A constant, not the thread count:
/// how a product is cut can change its rounding, and results must not depend on the threads.
const COLUMN_BLOCKS: usize = 4;

/// Columns of one product in im2col's backward pass, which sets several samples side by side
/// (Winograd has its own, narrower `TILE_COLUMNS`): a layer with few output positions
/// (`ho·wo` = 64 in an 8×8 stage) takes this many columns' worth of samples at once, so that
/// the weight gradient sums over more than 64 terms per pass over its accumulator and the
/// weight is packed once per group, not once per sample. A constant, so the grouping (and the
/// rounding) never depends on the threads.
const PRODUCT_COLUMNS: usize = 512;

/// Output channels from which a 3×3 "same" layer leaves the direct kernels for the product
/// algorithms (im2col, Winograd). Measured with `benches/conv_layer.rs` at batch 64 on 2
/// cores, 2026-12-07 (ms per forward + weight gradient + input gradient, direct / im2col): 96→24 at 32×32 47 / 95,
/// 64→64 at 16×16 24 / 23, 128→128 at 32×32 292 / 297, 128→128 at 8×8 31 / 21, 256→256 at
/// 16×16 389 / 245, 512→512 at 8×8 946 / 325. The direct kernels win on DenseNet's and
/// SparseNet's narrow layers; a wide layer's product is large enough for the GEMM to run near
/// peak (Wide ResNet, VGG, FractalNet).
pub const WIDE_3X3: usize = 128;

/// Input channels from which a wide 3×3 "same" layer goes to Winograd rather than im2col: each
/// of its 16 products sums over the input channels, too few of which (a stem's 3, Wide
/// ResNet's first 16) leave the products too thin to pay for the transforms.
pub const WINOGRAD_MIN_IN: usize = 64;

/// The algorithms, by name (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// 1×1, stride 1, no padding: `W · x` per sample.
    Pointwise,
    /// 3×3, stride 1, padding 1: the direct SIMD kernels.
    Direct3x3,
    /// Any other shape: im2col and one product.
    Im2col,
    /// 3×3, stride 1, padding 1, wide: Winograd's F(2×2, 3×3) and 16 products.
    Winograd,
}

impl ConvAlgo {
    /// The algorithm for a layer of shape `cfg`.
    pub fn choose(cfg: &ConvCfg) -> Self {
        if cfg.is_pointwise() {
            ConvAlgo::Pointwise
        } else if cfg.is_3x3_same() && cfg.out_ch < WIDE_3X3 {
            ConvAlgo::Direct3x3
        } else if cfg.is_3x3_same() && cfg.in_ch >= WINOGRAD_MIN_IN {
            ConvAlgo::Winograd
        } else {
            ConvAlgo::Im2col
        }
    }
}

/// One layer's algorithm, set up for inputs of `h×w` with its weight: what the dispatcher
/// calls per sample (forward) and per chunk of samples (backward).
enum Plan<'a, E> {
    Pointwise(Pointwise<'a, E>),
    Direct3x3(Direct3x3<'a, E>),
    Im2col(Im2col<'a, E>),
    Winograd(Winograd<E>),
    Grouped(Grouped<'a, E>),
}

impl<'a, E: Elem> Plan<'a, E> {
    /// `input_grad`: a backward pass that computes the input gradient will use this plan.
    /// `group_weights`: each group's slice of the weight ([`group_weights`]; empty when the
    /// layer has one group).
    fn new(
        cfg: ConvCfg,
        (h, w): (usize, usize),
        weight: &'a Param<E>,
        group_weights: &'a [Param<E>],
        input_grad: bool,
    ) -> Self {
        if cfg.groups > 1 {
            let one = cfg.per_group();
            let plans = group_weights
                .iter()
                .map(|wg| Plan::ungrouped(one, h, w, wg, input_grad))
                .collect();
            return Plan::Grouped(Grouped::new(cfg, h, w, plans));
        }
        Plan::ungrouped(cfg, h, w, weight, input_grad)
    }

    fn ungrouped(cfg: ConvCfg, h: usize, w: usize, weight: &'a Param<E>, input_grad: bool) -> Self {
        match ConvAlgo::choose(&cfg) {
            ConvAlgo::Pointwise => Plan::Pointwise(Pointwise::new(cfg, h, w, &weight.data)),
            ConvAlgo::Direct3x3 => Plan::Direct3x3(Direct3x3::new(cfg, h, w, weight, input_grad)),
            ConvAlgo::Im2col => Plan::Im2col(Im2col::new(cfg, h, w, &weight.data)),
            ConvAlgo::Winograd => Plan::Winograd(Winograd::new(cfg, h, w, &weight.data)),
        }
    }

    /// Samples whose columns one product sets side by side (1 where products are per
    /// sample): a forward call takes this many, and a backward chunk at least this many.
    fn samples_per_product(&self) -> usize {
        match self {
            Plan::Winograd(a) => a.group(),
            _ => 1,
        }
    }

    /// `samples` samples' outputs (`out_ch × ho × wo` each, written whole), computed in
    /// parallel within a sample when `blocks`.
    fn forward_samples(&self, x: &[E], out: &mut [E], samples: usize, blocks: bool) {
        if let Plan::Winograd(a) = self {
            return a.forward(x, out, samples, blocks);
        }
        let (in_sz, out_sz) = (x.len() / samples, out.len() / samples);
        for (xs, o) in x.chunks(in_sz).zip(out.chunks_mut(out_sz)) {
            self.forward(xs, o, blocks);
        }
    }

    /// One sample's output (`out_ch × ho × wo`, written whole), its columns cut into blocks
    /// computed in parallel when `blocks`.
    fn forward(&self, x: &[E], out: &mut [E], blocks: bool) {
        match self {
            Plan::Winograd(a) => a.forward(x, out, 1, blocks),
            Plan::Pointwise(a) => a.forward(x, out, blocks),
            Plan::Direct3x3(a) => a.forward(x, out, blocks),
            Plan::Im2col(a) => a.forward(x, out, blocks),
            Plan::Grouped(a) => a.forward(x, out, blocks),
        }
    }

    /// The weight gradient of `samples` samples (inputs `x`, output gradients `gy`, back to
    /// back) added into `gw`, and their input gradients written whole into `gx` when given.
    fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        match self {
            Plan::Pointwise(a) => a.backward(x, gy, samples, gw, gx),
            Plan::Direct3x3(a) => a.backward(x, gy, samples, gw, gx),
            Plan::Im2col(a) => a.backward(x, gy, samples, gw, gx),
            Plan::Winograd(a) => a.backward(x, gy, samples, gw, gx),
            Plan::Grouped(a) => a.backward(x, gy, samples, gw, gx),
        }
    }
}

/// What a convolution keeps for its backward pass: a shared reference to its input's values
/// (empty when not recording) and the input's dimensions.
pub struct ConvSaved<E> {
    xv: Arc<Vec<E>>,
    dims: [usize; 4],
}

impl<E: Elem> ConvOps for CpuBackend<E> {
    type ConvSaved = ConvSaved<E>;

    /// Convolve `x` (`N×in×H×W`) with `w` (`[out, in, k, k]`), plus `bias` per channel.
    fn conv2d(
        &mut self,
        x: &Act<E>,
        w: &Param<E>,
        bias: Option<&Param<E>>,
        cfg: ConvCfg,
    ) -> Result<(Act<E>, ConvSaved<E>)> {
        let [n, cin, h, wd] = x.dims();
        check_shapes(&cfg, cin, w, bias)?;
        let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
        let (in_sz, out_sz) = (cin * h * wd, cfg.out_ch * ho * wo);
        let xv = x.shared();
        let parts = group_weights(w, &cfg);
        let plan = Plan::new(cfg, (h, wd), w, &parts, false);
        let mut out = vec![E::zero(); n * out_sz];
        let blocks = n < SMALL_BATCH;
        let group = plan.samples_per_product();
        let some = |i: usize, o: &mut [E]| {
            let samples = o.len() / out_sz;
            let xs = &xv[i * group * in_sz..][..samples * in_sz];
            plan.forward_samples(xs, o, samples, blocks);
        };
        if blocks {
            out.chunks_mut(out_sz * group)
                .enumerate()
                .for_each(|(i, o)| some(i, o));
        } else {
            out.par_chunks_mut(out_sz * group)
                .enumerate()
                .for_each(|(i, o)| some(i, o));
        }
        if let Some(b) = bias {
            add_bias(&mut out, &b.data, ho * wo);
        }
        let out = self.act(out, [n, cfg.out_ch, ho, wo]);
        let xv = if self.record { xv } else { Arc::default() };
        let dims = [n, cin, h, wd];
        Ok((out, ConvSaved { xv, dims }))
    }

    /// The filter and bias gradients (added to theirs) and, when `dx` is given, the data
    /// gradient (accumulated into it), from the output gradient `gy`. Samples are processed in
    /// fixed chunks, both gradients of a sample together.
    fn conv2d_backward(
        &mut self,
        saved: ConvSaved<E>,
        w: &Param<E>,
        bias: Option<&Param<E>>,
        cfg: ConvCfg,
        gy: Grad<E>,
        dx: Option<&mut Option<Grad<E>>>,
    ) -> Result<()> {
        let ConvSaved { xv, dims } = saved;
        let [n, cin, h, wd] = dims;
        let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
        let (in_sz, out_sz) = (cin * h * wd, cfg.out_ch * ho * wo);
        let parts = group_weights(w, &cfg);
        let x_grad = dx.is_some();
        let plan = Plan::new(cfg, (h, wd), w, &parts, x_grad);
        // Fewer chunks than `CHUNKS` where a chunk would not fill one product (Winograd at
        // 8×8 and batch 16: 8 samples' tiles make one); a function of the batch alone.
        let per = n.div_ceil(CHUNKS).max(plan.samples_per_product()).max(1);
        let chunks = n.div_ceil(per);
        // The input gradient is allocated uninitialised: every algorithm writes each sample's
        // part whole (an overwriting product, or zeros first where a scatter adds into it), so
        // no zero-fill pass over this — often the widest — buffer is spent.
        let mut gx: Vec<E> = Vec::with_capacity(if x_grad { n * in_sz } else { 0 });
        let slots: Vec<Option<&mut [MaybeUninit<E>]>> = if x_grad {
            gx.spare_capacity_mut()[..n * in_sz]
                .chunks_mut(per * in_sz)
                .map(Some)
                .collect()
        } else {
            (0..chunks).map(|_| None).collect()
        };
        let wlen = w.data.len();
        let partial: Vec<Vec<E>> = slots
            .into_par_iter()
            .enumerate()
            .map(|(chunk, gxc)| {
                let (i0, i1) = (chunk * per, ((chunk + 1) * per).min(n));
                let mut gw = vec![E::zero(); wlen];
                let (xs, gs) = (&xv[i0 * in_sz..i1 * in_sz], &gy[i0 * out_sz..i1 * out_sz]);
                plan.backward(xs, gs, i1 - i0, &mut gw, gxc);
                gw
            })
            .collect();
        let mut gw = vec![E::zero(); wlen];
        for p in &partial {
            for (a, b) in gw.iter_mut().zip(p) {
                *a += *b;
            }
        }
        self.add_param_grad(w, &gw);
        if let Some(b) = bias {
            self.add_param_grad(b, &bias_grad(&gy, cfg.out_ch, ho * wo));
        }
        if let Some(dx) = dx {
            // SAFETY: the capacity is n·in_sz, and every sample's in_sz values were written
            // above (each algorithm writes its chunk's input gradients whole).
            unsafe { gx.set_len(n * in_sz) };
            accumulate(dx, gx);
        }
        Ok(())
    }
}

/// Refuse an input or parameter that does not fit the layer (a network built by the zoo always
/// fits; this guards the backend's own callers).
fn check_shapes<E>(cfg: &ConvCfg, cin: usize, w: &Param<E>, bias: Option<&Param<E>>) -> Result<()> {
    if cin != cfg.in_ch {
        bail!(
            "conv2d: input has {cin} channels, the layer expects {}",
            cfg.in_ch
        );
    }
    let wlen = cfg.weight_len();
    if w.data.len() != wlen {
        bail!(
            "conv2d: weight has {} values, expected {wlen}",
            w.data.len()
        );
    }
    if let Some(b) = bias.filter(|b| b.data.len() != cfg.out_ch) {
        bail!(
            "conv2d: bias has {} values, expected {}",
            b.data.len(),
            cfg.out_ch
        );
    }
    Ok(())
}

/// Each group's slice of a grouped layer's weight, as a parameter of its own (output group i's
/// filters are rows `i·out/g ..` of `[out, in/g, k, k]`, contiguous); none for one group.
fn group_weights<E: Elem>(w: &Param<E>, cfg: &ConvCfg) -> Vec<Param<E>> {
    if cfg.groups <= 1 {
        return Vec::new();
    }
    let len = cfg.weight_len() / cfg.groups;
    w.data
        .chunks(len)
        .map(|part| Param::new(w.index, part.to_vec()))
        .collect()
}

/// `out[i][o][·] += b[o]` for every sample `i`, planes of `hw` values.
fn add_bias<E: Elem>(out: &mut [E], b: &[E], hw: usize) {
    let planes = b.len();
    out.par_chunks_mut(hw).enumerate().for_each(|(p, plane)| {
        let bo = b[p % planes];
        for v in plane {
            *v += bo;
        }
    });
}

/// The bias gradient: `Σ_{i, y, x} gy[i][o][y][x]` per channel `o`, summed sample by sample in
/// order (one fixed order whatever the threads).
fn bias_grad<E: Elem>(gy: &[E], channels: usize, hw: usize) -> Vec<E> {
    let n = gy.len() / (channels * hw).max(1);
    (0..channels)
        .into_par_iter()
        .map(|o| {
            let mut acc = E::zero();
            for i in 0..n {
                for &v in &gy[(i * channels + o) * hw..][..hw] {
                    acc += v;
                }
            }
            acc
        })
        .collect()
}

/// `out = W (o × k) · B (k × hw)`, all row-major: one product, or — when `blocks` — by
/// [`COLUMN_BLOCKS`] column blocks of `B` computed in parallel (the pointwise and im2col
/// forward passes; `B` is the sample itself or its column matrix).
fn weight_product<E: Elem>(
    w: &[E],
    b: &[E],
    (o, k, hw): (usize, usize, usize),
    out: &mut [E],
    blocks: bool,
) {
    if blocks {
        by_column_blocks(o, hw, out, |c0, bl, part| {
            let cols = Strided {
                offset: c0,
                rs: hw,
                cs: 1,
            };
            Gemm::new(o, bl, k).run_strided(
                (part, Strided::rows(0, bl)),
                (w, Strided::rows(0, k)),
                (b, cols),
            );
        });
    } else {
        Gemm::new(o, hw, k).run(out, w, b);
    }
}

/// `C` (`rows × cols`, row-major, in `dst`) computed as [`COLUMN_BLOCKS`] column blocks in
/// parallel: `block(c0, width, part)` writes columns `c0 .. c0 + width` into `part`
/// (`rows × width`, row-major), which is then copied into place.
fn by_column_blocks<E: crate::cpu::Real>(
    rows: usize,
    cols: usize,
    dst: &mut [E],
    block: impl Fn(usize, usize, &mut [E]) + Sync,
) {
    let width = cols.div_ceil(COLUMN_BLOCKS).max(1);
    let parts: Vec<(usize, Vec<E>)> = (0..cols.div_ceil(width))
        .into_par_iter()
        .map(|b| {
            let c0 = b * width;
            let bl = width.min(cols - c0);
            let mut part = vec![E::zero(); rows * bl];
            block(c0, bl, &mut part);
            (c0, part)
        })
        .collect();
    for (c0, part) in parts {
        let bl = part.len() / rows.max(1);
        for (r, src) in part.chunks(bl.max(1)).enumerate() {
            dst[r * cols + c0..][..bl].copy_from_slice(src);
        }
    }
}

/// The weight of [`ConvCfg::transposed`]: `[out, in, k, k]` with the channel axes swapped and
/// both spatial axes reversed, `t[c][o][k−1−i][k−1−j] = w[o][c][i][j]`.
fn flip_transpose<E: Elem>(w: &[E], cfg: &ConvCfg) -> Vec<E> {
    let k = cfg.kernel;
    let view = ArrayView4::from_shape((cfg.out_ch, cfg.in_ch, k, k), w).expect("weight shape");
    // `assign` walks both arrays with ndarray's Zip (no per-element iterator adaptors).
    let mut t = Array4::<E>::zeros((cfg.in_ch, cfg.out_ch, k, k));
    t.assign(
        &view
            .permuted_axes([1, 0, 2, 3])
            .slice(s![.., .., ..;-1, ..;-1]),
    );
    t.into_raw_vec_and_offset().0
}

/// `s` seen as memory to overwrite, for a writer of `MaybeUninit` values.
///
/// # Safety
/// Only initialised values may be written through the returned view (`s` must stay
/// initialised).
unsafe fn as_uninit<E>(s: &mut [E]) -> &mut [MaybeUninit<E>] {
    // SAFETY: MaybeUninit<E> has E's layout; the caller writes only initialised values.
    unsafe { &mut *(s as *mut [E] as *mut [MaybeUninit<E>]) }
}

/// `s` set to zeros, as initialised values (for the paths that add into the input gradient).
fn zeroed<E: Elem>(s: &mut [MaybeUninit<E>]) -> &mut [E] {
    for v in s.iter_mut() {
        v.write(E::zero());
    }
    // SAFETY: every element was initialised just above, and MaybeUninit<E> has E's layout.
    unsafe { &mut *(s as *mut [MaybeUninit<E>] as *mut [E]) }
}
