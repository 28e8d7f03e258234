//! CLIP's tokenizer and text tower on the CPU.
//!
//! `clip-text` turns text into CLIP text embeddings that match HF transformers:
//! [`ClipTokenizer`] gives the ids of transformers' fast `CLIPTokenizer` (the `tokenizers`
//! crate, loaded from `tokenizer.json`, `vocab.json` + `merges.txt`, or OpenAI's
//! `bpe_simple_vocab_16e6.txt.gz`), and [`ClipTextEncoder`] ([`ClipTextTower`] + tokenizer) runs the text tower of a
//! `CLIPModel` / `CLIPTextModelWithProjection` (or of OpenAI / open_clip weights) to
//! `text_embeds`, `pooler_output` and `last_hidden_state`.
//!
//! The text tower is the vision tower's pre-norm block (`vit-encoder`) under a causal mask
//! ([`vit_layers::AttentionMask`]), plus the padding mask in a batch; a padded batch gives
//! each text the rows it gets alone.
//!
//! It does **not** decode images, depend on `clip-vision`, or download anything: a hub id
//! is looked up in the local HF cache only. Zero-shot classification and similarity live in
//! `clip_vision::ClipModel` (feature `text`), which holds both towers.
//!
//! ```no_run
//! use clip_text::ClipTextEncoder;
//! let text = ClipTextEncoder::from_pretrained("fixtures/models/demo")?;
//! let embeds = text.text_embeds(&["a photo of a dog", "a photo of a cat"])?; // [2][E]
//! assert_eq!(embeds.len(), 2);
//! # Ok::<(), clip_text::TextError>(())
//! ```
#![forbid(unsafe_code)]

pub mod clean;
pub mod config;
pub mod encoder;
pub mod error;
pub mod loader;
pub mod tokenizer;

pub use config::{ClipTextConfig, Pooling};
pub use encoder::{ClipTextEncoder, ClipTextTower, TextOutput, DEFAULT_TEXT_BATCH};
pub use error::{TextError, TextResult};
pub use loader::{TextLoadOptions, TextNaming};
pub use tokenizer::{
    ClipTokenizer, TextCleaning, TokenBatch, CONTEXT_LENGTH, END_OF_TEXT, MAX_TEXT_BYTES,
    START_OF_TEXT,
};
