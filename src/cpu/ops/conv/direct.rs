//! Direct 3×3 kernels for "same" stride-1 convolutions, on the padded layout of
//! `super::direct3x3::Padded` (channel planes of `plane` values, rows of `wp`; tap (i, j) of output
//! position `q` reads `q + i·wp + j`), written once over [`pulp::Simd`] lanes.
//!
//! Why not the shifted products through `gemm`: a DenseNet/SparseNet 3×3 layer has few output
//! channels (the growth rate), so each of the nine tap products is a thin matrix product that
//! `gemm` packs and runs at a fraction of the core's speed — the weight gradient at about a
//! quarter of it. Here the forward kernel keeps a tile of outputs (rows × vectors of positions)
//! in registers across every input channel and all nine taps, and the weight-gradient kernel
//! keeps a block of output channels × the three taps of a kernel row in registers across all
//! positions. Each output element is summed in one fixed order (channels, then taps; or
//! positions by lanes, then the lanes), whatever the tiling or the threads.

// The kernels index their accumulator tiles with constant-range loops on purpose: written with
// iterator adaptors, the forward tile was kept in memory and stored after every multiply-add.
#![allow(clippy::needless_range_loop)]

use pulp::{Simd, WithSimd};

use crate::cpu::simd::{arch, Lanes, MAX_LANES};
use crate::cpu::Real;

/// The layout of one sample's zero-padded input planes (see `super::direct3x3::Padded`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Planes {
    /// Channels.
    pub channels: usize,
    /// Values per channel plane (rows of `wp`, plus slack).
    pub plane: usize,
    /// Padded row length.
    pub wp: usize,
}

impl Planes {
    /// The buffer length the kernels need for positions below `q_end` (the last channel's taps
    /// and a whole vector past the last position), and at least the planes themselves.
    pub fn needed(&self, q_end: usize) -> usize {
        let last = (self.channels - 1) * self.plane + 2 * self.wp + 2 + q_end + MAX_LANES;
        last.max(self.channels * self.plane)
    }
}

/// The weights `[out, in, 3, 3]` rearranged as `[in][tap][out]`, so that a tile's output
/// channels read one contiguous run per channel and tap.
pub(crate) fn weights_by_tap<E: Copy>(w: &[E], cin: usize, cout: usize) -> Vec<E> {
    let mut t = Vec::with_capacity(w.len());
    for c in 0..cin {
        for tap in 0..9 {
            t.extend((0..cout).map(|o| w[(o * cin + c) * 9 + tap]));
        }
    }
    t
}

/// `out[o][q − q0] = Σ_c Σ_(i,j) w[o][c][i][j] · x[c][q + i·wp + j]` for the positions `q`
/// in `q0 .. q1` (`out` in rows of `ostride`), with the weights from [`weights_by_tap`].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<E: Real + Lanes>(
    x: &[E],
    geo: Planes,
    wt: &[E],
    cout: usize,
    out: &mut [E],
    ostride: usize,
    std::ops::Range { start: q0, end: q1 }: std::ops::Range<usize>,
) {
    assert!(
        x.len() >= geo.needed(q1),
        "direct conv: input buffer too short"
    );
    assert!(wt.len() == geo.channels * 9 * cout, "direct conv: weights");
    assert!(q0 < q1 && q1 - q0 <= ostride && out.len() >= (cout - 1) * ostride + (q1 - q0));
    arch().dispatch(Forward {
        x,
        geo,
        wt,
        cout,
        out,
        ostride,
        q0,
        q1,
    });
}

struct Forward<'a, E> {
    x: &'a [E],
    geo: Planes,
    wt: &'a [E],
    cout: usize,
    out: &'a mut [E],
    ostride: usize,
    q0: usize,
    q1: usize,
}

/// Calls `$f::<S, OB, $qb>` with `OB` the literal equal to `$ob` (1 ..= 8).
macro_rules! by_rows {
    ($self:ident, $f:ident, $s:ident, $ob:expr, $qb:literal, $($arg:expr),*) => {
        match $ob {
            1 => $self.$f::<S, 1, $qb>($s, $($arg),*),
            2 => $self.$f::<S, 2, $qb>($s, $($arg),*),
            3 => $self.$f::<S, 3, $qb>($s, $($arg),*),
            4 => $self.$f::<S, 4, $qb>($s, $($arg),*),
            5 => $self.$f::<S, 5, $qb>($s, $($arg),*),
            6 => $self.$f::<S, 6, $qb>($s, $($arg),*),
            7 => $self.$f::<S, 7, $qb>($s, $($arg),*),
            _ => $self.$f::<S, 8, $qb>($s, $($arg),*),
        }
    };
}

/// Whether `S` has 32 vector registers (AVX-512: 512-bit vectors) rather than 16: the tiles
/// are sized to fit.
#[inline(always)]
fn many_registers<S: Simd>() -> bool {
    std::mem::size_of::<S::f32s>() >= 64
}

impl<E: Real + Lanes> WithSimd for Forward<'_, E> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, s: S) {
        let l = E::width::<S>();
        // Tiles of OB output channels × QB vectors: OB·QB accumulators, QB input vectors and a
        // broadcast weight in registers.
        let (ob_max, qb) = if many_registers::<S>() {
            (6, 4)
        } else {
            (4, 3)
        };
        let mut o0 = 0;
        while o0 < self.cout {
            let ob = ob_max.min(self.cout - o0);
            let mut q = self.q0;
            while q < self.q1 {
                if q + qb * l <= self.q1 {
                    if qb == 4 {
                        by_rows!(self, tile, s, ob, 4, o0, q);
                    } else {
                        by_rows!(self, tile, s, ob, 3, o0, q);
                    }
                    q += qb * l;
                } else {
                    by_rows!(self, tile, s, ob, 1, o0, q);
                    q += l;
                }
            }
            o0 += ob;
        }
    }
}

impl<E: Real + Lanes> Forward<'_, E> {
    /// Output channels `o0 .. o0 + OB` at positions `q .. q + QB·lanes` (stored up to `q1`).
    #[inline(always)]
    fn tile<S: Simd, const OB: usize, const QB: usize>(&mut self, s: S, o0: usize, q: usize) {
        let l = E::width::<S>();
        let Planes {
            channels,
            plane,
            wp,
        } = self.geo;
        let x = self.x;
        // The loads below stay inside `x`: `forward` checked `x.len() >= needed(q1)`, and the
        // furthest one, channel `channels − 1`, tap (2, 2), vector QB − 1, ends at
        // `(channels − 1)·plane + 2·wp + 2 + q + QB·l ≤ needed(q1)`, since a tile starts
        // below q1 and has QB > 1 only when it ends at or before q1.
        assert!(q + QB * l <= self.q1 + l && o0 + OB <= self.cout);
        let mut acc = [[E::splat(s, E::zero()); QB]; OB];
        for c in 0..channels {
            let wc = &self.wt[c * 9 * self.cout + o0..];
            for i in 0..3 {
                for j in 0..3 {
                    let at = c * plane + i * wp + j + q;
                    // SAFETY: inside `x`, as shown above.
                    let xv: [E::V<S>; QB] =
                        std::array::from_fn(|b| unsafe { E::load_at::<S>(x, at + b * l) });
                    let wr: &[E; OB] = wc[(i * 3 + j) * self.cout..][..OB]
                        .try_into()
                        .expect("OB weights");
                    for o in 0..OB {
                        let wv = E::splat(s, wr[o]);
                        for b in 0..QB {
                            acc[o][b] = E::fma(s, wv, xv[b], acc[o][b]);
                        }
                    }
                }
            }
        }
        let valid = (self.q1 - q).min(QB * l);
        let at = q - self.q0;
        // Constant-index loops only (fully unrolled): an accumulator indexed by a run-time
        // value would keep the whole tile in memory, stored after every multiply-add.
        if valid == QB * l {
            for o in 0..OB {
                let dst = &mut self.out[(o0 + o) * self.ostride + at..][..QB * l];
                for b in 0..QB {
                    E::store::<S>(&mut dst[b * l..], acc[o][b]);
                }
            }
        } else {
            // The last, partial vector of a range (tiles of one vector only).
            let mut part = [[E::zero(); MAX_LANES]; OB];
            for o in 0..OB {
                E::store::<S>(&mut part[o], acc[o][0]);
            }
            for (o, p) in part.iter().enumerate() {
                self.out[(o0 + o) * self.ostride + at..][..valid].copy_from_slice(&p[..valid]);
            }
        }
    }
}

/// `gw[o][c][i][j] += Σ_s Σ_q g_s[o][q] · x_s[c][q + i·wp + j]` over `samples` samples and
/// `q < gstride`: sample `s`'s padded input starts at `s·x_step` of `x`, its output gradient
/// at `s·g_step` of `g`, in rows of `gstride` (a multiple of [`MAX_LANES`]) that are zero
/// wherever a position is not an output (the wide grid's discarded columns and the rows'
/// padding). Summing several samples before the lanes are added pays on small planes, where a
/// row is only a few vectors long.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad<E: Real + Lanes>(
    x: &[E],
    geo: Planes,
    g: &[E],
    cout: usize,
    gstride: usize,
    (samples, x_step, g_step): (usize, usize, usize),
    gw: &mut [E],
) {
    assert!(gstride.is_multiple_of(MAX_LANES) && samples > 0);
    assert!(
        x_step >= geo.needed(gstride) && g_step >= cout * gstride,
        "direct conv: sample steps"
    );
    assert!(
        x.len() >= (samples - 1) * x_step + geo.needed(gstride)
            && g.len() >= (samples - 1) * g_step + cout * gstride,
        "direct conv: buffers too short"
    );
    assert!(
        gw.len() == cout * geo.channels * 9,
        "direct conv: weight gradient"
    );
    arch().dispatch(WeightGrad {
        x,
        geo,
        g,
        cout,
        gstride,
        samples: (samples, x_step, g_step),
        gw,
    });
}

struct WeightGrad<'a, E> {
    x: &'a [E],
    geo: Planes,
    g: &'a [E],
    cout: usize,
    gstride: usize,
    samples: (usize, usize, usize),
    gw: &'a mut [E],
}

impl<E: Real + Lanes> WithSimd for WeightGrad<'_, E> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, s: S) {
        // Blocks of OB output channels × all nine taps: 9·OB accumulators, the nine shifted
        // input vectors and a gradient vector in registers. Covering the nine taps at once
        // reads each output-gradient row once per input channel (not once per kernel row):
        // those rows stream from L2, the input rows stay in L1.
        let ob_max = if many_registers::<S>() { 2 } else { 1 };
        for c in 0..self.geo.channels {
            let mut o0 = 0;
            while o0 < self.cout {
                let ob = ob_max.min(self.cout - o0);
                by_rows!(self, block, s, ob, 9, o0, c);
                o0 += ob;
            }
        }
    }
}

impl<E: Real + Lanes> WeightGrad<'_, E> {
    /// Output channels `o0 .. o0 + OB`, input channel `c`, the T = 9 taps.
    #[inline(always)]
    fn block<S: Simd, const OB: usize, const T: usize>(&mut self, s: S, o0: usize, c: usize) {
        let l = E::width::<S>();
        let Planes {
            channels,
            plane,
            wp,
        } = self.geo;
        let (x, g, gs) = (self.x, self.g, self.gstride);
        let (samples, x_step, g_step) = self.samples;
        // The loads below stay inside the buffers: `weight_grad` checked, for the last sample,
        // `x.len() >= (samples − 1)·x_step + needed(gstride)` (the furthest load, tap (2, 2) of
        // channel c < channels at q < gstride, ends within it) and `g.len() >= (samples −
        // 1)·g_step + cout·gstride`, and o0 + OB ≤ cout.
        assert!(o0 + OB <= self.cout && c < channels && T == 9);
        let mut acc = [[E::splat(s, E::zero()); T]; OB];
        for sample in 0..samples {
            let (xc, gc) = (sample * x_step + c * plane, sample * g_step);
            let mut q = 0;
            while q < gs {
                // SAFETY: inside `x` and `g`, as shown above.
                let xv: [E::V<S>; T] = std::array::from_fn(|t| unsafe {
                    E::load_at::<S>(x, xc + (t / 3) * wp + t % 3 + q)
                });
                for o in 0..OB {
                    // SAFETY: as above.
                    let gv = unsafe { E::load_at::<S>(g, gc + (o0 + o) * gs + q) };
                    for t in 0..T {
                        acc[o][t] = E::fma(s, gv, xv[t], acc[o][t]);
                    }
                }
                q += l;
            }
        }
        for (o, row) in acc.iter().enumerate() {
            let dst = &mut self.gw[((o0 + o) * channels + c) * 9..][..T];
            for (d, &v) in dst.iter_mut().zip(row) {
                *d += E::hsum(s, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testutil::rand_vec;

    /// A padded random input (zeros outside the interior, like `Same::pad`), its geometry and
    /// the interior size.
    fn padded(cin: usize, h: usize, w: usize, seed: u64) -> (Vec<f64>, Planes) {
        let wp = w + 2;
        let plane = (h + 2) * wp + 3;
        let geo = Planes {
            channels: cin,
            plane,
            wp,
        };
        let mut x = vec![0.0; geo.needed(h * wp + MAX_LANES)];
        let v = rand_vec(cin * h * w, seed);
        for c in 0..cin {
            for y in 0..h {
                for xx in 0..w {
                    x[c * plane + (y + 1) * wp + xx + 1] = v[(c * h + y) * w + xx];
                }
            }
        }
        (x, geo)
    }

    /// Naive sum of the forward formula.
    fn naive_forward(x: &[f64], geo: Planes, w: &[f64], cout: usize, q: usize, o: usize) -> f64 {
        let mut s = 0.0;
        for c in 0..geo.channels {
            for i in 0..3 {
                for j in 0..3 {
                    s += w[(o * geo.channels + c) * 9 + i * 3 + j]
                        * x[c * geo.plane + q + i * geo.wp + j];
                }
            }
        }
        let _ = cout;
        s
    }

    #[test]
    fn forward_matches_the_formula_on_every_tile_shape() {
        // Output channels 1..14 (every row-block remainder), ranges that end mid-vector.
        for (cin, cout, h, w, q0) in [
            (3, 13, 7, 5, 0),
            (5, 7, 9, 9, 3),
            (1, 1, 2, 3, 1),
            (2, 14, 11, 4, 5),
        ] {
            let (x, geo) = padded(cin, h, w, 7 + cin as u64);
            let wv = rand_vec(cout * cin * 9, 9);
            let wt = weights_by_tap(&wv, cin, cout);
            let q1 = h * geo.wp;
            let ostride = q1 - q0 + 2;
            let mut out = vec![f64::NAN; cout * ostride];
            forward(&x, geo, &wt, cout, &mut out, ostride, q0..q1);
            for o in 0..cout {
                for q in q0..q1 {
                    let want = naive_forward(&x, geo, &wv, cout, q, o);
                    let got = out[o * ostride + q - q0];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{cin}→{cout} {h}×{w} o {o} q {q}"
                    );
                }
                // Nothing written past q1.
                assert!(out[o * ostride + q1 - q0].is_nan());
            }
            // f32 through the same kernel, and the scalar instruction set: same formula.
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let wf: Vec<f32> = wt.iter().map(|&v| v as f32).collect();
            let mut of = vec![0.0f32; cout * ostride];
            forward(&xf, geo, &wf, cout, &mut of, ostride, q0..q1);
            // Every instruction set this machine has, not only the one `arch()` picks: the
            // scalar code, and AVX2 (16 registers: other tile sizes) where it is available.
            let run = |simd: &dyn Fn(Forward<'_, f32>)| {
                let mut o = vec![0.0f32; cout * ostride];
                simd(Forward {
                    x: &xf,
                    geo,
                    wt: &wf,
                    cout,
                    out: &mut o,
                    ostride,
                    q0,
                    q1,
                });
                o
            };
            let os = run(&|k| pulp::Scalar.vectorize(k));
            let o3 = match pulp::x86::V3::try_new() {
                Some(v3) => run(&|k| pulp::Simd::vectorize(v3, k)),
                None => os.clone(),
            };
            for o in 0..cout {
                for q in q0..q1 {
                    let want = naive_forward(&x, geo, &wv, cout, q, o);
                    let at = o * ostride + q - q0;
                    for got in [of[at], os[at], o3[at]] {
                        assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn weight_gradient_matches_the_formula() {
        for (cin, cout, h, w) in [(3, 13, 7, 5), (4, 6, 9, 9), (1, 1, 2, 3), (2, 8, 4, 11)] {
            let (x, geo) = padded(cin, h, w, 20 + cin as u64);
            let len = h * geo.wp;
            let gstride = len.div_ceil(MAX_LANES) * MAX_LANES;
            let gv = rand_vec(cout * len, 21);
            let mut g = vec![0.0; cout * gstride];
            for o in 0..cout {
                g[o * gstride..][..len].copy_from_slice(&gv[o * len..][..len]);
            }
            let start = rand_vec(cout * cin * 9, 22);
            let mut gw = start.clone();
            weight_grad(&x, geo, &g, cout, gstride, (1, x.len(), g.len()), &mut gw);
            // Two samples summed: the same input and gradient twice.
            let (x2, g2) = (
                [x.clone(), x.clone()].concat(),
                [g.clone(), g.clone()].concat(),
            );
            let mut gw2 = start.clone();
            let steps = (2, x.len(), g.len());
            weight_grad(&x2, geo, &g2, cout, gstride, steps, &mut gw2);
            for ((&a, &b), &s0) in gw2.iter().zip(&gw).zip(&start) {
                assert!((a - s0 - 2.0 * (b - s0)).abs() < 1e-12);
            }
            // The scalar code and AVX2 (where available) agree with the chosen set.
            let other = |simd: &dyn Fn(WeightGrad<'_, f64>)| {
                let mut o = start.clone();
                simd(WeightGrad {
                    x: &x,
                    geo,
                    g: &g,
                    cout,
                    gstride,
                    samples: (1, x.len(), g.len()),
                    gw: &mut o,
                });
                o
            };
            let mut sets = vec![other(&|k| pulp::Scalar.vectorize(k))];
            if let Some(v3) = pulp::x86::V3::try_new() {
                sets.push(other(&|k| pulp::Simd::vectorize(v3, k)));
            }
            for o in sets {
                assert!(o.iter().zip(&gw).all(|(a, b)| (a - b).abs() < 1e-12));
            }
            for o in 0..cout {
                for c in 0..cin {
                    for tap in 0..9 {
                        let (i, j) = (tap / 3, tap % 3);
                        let want: f64 = start[(o * cin + c) * 9 + tap]
                            + (0..len)
                                .map(|q| gv[o * len + q] * x[c * geo.plane + q + i * geo.wp + j])
                                .sum::<f64>();
                        let got = gw[(o * cin + c) * 9 + tap];
                        assert!((got - want).abs() < 1e-12, "{cin}→{cout} {o} {c} {tap}");
                    }
                }
            }
        }
    }
}
