//! Dense products on row-major buffers: `matmul` (`A·B`) and `linear` (`x·Wᵀ + b`).

use crate::error::{check_len, checked_mul, TensorResult};
use crate::gemm::{gemm, MatMut, MatRef};

/// `A · B` for row-major `a: [m, k]`, `b: [k, n]`.
///
/// # Shapes
/// - `a`: `[m, k]`, `b`: `[k, n]` → `[m, n]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] when a buffer does not hold its shape.
///
/// # Example
/// ```
/// let c = vit_tensor::matmul(&[1.0, 2.0], &[3.0, 4.0], 1, 2, 1)?;
/// assert_eq!(c, [11.0]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> TensorResult<Vec<f32>> {
    let mut c = vec![0.0; checked_mul("matmul", "output [m, n]", m, n)?];
    gemm(
        1.0,
        MatRef::row_major(a, m, k)?,
        MatRef::row_major(b, k, n)?,
        0.0,
        MatMut::row_major(&mut c, m, n)?,
    )?;
    Ok(c)
}

/// `y = x · Wᵀ + b` into `out`, with `W` stored `[out_features, in_features]` as PyTorch
/// stores `nn.Linear.weight`.
///
/// The bias is written first and the product accumulated onto it (`β = 1`), so adding it
/// costs no extra pass.
///
/// # Shapes
/// - `x`: `[rows, in_features]`
/// - `weight`: `[out_features, in_features]`
/// - `bias`: `[out_features]`
/// - `out`: `[rows, out_features]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] naming the buffer whose length is wrong.
pub fn linear_into(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    let expected = checked_mul("linear", "output [rows, out_features]", rows, out_features)?;
    check_len("linear", "output [rows, out_features]", expected, out.len())?;
    let beta = match bias {
        Some(b) => {
            check_len("linear", "bias [out_features]", out_features, b.len())?;
            if out_features > 0 {
                for row in out.chunks_exact_mut(out_features) {
                    row.copy_from_slice(b);
                }
            }
            1.0
        }
        None => 0.0,
    };
    product(x, weight, rows, in_features, out_features, beta, out)
}

/// `out ← out + x · Wᵀ + b`: the product accumulated onto what `out` holds (a residual
/// stream, say), bias included, with no temporary.
///
/// # Shapes
/// - `x`: `[rows, in_features]`, `weight`: `[out_features, in_features]`,
///   `bias`: `[out_features]`, `out`: `[rows, out_features]`
///
/// # Errors
/// As [`linear_into`].
///
/// # Example
/// ```
/// let mut out = [1.0, 1.0];
/// vit_tensor::linear_add_into(&[2.0], &[3.0, 4.0], Some(&[0.5, 0.5]), 1, 1, 2, &mut out)?;
/// assert_eq!(out, [7.5, 9.5]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn linear_add_into(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    let expected = checked_mul("linear", "output [rows, out_features]", rows, out_features)?;
    check_len("linear", "output [rows, out_features]", expected, out.len())?;
    if let Some(b) = bias {
        check_len("linear", "bias [out_features]", out_features, b.len())?;
        if out_features > 0 {
            for row in out.chunks_exact_mut(out_features) {
                row.iter_mut().zip(b).for_each(|(o, &v)| *o += v);
            }
        }
    }
    product(x, weight, rows, in_features, out_features, 1.0, out)
}

/// `out ← x · Wᵀ + β · out`, checked.
fn product(
    x: &[f32],
    weight: &[f32],
    rows: usize,
    in_features: usize,
    out_features: usize,
    beta: f32,
    out: &mut [f32],
) -> TensorResult<()> {
    let x_view = MatRef::row_major(x, rows, in_features).map_err(|_| {
        crate::TensorError::LengthMismatch {
            op: "linear",
            what: "input [rows, in_features]",
            expected: rows.saturating_mul(in_features),
            got: x.len(),
        }
    })?;
    let w_view = MatRef::row_major(weight, out_features, in_features).map_err(|_| {
        crate::TensorError::LengthMismatch {
            op: "linear",
            what: "weight [out_features, in_features]",
            expected: out_features.saturating_mul(in_features),
            got: weight.len(),
        }
    })?;
    gemm(
        1.0,
        x_view,
        w_view.t(),
        beta,
        MatMut::row_major(out, rows, out_features)?,
    )
}

/// `y = x·Wᵀ + b`, allocating the output.
///
/// # Shapes
/// - `x`: `[rows, in_features]`, `weight`: `[out_features, in_features]`,
///   `bias`: `[out_features]` → `[rows, out_features]`
///
/// # Errors
/// As [`linear_into`].
///
/// # Example
/// ```
/// // One row, W = [[1, 0], [0, 2], [1, 1]], b = [0, 0, 10].
/// let y = vit_tensor::linear(&[3.0, 4.0], &[1.0, 0.0, 0.0, 2.0, 1.0, 1.0], Some(&[0.0, 0.0, 10.0]), 1, 2, 3)?;
/// assert_eq!(y, [3.0, 8.0, 17.0]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn linear(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> TensorResult<Vec<f32>> {
    let mut out =
        vec![0.0; checked_mul("linear", "output [rows, out_features]", rows, out_features)?];
    linear_into(x, weight, bias, rows, in_features, out_features, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{naive_matmul, transpose};
    use crate::{LcgRng, TensorError};
    use proptest::prelude::*;

    #[test]
    fn linear_reports_the_wrong_buffer() {
        let err = linear(&[1.0; 5], &[1.0; 6], None, 2, 3, 2).unwrap_err();
        assert_eq!(
            err,
            TensorError::LengthMismatch {
                op: "linear",
                what: "input [rows, in_features]",
                expected: 6,
                got: 5
            }
        );
        let err = linear(&[1.0; 6], &[1.0; 6], Some(&[0.0; 3]), 2, 3, 2).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                what: "bias [out_features]",
                expected: 2,
                got: 3,
                ..
            }
        ));
        let err = linear(&[1.0; 6], &[1.0; 5], None, 2, 3, 2).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                what: "weight [out_features, in_features]",
                ..
            }
        ));
    }

    #[test]
    fn add_into_accumulates_onto_the_output() {
        let mut rng = LcgRng::new(2);
        let (rows, inf, outf) = (3, 5, 4);
        let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
        let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
        let b = rng.uniform_vec(outf, -1.0, 1.0);
        let base = rng.uniform_vec(rows * outf, -1.0, 1.0);
        let mut acc = base.clone();
        linear_add_into(&x, &w, Some(&b), rows, inf, outf, &mut acc).unwrap();
        let y = linear(&x, &w, Some(&b), rows, inf, outf).unwrap();
        for i in 0..rows * outf {
            assert!((acc[i] - (base[i] + y[i])).abs() < 1e-5);
        }
        assert!(linear_add_into(&x, &w, None, rows, inf, outf, &mut acc[1..]).is_err());
    }

    #[test]
    fn matmul_checks_lengths() {
        assert!(matmul(&[1.0; 4], &[1.0; 4], 2, 2, 2).is_ok());
        assert!(matches!(
            matmul(&[1.0; 3], &[1.0; 4], 2, 2, 2),
            Err(TensorError::LengthMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn linear_matches_naive(rows in 0usize..7, inf in 0usize..9, outf in 0usize..9, with_bias: bool, seed: u64) {
            let mut rng = LcgRng::new(seed);
            let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
            let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
            let b = rng.uniform_vec(outf, -1.0, 1.0);
            let y = linear(&x, &w, with_bias.then_some(&b[..]), rows, inf, outf).unwrap();
            let want = naive_matmul(&x, &transpose(&w, outf, inf), rows, inf, outf);
            prop_assert_eq!(y.len(), rows * outf);
            for r in 0..rows {
                for o in 0..outf {
                    let bias = if with_bias { b[o] } else { 0.0 };
                    prop_assert!((y[r * outf + o] - want[r * outf + o] - bias).abs() < 1e-5);
                }
            }
        }
    }
}
