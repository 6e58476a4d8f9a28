//! A safe row-major matrix product over the `gemm` crate (the kernel dfdx's CPU matmul uses).

use super::Real;

/// `C (m×n) (+)= op(A) · op(B)`, all row-major: `op(A)` is `A` (`m×k`) or, with `ta`, the
/// transpose of a stored `k×m`; likewise `op(B)` is `k×n` or the transpose of a stored `n×k`.
/// With `accumulate` the product is added to `C`, otherwise it overwrites it. `threads > 1`
/// lets the kernel split the work.
#[allow(clippy::too_many_arguments)]
pub fn matmul<E: Real>(
    c: &mut [E],
    a: &[E],
    b: &[E],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    accumulate: bool,
    threads: usize,
) {
    assert!(
        c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
        "matmul: buffer too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(E::zero());
        }
        return;
    }
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index the kernel touches: A is read at
    // i·a_rs + p·a_cs < m·k, B at p·b_rs + j·b_cs < k·n, C written at i·n + j < m·n; the three
    // slices are distinct borrows, so C does not alias A or B.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            E::one(),
            E::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// A strided matrix view: element (i, j) is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided {
    /// Index of element (0, 0).
    pub offset: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl Strided {
    /// Row-major with `cols` columns, starting at `offset`.
    pub fn rows(offset: usize, cols: usize) -> Self {
        Strided {
            offset,
            rs: cols,
            cs: 1,
        }
    }

    fn last(&self, rows: usize, cols: usize) -> usize {
        self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs
    }
}

/// `C (+)= A·B` on strided views: `A` is `m×k`, `B` is `k×n`, `C` is `m×n`. One thread.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided<E: Real>(
    c: &mut [E],
    cv: Strided,
    a: &[E],
    av: Strided,
    b: &[E],
    bv: Strided,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(
        cv.last(m, n) < c.len() && av.last(m, k) < a.len() && bv.last(k, n) < b.len(),
        "matmul_strided: view out of bounds"
    );
    // SAFETY: the assert bounds the largest index of each view (strides are non-negative, so
    // every other index is smaller); C is a distinct mutable borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().add(cv.offset),
            cv.cs as isize,
            cv.rs as isize,
            accumulate,
            a.as_ptr().add(av.offset),
            av.cs as isize,
            av.rs as isize,
            b.as_ptr().add(bv.offset),
            bv.cs as isize,
            bv.rs as isize,
            E::one(),
            E::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::rand_vec;

    fn naive(a: &[f64], b: &[f64], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn all_transpositions_and_accumulation() {
        let (m, n, k) = (7, 5, 9);
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        for ta in [false, true] {
            for tb in [false, true] {
                let mut c = vec![0.0; m * n];
                matmul(&mut c, &a, &b, m, n, k, ta, tb, false, 1);
                let want = naive(&a, &b, m, n, k, ta, tb);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12);
                }
                matmul(&mut c, &a, &b, m, n, k, ta, tb, true, 2);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-12);
                }
            }
        }
    }
}
