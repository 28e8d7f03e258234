//! CLIP image embeddings on the CPU, numerically faithful to HF transformers.
//!
//! `clip-vision` turns images into CLIP embeddings: [`ClipVisionEncoder`] is the vision
//! tower of `CLIPVisionModelWithProjection`, built from a [`ClipVisionConfig`] (the HF
//! `config.json`, key for key) and either random weights ([`ClipVisionEncoder::new`]) or a
//! checkpoint ([`ClipVisionEncoder::from_pretrained`]). Its outputs mean what they mean in
//! transformers: [`ClipVisionEncoder::forward_batch`] is `pooler_output`,
//! [`ClipVisionEncoder::image_embeds`] is `image_embeds`,
//! [`ClipVisionEncoder::last_hidden_state`] is `last_hidden_state`.
//!
//! The design decision that shapes it: the config maps onto plain layer structs of
//! `vit-layers` / `vit-encoder`, never the other way, and weights are taken only from the
//! checkpoint — a missing or misshapen tensor is an error naming it, never a silent random
//! fill.
//!
//! It does **not** download anything. Text (CLIP's tokenizer and text tower, zero-shot
//! labels, [`ClipModel`] with both towers) comes with the feature `text`, which adds the
//! `clip-text` crate.
//!
//! ```
//! use clip_vision::{ClipVisionConfig, ClipVisionEncoder, LcgRng};
//! let cfg = ClipVisionConfig::from_json_str(r#"{"hidden_size": 32, "intermediate_size": 64,
//!     "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 16,
//!     "projection_dim": 8}"#)?;
//! let model = ClipVisionEncoder::new(cfg, &mut LcgRng::new(0))?;
//! let pixels = vec![0.1; 2 * 3 * 32 * 32]; // [batch 2, C 3, 32, 32]
//! let embeds = model.image_embeds(&pixels, 2)?;
//! assert_eq!((embeds.len(), embeds[0].len()), (2, 8));
//! # Ok::<(), clip_vision::VisionError>(())
//! ```
#![forbid(unsafe_code)]

pub mod calibrate;
pub mod config;
pub mod encoder;
pub mod error;
pub mod loader;
#[cfg(feature = "text")]
pub mod model;
#[cfg(feature = "image")]
pub mod pipeline;
/// Reading checkpoint files: the `clip-checkpoint` crate.
pub use clip_checkpoint as checkpoint;
/// `CLIPImageProcessor`'s computation: the `clip-preprocess` crate (feature `image`).
#[cfg(feature = "image")]
pub use clip_preprocess as preprocess;
/// CLIP's tokenizer and text tower: the `clip-text` crate (feature `text`).
#[cfg(feature = "text")]
pub use clip_text as text;

pub use config::ClipVisionConfig;
pub use encoder::ClipVisionEncoder;
pub use error::{VisionError, VisionResult};
pub use loader::LoadOptions;
#[cfg(feature = "text")]
pub use model::ClipModel;
#[cfg(feature = "image")]
pub use pipeline::{EmbedKind, ImageEmbedder, ImageEmbedderBuilder};
#[cfg(feature = "image")]
pub use preprocess::ImageProcessor;
/// Attention and its two paths (two-pass, tiled): which one runs, forcing one.
pub use vit_layers::attention;
/// The micro-kernels' run-time dispatch: which path runs, forcing one, the CPU's features.
pub use vit_tensor::kernels;
pub use vit_tensor::Precision;
pub use vit_tensor::{Activation, LcgRng};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
