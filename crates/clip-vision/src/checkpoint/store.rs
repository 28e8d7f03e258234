//! `TensorStore`: the tensors of a checkpoint, across one file or many shards, by name.

use super::safetensors::SafetensorsFile;
use crate::error::{VisionError, VisionResult};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every tensor of a checkpoint by name, whichever file holds it.
#[derive(Debug, Clone)]
pub struct TensorStore {
    /// The checkpoint, for error messages (a file or a directory).
    root: PathBuf,
    files: Vec<SafetensorsFile>,
    /// Tensor name → index in `files`.
    index: HashMap<String, usize>,
}

impl TensorStore {
    /// A store over one `.safetensors` file.
    ///
    /// # Errors
    /// As [`SafetensorsFile::open`].
    pub fn open_file(path: impl AsRef<Path>) -> VisionResult<Self> {
        let file = SafetensorsFile::open(path.as_ref())?;
        Self::from_files(path.as_ref(), vec![file])
    }

    /// A store over several files (the shards of one checkpoint).
    ///
    /// # Errors
    /// [`VisionError::Checkpoint`] when two files hold a tensor of the same name.
    pub fn from_files(root: impl Into<PathBuf>, files: Vec<SafetensorsFile>) -> VisionResult<Self> {
        let root = root.into();
        let mut index = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            for name in file.names() {
                if let Some(prev) = index.insert(name.to_owned(), i) {
                    return Err(VisionError::checkpoint(
                        &root,
                        format!(
                            "tensor {name:?} is in both {} and {}",
                            files[prev].path().display(),
                            file.path().display()
                        ),
                    ));
                }
            }
        }
        Ok(Self { root, files, index })
    }

    /// The checkpoint's path (file or directory).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.index.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The file holding `name`.
    fn file(&self, name: &str) -> VisionResult<&SafetensorsFile> {
        self.index
            .get(name)
            .and_then(|&i| self.files.get(i))
            .ok_or_else(|| VisionError::MissingWeight {
                path: self.root.clone(),
                name: name.to_owned(),
            })
    }

    /// The stored shape of `name`.
    ///
    /// # Errors
    /// [`VisionError::MissingWeight`].
    pub fn shape(&self, name: &str) -> VisionResult<&[usize]> {
        let file = self.file(name)?;
        Ok(file.info(name).map_or(&[][..], |i| &i.shape[..]))
    }

    /// Reads `name` as `f32`, after checking that its shape is `expected`.
    ///
    /// # Errors
    /// [`VisionError::MissingWeight`], [`VisionError::WeightShape`] (before reading any data),
    /// [`VisionError::UnsupportedDtype`], [`VisionError::Io`].
    pub fn tensor(&self, name: &str, expected: &[usize]) -> VisionResult<Vec<f32>> {
        let file = self.file(name)?;
        let got = file.info(name).map_or(&[][..], |i| &i.shape[..]);
        if got != expected {
            return Err(VisionError::WeightShape {
                path: file.path().to_path_buf(),
                name: name.to_owned(),
                expected: expected.to_vec(),
                got: got.to_vec(),
            });
        }
        file.read_f32(name)
    }
}
