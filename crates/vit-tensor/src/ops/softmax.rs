//! Numerically stable softmax over rows.

use super::math::{exp_nonpositive as exp, sum};
use crate::error::{check_len, TensorResult};

/// Softmax of each row in place: `yᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m)` with `m` the row maximum,
/// so no exponent overflows. A row that is all `−∞` comes out NaN, as in PyTorch.
///
/// # Shapes
/// - `x`: `[rows, cols]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] when `x` is not a whole number of rows.
///
/// # Example
/// ```
/// let mut x = [1000.0, 1000.0];
/// vit_tensor::softmax_rows(&mut x, 2)?;
/// assert_eq!(x, [0.5, 0.5]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn softmax_rows(x: &mut [f32], cols: usize) -> TensorResult<()> {
    if cols == 0 {
        return check_len("softmax_rows", "input [rows, 0]", 0, x.len());
    }
    check_len(
        "softmax_rows",
        "input [rows, cols]",
        x.len() / cols * cols,
        x.len(),
    )?;
    pulp::Arch::new().dispatch(SoftmaxRows { x, cols });
    Ok(())
}

/// The row loop as a `pulp` kernel, compiled for the widest vectors the CPU has.
struct SoftmaxRows<'a> {
    x: &'a mut [f32],
    cols: usize,
}

impl pulp::WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for row in self.x.chunks_exact_mut(self.cols) {
            softmax_row(row);
        }
    }
}

/// Three vectorisable passes: the maximum (16 lanes), the exponentials, their sum
/// (16 lanes); then one scaling pass.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = max_of(row);
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The largest element (`−∞` for an empty slice; a NaN may or may not win, as the row then
/// comes out NaN either way).
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(chunks.remainder()) {
        m = if v > m { v } else { m };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_two_pass_f64() {
        let mut x: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let orig = x.clone();
        softmax_rows(&mut x, 10).unwrap();
        for r in 0..3 {
            let row: Vec<f64> = orig[r * 10..(r + 1) * 10]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for i in 0..10 {
                let want = (row[i] - m).exp() / s;
                assert!((f64::from(x[r * 10 + i]) - want).abs() < 1e-7);
            }
        }
        assert!(softmax_rows(&mut x, 7).is_err());
    }

    #[test]
    fn infinite_rows() {
        let mut x = [f32::NEG_INFINITY, 0.0];
        softmax_rows(&mut x, 2).unwrap();
        assert_eq!(x, [0.0, 1.0]);
        let mut y = [f32::NEG_INFINITY; 2];
        softmax_rows(&mut y, 2).unwrap();
        assert!(y[0].is_nan());
    }
}
