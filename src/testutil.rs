//! Finite-difference gradient checks in f64 (tests only).

use rand::{Rng, SeedableRng};

/// Random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
}

/// `Σ out·weights` as a scalar: the loss whose gradient the checks compare.
pub fn weighted_sum(out: &[f64], weights: &[f64]) -> f64 {
    out.iter().zip(weights).map(|(a, b)| a * b).sum()
}

/// Central finite difference of `f` at every coordinate of `x`.
pub fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    let mut xs = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xs[i];
            xs[i] = orig + h;
            let up = f(&xs);
            xs[i] = orig - h;
            let down = f(&xs);
            xs[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Largest relative error, scaled by the largest gradient magnitude.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().chain(b).fold(1e-12f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f64::max)
}
