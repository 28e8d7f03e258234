//! `TextError`: everything tokenizing or running the text tower can refuse, each naming the
//! file or the input and what is wrong.

use clip_checkpoint::CheckpointError;
use std::path::PathBuf;
use thiserror::Error;
use vit_tensor::TensorError;

/// Result alias of `clip-text`.
pub type TextResult<T> = Result<T, TextError>;

/// What can go wrong loading CLIP's tokenizer or text tower, or encoding a text.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TextError {
    /// A checkpoint file that cannot be found, read or parsed, or a tensor that is missing
    /// or misshapen.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tokenizer file that the `tokenizers` crate refuses (truncated, not JSON, an unknown
    /// model type, a vocabulary and merges that disagree).
    #[error("{path}: not a usable tokenizer file: {reason}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint directory with no tokenizer files.
    #[error(
        "{dir}: no tokenizer files: expected tokenizer.json, vocab.json + merges.txt, or \
         bpe_simple_vocab_16e6.txt.gz{missing}"
    )]
    MissingTokenizer {
        /// The directory looked in.
        dir: PathBuf,
        /// Which files of a partial pair are missing (e.g. `" (merges.txt is missing)"`).
        missing: String,
    },
    /// A tokenizer whose vocabulary lacks a token CLIP needs.
    #[error("{path}: the tokenizer has no {token:?} token")]
    MissingSpecialToken {
        /// The tokenizer file.
        path: PathBuf,
        /// The token looked up.
        token: &'static str,
    },
    /// A tokenizer that can produce ids the embedding table has no row for.
    #[error(
        "{path}: the tokenizer's ids go up to {max_id} but the text tower's embedding \
         table has {vocab_size} rows"
    )]
    VocabularyTooLarge {
        /// The tokenizer file.
        path: PathBuf,
        /// The largest id the tokenizer can produce, added tokens included.
        max_id: u32,
        /// Rows of the token embedding.
        vocab_size: usize,
    },
    /// A text longer than the tokenizer accepts.
    #[error("text {index} is {bytes} bytes long; at most {limit} are accepted")]
    TextTooLong {
        /// Its position in the batch.
        index: usize,
        /// Its length in bytes.
        bytes: usize,
        /// [`crate::MAX_TEXT_BYTES`].
        limit: usize,
    },
    /// The tokenizer failed on a text.
    #[error("text {index}: the tokenizer failed: {reason}")]
    Encode {
        /// Its position in the batch.
        index: usize,
        /// The tokenizer's message.
        reason: String,
    },
    /// A token id the embedding table has no row for.
    #[error("sequence {index}: token id {id} is not below the vocabulary size {vocab_size}")]
    TokenOutOfRange {
        /// The sequence.
        index: usize,
        /// The id.
        id: u32,
        /// Rows of the token embedding.
        vocab_size: usize,
    },
    /// A token sequence that is empty or longer than the tower's positions.
    #[error("sequence {index} has {len} tokens; the text tower takes 1 to {max}")]
    SequenceLength {
        /// The sequence.
        index: usize,
        /// Its length.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// A config that cannot describe a text tower.
    #[error("{path}: {reason}")]
    InvalidConfig {
        /// The config file (or checkpoint, when the config was inferred).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint that holds no text tower.
    #[error(
        "{path}: holds no text tower (no text_model.* or token_embedding / transformer.* \
         tensors); a CLIPModel or CLIPTextModel(WithProjection) checkpoint is needed"
    )]
    NoTextTower {
        /// The checkpoint.
        path: PathBuf,
    },
    /// A text tower with no projection, asked for projected embeddings.
    #[error("{path}: the text tower has no projection (a CLIPTextModel): no text_embeds")]
    NoProjection {
        /// The checkpoint.
        path: PathBuf,
    },
    /// A kernel that refused its inputs (a bug or an absurd size).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

impl TextError {
    pub(crate) fn tokenizer(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::Tokenizer {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
