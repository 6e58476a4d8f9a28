//! Parameters against depth: DenseNet's O(n²) against SparseNet's O(n lg n), with the fitted
//! exponent.

use super::build::build_and_count;
use super::spec::{Family, Layout, NetSpec};
use crate::NetError;

/// Parameters of CIFAR DenseNet and SparseNet (non-BC, growth `k`, 10 classes) at each depth.
pub fn depth_sweep(k: usize, depths: &[usize]) -> Result<Vec<(usize, u64, u64)>, NetError> {
    depths
        .iter()
        .map(|&d| {
            let dense = build_and_count(&NetSpec::new(
                Family::Dense,
                Layout::Cifar,
                d,
                &[k],
                false,
                10,
            ))?
            .1;
            let sparse = build_and_count(&NetSpec::new(
                Family::Sparse,
                Layout::Cifar,
                d,
                &[k],
                false,
                10,
            ))?
            .1;
            Ok((d, dense.params, sparse.params))
        })
        .collect()
}

/// Least-squares slope of `ln y` against `ln x`: the exponent `a` in `y ≈ C·x^a`.
pub fn fit_exponent(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let mx = lx.iter().sum::<f64>() / n;
    let my = ly.iter().sum::<f64>() / n;
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx) * (x - mx)).sum();
    cov / var
}
