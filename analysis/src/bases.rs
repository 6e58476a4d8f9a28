//! The base sweep: sparse patterns of base `c = 2, 3, …` at one depth.
//!
//! A larger base means fewer connections (`≈ N·log_c N`) but a longer worst-case gradient path
//! (`≈ (c − 1)·log_c N = log₂N · (c − 1)/log₂c`). The factor `(c − 1)/log₂c` is 1 at `c = 2`
//! and grows with `c`, so base 2 gives the shortest worst-case path; the sweep shows the price
//! paid for it in connections.

use crate::distance::{gradient_stats, sparse_gradient_bound};
use crate::topology::{Pattern, Topology};
use crate::GraphError;

/// One base of the sweep.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BaseRow {
    /// The base `c`.
    pub base: usize,
    /// Connections of the sparse block of base `c`.
    pub connections: u64,
    /// Worst-case shortest path over all pairs.
    pub gradient_path_max: u32,
    /// Mean shortest path over all pairs.
    pub gradient_path_mean: f64,
    /// `(c − 1)/log₂c`: the worst case is about `log₂N` times this.
    pub factor: f64,
    /// The proven bound `(c − 1)·(⌊log_c N⌋ + 1)` on `gradient_path_max`.
    pub bound: u64,
}

/// Sweep the sparse pattern over `bases` at `depth`.
pub fn base_sweep(
    depth: usize,
    bases: std::ops::RangeInclusive<usize>,
) -> Result<Vec<BaseRow>, GraphError> {
    bases
        .map(|c| {
            let t = Topology::new(Pattern::sparse(c)?, depth)?;
            let g = gradient_stats(&t.offsets(), depth);
            Ok(BaseRow {
                base: c,
                connections: t.connections(),
                gradient_path_max: g.max,
                gradient_path_mean: g.mean,
                factor: (c as f64 - 1.0) / (c as f64).log2(),
                bound: sparse_gradient_bound(depth as u64, c as u64),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_100_by_hand() {
        let rows = base_sweep(100, 2..=3).unwrap();
        // Base 2: Σ_{ℓ=1}^{100} (⌊log₂ℓ⌋+1) = 1·1 + 2·2 + 4·3 + 8·4 + 16·5 + 32·6 + 37·7 = 580.
        assert_eq!(rows[0].connections, 580);
        // Worst pair distance 63 = 111111₂ → 6 hops.
        assert_eq!(rows[0].gradient_path_max, 6);
        // Base 3: offsets 1, 3, 9, 27, 81 used by 100, 98, 92, 74, 20 layers → 384.
        assert_eq!(rows[1].connections, 384);
        // 80 = 2222₃ → 8 hops.
        assert_eq!(rows[1].gradient_path_max, 8);
    }
}
