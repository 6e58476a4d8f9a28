//! The fractal block of FractalNet (Larsson, Maire & Shakhnarovich 2017) as a block DAG: the
//! expansion rule `f_1(z) = conv(z)`, `f_{C+1}(z) = join(conv(z), f_C(f_C(z)))`, with
//! consecutive joins merged into one (as the authors' networks do), so a join averages every
//! column that ends at its row.
//!
//! Numbering: node 0 is the block input; the convolutions are nodes 1 … L, ordered by the row
//! they end at (row `d` of the deepest column's `R = 2^(C−1)` rows), deepest column first
//! within a row; node `L + 1` is the block output, the last join. A convolution's sources are
//! the members of the join it reads (the block input for the first convolution of a column).
//! Column `c` (1 = the shallowest) has `2^(c−1)` convolutions, each spanning `2^(C−c)` rows, so
//! `L = 2^C − 1`. The paths from input to output are FractalNet's ensemble: `P(1) = 1`,
//! `P(C + 1) = 1 + P(C)²`, of lengths 1 … `2^(C−1)` convolutions, with no residual link.

use crate::dag::BlockDag;
use crate::GraphError;

/// The most columns a fractal block may have (2^C − 1 convolutions: 32 767 at 15).
pub const MAX_COLUMNS: usize = 15;

/// One convolution of a fractal block: its column (1 = the shallowest) and the row it ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FractalConv {
    /// Column, 1 … C.
    pub column: usize,
    /// The row its output reaches, 1 … 2^(C−1).
    pub end_row: usize,
}

/// The convolutions of a fractal block of `columns` columns in node order (node `i + 1` is
/// entry `i`).
pub fn fractal_convs(columns: usize) -> Vec<FractalConv> {
    let rows = 1usize << (columns - 1);
    let mut convs = Vec::new();
    for row in 1..=rows {
        // Deepest column first: column c ends a convolution at every multiple of 2^(C−c).
        for column in (1..=columns).rev() {
            if row.is_multiple_of(1 << (columns - column)) {
                convs.push(FractalConv {
                    column,
                    end_row: row,
                });
            }
        }
    }
    convs
}

/// The fractal block of `columns` columns (1 ≤ C ≤ [`MAX_COLUMNS`]) as a block DAG.
pub fn fractal_block(columns: usize) -> Result<BlockDag, GraphError> {
    if columns == 0 || columns > MAX_COLUMNS {
        return Err(GraphError::Dag(format!(
            "{columns} columns: a fractal block has 1 to {MAX_COLUMNS} columns (FractalNet's CIFAR networks have 3 or 4)"
        )));
    }
    let convs = fractal_convs(columns);
    // The members (node numbers) of the join at each row: every convolution ending there.
    let rows = 1usize << (columns - 1);
    let mut join: Vec<Vec<usize>> = vec![Vec::new(); rows + 1];
    join[0] = vec![0];
    for (i, c) in convs.iter().enumerate() {
        join[c.end_row].push(i + 1);
    }
    let mut edges = Vec::new();
    for (i, c) in convs.iter().enumerate() {
        let start = c.end_row - (1 << (columns - c.column));
        edges.extend(join[start].iter().map(|&j| (j, i + 1)));
    }
    let out = convs.len() + 1;
    edges.extend(join[rows].iter().map(|&j| (j, out)));
    BlockDag::from_edges(Some(out + 1), &edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag_analysis::{dag_path_count, dag_path_length_range};
    use num_bigint::BigUint;

    #[test]
    fn two_columns_by_hand() {
        // f_2(z) = join(conv(z), conv(conv(z))): row 1 holds column 2's first convolution
        // (node 1); row 2 column 2's second (node 2, reading node 1) and column 1's only one
        // (node 3, reading the input); the output joins nodes 2 and 3.
        let d = fractal_block(2).unwrap();
        assert_eq!(d.nodes(), 5);
        let mut e = d.edge_list();
        e.sort();
        assert_eq!(e, vec![(0, 1), (0, 3), (1, 2), (2, 4), (3, 4)]);
    }

    #[test]
    fn path_counts_follow_the_expansion_rule() {
        // P(1) = 1, P(C+1) = 1 + P(C)²: 1, 2, 5, 26, 677.
        let mut p = 1u64;
        for c in 1..=5 {
            let d = fractal_block(c).unwrap();
            assert_eq!(d.depth(), 1 << c, "2^C − 1 convolutions and the output");
            assert_eq!(dag_path_count(&d), BigUint::from(p), "C = {c}");
            // Paths of 1 … 2^(C−1) convolutions: 2 … 2^(C−1) + 1 edges to the output.
            let out = dag_path_length_range(&d)[d.nodes() - 1];
            assert_eq!(out, (2, (1 << (c - 1)) + 1), "C = {c}");
            p = 1 + p * p;
        }
        assert!(fractal_block(0).is_err() && fractal_block(16).is_err());
    }
}
