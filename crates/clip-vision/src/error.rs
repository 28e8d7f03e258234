//! `VisionError`: everything `clip-vision` can refuse, each with the values that were wrong.

use clip_checkpoint::CheckpointError;
use std::path::PathBuf;
use thiserror::Error;
use vit_tensor::TensorError;

/// Result alias of `clip-vision`.
pub type VisionResult<T> = Result<T, VisionError>;

/// What can go wrong building, loading or running a CLIP vision encoder.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VisionError {
    /// A pixel buffer whose length is not `batch × channels × image_size²`.
    #[error("pixel buffer holds {got} values, expected {expected}")]
    DimensionMismatch {
        /// Values the batch calls for.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A pixel that is NaN or infinite.
    #[error("pixel {index} of image {image} is {value}, not a finite number")]
    NonFiniteInput {
        /// Image in the batch.
        image: usize,
        /// Offset inside the image's `[C, H, W]` buffer.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// A configuration value the model cannot be built with.
    #[error("{}invalid config: {field} = {value}: {reason}", file_prefix(path))]
    InvalidConfig {
        /// The config file, when the value came from one.
        path: Option<PathBuf>,
        /// The `config.json` key.
        field: &'static str,
        /// The value found, rendered.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A `hidden_act` this crate does not implement.
    #[error("{}unknown activation {name:?} (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)", file_prefix(path))]
    UnknownActivation {
        /// The config file, when the name came from one.
        path: Option<PathBuf>,
        /// The name found.
        name: String,
    },
    /// Config JSON that does not parse, or holds a value of the wrong type
    /// (`"hidden_size": "768"`).
    #[error("{path}: not a valid CLIP vision config")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, naming the key's expected type.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint that cannot be found, read, or holds tensors other than the config says
    /// (missing, misshapen, foreign dtype, an extra block).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// `image_embeds` asked of a model built without a visual projection.
    #[error("this model has no visual projection: use forward_batch (pooled output) instead")]
    NoProjection,
    /// A hidden-state index outside `-(L+1)..=L`.
    #[error("hidden state index {index} is outside -{}..={layers} for a {layers}-layer tower", layers + 1)]
    HiddenStateIndex {
        /// The index asked for.
        index: isize,
        /// The tower's number of blocks `L`.
        layers: usize,
    },
    /// An image processor whose output size is not the size the encoder takes.
    #[error("{processor}: the preprocessing makes {got} images but the model takes {expected}")]
    ProcessorMismatch {
        /// Where the preprocessing came from (its config file, or `<defaults>`).
        processor: PathBuf,
        /// What the model takes, `H×W`, rendered.
        expected: String,
        /// What the processor makes, `H×W` (or "images of varying size"), rendered.
        got: String,
    },
    /// An image could not be decoded or preprocessed, or a processor config is invalid.
    #[cfg(feature = "image")]
    #[error(transparent)]
    Preprocess(#[from] clip_preprocess::PreprocessError),
    /// Embeddings compared that are not all of one width (an image and a text tower that do
    /// not belong together).
    #[error("embeddings of different widths: {got} values where {expected} were expected")]
    EmbeddingWidth {
        /// The width of the first embedding.
        expected: usize,
        /// The width found.
        got: usize,
    },
    /// The text tower's errors (feature `text`): tokenizer files, text config, text weights.
    #[cfg(feature = "text")]
    #[error(transparent)]
    Text(#[from] clip_text::TextError),
    /// The worker threads could not be started.
    #[error("cannot start {threads} worker threads: {reason}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// The operating system's reason.
        reason: String,
    },
    /// A layer refused its inputs.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// `"<path>: "` for an error tied to a file, nothing otherwise.
fn file_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl VisionError {
    /// The same error, tied to the config file it came from (for the config variants that
    /// do not name one yet).
    pub(crate) fn in_file(mut self, file: &std::path::Path) -> Self {
        if let Self::InvalidConfig { path, .. } | Self::UnknownActivation { path, .. } = &mut self {
            if path.is_none() {
                *path = Some(file.to_path_buf());
            }
        }
        self
    }

    /// A [`CheckpointError::Invalid`] for `path`.
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint(CheckpointError::invalid(path, reason))
    }
}
