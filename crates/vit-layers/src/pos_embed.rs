//! Token-sequence plumbing before the encoder: prepend the class token, add positions.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{LcgRng, TensorResult};

/// A learned absolute position table, one row per token position (`nn.Embedding`).
#[derive(Debug, Clone, PartialEq)]
pub struct LearnablePosEmbed {
    /// `[n_positions, dim]`
    weight: Vec<f32>,
    dim: usize,
}

impl LearnablePosEmbed {
    /// A table from its rows, `[n_positions, dim]`.
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when `weight` is not whole rows of `dim`.
    pub fn new(weight: Vec<f32>, n_positions: usize, dim: usize) -> TensorResult<Self> {
        let expected = checked_mul("LearnablePosEmbed::new", "weight", n_positions, dim)?;
        check_len(
            "LearnablePosEmbed::new",
            "weight [n_positions, dim]",
            expected,
            weight.len(),
        )?;
        Ok(Self { weight, dim })
    }

    /// A table drawn from `N(0, std²)`.
    pub fn random(n_positions: usize, dim: usize, std: f32, rng: &mut LcgRng) -> Self {
        Self {
            weight: rng.normal_vec(n_positions * dim, 0.0, std),
            dim,
        }
    }

    /// Number of positions (rows).
    pub fn n_positions(&self) -> usize {
        self.weight.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The table, `[n_positions, dim]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Adds the table to every sequence of `tokens`: position `t` of each sequence gets row `t`.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, n_positions, dim]`
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when `tokens` is not whole sequences.
    pub fn add_to(&self, tokens: &mut [f32]) -> TensorResult<()> {
        add_pos_embed(tokens, &self.weight)
    }
}

/// Puts the class token in front of each image's patch tokens.
///
/// # Shapes
/// - `patches`: `[batch, n_patches, dim]`
/// - `cls`: `[dim]`
/// - output: `[batch, 1 + n_patches, dim]`
///
/// # Errors
/// [`vit_tensor::TensorError::LengthMismatch`] when `patches` is not `batch · n_patches · dim`.
///
/// # Example
/// ```
/// let x = vit_layers::prepend_cls(&[1.0, 2.0, 3.0, 4.0], &[9.0, 9.0], 2, 1)?;
/// assert_eq!(x, [9.0, 9.0, 1.0, 2.0, 9.0, 9.0, 3.0, 4.0]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn prepend_cls(
    patches: &[f32],
    cls: &[f32],
    batch: usize,
    n_patches: usize,
) -> TensorResult<Vec<f32>> {
    let dim = cls.len();
    let per_image = checked_mul("prepend_cls", "n_patches · dim", n_patches, dim)?;
    let expected = checked_mul("prepend_cls", "patches", batch, per_image)?;
    check_len(
        "prepend_cls",
        "patches [batch, n_patches, dim]",
        expected,
        patches.len(),
    )?;
    let mut out = Vec::with_capacity(expected + batch * dim);
    for b in 0..batch {
        out.extend_from_slice(cls);
        out.extend_from_slice(&patches[b * per_image..(b + 1) * per_image]);
    }
    Ok(out)
}

/// Adds a position table to each sequence in `tokens`.
///
/// # Shapes
/// - `tokens`: `[batch, seq_len, dim]`
/// - `pos`: `[seq_len, dim]`
///
/// # Errors
/// [`vit_tensor::TensorError::LengthMismatch`] when `tokens` is not a whole number of tables.
pub fn add_pos_embed(tokens: &mut [f32], pos: &[f32]) -> TensorResult<()> {
    if pos.is_empty() {
        return check_len("add_pos_embed", "tokens [batch, 0, dim]", 0, tokens.len());
    }
    let batch = tokens.len() / pos.len();
    check_len(
        "add_pos_embed",
        "tokens [batch, seq_len, dim]",
        batch * pos.len(),
        tokens.len(),
    )?;
    for seq in tokens.chunks_exact_mut(pos.len()) {
        seq.iter_mut().zip(pos).for_each(|(t, &p)| *t += p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_positions_per_sequence() {
        let pe = LearnablePosEmbed::new(vec![1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
        let mut x = vec![0.0; 8];
        pe.add_to(&mut x).unwrap();
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(pe.add_to(&mut [0.0; 6]).is_err());
        assert_eq!(pe.n_positions(), 2);
        assert!(LearnablePosEmbed::new(vec![0.0; 5], 2, 2).is_err());
        assert!(prepend_cls(&[0.0; 3], &[1.0, 1.0], 1, 2).is_err());
    }
}
