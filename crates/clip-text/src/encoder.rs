//! `ClipTextEncoder`: token ids → CLIP's text features, as transformers'
//! `CLIPTextModelWithProjection` computes them.
//!
//! ```text
//! x      = token_embedding[ids] + position_embedding[0..L]        [B, L, D]
//! x      = blocks(x) under a causal mask (+ padding in a batch)   [B, L, D]
//! hidden = final_layer_norm(x)                                    last_hidden_state
//! pooled = hidden[b, pool(ids_b)]                                 [B, D]  pooler_output
//! embeds = pooled · Pᵀ                                            [B, E]  text_embeds
//! ```
//!
//! `pool` is the first end token, or the argmax of the ids ([`Pooling`]). Text embeddings
//! are returned as transformers returns them: projected, not normalised.

use crate::config::{ClipTextConfig, Pooling};
use crate::error::{TextError, TextResult};
use crate::tokenizer::{ClipTokenizer, TokenBatch};
use vit_encoder::ViTEncoder;
use vit_layers::{AttentionMask, Linear};

/// Texts run through the tower together (sorted by length, so padding stays short).
pub const DEFAULT_TEXT_BATCH: usize = 64;

/// The outputs of a padded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TextOutput {
    /// `[batch, seq_len, D]`, after the final LayerNorm; rows past a sequence's length are
    /// padding (computed, but attended by no real token).
    pub last_hidden_state: Vec<f32>,
    /// `[batch, D]`: the pooled position of each sequence.
    pub pooler_output: Vec<f32>,
    /// `[batch, E]`: `pooler_output · Pᵀ`, when the tower has a projection.
    pub text_embeds: Option<Vec<f32>>,
    /// `[batch]`: the real tokens of each sequence.
    pub lengths: Vec<usize>,
    /// The padded length.
    pub seq_len: usize,
}

/// CLIP's text tower without a tokenizer: token ids → features.
#[derive(Debug, Clone)]
pub struct ClipTextTower {
    /// The tower's shape.
    pub config: ClipTextConfig,
    /// `[vocab_size, D]`.
    pub token_embedding: Vec<f32>,
    /// `[max_position_embeddings, D]`.
    pub position_embedding: Vec<f32>,
    /// The blocks and `final_layer_norm`.
    pub encoder: ViTEncoder,
    /// `D → E`, no bias; `None` for a `CLIPTextModel`.
    pub projection: Option<Linear>,
    /// Where the pooled output is taken.
    pub pooling: Pooling,
    /// Padding id used when batching (never attended; any id below `vocab_size`).
    pub pad_id: u32,
    /// The checkpoint it was loaded from, for messages.
    pub source: std::path::PathBuf,
}

/// CLIP's text tower and its tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTextEncoder {
    /// Token ids → features.
    pub tower: ClipTextTower,
    /// Text → ids, truncated to the tower's `max_position_embeddings`.
    pub tokenizer: ClipTokenizer,
    batch_size: usize,
}

impl ClipTextTower {
    /// A tower from its parts, every shape checked against `config`; `source` names the
    /// checkpoint in errors.
    ///
    /// # Errors
    /// [`TextError::InvalidConfig`] for a config that does not validate or parts of another
    /// shape.
    pub fn from_parts(
        config: ClipTextConfig,
        token_embedding: Vec<f32>,
        position_embedding: Vec<f32>,
        encoder: ViTEncoder,
        projection: Option<Linear>,
        pooling: Pooling,
        source: &std::path::Path,
    ) -> TextResult<Self> {
        config.validate(source)?;
        let d = config.hidden_size;
        let shape_err = |what: &str, got: usize, want: usize| {
            TextError::config(source, format!("{what} has {got} values, expected {want}"))
        };
        if token_embedding.len() != config.vocab_size * d {
            return Err(shape_err(
                "the token embedding",
                token_embedding.len(),
                config.vocab_size * d,
            ));
        }
        if position_embedding.len() != config.max_position_embeddings * d {
            return Err(shape_err(
                "the position embedding",
                position_embedding.len(),
                config.max_position_embeddings * d,
            ));
        }
        if encoder.dim() != d {
            return Err(shape_err("the encoder width", encoder.dim(), d));
        }
        if let Some(p) = &projection {
            if p.in_features() != d {
                return Err(shape_err("the projection's input", p.in_features(), d));
            }
        }
        let pad_id = config
            .pad_token_id
            .filter(|&p| (p as usize) < config.vocab_size)
            .unwrap_or(0);
        Ok(Self {
            config,
            token_embedding,
            position_embedding,
            encoder,
            projection,
            pooling,
            pad_id,
            source: source.to_path_buf(),
        })
    }

    /// Width `D` of the hidden states and the pooled output.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Width `E` of `text_embeds`, when the tower has a projection.
    pub fn projection_dim(&self) -> Option<usize> {
        self.projection.as_ref().map(Linear::out_features)
    }
    /// The tower on token-id sequences, padded into one batch.
    ///
    /// # Shapes
    /// - `sequences`: `[batch][len_i]`, `1 ≤ len_i ≤ max_position_embeddings`
    ///
    /// # Errors
    /// [`TextError::SequenceLength`] for an empty or too long sequence;
    /// [`TextError::TokenOutOfRange`] for an id past the embedding table.
    pub fn forward_ids(&self, sequences: &[Vec<u32>]) -> TextResult<TextOutput> {
        let cfg = &self.config;
        for (index, s) in sequences.iter().enumerate() {
            if s.is_empty() || s.len() > cfg.max_position_embeddings {
                return Err(TextError::SequenceLength {
                    index,
                    len: s.len(),
                    max: cfg.max_position_embeddings,
                });
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= cfg.vocab_size) {
                return Err(TextError::TokenOutOfRange {
                    index,
                    id,
                    vocab_size: cfg.vocab_size,
                });
            }
        }
        let batch = TokenBatch::pad(sequences, self.pad_id);
        self.forward_batch(&batch)
    }

    /// The tower on a padded batch whose ids have been checked.
    fn forward_batch(&self, batch: &TokenBatch) -> TextResult<TextOutput> {
        let d = self.hidden_size();
        let (n, l) = (batch.len(), batch.seq_len);
        let mut x = Vec::with_capacity(n * l * d);
        for (k, &id) in batch.ids.iter().enumerate() {
            let (id, t) = (id as usize, k % l.max(1));
            // Padding ids were never checked against the table: pad rows read row 0.
            let id = if batch.attention_mask[k] { id } else { 0 };
            let tok = &self.token_embedding[id * d..(id + 1) * d];
            let pos = &self.position_embedding[t * d..(t + 1) * d];
            x.extend(tok.iter().zip(pos).map(|(a, b)| a + b));
        }
        let mask = AttentionMask::causal().with_padding(&batch.attention_mask);
        self.encoder
            .forward_layers_masked(&mut x, n, l, self.encoder.depth(), mask)?;
        self.encoder.final_norm.forward_inplace(&mut x)?;
        let mut pooled = Vec::with_capacity(n * d);
        for b in 0..n {
            let t = self.pooling.position(batch.sequence(b));
            let row = (b * l + t) * d;
            pooled.extend_from_slice(&x[row..row + d]);
        }
        let text_embeds = match &self.projection {
            Some(p) => Some(p.forward(&pooled, n)?),
            None => None,
        };
        Ok(TextOutput {
            last_hidden_state: x,
            pooler_output: pooled,
            text_embeds,
            lengths: batch.lengths.clone(),
            seq_len: l,
        })
    }
}
impl ClipTextEncoder {
    /// The tower with its tokenizer (set to the tower's context length).
    ///
    /// # Errors
    /// [`TextError::VocabularyTooLarge`] when the tokenizer can produce ids past the
    /// embedding table.
    pub fn from_parts(tower: ClipTextTower, tokenizer: ClipTokenizer) -> TextResult<Self> {
        if tokenizer.max_id() as usize >= tower.config.vocab_size {
            return Err(TextError::VocabularyTooLarge {
                path: tokenizer.source().to_path_buf(),
                max_id: tokenizer.max_id(),
                vocab_size: tower.config.vocab_size,
            });
        }
        let tokenizer = tokenizer.with_context_length(tower.config.max_position_embeddings)?;
        Ok(Self {
            tower,
            tokenizer,
            batch_size: DEFAULT_TEXT_BATCH,
        })
    }

    /// This encoder running `batch_size` texts per padded batch (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Width `D` of the hidden states and the pooled output.
    pub fn hidden_size(&self) -> usize {
        self.tower.hidden_size()
    }

    /// Width `E` of `text_embeds`, when the tower has a projection.
    pub fn projection_dim(&self) -> Option<usize> {
        self.tower.projection_dim()
    }

    /// transformers' `text_embeds` of each text: projected, not normalised.
    ///
    /// # Shapes
    /// - `texts`: `[n]` → `[n][E]`
    ///
    /// # Errors
    /// [`TextError::NoProjection`] for a tower without projection; as
    /// [`ClipTokenizer::encode`] for a text the tokenizer refuses.
    pub fn text_embeds(&self, texts: &[&str]) -> TextResult<Vec<Vec<f32>>> {
        if self.tower.projection.is_none() {
            return Err(TextError::NoProjection {
                path: self.tower.source.clone(),
            });
        }
        self.per_text(texts, |out, b| {
            let e = out.text_embeds.as_deref().unwrap_or_default();
            let w = e.len() / out.lengths.len().max(1);
            e[b * w..(b + 1) * w].to_vec()
        })
    }

    /// transformers' `pooler_output` of each text.
    ///
    /// # Shapes
    /// - `texts`: `[n]` → `[n][D]`
    ///
    /// # Errors
    /// As [`ClipTokenizer::encode`].
    pub fn pooled(&self, texts: &[&str]) -> TextResult<Vec<Vec<f32>>> {
        let d = self.hidden_size();
        self.per_text(texts, |out, b| {
            out.pooler_output[b * d..(b + 1) * d].to_vec()
        })
    }

    /// transformers' `last_hidden_state` of each text, its real tokens only.
    ///
    /// # Shapes
    /// - `texts`: `[n]` → `[n][len_i · D]`
    ///
    /// # Errors
    /// As [`ClipTokenizer::encode`].
    pub fn last_hidden_state(&self, texts: &[&str]) -> TextResult<Vec<Vec<f32>>> {
        let d = self.hidden_size();
        self.per_text(texts, |out, b| {
            let start = b * out.seq_len * d;
            out.last_hidden_state[start..start + out.lengths[b] * d].to_vec()
        })
    }

    /// Tokenizes, runs the texts in length-sorted padded batches, and picks each text's rows
    /// back in the given order.
    fn per_text(
        &self,
        texts: &[&str],
        take: impl Fn(&TextOutput, usize) -> Vec<f32>,
    ) -> TextResult<Vec<Vec<f32>>> {
        let sequences = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.tokenizer.encode(t).map_err(|e| reindex(e, i)))
            .collect::<TextResult<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| sequences[i].len());
        let mut rows = vec![Vec::new(); sequences.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| sequences[i].clone()).collect();
            let out = self.tower.forward_ids(&batch)?;
            for (b, &i) in chunk.iter().enumerate() {
                rows[i] = take(&out, b);
            }
        }
        Ok(rows)
    }
}

/// A tokenizer error of text 0 (single-text `encode`) renumbered to its batch position.
fn reindex(e: TextError, index: usize) -> TextError {
    match e {
        TextError::TextTooLong { bytes, limit, .. } => TextError::TextTooLong {
            index,
            bytes,
            limit,
        },
        TextError::Encode { reason, .. } => TextError::Encode { index, reason },
        other => other,
    }
}
