//! `PreprocessError`: everything decoding and preprocessing can refuse, each naming the file.

use clip_checkpoint::CheckpointError;
use std::path::PathBuf;
use thiserror::Error;

/// Result alias of `clip-preprocess`.
pub type PreprocessResult<T> = Result<T, PreprocessError>;

/// What can go wrong reading a processor config or turning an image into pixels.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// An image file that could not be opened or read.
    #[error("{path}: cannot read")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// JSON text that does not parse (`<string>` for text passed in memory).
    #[error("{path}: not valid JSON")]
    Json {
        /// Where the text came from.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A `preprocessor_config.json` value the image processor cannot work with.
    #[error("{path}: {key} = {value}: {reason}")]
    InvalidConfig {
        /// The file (`<string>` for JSON text, `<config>` for a config built in code).
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
        /// The file (`<in-memory image>` for an image passed as pixels or bytes).
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
    /// The checkpoint directory or config file could not be found or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl PreprocessError {
    /// A [`PreprocessError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Io { path, .. }
            | Self::Json { path, .. }
            | Self::InvalidConfig { path, .. }
            | Self::Image { path, .. }
            | Self::ImageTooLarge { path, .. } => path,
            Self::Checkpoint(e) => e.path(),
        }
    }
}
