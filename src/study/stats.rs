//! Statistics for comparisons over seeds (issue 42): the paired difference of two networks
//! trained with the same seeds (same data order, same initial draws), with Student's t interval
//! and test, and Kendall's τ-b between two rankings with a bootstrap interval (how well a short
//! run's ranking predicts the converged one).

use rand::{Rng, SeedableRng};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A paired comparison: `a − b` over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paired {
    /// Pairs (seeds present in both).
    pub n: usize,
    /// Mean of the differences.
    pub mean: f64,
    /// Sample standard deviation of the differences.
    pub sd: f64,
    /// 95 % confidence interval of the mean difference (Student's t, n − 1 degrees of freedom).
    pub ci95: (f64, f64),
    /// The t statistic, mean / (sd / √n).
    pub t: f64,
    /// Two-sided p-value of the paired t-test (mean difference 0).
    pub p: f64,
}

/// The paired comparison of `a` and `b` (the same seeds, in the same order); None with fewer
/// than two pairs. Differences that are all equal give a zero-width interval, and p = 0 unless
/// they are all zero (p = 1).
pub fn paired(a: &[f64], b: &[f64]) -> Option<Paired> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = sd / (n as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let q = dist.inverse_cdf(0.975);
    let (t, p) = if se > 0.0 {
        let t = mean / se;
        (t, 2.0 * (1.0 - dist.cdf(t.abs())))
    } else if mean == 0.0 {
        (0.0, 1.0)
    } else {
        (mean.signum() * f64::INFINITY, 0.0)
    };
    Some(Paired {
        n,
        mean,
        sd,
        ci95: (mean - q * se, mean + q * se),
        t,
        p,
    })
}

/// Kendall's τ-b of `x` and `y` (ties in either counted as neither concordant nor
/// discordant, and corrected for); None when either is constant or they have under two points.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    let (mut concordant, mut discordant, mut tie_x, mut tie_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i] - x[j];
            let dy = y[i] - y[j];
            match (dx == 0.0, dy == 0.0) {
                (true, true) => {}
                (true, false) => tie_x += 1,
                (false, true) => tie_y += 1,
                (false, false) if (dx > 0.0) == (dy > 0.0) => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let nx = (concordant + discordant + tie_x) as f64;
    let ny = (concordant + discordant + tie_y) as f64;
    (nx > 0.0 && ny > 0.0).then(|| (concordant - discordant) as f64 / (nx * ny).sqrt())
}

/// Kendall's τ-b with a percentile bootstrap 95 % interval over `resamples` resamples of the
/// points (seeded: the same interval every run); None where τ is undefined.
pub fn kendall_with_interval(
    x: &[f64],
    y: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<(f64, (f64, f64))> {
    let tau = kendall_tau_b(x, y)?;
    let n = x.len().min(y.len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut taus: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
            let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
            let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            kendall_tau_b(&xs, &ys)
        })
        .collect();
    if taus.is_empty() {
        return Some((tau, (f64::NAN, f64::NAN)));
    }
    taus.sort_by(f64::total_cmp);
    let at = |q: f64| taus[((q * (taus.len() - 1) as f64).round() as usize).min(taus.len() - 1)];
    Some((tau, (at(0.025), at(0.975))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differences 1, 2, 3, 4, 5: mean 3, sd √2.5 = 1.5811, t = 3 / (1.5811 / √5) = 4.2426 on 4
    /// degrees of freedom; t₀.₉₇₅,₄ = 2.7764 (printed tables), so the interval is
    /// 3 ± 2.7764 · 0.70711 = [1.0368, 4.9632], and the two-sided p is 0.0132.
    #[test]
    fn a_paired_t_test_by_hand() {
        let a = [11.0, 12.0, 13.0, 14.0, 15.0];
        let b = [10.0, 10.0, 10.0, 10.0, 10.0];
        let p = paired(&a, &b).unwrap();
        assert_eq!(p.n, 5);
        assert!((p.mean - 3.0).abs() < 1e-12);
        assert!((p.sd - 2.5f64.sqrt()).abs() < 1e-12);
        assert!((p.t - 4.242_640_687).abs() < 1e-6, "{}", p.t);
        assert!(
            (p.ci95.0 - 1.0368).abs() < 1e-3 && (p.ci95.1 - 4.9632).abs() < 1e-3,
            "{:?}",
            p.ci95
        );
        assert!((p.p - 0.0132).abs() < 5e-4, "{}", p.p);
        assert!(paired(&[1.0], &[2.0]).is_none());
        let same = paired(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
        assert_eq!((same.t, same.p), (0.0, 1.0));
    }

    /// x = 1…5, y = 3, 4, 1, 2, 5: of the 10 pairs 6 are concordant and 4 discordant (counted by
    /// hand), τ = 0.2; a reversed ranking is −1; ties follow τ-b's correction.
    #[test]
    fn kendall_tau_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((kendall_tau_b(&x, &[3.0, 4.0, 1.0, 2.0, 5.0]).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(kendall_tau_b(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        // y = 1, 1, 2: pairs (1,2) tie in y, (1,3) and (2,3) concordant: 2 / √(3 · 2).
        let t = kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0]).unwrap();
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-12);
        assert_eq!(kendall_tau_b(&x, &[1.0; 5]), None);
        let (tau, (lo, hi)) = kendall_with_interval(&x, &x, 500, 1).unwrap();
        assert_eq!(tau, 1.0);
        assert!(lo <= hi && hi <= 1.0);
        // Seeded: the same interval twice.
        let y = [3.0, 4.0, 1.0, 2.0, 5.0];
        assert_eq!(
            kendall_with_interval(&x, &y, 300, 9),
            kendall_with_interval(&x, &y, 300, 9)
        );
    }
}
