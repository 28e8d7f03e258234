//! `ViTEncoder`: the stack of blocks and the final LayerNorm.

use crate::{BlockScratch, ViTBlock};
use vit_layers::{AttentionMask, LayerNorm};
use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{TensorError, TensorResult};

/// A stack of [`ViTBlock`]s followed by a final LayerNorm (CLIP's `post_layernorm`).
///
/// CLIP applies the final norm only to the pooled class token, so the forward passes here
/// stop before it ([`ViTEncoder::forward_hidden`], [`ViTEncoder::forward_layers`]) and
/// [`ViTEncoder::pool_cls`] applies it to token 0 of each sequence; [`ViTEncoder::forward`]
/// normalises every token, as timm-style ViTs and open_clip's `ln_post` do.
#[derive(Debug, Clone, PartialEq)]
pub struct ViTEncoder {
    /// The blocks, applied in order.
    pub layers: Vec<ViTBlock>,
    /// The final LayerNorm, `[D]`.
    pub final_norm: LayerNorm,
}

impl ViTEncoder {
    /// An encoder from its blocks and final norm.
    ///
    /// # Errors
    /// [`TensorError::DimMismatch`] when a block or the norm has another width than the first
    /// block.
    pub fn new(layers: Vec<ViTBlock>, final_norm: LayerNorm) -> TensorResult<Self> {
        let dim = final_norm.dim();
        if let Some(bad) = layers.iter().find(|b| b.dim() != dim) {
            return Err(TensorError::DimMismatch {
                op: "ViTEncoder",
                what: "block width and final norm width",
                left: bad.dim(),
                right: dim,
            });
        }
        Ok(Self { layers, final_norm })
    }

    /// Width `D`.
    pub fn dim(&self) -> usize {
        self.final_norm.dim()
    }

    /// Holds every block's linear layers (attention projections, MLP) in `precision`; the
    /// LayerNorms and everything outside the blocks stay f32.
    ///
    /// # Errors
    /// As [`vit_layers::Linear::set_precision`].
    pub fn set_precision(&mut self, precision: vit_layers::Precision) -> TensorResult<()> {
        for block in &mut self.layers {
            for (_, linear) in block.linears_mut() {
                linear.set_precision(precision)?;
            }
        }
        Ok(())
    }

    /// Number of blocks.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(ViTBlock::num_params).sum::<usize>() + self.final_norm.num_params()
    }

    /// Runs the first `n_layers` blocks in place (the hidden state after block `n_layers`,
    /// transformers' `hidden_states[n_layers]` when `x` holds `hidden_states[0]`).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] when `n_layers > depth`;
    /// [`TensorError::LengthMismatch`] when `x` is not `batch · seq_len · D`.
    pub fn forward_layers(
        &self,
        x: &mut [f32],
        batch: usize,
        seq_len: usize,
        n_layers: usize,
    ) -> TensorResult<()> {
        self.forward_layers_masked(x, batch, seq_len, n_layers, AttentionMask::NONE)
    }

    /// [`ViTEncoder::forward_layers`] with every block's attention under `mask`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`; `mask.keep`: `[batch, seq_len]`
    ///
    /// # Errors
    /// As [`ViTEncoder::forward_layers`]; [`TensorError::LengthMismatch`] also when the
    /// padding mask is not `batch · seq_len`.
    pub fn forward_layers_masked(
        &self,
        x: &mut [f32],
        batch: usize,
        seq_len: usize,
        n_layers: usize,
        mask: AttentionMask<'_>,
    ) -> TensorResult<()> {
        if n_layers > self.layers.len() {
            return Err(TensorError::InvalidArgument {
                op: "ViTEncoder::forward_layers",
                what: "n_layers",
                value: n_layers.to_string(),
                reason: "exceeds the number of blocks",
            });
        }
        let rows = checked_mul("ViTEncoder", "batch · seq_len", batch, seq_len)?;
        let expected = checked_mul("ViTEncoder", "input", rows, self.dim())?;
        check_len("ViTEncoder", "input [batch, seq_len, D]", expected, x.len())?;
        // The buffers from this thread's heap, the work on one rayon worker (see
        // `vit_tensor::on_worker`): each block's parallel passes then split by work
        // stealing rather than each being injected into the pool.
        let mut scratch = BlockScratch::default();
        let intermediate = self.layers[..n_layers]
            .iter()
            .map(|b| b.mlp.fc1().out_features())
            .max()
            .unwrap_or(0);
        scratch.reserve(rows, self.dim(), intermediate);
        vit_tensor::on_worker(|| {
            for block in &self.layers[..n_layers] {
                block.forward_masked_with(x, batch, seq_len, mask, &mut scratch)?;
            }
            Ok(())
        })
    }

    /// Runs every block in place, without the final norm (transformers' `last_hidden_state`).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]`
    ///
    /// # Errors
    /// As [`ViTEncoder::forward_layers`].
    pub fn forward_hidden(&self, x: &mut [f32], batch: usize, seq_len: usize) -> TensorResult<()> {
        self.forward_layers(x, batch, seq_len, self.layers.len())
    }

    /// Every block, then the final norm on every token.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]` → `[batch, seq_len, D]`
    ///
    /// # Errors
    /// As [`ViTEncoder::forward_layers`].
    pub fn forward(&self, x: &[f32], batch: usize, seq_len: usize) -> TensorResult<Vec<f32>> {
        let mut hidden = x.to_vec();
        self.forward_hidden(&mut hidden, batch, seq_len)?;
        self.final_norm.forward_inplace(&mut hidden)?;
        Ok(hidden)
    }

    /// The final norm of token 0 of each sequence (CLIP's `pooler_output`).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq_len, D]` → `[batch, D]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `hidden` is not `batch · seq_len · D`;
    /// [`TensorError::InvalidArgument`] when `seq_len` is 0 and `batch` is not.
    pub fn pool_cls(&self, hidden: &[f32], batch: usize, seq_len: usize) -> TensorResult<Vec<f32>> {
        let dim = self.dim();
        let expected = checked_mul(
            "ViTEncoder::pool_cls",
            "input",
            checked_mul("ViTEncoder::pool_cls", "batch · seq_len", batch, seq_len)?,
            dim,
        )?;
        check_len(
            "ViTEncoder::pool_cls",
            "hidden [batch, seq_len, D]",
            expected,
            hidden.len(),
        )?;
        if seq_len == 0 && batch > 0 {
            return Err(TensorError::InvalidArgument {
                op: "ViTEncoder::pool_cls",
                what: "seq_len",
                value: "0".into(),
                reason: "there is no class token to pool",
            });
        }
        let mut cls = Vec::with_capacity(batch * dim);
        for b in 0..batch {
            cls.extend_from_slice(&hidden[b * seq_len * dim..b * seq_len * dim + dim]);
        }
        self.final_norm.forward_inplace(&mut cls)?;
        Ok(cls)
    }
}
