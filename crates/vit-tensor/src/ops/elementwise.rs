//! Elementwise arithmetic on equal-length buffers: the residual connection and bias rows.

use crate::error::{check_len, TensorResult};

/// Residual add `x ← x + y`.
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] when the lengths differ.
pub fn add_inplace(x: &mut [f32], y: &[f32]) -> TensorResult<()> {
    check_len("add_inplace", "addend", x.len(), y.len())?;
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
    Ok(())
}

/// Adds the row vector `row` to every row of `x`.
///
/// # Shapes
/// - `x`: `[rows, cols]`, with `cols = row.len()`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] when `x` is not a whole number of rows.
pub fn add_row_inplace(x: &mut [f32], row: &[f32]) -> TensorResult<()> {
    let cols = row.len();
    if cols == 0 {
        return check_len("add_row_inplace", "input [rows, 0]", 0, x.len());
    }
    let rows = x.len() / cols;
    check_len(
        "add_row_inplace",
        "input [rows, cols]",
        rows * cols,
        x.len(),
    )?;
    for r in x.chunks_exact_mut(cols) {
        r.iter_mut().zip(row).for_each(|(a, &b)| *a += b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_checks_lengths() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_inplace(&mut x, &[0.5, 0.5, 0.5, 0.5]).unwrap();
        assert_eq!(x, [1.5, 2.5, 3.5, 4.5]);
        add_row_inplace(&mut x, &[1.0, -1.0]).unwrap();
        assert_eq!(x, [2.5, 1.5, 4.5, 3.5]);
        assert!(add_inplace(&mut x, &[1.0]).is_err());
        assert!(add_row_inplace(&mut x, &[1.0, 2.0, 3.0]).is_err());
    }
}
