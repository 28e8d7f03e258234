//! `LayerNorm` over the last dimension, with learned scale and shift.

use vit_tensor::error::check_len;
use vit_tensor::{TensorError, TensorResult};

/// Layer normalisation `y = (x − μ)/√(σ² + ε) · γ + β` over rows of width `dim`
/// (`torch.nn.LayerNorm(dim, eps)`; biased variance, ε inside the root).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// γ, `[dim]`
    weight: Vec<f32>,
    /// β, `[dim]`
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    /// A LayerNorm from its γ and β, both `[dim]`.
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when the lengths differ;
    /// [`TensorError::InvalidArgument`] when `eps` is negative or not finite.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f32) -> TensorResult<Self> {
        check_len("LayerNorm::new", "bias [dim]", weight.len(), bias.len())?;
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(TensorError::InvalidArgument {
                op: "LayerNorm::new",
                what: "eps",
                value: eps.to_string(),
                reason: "must be finite and ≥ 0",
            });
        }
        Ok(Self { weight, bias, eps })
    }

    /// The identity-initialised LayerNorm (γ = 1, β = 0), as PyTorch initialises it.
    ///
    /// # Errors
    /// As [`LayerNorm::new`].
    pub fn identity(dim: usize, eps: f32) -> TensorResult<Self> {
        Self::new(vec![1.0; dim], vec![0.0; dim], eps)
    }

    /// Width of the rows it normalises.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// Number of parameters (γ and β).
    pub fn num_params(&self) -> usize {
        2 * self.dim()
    }

    /// ε.
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// γ, `[dim]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// β, `[dim]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Normalises each row of `x` into `out`.
    ///
    /// # Shapes
    /// - `x`, `out`: `[rows, dim]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` is not whole rows or `out` differs in length.
    pub fn forward_into(&self, x: &[f32], out: &mut [f32]) -> TensorResult<()> {
        vit_tensor::layer_norm_into(x, &self.weight, &self.bias, self.dim(), self.eps, out)
    }

    /// Normalises each row of `x` in place.
    ///
    /// # Shapes
    /// - `x`: `[rows, dim]`
    ///
    /// # Errors
    /// As [`LayerNorm::forward_into`].
    pub fn forward_inplace(&self, x: &mut [f32]) -> TensorResult<()> {
        vit_tensor::layer_norm_inplace(x, &self.weight, &self.bias, self.dim(), self.eps)
    }

    /// Normalises each row of `x`.
    ///
    /// # Shapes
    /// - `x`: `[rows, dim]` → `[rows, dim]`
    ///
    /// # Errors
    /// As [`LayerNorm::forward_into`].
    ///
    /// # Example
    /// ```
    /// let ln = vit_layers::LayerNorm::identity(2, 0.0)?;
    /// assert_eq!(ln.forward(&[1.0, 3.0])?, [-1.0, 1.0]);
    /// # Ok::<(), vit_tensor::TensorError>(())
    /// ```
    pub fn forward(&self, x: &[f32]) -> TensorResult<Vec<f32>> {
        let mut out = vec![0.0; x.len()];
        self.forward_into(x, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_affine_and_checks_args() {
        let ln = LayerNorm::new(vec![2.0, 2.0], vec![1.0, 0.0], 0.0).unwrap();
        assert_eq!(
            ln.forward(&[0.0, 2.0, 5.0, 3.0]).unwrap(),
            [-1.0, 2.0, 3.0, -2.0]
        );
        assert!(ln.forward(&[1.0, 2.0, 3.0]).is_err());
        assert!(LayerNorm::new(vec![1.0; 2], vec![0.0; 3], 1e-5).is_err());
        assert!(LayerNorm::new(vec![1.0; 2], vec![0.0; 2], -1.0).is_err());
    }
}
