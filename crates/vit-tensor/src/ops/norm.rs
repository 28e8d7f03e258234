//! Layer normalisation over the last dimension.

use super::math::sum;
use crate::error::{check_len, TensorError, TensorResult};
use rayon::prelude::*;

/// LayerNorm of each row into `out`: `y = (x − μ) / √(σ² + ε) · γ + β`, with `μ` and the
/// biased variance `σ²` taken over the row (as `torch.nn.LayerNorm`).
///
/// # Shapes
/// - `x`, `out`: `[rows, dim]`
/// - `weight` (γ), `bias` (β): `[dim]`
///
/// # Errors
/// [`TensorError::LengthMismatch`] when a buffer's length is wrong;
/// [`TensorError::InvalidArgument`] when `eps` is negative or not finite.
pub fn layer_norm_into(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    dim: usize,
    eps: f32,
    out: &mut [f32],
) -> TensorResult<()> {
    check_norm_args(x.len(), weight, bias, dim, eps)?;
    check_len("layer_norm", "output [rows, dim]", x.len(), out.len())?;
    if dim == 0 {
        return Ok(());
    }
    let rows_per_task = (super::activation::PARALLEL_CHUNK / dim).max(1);
    x.par_chunks(rows_per_task * dim)
        .zip(out.par_chunks_mut(rows_per_task * dim))
        .for_each(|(xs, ys)| {
            pulp::Arch::new().dispatch(NormaliseRows {
                x: Some(xs),
                out: ys,
                weight,
                bias,
                eps,
                dim,
            });
        });
    Ok(())
}

/// LayerNorm of each row of `x`, in place.
///
/// # Shapes
/// - `x`: `[rows, dim]`; `weight`, `bias`: `[dim]`
///
/// # Errors
/// As [`layer_norm_into`].
pub fn layer_norm_inplace(
    x: &mut [f32],
    weight: &[f32],
    bias: &[f32],
    dim: usize,
    eps: f32,
) -> TensorResult<()> {
    check_norm_args(x.len(), weight, bias, dim, eps)?;
    if dim == 0 {
        return Ok(());
    }
    let rows_per_task = (super::activation::PARALLEL_CHUNK / dim).max(1);
    x.par_chunks_mut(rows_per_task * dim).for_each(|xs| {
        pulp::Arch::new().dispatch(NormaliseRows {
            x: None,
            out: xs,
            weight,
            bias,
            eps,
            dim,
        });
    });
    Ok(())
}

/// LayerNorm of each row, allocating the output.
///
/// # Shapes
/// - `x`: `[rows, dim]`; `weight`, `bias`: `[dim]` → `[rows, dim]`
///
/// # Errors
/// As [`layer_norm_into`].
///
/// # Example
/// ```
/// let y = vit_tensor::layer_norm(&[1.0, 3.0], &[1.0, 1.0], &[0.0, 0.5], 2, 0.0)?;
/// assert_eq!(y, [-1.0, 1.5]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn layer_norm(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    dim: usize,
    eps: f32,
) -> TensorResult<Vec<f32>> {
    let mut out = vec![0.0; x.len()];
    layer_norm_into(x, weight, bias, dim, eps, &mut out)?;
    Ok(out)
}

fn check_norm_args(
    len: usize,
    weight: &[f32],
    bias: &[f32],
    dim: usize,
    eps: f32,
) -> TensorResult<()> {
    check_len("layer_norm", "weight [dim]", dim, weight.len())?;
    check_len("layer_norm", "bias [dim]", dim, bias.len())?;
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(TensorError::InvalidArgument {
            op: "layer_norm",
            what: "eps",
            value: eps.to_string(),
            reason: "must be finite and ≥ 0",
        });
    }
    let rows = len.checked_div(dim).unwrap_or(0);
    check_len("layer_norm", "input [rows, dim]", rows * dim, len)
}

/// LayerNorm of rows, as a `pulp` operation: its body is inlined into the function compiled
/// for the CPU's instruction set, so the loops vectorise with it (a closure given to
/// `dispatch` was compiled for the baseline, SSE2, instead).
struct NormaliseRows<'a> {
    /// The rows, or `None` to normalise `out` in place.
    x: Option<&'a [f32]>,
    out: &'a mut [f32],
    weight: &'a [f32],
    bias: &'a [f32],
    eps: f32,
    dim: usize,
}

impl pulp::WithSimd for NormaliseRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            x,
            out,
            weight,
            bias,
            eps,
            dim,
        } = self;
        match x {
            Some(xs) => {
                for (row, y) in xs.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
                    normalise_row(row, weight, bias, eps, y);
                }
            }
            None => {
                let mut scratch = vec![0.0; dim];
                for row in out.chunks_exact_mut(dim) {
                    scratch.copy_from_slice(row);
                    normalise_row(&scratch, weight, bias, eps, row);
                }
            }
        }
    }
}

/// Two passes (mean, then variance of the centred values): no cancellation for rows with a
/// large mean, unlike E[x²] − E[x]².
#[inline(always)]
fn normalise_row(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - mean;
    }
    let mut sq = 0.0f32;
    let mut acc = [0.0f32; 16];
    let mut chunks = out.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    for &v in chunks.remainder() {
        sq += v * v;
    }
    let var = (sum(&acc) + sq) / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    for ((o, &g), &b) in out.iter_mut().zip(weight).zip(bias) {
        *o = *o * inv_std * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LcgRng;

    #[test]
    fn matches_f64_two_pass() {
        let mut rng = LcgRng::new(3);
        let (rows, dim) = (5, 77);
        let x: Vec<f32> = rng
            .uniform_vec(rows * dim, -3.0, 3.0)
            .iter()
            .map(|v| v + 100.0)
            .collect();
        let w = rng.uniform_vec(dim, 0.5, 1.5);
        let b = rng.uniform_vec(dim, -0.5, 0.5);
        let y = layer_norm(&x, &w, &b, dim, 1e-5).unwrap();
        for r in 0..rows {
            let row: Vec<f64> = x[r * dim..(r + 1) * dim]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let mean = row.iter().sum::<f64>() / dim as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dim as f64;
            for i in 0..dim {
                let want =
                    (row[i] - mean) / (var + 1e-5).sqrt() * f64::from(w[i]) + f64::from(b[i]);
                assert!(
                    (f64::from(y[r * dim + i]) - want).abs() < 2e-5,
                    "{} vs {}",
                    y[r * dim + i],
                    want
                );
            }
        }
        let mut z = x.clone();
        layer_norm_inplace(&mut z, &w, &b, dim, 1e-5).unwrap();
        assert_eq!(z, y);
    }

    #[test]
    fn eps_guards_constant_rows_and_bad_args_are_named() {
        let y = layer_norm(&[2.0; 4], &[1.0; 4], &[0.25; 4], 4, 1e-5).unwrap();
        assert_eq!(y, [0.25; 4]);
        assert!(matches!(
            layer_norm(&[1.0; 5], &[1.0; 4], &[0.0; 4], 4, 1e-5),
            Err(TensorError::LengthMismatch {
                what: "input [rows, dim]",
                ..
            })
        ));
        assert!(matches!(
            layer_norm(&[1.0; 4], &[1.0; 3], &[0.0; 4], 4, 1e-5),
            Err(TensorError::LengthMismatch {
                what: "weight [dim]",
                ..
            })
        ));
        assert!(matches!(
            layer_norm(&[1.0; 4], &[1.0; 4], &[0.0; 4], 4, f32::NAN),
            Err(TensorError::InvalidArgument { what: "eps", .. })
        ));
    }
}
