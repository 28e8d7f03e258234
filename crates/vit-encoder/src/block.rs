//! `ViTBlock`: one pre-norm transformer encoder layer.

use vit_layers::{AttentionMask, AttentionScratch, LayerNorm, Linear, Mlp, MultiHeadAttention};
use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{Activation, LcgRng, TensorError, TensorResult};

/// A pre-norm transformer layer (`CLIPEncoderLayer`; Dosovitskiy et al. 2021, eq. 2–3):
///
/// ```text
/// h = x + attn(layer_norm1(x))
/// y = h + mlp(layer_norm2(h))
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ViTBlock {
    /// Norm before attention, `[D]`.
    pub layer_norm1: LayerNorm,
    /// Self-attention, `D → D`.
    pub attn: MultiHeadAttention,
    /// Norm before the MLP, `[D]`.
    pub layer_norm2: LayerNorm,
    /// Feed-forward network, `D → I → D`.
    pub mlp: Mlp,
}

impl ViTBlock {
    /// A block from its four parts.
    ///
    /// # Errors
    /// [`TensorError::DimMismatch`] when the parts do not share one width `D`.
    pub fn new(
        layer_norm1: LayerNorm,
        attn: MultiHeadAttention,
        layer_norm2: LayerNorm,
        mlp: Mlp,
    ) -> TensorResult<Self> {
        let dim = attn.dim();
        for (what, width) in [
            ("layer_norm1 width and attention width", layer_norm1.dim()),
            ("layer_norm2 width and attention width", layer_norm2.dim()),
            ("MLP width and attention width", mlp.fc1().in_features()),
        ] {
            if width != dim {
                return Err(TensorError::DimMismatch {
                    op: "ViTBlock",
                    what,
                    left: width,
                    right: dim,
                });
            }
        }
        Ok(Self {
            layer_norm1,
            attn,
            layer_norm2,
            mlp,
        })
    }

    /// A random block: projections `N(0, std²)`, zero biases, identity LayerNorms.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] when `n_heads` does not divide `dim`, or `eps` is bad.
    pub fn random(
        dim: usize,
        n_heads: usize,
        intermediate: usize,
        activation: Activation,
        eps: f32,
        std: f32,
        rng: &mut LcgRng,
    ) -> TensorResult<Self> {
        let attn = MultiHeadAttention::random(dim, n_heads, std, rng)?;
        let mlp = Mlp::random(dim, intermediate, activation, std, rng);
        Self::new(
            LayerNorm::identity(dim, eps)?,
            attn,
            LayerNorm::identity(dim, eps)?,
            mlp,
        )
    }

    /// Names of the block's linear layers, in [`ViTBlock::linears`]' order.
    pub const LINEARS: [&'static str; 4] = ["attn.qkv", "attn.out_proj", "mlp.fc1", "mlp.fc2"];

    /// The block's linear layers, named as in [`ViTBlock::LINEARS`].
    pub fn linears(&self) -> [(&'static str, &Linear); 4] {
        let [a, b, c, d] = Self::LINEARS;
        [
            (a, self.attn.qkv()),
            (b, self.attn.out_proj()),
            (c, self.mlp.fc1()),
            (d, self.mlp.fc2()),
        ]
    }

    /// The block's linear layers, to change in place (their precision:
    /// [`Linear::set_precision`]), named as in [`ViTBlock::LINEARS`].
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        let [a, b, c, d] = Self::LINEARS;
        let (attn, mlp) = (&mut self.attn, &mut self.mlp);
        let (qkv, out) = attn.projections_mut();
        let (fc1, fc2) = mlp.layers_mut();
        [(a, qkv), (b, out), (c, fc1), (d, fc2)]
    }

    /// Width `D`.
    pub fn dim(&self) -> usize {
        self.attn.dim()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layer_norm1.num_params()
            + self.layer_norm2.num_params()
            + self.attn.num_params()
            + self.mlp.num_params()
    }

    /// Runs the block on every sequence of the batch, in place.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`, overwritten with the block's output
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` is not `batch · seq_len · D`.
    pub fn forward_inplace(&self, x: &mut [f32], batch: usize, seq_len: usize) -> TensorResult<()> {
        self.forward_with(x, batch, seq_len, &mut BlockScratch::default())
    }

    /// [`ViTBlock::forward_inplace`] with its intermediate buffers taken from `scratch`, so a
    /// stack of blocks allocates once. Both residual additions are accumulated by the
    /// output projections' matrix products directly into `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`
    ///
    /// # Errors
    /// As [`ViTBlock::forward_inplace`].
    pub fn forward_with(
        &self,
        x: &mut [f32],
        batch: usize,
        seq_len: usize,
        scratch: &mut BlockScratch,
    ) -> TensorResult<()> {
        self.forward_masked_with(x, batch, seq_len, AttentionMask::NONE, scratch)
    }

    /// [`ViTBlock::forward_with`] with attention under `mask` (CLIP's text tower: causal,
    /// plus padding in a padded batch).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`; `mask.keep`: `[batch, seq_len]`
    ///
    /// # Errors
    /// As [`ViTBlock::forward_inplace`]; [`TensorError::LengthMismatch`] also when the
    /// padding mask is not `batch · seq_len`.
    pub fn forward_masked_with(
        &self,
        x: &mut [f32],
        batch: usize,
        seq_len: usize,
        mask: AttentionMask<'_>,
        scratch: &mut BlockScratch,
    ) -> TensorResult<()> {
        let rows = checked_mul("ViTBlock", "batch · seq_len", batch, seq_len)?;
        let expected = checked_mul("ViTBlock", "input", rows, self.dim())?;
        check_len("ViTBlock", "input [batch, seq_len, D]", expected, x.len())?;
        scratch.normed.resize(expected, 0.0);
        self.layer_norm1.forward_into(x, &mut scratch.normed)?;
        self.attn.forward_masked_add_into(
            &scratch.normed,
            batch,
            seq_len,
            mask,
            x,
            &mut scratch.attn,
        )?;
        self.layer_norm2.forward_into(x, &mut scratch.normed)?;
        self.mlp
            .forward_add_into(&scratch.normed, rows, x, &mut scratch.hidden)
    }
}

/// The buffers a block works in, reused from block to block: the normalised input
/// `[rows, D]`, attention's q/k/v and context, the MLP's hidden activation `[rows, I]`.
#[derive(Debug, Clone, Default)]
pub struct BlockScratch {
    normed: Vec<f32>,
    attn: AttentionScratch,
    hidden: Vec<f32>,
}

impl BlockScratch {
    /// Makes room for `rows` tokens of width `dim` and MLP width `intermediate`, so that
    /// the blocks' forward passes do not allocate (see [`AttentionScratch::reserve`]: the
    /// memory comes from the calling thread's heap).
    pub fn reserve(&mut self, rows: usize, dim: usize, intermediate: usize) {
        let len = rows.saturating_mul(dim);
        self.normed.reserve(len.saturating_sub(self.normed.len()));
        self.attn.reserve(rows, dim);
        let hidden = rows.saturating_mul(intermediate);
        self.hidden
            .reserve(hidden.saturating_sub(self.hidden.len()));
    }
}
