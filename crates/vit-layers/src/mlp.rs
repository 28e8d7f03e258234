//! `Mlp`: the transformer feed-forward network `fc2(act(fc1(x)))`.

use crate::Linear;
use vit_tensor::{Activation, TensorError, TensorResult};

/// The position-wise feed-forward network of a transformer block (`CLIPMLP`):
/// `fc1: D → I`, activation, `fc2: I → D`, any intermediate width `I`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// `[I, D]`
    fc1: Linear,
    /// `[D, I]`
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    /// An MLP from its two layers.
    ///
    /// # Errors
    /// [`TensorError::DimMismatch`] when `fc1`'s output width is not `fc2`'s input width or
    /// `fc2` does not return to `fc1`'s input width.
    pub fn new(fc1: Linear, fc2: Linear, activation: Activation) -> TensorResult<Self> {
        if fc1.out_features() != fc2.in_features() {
            return Err(TensorError::DimMismatch {
                op: "Mlp",
                what: "fc1 output width and fc2 input width",
                left: fc1.out_features(),
                right: fc2.in_features(),
            });
        }
        if fc2.out_features() != fc1.in_features() {
            return Err(TensorError::DimMismatch {
                op: "Mlp",
                what: "fc2 output width and fc1 input width",
                left: fc2.out_features(),
                right: fc1.in_features(),
            });
        }
        Ok(Self {
            fc1,
            fc2,
            activation,
        })
    }

    /// A random MLP: weights `N(0, std²)`, zero biases.
    pub fn random(
        dim: usize,
        intermediate: usize,
        activation: Activation,
        std: f32,
        rng: &mut vit_tensor::LcgRng,
    ) -> Self {
        Self {
            fc1: Linear::random(dim, intermediate, true, std, rng),
            fc2: Linear::random(intermediate, dim, true, std, rng),
            activation,
        }
    }

    /// The first layer, to change in place (its precision: [`Linear::set_precision`]; a
    /// layer of another shape put here makes the forward pass fail with a shape error).
    pub fn fc1_mut(&mut self) -> &mut Linear {
        &mut self.fc1
    }

    /// Both layers, to change in place at once (as [`Mlp::fc1_mut`]).
    pub fn layers_mut(&mut self) -> (&mut Linear, &mut Linear) {
        (&mut self.fc1, &mut self.fc2)
    }

    /// The first layer, `[I, D]`.
    pub fn fc1(&self) -> &Linear {
        &self.fc1
    }

    /// The second layer, to change in place (as [`Mlp::fc1_mut`]).
    pub fn fc2_mut(&mut self) -> &mut Linear {
        &mut self.fc2
    }

    /// The second layer, `[D, I]`.
    pub fn fc2(&self) -> &Linear {
        &self.fc2
    }

    /// The activation between them.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.fc1.num_params() + self.fc2.num_params()
    }

    /// `fc2(act(fc1(x)))`.
    ///
    /// # Shapes
    /// - `x`: `[rows, D]` → `[rows, D]` (the hidden activation is `[rows, I]`)
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` is not `rows · D`.
    pub fn forward(&self, x: &[f32], rows: usize) -> TensorResult<Vec<f32>> {
        let mut out = vec![0.0f32; x.len()];
        self.forward_add_into(x, rows, &mut out, &mut Vec::new())?;
        Ok(out)
    }

    /// `out ← out + fc2(act(fc1(x)))`, the hidden activation held in `hidden` (grown once,
    /// reused across calls).
    ///
    /// # Shapes
    /// - `x`, `out`: `[rows, D]`; `hidden` becomes `[rows, I]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` or `out` is not `rows · D`.
    pub fn forward_add_into(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        hidden: &mut Vec<f32>,
    ) -> TensorResult<()> {
        let len = vit_tensor::error::checked_mul(
            "Mlp",
            "hidden [rows, I]",
            rows,
            self.fc1.out_features(),
        )?;
        hidden.resize(len, 0.0);
        self.fc1
            .forward_act_into(x, rows, hidden, self.activation)?;
        self.fc2.forward_add_into(hidden, rows, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vit_tensor::LcgRng;

    #[test]
    fn composes_and_checks_widths() {
        let fc1 = Linear::new(vec![1.0, -1.0], Some(vec![0.0, 0.0]), 1, 2).unwrap();
        let fc2 = Linear::new(vec![1.0, 1.0], None, 2, 1).unwrap();
        let mlp = Mlp::new(fc1, fc2, Activation::QuickGelu).unwrap();
        let y = mlp.forward(&[2.0], 1).unwrap();
        let want = Activation::QuickGelu.apply(2.0) + Activation::QuickGelu.apply(-2.0);
        assert!((y[0] - want).abs() < 1e-6);
        let mut rng = LcgRng::new(0);
        let a = Linear::random(4, 6, true, 0.1, &mut rng);
        let b = Linear::random(5, 4, true, 0.1, &mut rng);
        assert!(matches!(
            Mlp::new(a, b, Activation::Gelu),
            Err(TensorError::DimMismatch {
                left: 6,
                right: 5,
                ..
            })
        ));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use vit_tensor::LcgRng;

    proptest! {
        /// `[rows, D] → [rows, D]` for any intermediate width, and rows are independent.
        #[test]
        fn mlp_keeps_shape_and_rows_are_independent(dim in 1usize..9, inter in 1usize..20, rows in 0usize..6, seed: u64) {
            let mut rng = LcgRng::new(seed);
            let mlp = Mlp::random(dim, inter, Activation::Gelu, 0.5, &mut rng);
            let x = rng.normal_vec(rows * dim, 0.0, 1.0);
            let y = mlp.forward(&x, rows).unwrap();
            prop_assert_eq!(y.len(), rows * dim);
            for r in 0..rows {
                let alone = mlp.forward(&x[r * dim..(r + 1) * dim], 1).unwrap();
                // Bit-identical with matrixmultiply; the `gemm` backend may order a row's dot
                // products differently when the number of rows changes.
                for (a, y) in alone.iter().zip(&y[r * dim..(r + 1) * dim]) {
                    prop_assert!((a - y).abs() <= 1e-5 * y.abs().max(1.0), "{} vs {}", a, y);
                }
            }
        }
    }
}
