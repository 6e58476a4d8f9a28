//! A safe row-major matrix product over the `gemm` crate (the kernel dfdx's CPU matmul uses).

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::Real;

/// One matrix product `C (m×n) (+)= op(A) · op(B)`, described by name rather than by ten
/// positional arguments: `op(A)` is `A` (`m×k`) or, after [`Gemm::a_transposed`], the
/// transpose of a stored `k×m`; likewise `op(B)`. [`Gemm::accumulating`] adds the product to
/// `C` instead of overwriting it.
///
/// ```
/// use sparsenet::cpu::gemm::Gemm;
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [1.0f32, 0.0, 0.0, 1.0]);
/// let mut c = [0.0f32; 4];
/// Gemm::new(2, 2, 2).run(&mut c, &a, &b); // C = A·I
/// assert_eq!(c, a);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    accumulate: bool,
    threads: usize,
}

impl Gemm {
    /// `C (m×n) = A (m×k) · B (k×n)`, row-major, overwriting `C`, on the calling thread.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            m,
            n,
            k,
            ta: false,
            tb: false,
            accumulate: false,
            threads: 1,
        }
    }

    /// `A` is stored transposed (`k×m`).
    pub fn a_transposed(self) -> Self {
        Gemm { ta: true, ..self }
    }

    /// `B` is stored transposed (`n×k`).
    pub fn b_transposed(self) -> Self {
        Gemm { tb: true, ..self }
    }

    /// Add the product to `C`.
    pub fn accumulating(self) -> Self {
        self.accumulating_if(true)
    }

    /// Add the product to `C` when `yes`, overwrite it otherwise.
    pub fn accumulating_if(self, yes: bool) -> Self {
        Gemm {
            accumulate: yes,
            ..self
        }
    }

    /// Let the kernel split the work over `threads` (rayon) threads.
    pub fn threads(self, threads: usize) -> Self {
        Gemm { threads, ..self }
    }

    /// How the kernel may split the work.
    fn parallelism(self) -> gemm::Parallelism {
        if self.threads > 1 {
            gemm::Parallelism::Rayon(self.threads)
        } else {
            gemm::Parallelism::None
        }
    }

    /// Compute into `c` from contiguous row-major `a` and `b`.
    pub fn run<E: Real>(self, c: &mut [E], a: &[E], b: &[E]) {
        let Gemm { m, n, k, .. } = self;
        assert!(
            c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
            "matmul: buffer too small"
        );
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !self.accumulate {
                c[..m * n].fill(E::zero());
            }
            return;
        }
        // SAFETY: `c` is a distinct mutable borrow (aliasing neither input) holding m·n
        // initialised elements (asserted above), which the kernel may read when accumulating.
        unsafe { self.contiguous(c.as_mut_ptr(), a, b) };
    }

    /// Compute on strided views of flat buffers: `a` seen through `av` as `op(A)` (`m×k`), `b`
    /// through `bv` (`k×n`), `c` through `cv` (`m×n`); the transposition flags are not used (a
    /// view says it all).
    pub fn run_strided<E: Real>(
        self,
        (c, cv): (&mut [E], Strided),
        (a, av): (&[E], Strided),
        (b, bv): (&[E], Strided),
    ) {
        let Gemm { m, n, k, .. } = self;
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        let par = self.parallelism();
        self.kernel(
            cv.view_mut(c, m, n),
            av.view(a, m, k),
            bv.view(b, k, n),
            par,
        );
    }

    /// [`Gemm::run`] into memory not yet initialised (a fresh gradient buffer that the product
    /// overwrites whole: no zero-fill first). Not with [`Gemm::accumulating`], which reads `C`.
    pub fn run_uninit<E: Real>(self, c: &mut [std::mem::MaybeUninit<E>], a: &[E], b: &[E]) {
        let Gemm { m, n, k, .. } = self;
        assert!(!self.accumulate, "run_uninit cannot accumulate into C");
        assert!(
            c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
            "matmul: buffer too small"
        );
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            for v in &mut c[..m * n] {
                v.write(E::zero());
            }
            return;
        }
        // SAFETY: `c` is a distinct mutable borrow of at least m·n elements (asserted above);
        // not accumulating, the kernel writes every element of C without reading it, so
        // uninitialised memory is never read.
        unsafe { self.contiguous(c.as_mut_ptr() as *mut E, a, b) };
    }

    /// The product on contiguous row-major buffers (A stored m×k, or k×m when transposed; B
    /// k×n, or n×k), C row-major m×n at `c`. Callers have asserted the buffer lengths and that
    /// m, n, k are non-zero.
    ///
    /// # Safety
    /// `c` must be valid for writes of m·n elements, not overlap `a` or `b`, and hold
    /// initialised values when accumulating (the kernel then reads them).
    unsafe fn contiguous<E: Real>(self, c: *mut E, a: &[E], b: &[E]) {
        let Gemm { m, n, k, .. } = self;
        let (a_rs, a_cs) = if self.ta { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if self.tb { (1, k) } else { (n, 1) };
        // SAFETY: the lengths asserted by the callers keep every element of the m×n, m×k and
        // k×n matrices (with these strides) inside `c`, `a` and `b`; the caller's contract covers
        // `c`'s validity and what the kernel may read of it.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c,
                1,
                n as isize,
                self.accumulate,
                a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                E::one(),
                E::one(),
                false,
                false,
                false,
                self.parallelism(),
            );
        }
    }

    /// The one call into the `gemm` crate, on views ndarray has checked against their buffers.
    fn kernel<E: Real>(
        self,
        mut c: ArrayViewMut2<'_, E>,
        a: ArrayView2<'_, E>,
        b: ArrayView2<'_, E>,
        par: gemm::Parallelism,
    ) {
        let Gemm { m, n, k, .. } = self;
        assert!(
            c.dim() == (m, n) && a.dim() == (m, k) && b.dim() == (k, n),
            "matmul: view shapes"
        );
        // (row, column) strides, copied out before C is borrowed mutably.
        let stride = |st: &[isize]| (st[0], st[1]);
        let (c_rs, c_cs) = stride(c.strides());
        let (a_rs, a_cs) = stride(a.strides());
        let (b_rs, b_cs) = stride(b.strides());
        // SAFETY: every element of each view lies inside its buffer (ndarray checked the shape
        // and strides when the view was made, see `Strided::view`), the kernel reads and writes
        // exactly the elements of these m×n, m×k and k×n views through the same strides, and C
        // is a distinct mutable borrow, so it aliases neither input.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                c_cs,
                c_rs,
                self.accumulate,
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

    /// `rows × cols` of `data` through this view (panics if any element lies outside `data`).
    pub fn view<'a, E>(&self, data: &'a [E], rows: usize, cols: usize) -> ArrayView2<'a, E> {
        ArrayView2::from_shape(
            (rows, cols).strides((self.rs, self.cs)),
            &data[self.offset..],
        )
        .expect("a strided view inside its buffer")
    }

    /// The mutable view of [`Strided::view`] (its elements must also be distinct).
    pub fn view_mut<'a, E>(
        &self,
        data: &'a mut [E],
        rows: usize,
        cols: usize,
    ) -> ArrayViewMut2<'a, E> {
        ArrayViewMut2::from_shape(
            (rows, cols).strides((self.rs, self.cs)),
            &mut data[self.offset..],
        )
        .expect("a strided view inside its buffer, without overlaps")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testutil::rand_vec;

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
                let mut g = Gemm::new(m, n, k);
                if ta {
                    g = g.a_transposed();
                }
                if tb {
                    g = g.b_transposed();
                }
                g.run(&mut c, &a, &b);
                let want = naive(&a, &b, m, n, k, ta, tb);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12);
                }
                g.accumulating().threads(2).run(&mut c, &a, &b);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn into_uninitialised_memory_equals_run() {
        use std::mem::MaybeUninit;
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, n, k) = (7, 5, 9);
            let a: Vec<f64> = rand_vec(m * k, 1);
            let b: Vec<f64> = rand_vec(k * n, 2);
            let mut g = Gemm::new(m, n, k);
            if ta {
                g = g.a_transposed();
            }
            if tb {
                g = g.b_transposed();
            }
            let mut want = vec![0.0; m * n];
            g.run(&mut want, &a, &b);
            let mut c: Vec<MaybeUninit<f64>> = (0..m * n).map(|_| MaybeUninit::uninit()).collect();
            g.run_uninit(&mut c, &a, &b);
            // SAFETY: run_uninit wrote all m·n elements.
            let got: Vec<f64> = c.into_iter().map(|v| unsafe { v.assume_init() }).collect();
            assert_eq!(got, want, "ta {ta} tb {tb}");
            let reference = naive(&a, &b, m, n, k, ta, tb);
            assert!(got
                .iter()
                .zip(&reference)
                .all(|(x, y)| (x - y).abs() < 1e-12));
        }
    }

    #[test]
    fn threads_do_not_change_a_bit() {
        // gemm splits the output over threads, never the sum over k: the same bits with any
        // thread count (what lets a batch smaller than the pool use the other cores).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &(m, n, k) in &[(64, 784, 1152), (33, 3136, 96), (128, 49, 1024), (7, 5, 3)] {
            let a: Vec<f32> = rand_vec(m * k, 1).iter().map(|&v| v as f32).collect();
            let b: Vec<f32> = rand_vec(k * n, 2).iter().map(|&v| v as f32).collect();
            let mut one = vec![0.0f32; m * n];
            Gemm::new(m, n, k).run(&mut one, &a, &b);
            for t in [2, 3] {
                let mut many = vec![0.0f32; m * n];
                pool.install(|| Gemm::new(m, n, k).threads(t).run(&mut many, &a, &b));
                assert!(
                    one.iter()
                        .zip(&many)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}×{n}×{k} with {t} threads"
                );
            }
        }
    }
}
