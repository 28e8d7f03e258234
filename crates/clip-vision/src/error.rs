//! `VisionError`: everything `clip-vision` can refuse, each with the values that were wrong.

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
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file that does not parse into what it should hold.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint file whose structure is broken (header, offsets, sizes).
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs that the checkpoint does not hold.
    #[error("{path}: missing tensor {name:?}")]
    MissingWeight {
        /// The checkpoint (file or directory).
        path: PathBuf,
        /// The tensor name looked up.
        name: String,
    },
    /// A tensor whose shape is not the one the config calls for.
    #[error("{path}: tensor {name:?} has shape {got:?}, expected {expected:?}")]
    WeightShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape the config calls for.
        expected: Vec<usize>,
        /// The shape stored.
        got: Vec<usize>,
    },
    /// A tensor stored in a dtype that cannot be read as floats.
    #[error("{path}: tensor {name:?} has dtype {dtype}, expected F32, F16 or BF16")]
    UnsupportedDtype {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype stored.
        dtype: String,
    },
    /// `image_embeds` asked of a model built without a visual projection.
    #[error("this model has no visual projection: use forward_batch (pooled output) instead")]
    NoProjection,
    /// A `preprocessor_config.json` value the image processor cannot work with.
    #[error("{path}: {key} = {value}: {reason}")]
    InvalidPreprocessorConfig {
        /// The file (`<string>` for JSON text).
        path: PathBuf,
        /// The JSON key.
        key: &'static str,
        /// The value found, rendered as JSON.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An image that cannot be decoded or preprocessed: not an image, a format or pixel type
    /// this crate does not read, corrupt or truncated data.
    #[error("{path}: {reason}")]
    Image {
        /// The file (`<in-memory image>` for an image passed as pixels).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image with more pixels than the processor's decompression-bomb limit, refused from
    /// its header before its pixels are decoded.
    #[error("{path}: {width}×{height} image has {} pixels, more than the limit of {limit}", *width as u64 * *height as u64)]
    ImageTooLarge {
        /// The file (`<in-memory image>` for an output size computed from pixels).
        path: PathBuf,
        /// Width in the header, in pixels.
        width: u32,
        /// Height in the header, in pixels.
        height: u32,
        /// The limit in force, in pixels.
        limit: u64,
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

    /// An [`VisionError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`VisionError::Checkpoint`] for `path`.
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
