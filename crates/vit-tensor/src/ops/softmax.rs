//! Numerically stable softmax over rows.

use super::math::exp;
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
    for row in x.chunks_exact_mut(cols) {
        softmax_row(row);
    }
    Ok(())
}

#[inline]
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for v in row.iter_mut() {
        *v = exp(*v - max);
        total += *v;
    }
    let inv = 1.0 / total;
    row.iter_mut().for_each(|v| *v *= inv);
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
