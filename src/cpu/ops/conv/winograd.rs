//! Wide 3×3, stride-1 "same" convolutions (Wide ResNet, VGG, FractalNet) by Winograd's minimal
//! filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! CVPR 2016).
//!
//! Each 2×2 block of outputs ("tile") is computed from the 4×4 input patch around it as
//! `Y = Aᵀ [U ⊙ V] A`, with `U = G g Gᵀ` the 4×4 transform of a 3×3 filter and `V = Bᵀ d B`
//! that of the patch. Summed over input channels, the element-wise products become 16 matrix
//! products `M_ξ (out × tiles) = U_ξ (out × in) · V_ξ (in × tiles)`, one per position ξ of the
//! 4×4 transform: 16 multiplications per tile and channel pair instead of im2col's 36, so 2.25×
//! fewer floating-point operations in the products, which is where a wide layer's time goes.
//!
//! Both gradients are the adjoints of the same linear maps, so they use the same 16 products:
//! with `dZ = A dY Aᵀ` the output gradient's tile transform, the weight gradient is
//! `Gᵀ [Σ_tiles dZ_ξ V_ξᵀ] G` and the input gradient `B [U_ξᵀ dZ_ξ] Bᵀ`, added back over the
//! overlapping patches. The transforms' coefficients are 0, ±1 and ±½, so the rounding stays
//! within a few units of im2col's (the tests compare both with a naive loop).
//!
//! The products' columns are tiles of several samples side by side (up to [`TILE_COLUMNS`]),
//! so that an 8×8 layer's 16 tiles per sample still make products wide enough to run near the
//! GEMM's peak. The transforms are slice operations over a row of tiles, compiled for the
//! machine's vector instructions ([`vectorised`]).

use std::mem::MaybeUninit;

use super::{ConvCfg, COLUMN_BLOCKS};
use crate::cpu::gemm::Gemm;
use crate::cpu::simd::vectorised;
use crate::cpu::{c, Elem, Real};

/// Columns (tiles) a product aims at. Narrower than im2col's [`super::PRODUCT_COLUMNS`]:
/// 16 products of `in × columns` and `out × columns` stay in the caches between the transforms
/// and the products. Measured with `benches/conv_layer.rs` at batch 64 on 2 cores, 2026-12-07
/// (ms per forward + weight gradient + input gradient at 128→128 32×32 / 256→256 16×16 /
/// 512→512 8×8): 512 columns 173 / 181 / 221, 256: 174 / 164 / 207, 128: 170 / 146 / 191,
/// 64: 168 / 152 / 217.
const TILE_COLUMNS: usize = 128;

/// Positions ξ of a transformed 4×4 tile.
const XI: usize = 16;

/// A Winograd layer for inputs of `h×w`, with its transformed weight.
pub(super) struct Winograd<E> {
    cfg: ConvCfg,
    h: usize,
    w: usize,
    /// Tile rows ⌈h/2⌉ and tile columns ⌈w/2⌉ of a sample.
    ty: usize,
    tx: usize,
    /// `U_ξ = (G g Gᵀ)_ξ` for every filter: 16 matrices `out × in`, back to back.
    u: Vec<E>,
    /// Columns a product aims at ([`TILE_COLUMNS`]; smaller in tests, to reach several
    /// groups with small inputs).
    columns: usize,
}

impl<E: Elem> Winograd<E> {
    pub(super) fn new(cfg: ConvCfg, h: usize, w: usize, weight: &[E]) -> Self {
        let pairs = cfg.out_ch * cfg.in_ch;
        let mut u = vec![E::zero(); XI * pairs];
        for (pair, g) in weight.chunks_exact(9).enumerate() {
            for (xi, v) in filter_transform(g).into_iter().enumerate() {
                u[xi * pairs + pair] = v;
            }
        }
        Winograd {
            cfg,
            h,
            w,
            ty: h.div_ceil(2),
            tx: w.div_ceil(2),
            u,
            columns: TILE_COLUMNS,
        }
    }

    /// The same layer with products of about `columns` columns.
    #[cfg(test)]
    pub(super) fn with_columns(self, columns: usize) -> Self {
        Winograd { columns, ..self }
    }

    /// Tiles of one sample.
    fn tiles(&self) -> usize {
        self.ty * self.tx
    }

    /// Samples whose tiles share one product (at least one).
    pub(super) fn group(&self) -> usize {
        (self.columns / self.tiles()).max(1)
    }

    /// `samples` samples' outputs (`out × h × w` each, written whole). With `blocks` (a batch
    /// too small to spread over samples) the products split their columns over threads, which
    /// never changes a bit (the GEMM never splits a sum).
    pub(super) fn forward(&self, x: &[E], out: &mut [E], samples: usize, blocks: bool) {
        let (o, c, t) = (self.cfg.out_ch, self.cfg.in_ch, self.tiles());
        let (in_sz, out_sz) = (c * self.h * self.w, o * self.h * self.w);
        let ld = samples * t;
        let mut run = |v: &mut [E], m: &mut [E]| {
            vectorised(|| {
                for s in 0..samples {
                    self.input_tiles(&x[s * in_sz..][..in_sz], v, ld, s * t);
                }
            });
            let threads = if blocks { COLUMN_BLOCKS } else { 1 };
            for xi in 0..XI {
                Gemm::new(o, ld, c).threads(threads).run(
                    &mut m[xi * o * ld..][..o * ld],
                    &self.u[xi * o * c..][..o * c],
                    &v[xi * c * ld..][..c * ld],
                );
            }
            vectorised(|| {
                for s in 0..samples {
                    self.output_tiles(m, ld, s * t, &mut out[s * out_sz..][..out_sz]);
                }
            });
        };
        if blocks {
            // Its own buffers, not the thread's scratch: the products' threads read them, and
            // a thread waiting on them may be handed other work that wants the scratch.
            run(
                &mut vec![E::zero(); XI * c * ld],
                &mut vec![E::zero(); XI * o * ld],
            );
        } else {
            E::with_scratch(XI * c * ld, XI * o * ld, |v, m| run(v, m));
        }
    }

    /// The weight gradient of `samples` samples added into `gw`, and their input gradients
    /// written whole into `gx` when given.
    pub(super) fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        mut gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        if samples == 0 {
            return;
        }
        let (o, c, t) = (self.cfg.out_ch, self.cfg.in_ch, self.tiles());
        let (in_sz, out_sz) = (c * self.h * self.w, o * self.h * self.w);
        let group = self.group().min(samples);
        let cols = group * t;
        let dv_len = if gx.is_some() { XI * c * cols } else { 0 };
        let (v_len, dz_len, du_len) = (XI * c * cols, XI * o * cols, XI * o * c);
        E::with_scratch(v_len + dz_len + dv_len, du_len, |buf, du| {
            let (v, rest) = buf.split_at_mut(v_len);
            let (dz, dv) = rest.split_at_mut(dz_len);
            for s0 in (0..samples).step_by(group) {
                let g = group.min(samples - s0);
                let ld = g * t;
                for s in 0..g {
                    let i = s0 + s;
                    vectorised(|| {
                        self.input_tiles(&x[i * in_sz..][..in_sz], v, ld, s * t);
                        self.grad_tiles(&gy[i * out_sz..][..out_sz], dz, ld, s * t);
                    });
                }
                for xi in 0..XI {
                    let dz_xi = &dz[xi * o * ld..][..o * ld];
                    // The first group's product overwrites: no pass to zero `du` first.
                    Gemm::new(o, c, ld)
                        .b_transposed()
                        .accumulating_if(s0 > 0)
                        .run(
                            &mut du[xi * o * c..][..o * c],
                            dz_xi,
                            &v[xi * c * ld..][..c * ld],
                        );
                    if gx.is_some() {
                        Gemm::new(c, ld, o).a_transposed().run(
                            &mut dv[xi * c * ld..][..c * ld],
                            &self.u[xi * o * c..][..o * c],
                            dz_xi,
                        );
                    }
                }
                if let Some(gx) = gx.as_deref_mut() {
                    for s in 0..g {
                        let dst = &mut gx[(s0 + s) * in_sz..][..in_sz];
                        vectorised(|| self.input_grad_tiles(dv, ld, s * t, dst));
                    }
                }
            }
            let pairs = o * c;
            for (pair, gwp) in gw.chunks_exact_mut(9).enumerate() {
                let tile: [E; XI] = std::array::from_fn(|xi| du[xi * pairs + pair]);
                for (a, b) in gwp.iter_mut().zip(filter_grad(&tile)) {
                    *a += b;
                }
            }
        });
    }

    /// `V = Bᵀ d B` of every tile of one sample (`in × h × w`): `v[(ξ·in + ch)·ld + col0 +
    /// r·tx + q]` for tile (r, q), the patch at rows `2r − 1 ..` and columns `2q − 1 ..`.
    ///
    /// Every step is a slice operation over a tile row's `tx` tiles, so that it vectorises:
    /// the padded rows are split into even and odd columns, tile q's four columns being
    /// even[q], odd[q], even[q + 1] and odd[q + 1].
    #[inline(always)]
    fn input_tiles(&self, x: &[E], v: &mut [E], ld: usize, col0: usize) {
        let (c, h, w, ty, tx) = (self.cfg.in_ch, self.h, self.w, self.ty, self.tx);
        let n = tx + 1;
        // Padded row p is input row p − 1; its even[j] is input column 2j − 1, odd[j] column
        // 2j. Entries off the input are never written, so they stay zero for every channel.
        let mut even = vec![E::zero(); (2 * ty + 2) * n];
        let mut odd = vec![E::zero(); (2 * ty + 2) * n];
        // The four patch rows transformed over rows (Bᵀ ·), even and odd columns.
        let mut te = vec![E::zero(); 4 * n];
        let mut to = vec![E::zero(); 4 * n];
        for ch in 0..c {
            let plane = &x[ch * h * w..][..h * w];
            for (y, row) in plane.chunks_exact(w).enumerate() {
                let at = (y + 1) * n;
                split_columns(row, &mut odd[at..][..n], &mut even[at + 1..][..tx]);
            }
            for r in 0..ty {
                for (src, t) in [(&even, &mut te), (&odd, &mut to)] {
                    let d = |k: usize| &src[(2 * r + k) * n..][..n];
                    let (t01, t23) = t.split_at_mut(2 * n);
                    let (t0, t1) = t01.split_at_mut(n);
                    let (t2, t3) = t23.split_at_mut(n);
                    zip2(t0, d(0), d(2), |a, b| a - b);
                    zip2(t1, d(1), d(2), |a, b| a + b);
                    zip2(t2, d(2), d(1), |a, b| a - b);
                    zip2(t3, d(1), d(3), |a, b| a - b);
                }
                let base = col0 + r * tx;
                for i in 0..4 {
                    let (e, o) = (&te[i * n..][..n], &to[i * n..][..n]);
                    let at = |j: usize| ((4 * i + j) * c + ch) * ld + base;
                    // Over columns (· B): a0 − a2, a1 + a2, a2 − a1, a1 − a3.
                    zip2(&mut v[at(0)..][..tx], e, &e[1..], |a, b| a - b);
                    zip2(&mut v[at(1)..][..tx], o, &e[1..], |a, b| a + b);
                    zip2(&mut v[at(2)..][..tx], &e[1..], o, |a, b| a - b);
                    zip2(&mut v[at(3)..][..tx], o, &o[1..], |a, b| a - b);
                }
            }
        }
    }

    /// `Y = Aᵀ M A` of every tile of one sample, written into `out` (`out × h × w`), the
    /// tiles' columns past the sample's edge dropped.
    #[inline(always)]
    fn output_tiles(&self, m: &[E], ld: usize, col0: usize, out: &mut [E]) {
        let (o, h, w, tx) = (self.cfg.out_ch, self.h, self.w, self.tx);
        // a[(dy·4 + j)·tx ..]: column j of Aᵀ M, output row dy; y: its even and odd columns.
        let mut a = vec![E::zero(); 8 * tx];
        let mut y = vec![E::zero(); 2 * tx];
        for oc in 0..o {
            let plane = &mut out[oc * h * w..][..h * w];
            for r in 0..self.ty {
                let base = col0 + r * tx;
                let z = |xi: usize| &m[(xi * o + oc) * ld + base..][..tx];
                for j in 0..4 {
                    let (a0, a1) = a.split_at_mut(4 * tx);
                    zip3(
                        &mut a0[j * tx..][..tx],
                        z(j),
                        z(4 + j),
                        z(8 + j),
                        |p, q, r| p + q + r,
                    );
                    let a1 = &mut a1[j * tx..][..tx];
                    zip3(a1, z(4 + j), z(8 + j), z(12 + j), |p, q, r| p - q - r);
                }
                for dy in 0..2.min(h - 2 * r) {
                    let s = |j: usize| &a[(dy * 4 + j) * tx..][..tx];
                    let (y0, y1) = y.split_at_mut(tx);
                    zip3(y0, s(0), s(1), s(2), |p, q, r| p + q + r);
                    zip3(y1, s(1), s(2), s(3), |p, q, r| p - q - r);
                    join_columns(&mut plane[(2 * r + dy) * w..][..w], y0, y1, |d, v| *d = v);
                }
            }
        }
    }

    /// `dZ = A dY Aᵀ` of every tile of one sample's output gradient (`out × h × w`), laid
    /// out as [`Winograd::input_tiles`] lays out `V` (positions past the edge count as 0).
    #[inline(always)]
    fn grad_tiles(&self, gy: &[E], dz: &mut [E], ld: usize, col0: usize) {
        let (o, h, w, ty, tx) = (self.cfg.out_ch, self.h, self.w, self.ty, self.tx);
        // Output row y's even columns (2q) and odd columns (2q + 1); entries past the edge
        // are never written, so they stay zero.
        let mut even = vec![E::zero(); 2 * ty * tx];
        let mut odd = vec![E::zero(); 2 * ty * tx];
        let mut te = vec![E::zero(); tx];
        let mut to = vec![E::zero(); tx];
        for oc in 0..o {
            let plane = &gy[oc * h * w..][..h * w];
            for (y, row) in plane.chunks_exact(w).enumerate() {
                split_columns(row, &mut even[y * tx..][..tx], &mut odd[y * tx..][..tx]);
            }
            for r in 0..ty {
                let base = col0 + r * tx;
                let (e0, e1) = (&even[2 * r * tx..][..tx], &even[(2 * r + 1) * tx..][..tx]);
                let (o0, o1) = (&odd[2 * r * tx..][..tx], &odd[(2 * r + 1) * tx..][..tx]);
                for i in 0..4 {
                    // Over rows (A ·): the tile's two rows p0, p1 become p0, p0 + p1,
                    // p0 − p1, −p1.
                    match i {
                        0 => {
                            te.copy_from_slice(e0);
                            to.copy_from_slice(o0);
                        }
                        1 => {
                            zip2(&mut te, e0, e1, |a, b| a + b);
                            zip2(&mut to, o0, o1, |a, b| a + b);
                        }
                        2 => {
                            zip2(&mut te, e0, e1, |a, b| a - b);
                            zip2(&mut to, o0, o1, |a, b| a - b);
                        }
                        _ => {
                            zip2(&mut te, e1, e1, |a, _| -a);
                            zip2(&mut to, o1, o1, |a, _| -a);
                        }
                    }
                    let at = |j: usize| ((4 * i + j) * o + oc) * ld + base;
                    // Over columns (· Aᵀ): the same map on the even and odd columns.
                    dz[at(0)..][..tx].copy_from_slice(&te);
                    zip2(&mut dz[at(1)..][..tx], &te, &to, |a, b| a + b);
                    zip2(&mut dz[at(2)..][..tx], &te, &to, |a, b| a - b);
                    zip2(&mut dz[at(3)..][..tx], &to, &to, |a, _| -a);
                }
            }
        }
    }

    /// `B dV Bᵀ` of every tile, added up over the overlapping patches: the input gradient
    /// (`in × h × w`), every value written.
    #[inline(always)]
    fn input_grad_tiles(&self, dv: &[E], ld: usize, col0: usize, gx: &mut [MaybeUninit<E>]) {
        let (c, h, w, ty, tx) = (self.cfg.in_ch, self.h, self.w, self.ty, self.tx);
        let n = tx + 1;
        // The padded plane as in `input_tiles`: row p is input row p − 1, even[j] input
        // column 2j − 1 and odd[j] column 2j; patch (r, q)'s entry (k, l) is padded row
        // 2r + k, column 2q + l.
        let mut even = vec![E::zero(); (2 * ty + 2) * n];
        let mut odd = vec![E::zero(); (2 * ty + 2) * n];
        // p[(k·4 + j)·tx ..]: column j of B dV, row k.
        let mut p = vec![E::zero(); 16 * tx];
        for ch in 0..c {
            even.fill(E::zero());
            odd.fill(E::zero());
            for r in 0..ty {
                let base = col0 + r * tx;
                let d = |xi: usize| &dv[(xi * c + ch) * ld + base..][..tx];
                // Over rows (B ·): a0, a1 − a2 + a3, a1 + a2 − a0, −a3.
                for j in 0..4 {
                    let (p0, rest) = p.split_at_mut(4 * tx);
                    let (p1, rest) = rest.split_at_mut(4 * tx);
                    let (p2, p3) = rest.split_at_mut(4 * tx);
                    let at = j * tx;
                    p0[at..][..tx].copy_from_slice(d(j));
                    zip3(
                        &mut p1[at..][..tx],
                        d(4 + j),
                        d(8 + j),
                        d(12 + j),
                        |a, b, c| a - b + c,
                    );
                    zip3(&mut p2[at..][..tx], d(4 + j), d(8 + j), d(j), |a, b, c| {
                        a + b - c
                    });
                    zip2(&mut p3[at..][..tx], d(12 + j), d(12 + j), |a, _| -a);
                }
                // Over columns (· Bᵀ), added into the patch's row 2r + k: columns 2q, 2q + 1
                // (even[q], odd[q]) and 2q + 2, 2q + 3 (even[q + 1], odd[q + 1]).
                for k in 0..4 {
                    let s = |j: usize| &p[(4 * k + j) * tx..][..tx];
                    let row = (2 * r + k) * n;
                    let (e, o) = (&mut even[row..][..n], &mut odd[row..][..n]);
                    add3(&mut e[..tx], s(0), s(0), s(0), |a, _, _| a);
                    add3(&mut o[..tx], s(1), s(2), s(3), |a, b, c| a - b + c);
                    add3(&mut e[1..], s(1), s(2), s(0), |a, b, c| a + b - c);
                    add3(&mut o[1..], s(3), s(3), s(3), |a, _, _| -a);
                }
            }
            let plane = &mut gx[ch * h * w..][..h * w];
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let at = (y + 1) * n;
                join_columns(row, &odd[at..][..tx], &even[at + 1..][..tx], |d, v| {
                    d.write(v);
                });
            }
        }
    }
}

/// `dst[i] = f(a[i], b[i])`.
#[inline(always)]
fn zip2<E: Copy>(dst: &mut [E], a: &[E], b: &[E], f: impl Fn(E, E) -> E) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// `dst[i] = f(a[i], b[i], c[i])`.
#[inline(always)]
fn zip3<E: Copy>(dst: &mut [E], a: &[E], b: &[E], c: &[E], f: impl Fn(E, E, E) -> E) {
    for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = f(a, b, c);
    }
}

/// `dst[i] += f(a[i], b[i], c[i])`.
#[inline(always)]
fn add3<E: Real>(dst: &mut [E], a: &[E], b: &[E], c: &[E], f: impl Fn(E, E, E) -> E) {
    for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d += f(a, b, c);
    }
}

/// A row's even columns into `even` and odd columns into `odd` (as many as the row has).
#[inline(always)]
fn split_columns<E: Copy>(row: &[E], even: &mut [E], odd: &mut [E]) {
    let pairs = row.chunks_exact(2);
    if let [last] = pairs.remainder() {
        even[row.len() / 2] = *last;
    }
    for ((e, o), p) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
        *e = p[0];
        *o = p[1];
    }
}

/// The inverse of [`split_columns`]: `row[2q] = even[q]`, `row[2q + 1] = odd[q]`, each
/// stored by `put` (an assignment, or the first write of a row not yet initialised).
#[inline(always)]
fn join_columns<T, E: Copy>(row: &mut [T], even: &[E], odd: &[E], put: impl Fn(&mut T, E)) {
    let w = row.len();
    let mut pairs = row.chunks_exact_mut(2);
    for ((p, &e), &o) in pairs.by_ref().zip(even).zip(odd) {
        put(&mut p[0], e);
        put(&mut p[1], o);
    }
    if let [last] = pairs.into_remainder() {
        put(last, even[w / 2]);
    }
}

/// `U = G g Gᵀ` of one 3×3 filter (row-major), as 16 values row-major.
fn filter_transform<E: Real>(g: &[E]) -> [E; XI] {
    let half = c::<E>(0.5);
    let gv = |a: E, b: E, c: E| [a, (a + b + c) * half, (a - b + c) * half, c];
    // Columns of g transformed (G ·), then the rows of that (· Gᵀ).
    let cols: [[E; 4]; 3] = std::array::from_fn(|j| gv(g[j], g[3 + j], g[6 + j]));
    let mut u = [E::zero(); XI];
    for i in 0..4 {
        let row = gv(cols[0][i], cols[1][i], cols[2][i]);
        u[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    u
}

/// `Gᵀ dU G` of one tile's gradient (16 values row-major), as the 3×3 filter's gradient.
fn filter_grad<E: Real>(du: &[E; XI]) -> [E; 9] {
    let half = c::<E>(0.5);
    let gt = |u: [E; 4]| {
        [
            u[0] + (u[1] + u[2]) * half,
            (u[1] - u[2]) * half,
            (u[1] + u[2]) * half + u[3],
        ]
    };
    let cols: [[E; 3]; 4] = std::array::from_fn(|j| gt([du[j], du[4 + j], du[8 + j], du[12 + j]]));
    let mut g = [E::zero(); 9];
    for i in 0..3 {
        let row = gt([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
        g[3 * i..3 * i + 3].copy_from_slice(&row);
    }
    g
}
