//! `Linear`: a dense layer `y = x·Wᵀ + b`, built from PyTorch's weight layout.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{
    linear_bf16, linear_int8, linear_packed, Activation, Bf16Weight, Epilogue, LcgRng,
    PackedWeight, Precision, QuantizedWeight, TensorResult, WeightLayout,
};

/// A dense layer `y = x · Wᵀ + b` (`torch.nn.Linear`).
///
/// It is built from the weight as checkpoints store it, `[out_features, in_features]`, and
/// holds it once, in its [`Precision`], in the layout its product reads: for f32,
/// [`vit_tensor::PackedWeight`] (panels for the micro-kernels with the `packed` feature, `Wᵀ`
/// row-major for the sgemm backend without it); for int8, [`vit_tensor::QuantizedWeight`];
/// for bf16, [`vit_tensor::Bf16Weight`]. No other copy is kept, so [`Linear::weight`] and
/// [`Linear::weight_t`] unpack (and, below f32, dequantize) into new buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `W`, in its precision's layout.
    weight: Weight,
    /// `[out_features]`
    bias: Option<Vec<f32>>,
    in_features: usize,
    out_features: usize,
}

/// A weight in one of the precisions.
#[derive(Debug, Clone, PartialEq)]
enum Weight {
    F32(PackedWeight),
    Int8(QuantizedWeight),
    Bf16(Bf16Weight),
}

impl Weight {
    fn new(
        weight: &[f32],
        layout: WeightLayout,
        in_features: usize,
        out_features: usize,
        precision: Precision,
    ) -> TensorResult<Self> {
        Ok(match precision {
            Precision::Int8 => Weight::Int8(QuantizedWeight::quantize(
                weight,
                layout,
                in_features,
                out_features,
            )?),
            Precision::Bf16 => Weight::Bf16(Bf16Weight::round(
                weight,
                layout,
                in_features,
                out_features,
            )?),
            _ => Weight::F32(PackedWeight::pack(
                weight,
                layout,
                in_features,
                out_features,
            )?),
        })
    }
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
        Self::with_precision(weight, bias, in_features, out_features, Precision::F32)
    }

    /// A layer from its weight `[out_features, in_features]` and optional bias
    /// `[out_features]`, held in `precision` (the f32 values are dropped once converted).
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when a buffer does not match the shape;
    /// [`vit_tensor::TensorError::InvalidArgument`] when int8 is asked for a weight with a
    /// value that is not finite.
    pub fn with_precision(
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
        precision: Precision,
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
            weight: Weight::new(
                &weight,
                WeightLayout::OutIn,
                in_features,
                out_features,
                precision,
            )?,
            bias,
            in_features,
            out_features,
        })
    }

    /// A [`Precision::Bf16`] layer from its weight already in bf16 (a half-precision
    /// checkpoint's values, read with no f32 copy) and optional bias `[out_features]`.
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when the bias does not match.
    pub fn from_bf16(weight: Bf16Weight, bias: Option<Vec<f32>>) -> TensorResult<Self> {
        let (in_features, out_features) = (weight.in_features(), weight.out_features());
        if let Some(b) = &bias {
            check_len(
                "Linear::from_bf16",
                "bias [out_features]",
                out_features,
                b.len(),
            )?;
        }
        Ok(Self {
            weight: Weight::Bf16(weight),
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
            weight: Weight::F32(PackedWeight::pack(
                &weight_t,
                WeightLayout::InOut,
                in_features,
                out_features,
            )?),
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
            weight: Weight::F32(weight),
            bias: with_bias.then(|| vec![0.0; out_features]),
            in_features,
            out_features,
        }
    }

    /// The weight in PyTorch's layout, `[out_features, in_features]` (unpacked, a copy; for
    /// int8 and bf16, the values the product uses).
    pub fn weight(&self) -> Vec<f32> {
        match &self.weight {
            Weight::F32(w) => w.to_out_in(),
            Weight::Int8(w) => w.dequantize(),
            Weight::Bf16(w) => {
                let wt = w.to_in_out();
                let (k, n) = (self.in_features, self.out_features);
                (0..k * n).map(|i| wt[(i % k) * n + i / k]).collect()
            }
        }
    }

    /// `Wᵀ`, `[in_features, out_features]` (unpacked, a copy; before the weight was held
    /// packed this returned a slice of the held buffer).
    pub fn weight_t(&self) -> Vec<f32> {
        match &self.weight {
            Weight::F32(w) => w.to_in_out(),
            Weight::Bf16(w) => w.to_in_out(),
            Weight::Int8(_) => {
                let w = self.weight();
                let (k, n) = (self.in_features, self.out_features);
                (0..k * n).map(|i| w[(i % n) * k + i / n]).collect()
            }
        }
    }

    /// The f32 weight as held, packed for the product (`None` for another precision; before
    /// there were precisions this returned the weight itself).
    pub fn packed(&self) -> Option<&PackedWeight> {
        match &self.weight {
            Weight::F32(w) => Some(w),
            _ => None,
        }
    }

    /// The int8 weight as held (`None` for another precision).
    pub fn quantized(&self) -> Option<&QuantizedWeight> {
        match &self.weight {
            Weight::Int8(w) => Some(w),
            _ => None,
        }
    }

    /// The precision the weight is held and multiplied in.
    pub fn precision(&self) -> Precision {
        match &self.weight {
            Weight::F32(_) => Precision::F32,
            Weight::Int8(_) => Precision::Int8,
            Weight::Bf16(_) => Precision::Bf16,
        }
    }

    /// Converts the weight to `precision`, from the values held (converting an int8 or bf16
    /// layer back to f32 does not recover the checkpoint's values).
    ///
    /// # Errors
    /// As [`Linear::with_precision`].
    pub fn set_precision(&mut self, precision: Precision) -> TensorResult<()> {
        if precision != self.precision() {
            let w = self.weight();
            self.weight = Weight::new(
                &w,
                WeightLayout::OutIn,
                self.in_features,
                self.out_features,
                precision,
            )?;
        }
        Ok(())
    }

    /// Converts the weight to int8 ([`Precision::Int8`]) with the input channels `outliers`
    /// kept in f32 ([`vit_tensor::QuantizedWeight::quantize_with_outliers`]), from the values
    /// held.
    ///
    /// # Errors
    /// As [`Linear::with_precision`]; [`vit_tensor::TensorError::InvalidArgument`] for an
    /// outlier channel not below `in_features`.
    pub fn quantize_int8(&mut self, outliers: &[usize]) -> TensorResult<()> {
        let w = self.weight();
        self.weight = Weight::Int8(QuantizedWeight::quantize_with_outliers(
            &w,
            WeightLayout::OutIn,
            self.in_features,
            self.out_features,
            outliers,
        )?);
        Ok(())
    }

    /// Bytes the weight takes as held.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::F32(w) => w.bytes(),
            Weight::Int8(w) => w.bytes(),
            Weight::Bf16(w) => w.bytes(),
        }
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
        match &self.weight {
            Weight::F32(w) => linear_packed(x, w, rows, out, epilogue),
            Weight::Int8(w) => linear_int8(x, w, rows, out, epilogue),
            Weight::Bf16(w) => linear_bf16(x, w, rows, out, epilogue),
        }
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

    #[test]
    fn precisions_hold_their_format_and_stay_near_f32() {
        let (k, n, rows) = (64, 24, 3);
        let mut rng = LcgRng::new(5);
        let w = rng.normal_vec(n * k, 0.0, 0.1);
        let b = rng.normal_vec(n, 0.0, 0.1);
        let x = rng.normal_vec(rows * k, 0.0, 1.0);
        let f32_layer = Linear::new(w.clone(), Some(b.clone()), k, n).unwrap();
        let want = f32_layer.forward(&x, rows).unwrap();
        for (p, bytes, tol) in [
            // Int8 pads the columns to panels of 16.
            (Precision::Int8, k * n.next_multiple_of(16), 0.03),
            (Precision::Bf16, 2 * k * n, 0.01),
        ] {
            let l = Linear::with_precision(w.clone(), Some(b.clone()), k, n, p).unwrap();
            assert_eq!(l.precision(), p);
            assert!(
                l.weight_bytes() <= bytes + 64 + 8 * n,
                "{p}: {}",
                l.weight_bytes()
            );
            assert!(l.packed().is_none());
            let got = l.forward(&x, rows).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            let scale = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
            assert!(err <= tol * scale, "{p}: max error {err} of {scale}");
            // The weight accessors give what the product uses.
            let again = Linear::new(l.weight(), Some(b.clone()), k, n).unwrap();
            assert_eq!(
                Linear::from_transposed(l.weight_t(), Some(b.clone()), k, n).unwrap(),
                again
            );
            let mut converted = f32_layer.clone();
            converted.set_precision(p).unwrap();
            assert_eq!(converted, l);
        }
        assert!(
            Linear::with_precision(vec![f32::INFINITY; 2], None, 2, 1, Precision::Int8).is_err()
        );
    }
}
