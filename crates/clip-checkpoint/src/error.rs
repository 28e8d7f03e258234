//! `CheckpointError`: everything reading a checkpoint can refuse, each naming the file.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Result alias of `clip-checkpoint`.
pub type CheckpointResult<T> = Result<T, CheckpointError>;

/// What can go wrong finding or reading a checkpoint's files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file that could not be opened or read.
    #[error("{path}: cannot read")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file that does not parse.
    #[error("{path}: not valid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A file or directory whose structure is broken or refused (header, offsets, sizes,
    /// shard index, cache layout), with what is wrong.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor looked up that the checkpoint does not hold.
    #[error("{path}: missing tensor {name:?}")]
    MissingTensor {
        /// The checkpoint (file or directory).
        path: PathBuf,
        /// The tensor name looked up.
        name: String,
    },
    /// A tensor whose stored shape is not the one asked for.
    #[error("{path}: tensor {name:?} has shape {got:?}, expected {expected:?}")]
    TensorShape {
        /// The file holding it.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape asked for.
        expected: Vec<usize>,
        /// The shape stored.
        got: Vec<usize>,
    },
    /// A tensor stored in a dtype that cannot be read as floats.
    #[error("{path}: tensor {name:?} has dtype {dtype}, expected F32, F16 or BF16")]
    UnsupportedDtype {
        /// The file holding it.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype stored.
        dtype: String,
    },
}

impl CheckpointError {
    /// A [`CheckpointError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`CheckpointError::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Json { path, .. }
            | Self::Invalid { path, .. }
            | Self::MissingTensor { path, .. }
            | Self::TensorShape { path, .. }
            | Self::UnsupportedDtype { path, .. } => path,
        }
    }
}
