//! Vision Transformer layers on flat row-major `f32` buffers.
//!
//! `vit-layers` holds the pieces a ViT is assembled from: [`PatchEmbed`] (the patchifying
//! convolution, run as patch gathering plus one matrix product), [`LearnablePosEmbed`] with
//! [`prepend_cls`] / [`add_pos_embed`], [`MultiHeadAttention`] (fused q/k/v projection,
//! per-head strided views; unmasked, or under an [`AttentionMask`] with causal and padding
//! rules), [`Mlp`], [`LayerNorm`] and [`Linear`].
//!
//! The design decision that shapes it: each layer is built from already-loaded weights,
//! in the exact layout PyTorch checkpoints use (`Linear.weight` is
//! `[out_features, in_features]`, the patch kernel `[D, C, P, P]`), and checks their shapes
//! once, at construction. `forward` then takes a flat buffer plus its leading dimensions.
//!
//! It does **not** read files, parse JSON or know CLIP's weight names: that is
//! `clip-vision`'s job. Its only dependencies are `vit-tensor` and `rayon`.
//!
//! ```
//! use vit_layers::{LayerNorm, Mlp};
//! use vit_tensor::{Activation, LcgRng};
//! let mut rng = LcgRng::new(0);
//! let ln = LayerNorm::identity(8, 1e-5)?;
//! let mlp = Mlp::random(8, 20, Activation::Gelu, 0.02, &mut rng);
//! let x = rng.normal_vec(3 * 8, 0.0, 1.0); // [3 tokens, 8]
//! let y = mlp.forward(&ln.forward(&x)?, 3)?;
//! assert_eq!(y.len(), 3 * 8);
//! # Ok::<(), vit_tensor::TensorError>(())
//! ```
#![forbid(unsafe_code)]

pub mod attention;
pub mod layer_norm;
pub mod linear;
pub mod mask;
pub mod mlp;
pub mod patch_embed;
pub mod pos_embed;

pub use attention::{
    attention_path, force_attention_path, AttentionPath, AttentionScratch, MultiHeadAttention,
};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mask::AttentionMask;
pub use mlp::Mlp;
pub use patch_embed::PatchEmbed;
pub use pos_embed::{add_pos_embed, prepend_cls, LearnablePosEmbed};
pub use vit_tensor::Precision;
