//! `Linear`: a dense layer `y = x·Wᵀ + b` with PyTorch's weight layout.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{LcgRng, TensorResult};

/// A dense layer `y = x · Wᵀ + b` (`torch.nn.Linear`).
///
/// The weight is stored `[out_features, in_features]`, exactly as a checkpoint holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `[out_features, in_features]`
    weight: Vec<f32>,
    /// `[out_features]`
    bias: Option<Vec<f32>>,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// A layer from its weight `[out_features, in_features]` and optional bias `[out_features]`.
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when a buffer does not match the shape.
    pub fn new(
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        let expected = checked_mul("Linear::new", "weight", out_features, in_features)?;
        check_len(
            "Linear::new",
            "weight [out_features, in_features]",
            expected,
            weight.len(),
        )?;
        if let Some(b) = &bias {
            check_len("Linear::new", "bias [out_features]", out_features, b.len())?;
        }
        Ok(Self {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// A layer with weights drawn from `N(0, std²)` and, if `with_bias`, a zero bias.
    pub fn random(
        in_features: usize,
        out_features: usize,
        with_bias: bool,
        std: f32,
        rng: &mut LcgRng,
    ) -> Self {
        Self {
            weight: rng.normal_vec(in_features * out_features, 0.0, std),
            bias: with_bias.then(|| vec![0.0; out_features]),
            in_features,
            out_features,
        }
    }

    /// The weight, `[out_features, in_features]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The bias, `[out_features]`, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Number of parameters (weight and bias).
    pub fn num_params(&self) -> usize {
        self.weight.len() + self.bias.as_ref().map_or(0, Vec::len)
    }

    /// `y = x · Wᵀ + b` into `out`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in_features]`
    /// - `out`: `[rows, out_features]`
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when `x` or `out` has the wrong length.
    pub fn forward_into(&self, x: &[f32], rows: usize, out: &mut [f32]) -> TensorResult<()> {
        vit_tensor::linear_into(
            x,
            &self.weight,
            self.bias.as_deref(),
            rows,
            self.in_features,
            self.out_features,
            out,
        )
    }

    /// `out ← out + x · Wᵀ + b` (a residual connection with no temporary).
    ///
    /// # Shapes
    /// - `x`: `[rows, in_features]`
    /// - `out`: `[rows, out_features]`
    ///
    /// # Errors
    /// As [`Linear::forward_into`].
    pub fn forward_add_into(&self, x: &[f32], rows: usize, out: &mut [f32]) -> TensorResult<()> {
        vit_tensor::linear_add_into(
            x,
            &self.weight,
            self.bias.as_deref(),
            rows,
            self.in_features,
            self.out_features,
            out,
        )
    }

    /// `y = x · Wᵀ + b`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in_features]` → `[rows, out_features]`
    ///
    /// # Errors
    /// As [`Linear::forward_into`].
    ///
    /// # Example
    /// ```
    /// use vit_layers::Linear;
    /// let layer = Linear::new(vec![1.0, 2.0], Some(vec![0.5]), 2, 1)?;
    /// assert_eq!(layer.forward(&[3.0, 4.0], 1)?, [11.5]);
    /// # Ok::<(), vit_tensor::TensorError>(())
    /// ```
    pub fn forward(&self, x: &[f32], rows: usize) -> TensorResult<Vec<f32>> {
        let mut out = vec![0.0; checked_mul("Linear::forward", "output", rows, self.out_features)?];
        self.forward_into(x, rows, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vit_tensor::TensorError;

    #[test]
    fn new_checks_shapes() {
        assert!(Linear::new(vec![0.0; 6], None, 3, 2).is_ok());
        assert!(matches!(
            Linear::new(vec![0.0; 5], None, 3, 2),
            Err(TensorError::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            Linear::new(vec![0.0; 6], Some(vec![0.0; 3]), 3, 2),
            Err(TensorError::LengthMismatch {
                what: "bias [out_features]",
                ..
            })
        ));
    }

    #[test]
    fn forward_adds_bias_and_random_is_deterministic() {
        let layer = Linear::new(vec![1.0, 0.0, 0.0, 1.0], Some(vec![1.0, -1.0]), 2, 2).unwrap();
        assert_eq!(
            layer.forward(&[2.0, 3.0, 4.0, 5.0], 2).unwrap(),
            [3.0, 2.0, 5.0, 4.0]
        );
        assert!(layer.forward(&[2.0, 3.0, 4.0], 2).is_err());
        let a = Linear::random(4, 3, true, 0.02, &mut LcgRng::new(1));
        let b = Linear::random(4, 3, true, 0.02, &mut LcgRng::new(1));
        assert_eq!(a, b);
        assert_eq!(a.num_params(), 15);
    }
}
