//! The Vision Transformer encoder: pre-norm blocks and the stack that holds them.
//!
//! `vit-encoder` assembles `vit-layers` into [`ViTBlock`] (`x + attn(ln1(x))`, then
//! `x + mlp(ln2(x))`) and [`ViTEncoder`] (the blocks plus a final LayerNorm). It knows
//! nothing of patches, class tokens or CLIP: its input is a batch of token sequences
//! `[batch, seq_len, D]`, however they were made.
//!
//! The design decision that shapes it: blocks run in place on one `[batch · seq_len, D]`
//! buffer, so the whole batch goes through each matrix product at once (one large GEMM per
//! projection rather than one per image), and [`ViTEncoder::forward_layers`] can stop after
//! any block — which is how a caller gets the penultimate hidden state without computing the
//! last layer.
//!
//! It does **not** do I/O and has no serde dependency.
//!
//! ```
//! use vit_encoder::{ViTBlock, ViTEncoder};
//! use vit_layers::LayerNorm;
//! use vit_tensor::{Activation, LcgRng};
//! let mut rng = LcgRng::new(0);
//! let blocks = (0..2)
//!     .map(|_| ViTBlock::random(16, 4, 40, Activation::QuickGelu, 1e-5, 0.02, &mut rng))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let encoder = ViTEncoder::new(blocks, LayerNorm::identity(16, 1e-5)?)?;
//! let mut x = rng.normal_vec(2 * 5 * 16, 0.0, 1.0); // [batch 2, 5 tokens, 16]
//! encoder.forward_hidden(&mut x, 2, 5)?;
//! let pooled = encoder.pool_cls(&x, 2, 5)?; // [2, 16]
//! assert_eq!(pooled.len(), 32);
//! # Ok::<(), vit_tensor::TensorError>(())
//! ```
#![forbid(unsafe_code)]

pub mod block;
pub mod encoder;

pub use block::{BlockScratch, ViTBlock};
pub use encoder::ViTEncoder;

#[cfg(test)]
mod tests;
