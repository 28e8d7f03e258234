//! Token-sequence plumbing before the encoder: prepend the class token, add positions.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{LcgRng, TensorError, TensorResult};

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

    /// The table resized to a `new_h × new_w` patch grid, as transformers'
    /// `interpolate_pos_encoding` does: the first `n_prefix` rows (the class token's) are
    /// kept, the remaining rows are read as a square `g × g` grid and resized bicubically
    /// (`torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`: cubic
    /// convolution with a = −0.75, source position `(i + ½)·g/new − ½`, borders replicated).
    ///
    /// # Shapes
    /// - `self`: `[n_prefix + g², dim]` → `[n_prefix + new_h·new_w, dim]`
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::InvalidArgument`] when the rows after the prefix do not
    /// form a square grid or a new side is 0.
    ///
    /// # Example
    /// ```
    /// use vit_layers::LearnablePosEmbed;
    /// // A class row and a 2×2 grid of width 1, resized to 2×2: unchanged.
    /// let pe = LearnablePosEmbed::new(vec![9.0, 1.0, 2.0, 3.0, 4.0], 5, 1)?;
    /// assert_eq!(pe.interpolate(1, 2, 2)?.weight(), pe.weight());
    /// assert_eq!(pe.interpolate(1, 4, 3)?.n_positions(), 13);
    /// # Ok::<(), vit_tensor::TensorError>(())
    /// ```
    pub fn interpolate(&self, n_prefix: usize, new_h: usize, new_w: usize) -> TensorResult<Self> {
        let bad =
            |what: &'static str, value: usize, reason: &'static str| TensorError::InvalidArgument {
                op: "LearnablePosEmbed::interpolate",
                what,
                value: value.to_string(),
                reason,
            };
        let n = self.n_positions();
        let grid_len =
            n.checked_sub(n_prefix)
                .ok_or(bad("n_prefix", n_prefix, "exceeds the table"))?;
        let g = (grid_len as f64).sqrt().round() as usize;
        if g * g != grid_len || g == 0 {
            return Err(bad(
                "n_positions",
                n,
                "rows after the prefix are not a square grid",
            ));
        }
        if new_h == 0 || new_w == 0 {
            return Err(bad("new grid side", 0, "must be positive"));
        }
        let dim = self.dim;
        let grid = &self.weight[n_prefix * dim..];
        let rows = cubic_taps(g, new_h);
        let cols = cubic_taps(g, new_w);
        let out_len = checked_mul(
            "LearnablePosEmbed::interpolate",
            "table",
            n_prefix + new_h * new_w,
            dim,
        )?;
        let mut out = Vec::with_capacity(out_len);
        out.extend_from_slice(&self.weight[..n_prefix * dim]);
        let mut acc = vec![0.0f64; dim];
        for (ys, wy) in &rows {
            for (xs, wx) in &cols {
                acc.iter_mut().for_each(|a| *a = 0.0);
                for (&y, &wyj) in ys.iter().zip(wy) {
                    for (&x, &wxi) in xs.iter().zip(wx) {
                        let w = wyj * wxi;
                        let src = &grid[(y * g + x) * dim..(y * g + x + 1) * dim];
                        acc.iter_mut()
                            .zip(src)
                            .for_each(|(a, &v)| *a += w * f64::from(v));
                    }
                }
                out.extend(acc.iter().map(|&a| a as f32));
            }
        }
        Ok(Self { weight: out, dim })
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

/// For each output index along one axis: the four source indices (clamped to the input)
/// and their cubic-convolution weights, as PyTorch's bicubic upsampling computes them with
/// `align_corners = False`.
fn cubic_taps(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f64; 4])> {
    const A: f64 = -0.75;
    // |x| ≤ 1 and 1 < |x| < 2 branches of Keys' cubic convolution kernel.
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|i| {
            let real = (i as f64 + 0.5) * scale - 0.5;
            let base = real.floor();
            let t = real - base;
            let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
            let idx = |k: i64| (base as i64 - 1 + k).clamp(0, in_size as i64 - 1) as usize;
            ([idx(0), idx(1), idx(2), idx(3)], weights)
        })
        .collect()
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

    #[test]
    fn bicubic_resize_matches_torch() {
        // torch.nn.functional.interpolate(torch.arange(9.).reshape(1,1,3,3) ** 2, size=(2, 4),
        //     mode="bicubic", align_corners=False), computed with PyTorch 2.15.
        let grid: Vec<f32> = (0..9).map(|v| (v * v) as f32).collect();
        let mut table = vec![-1.0];
        table.extend(&grid);
        let pe = LearnablePosEmbed::new(table, 10, 1).unwrap();
        let out = pe.interpolate(1, 2, 4).unwrap();
        let want = [
            -1.0,
            0.935_634_6,
            2.008_327_5,
            4.969_211_6,
            7.684_482_6,
            29.348_543,
            36.258_278,
            48.344_27,
            56.896_57,
        ];
        for (g, w) in out.weight().iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        assert!(pe.interpolate(2, 2, 2).is_err());
        assert!(pe.interpolate(1, 0, 2).is_err());
    }
}
