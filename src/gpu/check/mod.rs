//! Does the GPU compute what the CPU computes? Op by op and network by network, from the same
//! weights and inputs: forward outputs, every gradient and the batch-norm running statistics,
//! then a few SGD steps side by side. Also the GPU training benchmark.

mod bench;
mod network;
mod ops;

pub use bench::{bench, is_out_of_memory, largest_batch, latency, Bench, Latency};
pub use network::network_check;
pub use ops::op_checks;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One compared quantity.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// What was compared, e.g. `conv 3×3 s1 p1: grad w`.
    pub what: String,
    /// Largest absolute difference divided by the largest magnitude of either side.
    pub err: f64,
    /// The tolerance it must meet.
    pub tol: f64,
    /// For training quantities: the same difference between two CPU runs whose inputs differ
    /// by one part in a million (how much rounding alone moves it).
    pub floor: Option<f64>,
}

impl Comparison {
    /// Whether it meets its tolerance (NaN never does).
    pub fn ok(&self) -> bool {
        self.err <= self.tol
    }
}

/// `max |a − b| / max(|a|, |b|)` over the two vectors (0 for two zero vectors; infinite when
/// the lengths differ or a value is not finite).
pub fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = a
        .iter()
        .chain(b)
        .fold(0f64, |m, &v| m.max((v as f64).abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    if scale == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

/// Uniform values in [−1, 1), seeded.
pub(super) fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_difference() {
        assert_eq!(rel_diff(&[1.0, -2.0], &[1.0, -2.0]), 0.0);
        assert!((rel_diff(&[1.0, -2.0], &[1.0, -1.0]) - 0.5).abs() < 1e-12);
        assert_eq!(rel_diff(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(rel_diff(&[f32::NAN], &[1.0]), f64::INFINITY);
        assert_eq!(rel_diff(&[0.0], &[0.0]), 0.0);
    }
}
