//! `Linear`: a dense layer `y = x·Wᵀ + b`, built from PyTorch's weight layout.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{
    linear_packed, Activation, Epilogue, LcgRng, PackedWeight, TensorResult, WeightLayout,
};

/// A dense layer `y = x · Wᵀ + b` (`torch.nn.Linear`).
///
/// It is built from the weight as checkpoints store it, `[out_features, in_features]`, and
/// holds it once, packed at construction in the layout its product reads
/// ([`vit_tensor::PackedWeight`]: panels for the micro-kernels with the `packed` feature,
/// `Wᵀ` row-major for the sgemm backend without it). No other copy is kept, so [`Linear::weight`]
/// and [`Linear::weight_t`] unpack into new buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `W`, packed.
    weight: PackedWeight,
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
            weight: PackedWeight::pack(&weight, WeightLayout::OutIn, in_features, out_features)?,
            bias,
            in_features,
            out_features,
        })
    }

    /// A layer from `Wᵀ`, `[in_features, out_features]` (OpenAI's `proj` is stored so), and
    /// an optional bias `[out_features]`.
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when a buffer does not match the shape.
    pub fn from_transposed(
        weight_t: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        let expected = checked_mul("Linear::new", "weight", out_features, in_features)?;
        check_len(
            "Linear::new",
            "weight [in_features, out_features]",
            expected,
            weight_t.len(),
        )?;
        if let Some(b) = &bias {
            check_len("Linear::new", "bias [out_features]", out_features, b.len())?;
        }
        Ok(Self {
            weight: PackedWeight::pack(&weight_t, WeightLayout::InOut, in_features, out_features)?,
            bias,
            in_features,
            out_features,
        })
    }

    /// A layer with weights drawn from `N(0, std²)` (in `[out_features, in_features]`
    /// order) and, if `with_bias`, a zero bias.
    pub fn random(
        in_features: usize,
        out_features: usize,
        with_bias: bool,
        std: f32,
        rng: &mut LcgRng,
    ) -> Self {
        let weight = rng.normal_vec(in_features * out_features, 0.0, std);
        let weight = PackedWeight::pack(&weight, WeightLayout::OutIn, in_features, out_features)
            .unwrap_or_else(|_| unreachable!("normal_vec returns in · out values"));
        Self {
            weight,
            bias: with_bias.then(|| vec![0.0; out_features]),
            in_features,
            out_features,
        }
    }

    /// The weight in PyTorch's layout, `[out_features, in_features]` (unpacked, a copy).
    pub fn weight(&self) -> Vec<f32> {
        self.weight.to_out_in()
    }

    /// `Wᵀ`, `[in_features, out_features]` (unpacked, a copy; before the weight was held
    /// packed this returned a slice of the held buffer).
    pub fn weight_t(&self) -> Vec<f32> {
        self.weight.to_in_out()
    }

    /// The weight as held, packed for the product.
    pub fn packed(&self) -> &PackedWeight {
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
        self.in_features * self.out_features + self.bias.as_ref().map_or(0, Vec::len)
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
        let epilogue = Epilogue {
            bias: self.bias.as_deref(),
            ..Epilogue::default()
        };
        self.forward_with(x, rows, out, epilogue)
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
        let epilogue = Epilogue {
            bias: self.bias.as_deref(),
            activation: None,
            accumulate: true,
        };
        self.forward_with(x, rows, out, epilogue)
    }

    /// `out ← act(x · Wᵀ + b)`: the activation fused into the pass that writes the output.
    ///
    /// # Shapes
    /// - `x`: `[rows, in_features]`
    /// - `out`: `[rows, out_features]`
    ///
    /// # Errors
    /// As [`Linear::forward_into`].
    pub fn forward_act_into(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        activation: Activation,
    ) -> TensorResult<()> {
        let epilogue = Epilogue {
            bias: self.bias.as_deref(),
            activation: Some(activation),
            accumulate: false,
        };
        self.forward_with(x, rows, out, epilogue)
    }

    fn forward_with(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        epilogue: Epilogue<'_>,
    ) -> TensorResult<()> {
        linear_packed(x, &self.weight, rows, out, epilogue)
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
        let w: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [[0, 1, 2], [3, 4, 5]]
        let l = Linear::new(w.clone(), None, 3, 2).unwrap();
        assert_eq!(l.weight_t(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(l.weight(), w);
        assert_eq!(
            Linear::from_transposed(l.weight_t().to_vec(), None, 3, 2).unwrap(),
            l
        );
    }
}
