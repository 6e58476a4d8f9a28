//! 2-D convolution (k×k, stride, zero padding, no bias) on the CPU, per sample in parallel:
//! 1×1 layers as one product, "same" stride-1 layers as shifted products ([`same`]), the rest
//! by im2col + gemm ([`im2col`]). The input gradient of narrowing stride-1 layers is a
//! transposed convolution ([`ConvCfg::input_grad_by_transposed_conv`]).

use dfdx::prelude::*;
use ndarray::{s, Array4, ArrayView4};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::Arc;

pub(crate) mod direct;
mod im2col;
mod same;
#[cfg(test)]
mod tests;

use self::im2col::{col2im, im2col};
use self::same::Same;
use super::gemm::{Gemm, Strided};
use super::{accumulate, dims, Act, Ctx, Elem, Param};
pub use crate::backend::ConvCfg;

/// Samples per backward chunk: partial weight gradients are summed per fixed chunk and then in
/// chunk order, so results do not depend on the number of threads.
const CHUNKS: usize = 8;

/// Wide-grid positions (`Same::wide_len`) up to which a 3×3 layer's weight gradient sums a whole
/// chunk of samples in one pass of the direct kernel: a small plane's row is only a few
/// vectors long, and adding up the lanes once per sample would cost as much as the row.
const GROUPED_PLANE: usize = 512;

/// Forward passes over fewer samples than this (batch-1 inference) split each sample's output
/// columns into [`COLUMN_BLOCKS`] blocks computed in parallel; parallelism over samples alone
/// left all but one core idle.
const SMALL_BATCH: usize = 4;

/// Column blocks per sample of a small-batch forward pass. A constant, not the thread count:
/// how a product is cut can change its rounding, and results must not depend on the threads.
const COLUMN_BLOCKS: usize = 4;

/// `C` (`rows × cols`, row-major, in `dst`) computed as [`COLUMN_BLOCKS`] column blocks in
/// parallel: `block(c0, width, part)` writes columns `c0 .. c0 + width` into `part`
/// (`rows × width`, row-major), which is then copied into place.
fn by_column_blocks<E: crate::ops::Real>(
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

/// What a convolution keeps for its backward pass: a copy of its input and the input's dims.
pub struct ConvSaved<E> {
    xv: Arc<Vec<E>>,
    dims: [usize; 4],
}

/// Convolve `x` (`N×in×H×W`) with `w` (`[out, in, k, k]`).
pub fn conv2d<E: Elem>(
    ctx: &mut Ctx<E>,
    x: &Act<E>,
    w: &Param<E>,
    cfg: ConvCfg,
) -> (Act<E>, ConvSaved<E>)
where
    Cpu: Device<E>,
{
    let [n, cin, h, wd] = dims(x);
    assert_eq!(cin, cfg.in_ch, "conv2d: input channels");
    assert_eq!(
        w.data.len(),
        cfg.out_ch * cin * cfg.kernel * cfg.kernel,
        "conv2d: weight size"
    );
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
    let (hw, ckk) = (ho * wo, cin * cfg.kernel * cfg.kernel);
    let xv = x.shared();
    let wv: &[E] = &w.data;
    let mut out = vec![E::zero(); n * cfg.out_ch * hw];
    let in_sz = cin * h * wd;
    let same = Same::new(&cfg, h, wd);
    if cfg.is_same() && same.is_direct() {
        // 3×3 layers by the direct kernel; small batches cut each sample's positions into
        // column blocks instead of running one sample per core.
        let wt = w.by_tap(cin);
        let blocks = n < SMALL_BATCH;
        let one = |i: usize, o: &mut [E]| {
            let xi = &xv[i * in_sz..(i + 1) * in_sz];
            // SAFETY: `forward_direct` only writes initialised values through the view.
            let o = unsafe { as_uninit(o) };
            same.forward_direct(xi, wt, (cin, cfg.out_ch), blocks, o);
        };
        if blocks {
            out.chunks_mut(cfg.out_ch * hw)
                .enumerate()
                .for_each(|(i, o)| one(i, o));
        } else {
            out.par_chunks_mut(cfg.out_ch * hw)
                .enumerate()
                .for_each(|(i, o)| one(i, o));
        }
    } else if n < SMALL_BATCH {
        // Too few samples to keep every core busy: split each sample's columns instead.
        for (i, o) in out.chunks_mut(cfg.out_ch * hw).enumerate() {
            let xi = &xv[i * in_sz..(i + 1) * in_sz];
            // W (out × ckk) · B (ckk × hw), by column blocks of B.
            let product = |b: &[E], o: &mut [E]| {
                by_column_blocks(cfg.out_ch, hw, o, |c0, bl, part| {
                    let cols = Strided {
                        offset: c0,
                        rs: hw,
                        cs: 1,
                    };
                    Gemm::new(cfg.out_ch, bl, ckk).run_strided(
                        (part, Strided::rows(0, bl)),
                        (wv, Strided::rows(0, ckk)),
                        (b, cols),
                    );
                })
            };
            if cfg.is_pointwise() {
                product(xi, o);
            } else if cfg.is_same() {
                Same::new(&cfg, h, wd).forward_by_column_blocks(xi, wv, &cfg, o);
            } else {
                let mut col = vec![E::zero(); ckk * hw];
                im2col(xi, &cfg, h, wd, &mut col);
                product(&col, o);
            }
        }
    } else {
        out.par_chunks_mut(cfg.out_ch * hw)
            .enumerate()
            .for_each(|(i, o)| {
                let xi = &xv[i * in_sz..(i + 1) * in_sz];
                if cfg.is_pointwise() {
                    Gemm::new(cfg.out_ch, hw, ckk).run(o, wv, xi);
                } else if cfg.is_same() {
                    Same::new(&cfg, h, wd).forward(xi, wv, &cfg, o);
                } else {
                    E::with_scratch(ckk * hw, 0, |col, _| {
                        im2col(xi, &cfg, h, wd, col);
                        Gemm::new(cfg.out_ch, hw, ckk).run(o, wv, col);
                    });
                }
            });
    }
    let out = ctx.act(out, [n, cfg.out_ch, ho, wo]);
    let xv = if ctx.record { xv } else { Arc::default() };
    (
        out,
        ConvSaved {
            xv,
            dims: [n, cin, h, wd],
        },
    )
}

/// The filter gradient of a convolution (added to `w`'s) and, when `dx` is given, its data
/// gradient (accumulated into it), from the output gradient `gout`. Samples are processed in
/// fixed chunks, both gradients of a sample together.
pub fn conv2d_backward<E: Elem>(
    ctx: &mut Ctx<E>,
    saved: ConvSaved<E>,
    w: &Param<E>,
    cfg: ConvCfg,
    gout: Vec<E>,
    dx: Option<&mut Option<Vec<E>>>,
) where
    Cpu: Device<E>,
{
    let ConvSaved { xv, dims } = saved;
    let [n, cin, h, wd] = dims;
    let (ho, wo) = (cfg.out_size(h), cfg.out_size(wd));
    let (hw, ckk) = (ho * wo, cin * cfg.kernel * cfg.kernel);
    let in_sz = cin * h * wd;
    let wv: &[E] = &w.data;
    let x_grad = dx.is_some();
    let per = n.div_ceil(CHUNKS).max(1);
    let chunks = n.div_ceil(per);
    // The input gradient is allocated uninitialised: every path below writes each sample's
    // part whole (an overwriting product, or zeros first where a scatter adds into it), so no
    // zero-fill pass over this — often the widest — buffer is spent.
    let mut gx: Vec<E> = Vec::with_capacity(if x_grad { n * in_sz } else { 0 });
    let slots: Vec<Option<&mut [MaybeUninit<E>]>> = if x_grad {
        gx.spare_capacity_mut()[..n * in_sz]
            .chunks_mut(per * in_sz)
            .map(Some)
            .collect()
    } else {
        (0..chunks).map(|_| None).collect()
    };
    // With stride 1 the input gradient is itself a convolution: of the output gradient with
    // the flipped, transposed kernel and padding k − 1 − p. Its column matrix has out·k² rows
    // instead of in·k², far smaller when a layer narrows its input (every DenseNet/SparseNet
    // 3×3 conv), and it needs no col2im scatter.
    let transposed = cfg.input_grad_by_transposed_conv();
    let k = cfg.kernel;
    let tcfg = cfg.transposed();
    let wt: Vec<E> = if transposed {
        flip_transpose(wv, &cfg)
    } else {
        Vec::new()
    };
    // A 3×3 "same" layer's transposed convolution is again a 3×3 "same" one: the direct
    // kernel, with its weights by tap.
    let tsame = Same::new(&tcfg, ho, wo);
    let direct_dx = transposed && cfg.is_same() && tsame.is_direct();
    let wt_by_tap = if direct_dx {
        direct::weights_by_tap(&wt, cfg.out_ch, cfg.in_ch)
    } else {
        Vec::new()
    };
    let tk = cfg.out_ch * k * k;
    // Input gradient of one sample by the transposed convolution (`gcol` is scratch).
    let transposed_dx = |gi: &[E], dst: &mut [MaybeUninit<E>], gcol: &mut [E]| {
        if direct_dx {
            tsame.forward_direct(gi, &wt_by_tap, (cfg.out_ch, cfg.in_ch), false, dst);
        } else {
            im2col(gi, &tcfg, ho, wo, gcol);
            Gemm::new(cfg.in_ch, h * wd, tk).run_uninit(dst, &wt, gcol);
        }
    };
    let partial: Vec<Vec<E>> = slots
        .into_par_iter()
        .enumerate()
        .map(|(chunk, mut gxc)| {
            let mut gw = vec![E::zero(); cfg.out_ch * ckk];
            let col_len = if cfg.is_pointwise() { 0 } else { ckk * hw };
            let gcol_len = match (x_grad, cfg.is_pointwise(), transposed) {
                (true, false, true) if direct_dx => 0,
                (true, false, true) => tk * h * wd,
                (true, false, false) => ckk * hw,
                _ => 0,
            };
            if cfg.is_same() {
                let same = Same::new(&cfg, h, wd);
                let (i0, i1) = (chunk * per, ((chunk + 1) * per).min(n));
                if same.is_direct() && same.wide_len() <= GROUPED_PLANE && (direct_dx || !x_grad) {
                    // Small planes: the chunk's weight gradient in one pass over its samples,
                    // then each sample's input gradient.
                    let osz = cfg.out_ch * hw;
                    let (xs, gs) = (&xv[i0 * in_sz..i1 * in_sz], &gout[i0 * osz..i1 * osz]);
                    same.backward(xs, gs, i1 - i0, wv, &cfg, &mut gw, None);
                    if let Some(gxc) = gxc.as_deref_mut() {
                        for i in i0..i1 {
                            let gi = &gout[i * osz..(i + 1) * osz];
                            transposed_dx(gi, &mut gxc[(i - i0) * in_sz..][..in_sz], &mut []);
                        }
                    }
                    return gw;
                }
                for i in i0..i1 {
                    let xi = &xv[i * in_sz..(i + 1) * in_sz];
                    let gi = &gout[i * cfg.out_ch * hw..(i + 1) * cfg.out_ch * hw];
                    let dst = gxc
                        .as_deref_mut()
                        .map(|g| &mut g[(i - chunk * per) * in_sz..][..in_sz]);
                    match dst {
                        // A narrowing layer: the input gradient by the transposed convolution
                        // writes it once instead of accumulating k² times.
                        Some(dst) if direct_dx => {
                            same.backward(xi, gi, 1, wv, &cfg, &mut gw, None);
                            transposed_dx(gi, dst, &mut []);
                        }
                        Some(dst) if transposed => {
                            same.backward(xi, gi, 1, wv, &cfg, &mut gw, None);
                            E::with_scratch(tk * h * wd, 0, |gcol, _| transposed_dx(gi, dst, gcol));
                        }
                        dst => same.backward(xi, gi, 1, wv, &cfg, &mut gw, dst.map(zeroed)),
                    }
                }
                return gw;
            }
            E::with_scratch(col_len, gcol_len, |col, gcol| {
                for i in chunk * per..((chunk + 1) * per).min(n) {
                    let xi = &xv[i * in_sz..(i + 1) * in_sz];
                    let gi = &gout[i * cfg.out_ch * hw..(i + 1) * cfg.out_ch * hw];
                    let src: &[E] = if cfg.is_pointwise() {
                        xi
                    } else {
                        im2col(xi, &cfg, h, wd, col);
                        col
                    };
                    Gemm::new(cfg.out_ch, ckk, hw)
                        .b_transposed()
                        .accumulating()
                        .run(&mut gw, gi, src);
                    if let Some(gxc) = gxc.as_deref_mut() {
                        let dst = &mut gxc[(i - chunk * per) * in_sz..][..in_sz];
                        if cfg.is_pointwise() {
                            Gemm::new(ckk, hw, cfg.out_ch)
                                .a_transposed()
                                .run_uninit(dst, wv, gi);
                        } else if transposed {
                            transposed_dx(gi, dst, gcol);
                        } else {
                            Gemm::new(ckk, hw, cfg.out_ch)
                                .a_transposed()
                                .run(gcol, wv, gi);
                            col2im(gcol, &cfg, h, wd, zeroed(dst));
                        }
                    }
                }
            });
            gw
        })
        .collect();
    let mut gw = vec![E::zero(); cfg.out_ch * ckk];
    for p in &partial {
        for (a, b) in gw.iter_mut().zip(p) {
            *a += *b;
        }
    }
    ctx.add_param_grad(w, &gw);
    if let Some(dx) = dx {
        // SAFETY: the capacity is n·in_sz, and every sample's in_sz values were written above
        // (each chunk's samples by an overwriting product or after `zeroed`).
        unsafe { gx.set_len(n * in_sz) };
        accumulate(dx, gx);
    }
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
