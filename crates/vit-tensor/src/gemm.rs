//! The one safe door to the GEMM backend (`matrixmultiply::sgemm`, or the `gemm` crate with
//! the cargo feature `gemm`), and the only `unsafe` in the workspace.
//!
//! Vocabulary (as matrixmultiply defines it): a matrix view has `rows × cols` elements; the
//! element at `(i, j)` sits at `data[i · row_stride + j · col_stride]`. A row-major matrix has
//! `row_stride = cols, col_stride = 1`; its transpose is the same buffer with the two strides
//! (and the two dimensions) swapped, which is how `x · Wᵀ` runs without copying `W`.
//!
//! [`MatRef`] and [`MatMut`] check their extent against the buffer when they are built, and
//! [`gemm()`](fn@gemm) checks that the dimensions agree, so that every obligation of the raw call is
//! discharged before it is made.

use crate::error::{TensorError, TensorResult, ViewExtent};

/// Number of elements a `rows × cols` view with the given strides reaches, or `None` on
/// overflow. An empty view reaches nothing.
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

fn check_extent(
    op: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> TensorResult<()> {
    match extent(rows, cols, row_stride, col_stride) {
        Some(needed) if needed <= len => Ok(()),
        needed => Err(TensorError::ViewOutOfBounds {
            op,
            rows,
            cols,
            row_stride,
            col_stride,
            needed: needed.map_or(ViewExtent::Overflow, ViewExtent::Elements),
            len,
        }),
    }
}

/// A stride as matrixmultiply takes it. A dimension of length ≤ 1 never steps, so its
/// stride is irrelevant and passed as 0; any other stride is bounded by the checked extent,
/// which a slice keeps below `isize::MAX`.
fn call_stride(dim: usize, stride: usize) -> isize {
    if dim <= 1 {
        0
    } else {
        isize::try_from(stride).unwrap_or(isize::MAX)
    }
}

/// A read-only strided `rows × cols` view into an `f32` slice.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view; element `(i, j)` is `data[i · row_stride + j · col_stride]`.
    ///
    /// # Errors
    /// [`TensorError::ViewOutOfBounds`] when the view reaches past `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> TensorResult<Self> {
        check_extent("MatRef", data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major `[rows, cols]` matrix; `data` must hold exactly `rows · cols` elements.
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when it does not.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> TensorResult<Self> {
        let expected = crate::error::checked_mul("MatRef::row_major", "rows × cols", rows, cols)?;
        crate::error::check_len(
            "MatRef::row_major",
            "matrix [rows, cols]",
            expected,
            data.len(),
        )?;
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose: the same elements, dimensions and strides swapped.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The columns `cols` of the view (same rows, same strides).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] when the range leaves the view.
    pub fn columns(self, cols: std::ops::Range<usize>) -> TensorResult<Self> {
        if cols.start > cols.end || cols.end > self.cols {
            return Err(TensorError::InvalidArgument {
                op: "MatRef::columns",
                what: "column range",
                value: format!("{cols:?} of {}", self.cols),
                reason: "must lie within the view",
            });
        }
        if cols.is_empty() || self.rows == 0 {
            return Self::new(&[], self.rows, cols.len(), self.row_stride, self.col_stride);
        }
        let offset = cols.start * self.col_stride;
        Self::new(
            &self.data[offset..],
            self.rows,
            cols.len(),
            self.row_stride,
            self.col_stride,
        )
    }

    /// The rows `rows` of the view (same columns, same strides).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] when the range leaves the view.
    pub fn row_range(self, rows: std::ops::Range<usize>) -> TensorResult<Self> {
        Ok(self
            .t()
            .columns(rows.clone())
            .map_err(|_| TensorError::InvalidArgument {
                op: "MatRef::row_range",
                what: "row range",
                value: format!("{:?} of {}", rows, self.rows),
                reason: "must lie within the view",
            })?
            .t())
    }

    /// The buffer and the two strides, for kernels of this crate that pack a view.
    pub(crate) fn parts(&self) -> (&'a [f32], usize, usize) {
        (self.data, self.row_stride, self.col_stride)
    }

    /// Element `(i, j)`, or `None` outside the view.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        if i < self.rows && j < self.cols {
            self.data
                .get(i * self.row_stride + j * self.col_stride)
                .copied()
        } else {
            None
        }
    }
}

/// A writable strided `rows × cols` view into an `f32` slice whose positions never share an
/// element.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A strided writable view.
    ///
    /// # Errors
    /// [`TensorError::ViewOutOfBounds`] when it reaches past `data`;
    /// [`TensorError::OverlappingOutput`] when two positions could share an element (the
    /// strides must lay rows out one after another, or columns one after another).
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> TensorResult<Self> {
        check_extent("MatMut", data.len(), rows, cols, row_stride, col_stride)?;
        let disjoint = rows == 0
            || cols == 0
            || match (rows > 1, cols > 1) {
                (false, false) => true,
                (true, false) => row_stride >= 1,
                (false, true) => col_stride >= 1,
                (true, true) => {
                    // Row after row, or column after column: no two (i, j) meet.
                    let rows_apart = col_stride >= 1
                        && cols
                            .checked_mul(col_stride)
                            .is_some_and(|w| row_stride >= w);
                    let cols_apart = row_stride >= 1
                        && rows
                            .checked_mul(row_stride)
                            .is_some_and(|h| col_stride >= h);
                    rows_apart || cols_apart
                }
            };
        if !disjoint {
            return Err(TensorError::OverlappingOutput {
                op: "MatMut",
                rows,
                cols,
                row_stride,
                col_stride,
            });
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major `[rows, cols]` matrix; `data` must hold exactly `rows · cols` elements.
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when it does not.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> TensorResult<Self> {
        let expected = crate::error::checked_mul("MatMut::row_major", "rows × cols", rows, cols)?;
        crate::error::check_len(
            "MatMut::row_major",
            "matrix [rows, cols]",
            expected,
            data.len(),
        )?;
        Self::new(data, rows, cols, cols, 1)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Writes `values` into row `i`.
    ///
    /// # Panics
    /// When `i` is not a row of the view or `values` is not one value per column: callers
    /// inside this crate check both first.
    pub(crate) fn write_row(&mut self, i: usize, values: &[f32]) {
        assert!(
            i < self.rows && values.len() == self.cols,
            "write_row outside the view"
        );
        if self.col_stride == 1 {
            let start = i * self.row_stride;
            self.data[start..start + self.cols].copy_from_slice(values);
        } else {
            for (j, &v) in values.iter().enumerate() {
                self.data[i * self.row_stride + j * self.col_stride] = v;
            }
        }
    }

    /// Multiplies every element of the view by `beta`; `beta = 0` writes zeros (it does not
    /// propagate NaN from the old contents), as the BLAS convention says.
    fn scale(&mut self, beta: f32) {
        for i in 0..self.rows {
            for j in 0..self.cols {
                let e = &mut self.data[i * self.row_stride + j * self.col_stride];
                *e = if beta == 0.0 { 0.0 } else { *e * beta };
            }
        }
    }
}

/// General matrix product `C ← α·A·B + β·C` on strided views.
///
/// With `β = 0` the old contents of `C` are ignored (not even NaN survives).
///
/// # Shapes
/// - `a`: `[m, k]`
/// - `b`: `[k, n]`
/// - `c`: `[m, n]`
///
/// # Errors
/// [`TensorError::DimMismatch`] when the three shapes do not chain.
///
/// # Example
/// ```
/// use vit_tensor::{gemm, MatMut, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0, 6.0, 7.0, 8.0];
/// let mut c = [0.0; 4];
/// gemm(1.0, MatRef::row_major(&a, 2, 2)?, MatRef::row_major(&b, 2, 2)?.t(), 0.0,
///      MatMut::row_major(&mut c, 2, 2)?)?;
/// assert_eq!(c, [17.0, 23.0, 39.0, 53.0]); // A · Bᵀ
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn gemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
) -> TensorResult<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(TensorError::DimMismatch {
            op: "gemm",
            what: "A columns and B rows",
            left: k,
            right: b.rows,
        });
    }
    if c.rows != m {
        return Err(TensorError::DimMismatch {
            op: "gemm",
            what: "C rows and A rows",
            left: c.rows,
            right: m,
        });
    }
    if c.cols != n {
        return Err(TensorError::DimMismatch {
            op: "gemm",
            what: "C columns and B columns",
            left: c.cols,
            right: n,
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.scale(beta);
        return Ok(());
    }
    let (rsa, csa) = (call_stride(m, a.row_stride), call_stride(k, a.col_stride));
    let (rsb, csb) = (call_stride(k, b.row_stride), call_stride(n, b.col_stride));
    let (rsc, csc) = (call_stride(m, c.row_stride), call_stride(n, c.col_stride));
    backend_sgemm(
        [m, k, n],
        alpha,
        (a.data, rsa, csa),
        (b.data, rsb, csb),
        beta,
        (c.data, rsc, csc),
    );
    Ok(())
}

/// The GEMM implementation this build uses: `"matrixmultiply"` (default) or `"gemm"`
/// (cargo feature `gemm`).
pub const BACKEND: &str = if cfg!(feature = "gemm") {
    "gemm"
} else {
    "matrixmultiply"
};

/// `C ← α·A·B + β·C` through matrixmultiply, on views [`gemm`] has checked.
#[cfg(not(feature = "gemm"))]
fn backend_sgemm(
    [m, k, n]: [usize; 3],
    alpha: f32,
    (a, rsa, csa): (&[f32], isize, isize),
    (b, rsb, csb): (&[f32], isize, isize),
    beta: f32,
    (c, rsc, csc): (&mut [f32], isize, isize),
) {
    #[allow(unsafe_code)]
    // SAFETY: matrixmultiply::sgemm reads A at a + i·rsa + l·csa for i < m, l < k: `a` was
    //   built by MatRef::new, whose extent check puts every such offset inside `a.data`.
    // SAFETY: it reads B at b + l·rsb + j·csb for l < k, j < n: likewise checked for `b.data`.
    // SAFETY: it reads and writes C at c + i·rsc + j·csc for i < m, j < n: MatMut::new
    //   checked these offsets lie inside `c.data`, and that no two (i, j) share an element,
    //   so writes from its worker threads never race.
    // SAFETY: C aliases neither A nor B: `c.data` is a `&mut` borrow, which the borrow
    //   checker keeps disjoint from the shared borrows `a.data` and `b.data`.
    // SAFETY: every stride fits in isize (`call_stride`: a stride that steps is bounded by
    //   the checked extent, and a slice never exceeds isize::MAX elements).
    // SAFETY: with β = 0 sgemm may skip reading C; C is a slice, so initialised either way.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

/// `C ← α·A·B + β·C` through the `gemm` crate, on views [`gemm`] has checked. That crate
/// computes `dst ← α'·dst + β'·lhs·rhs`, so its α' is our β and its β' our α, and it is
/// told not to read `dst` when β = 0.
#[cfg(feature = "gemm")]
fn backend_sgemm(
    [m, k, n]: [usize; 3],
    alpha: f32,
    (a, rsa, csa): (&[f32], isize, isize),
    (b, rsb, csb): (&[f32], isize, isize),
    beta: f32,
    (c, rsc, csc): (&mut [f32], isize, isize),
) {
    #[allow(unsafe_code)]
    // SAFETY: gemm::gemm reads lhs at a + i·rsa + l·csa for i < m, l < k: `a` was built by
    //   MatRef::new, whose extent check puts every such offset inside `a.data`.
    // SAFETY: it reads rhs at b + l·rsb + j·csb for l < k, j < n: likewise checked for `b.data`.
    // SAFETY: it writes dst at c + i·rsc + j·csc for i < m, j < n (and reads them when
    //   read_dst): MatMut::new checked these lie inside `c.data` and never share an element;
    //   Parallelism::None keeps the call on this thread.
    // SAFETY: dst aliases neither lhs nor rhs: `c.data` is a `&mut` borrow, which the borrow
    //   checker keeps disjoint from the shared borrows `a.data` and `b.data`.
    // SAFETY: every stride fits in isize (`call_stride`: a stride that steps is bounded by
    //   the checked extent, and a slice never exceeds isize::MAX elements).
    // SAFETY: with β = 0, read_dst is false and dst is only written; it is a slice, so
    //   initialised either way.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc,
            rsc,
            beta != 0.0,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            beta,
            alpha,
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
    use crate::testutil::naive_matmul;
    use proptest::prelude::*;

    #[test]
    fn views_reaching_past_the_buffer_are_refused() {
        let data = [0.0f32; 6];
        assert!(MatRef::new(&data, 2, 3, 3, 1).is_ok());
        let err = MatRef::new(&data, 2, 3, 4, 1).unwrap_err();
        assert_eq!(
            err,
            TensorError::ViewOutOfBounds {
                op: "MatRef",
                rows: 2,
                cols: 3,
                row_stride: 4,
                col_stride: 1,
                needed: ViewExtent::Elements(7),
                len: 6
            }
        );
        let err = MatRef::new(&data, usize::MAX, 2, usize::MAX, 1).unwrap_err();
        assert!(matches!(
            err,
            TensorError::ViewOutOfBounds {
                needed: ViewExtent::Overflow,
                ..
            }
        ));
        assert!(MatRef::row_major(&data, 2, 2).is_err());
    }

    #[test]
    fn overlapping_outputs_are_refused() {
        let mut data = [0.0f32; 6];
        assert!(MatMut::new(&mut data, 2, 3, 3, 1).is_ok());
        assert!(MatMut::new(&mut data, 3, 2, 1, 3).is_ok()); // column-major
        assert!(matches!(
            MatMut::new(&mut data, 2, 3, 1, 1),
            Err(TensorError::OverlappingOutput { .. })
        ));
        assert!(matches!(
            MatMut::new(&mut data, 2, 2, 0, 1),
            Err(TensorError::OverlappingOutput { .. })
        ));
        // A single row or column needs only its own stride to step.
        assert!(MatMut::new(&mut data, 1, 3, 0, 2).is_ok());
        assert!(MatMut::new(&mut data, 3, 1, 2, 0).is_ok());
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let a = [0.0f32; 6];
        let b = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        let err = gemm(
            1.0,
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&b, 2, 3).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TensorError::DimMismatch {
                left: 3,
                right: 2,
                ..
            }
        ));
    }

    #[test]
    fn beta_zero_ignores_nan_and_k_zero_scales() {
        let a = [1.0f32, 2.0];
        let b = [3.0f32, 4.0];
        let mut c = [f32::NAN];
        gemm(
            1.0,
            MatRef::row_major(&a, 1, 2).unwrap(),
            MatRef::row_major(&b, 2, 1).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 1, 1).unwrap(),
        )
        .unwrap();
        assert_eq!(c, [11.0]);

        let empty: [f32; 0] = [];
        let mut c = [2.0f32, f32::NAN];
        gemm(
            1.0,
            MatRef::row_major(&empty, 2, 0).unwrap(),
            MatRef::row_major(&empty, 0, 1).unwrap(),
            0.5,
            MatMut::new(&mut c, 2, 1, 1, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(c[0], 1.0);
        assert!(c[1].is_nan());
    }

    fn dims() -> impl Strategy<Value = (usize, usize, usize)> {
        (0usize..9, 0usize..9, 0usize..9)
    }

    proptest! {
        /// Every combination of transposed operands agrees with a triple loop.
        #[test]
        fn gemm_matches_naive((m, k, n) in dims(), ta: bool, tb: bool, beta in prop::sample::select(vec![0.0f32, 1.0, -0.5]), seed: u64) {
            let mut rng = crate::LcgRng::new(seed);
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform() - 0.5).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform() - 0.5).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform() - 0.5).collect();
            // Lay A out transposed when `ta` (stored [k, m]), B when `tb` (stored [n, k]).
            let a_store: Vec<f32> = if ta { crate::testutil::transpose(&a, m, k) } else { a.clone() };
            let b_store: Vec<f32> = if tb { crate::testutil::transpose(&b, k, n) } else { b.clone() };
            let av = if ta { MatRef::row_major(&a_store, k, m).unwrap().t() } else { MatRef::row_major(&a_store, m, k).unwrap() };
            let bv = if tb { MatRef::row_major(&b_store, n, k).unwrap().t() } else { MatRef::row_major(&b_store, k, n).unwrap() };
            let mut c = c0.clone();
            gemm(0.75, av, bv, beta, MatMut::row_major(&mut c, m, n).unwrap()).unwrap();
            let ab = naive_matmul(&a, &b, m, k, n);
            for i in 0..m * n {
                let want = 0.75 * ab[i] + beta * c0[i];
                prop_assert!((c[i] - want).abs() <= 1e-5, "at {}: {} vs {}", i, c[i], want);
            }
        }
    }
}
