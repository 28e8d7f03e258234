//! `TensorStore`: the tensors of a checkpoint, across one file or many shards, by name.

use super::safetensors::SafetensorsFile;
use crate::error::{VisionError, VisionResult};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vit_layers::{LayerNorm, Linear};

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

    /// A store over the shards a `model.safetensors.index.json` lists (its `weight_map`
    /// maps each tensor name to a shard file beside the index).
    ///
    /// # Errors
    /// [`VisionError::Json`] / [`VisionError::Checkpoint`] for a malformed index (a shard
    /// path that leaves the directory, a tensor that is not in the shard named for it);
    /// [`VisionError::Io`] naming a shard that cannot be opened.
    pub fn open_sharded(index_path: impl AsRef<Path>) -> VisionResult<Self> {
        let index_path = index_path.as_ref();
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let index = super::config_files::read_json(index_path)?;
        let map = index
            .get("weight_map")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| VisionError::checkpoint(index_path, "index has no weight_map object"))?;
        let mut shard_names: Vec<&str> = Vec::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                VisionError::checkpoint(
                    index_path,
                    format!("weight_map entry of {tensor:?} is not a file name"),
                )
            })?;
            let plain = Path::new(shard).components().count() == 1 && !shard.starts_with('.');
            if !plain {
                return Err(VisionError::checkpoint(
                    index_path,
                    format!("shard {shard:?} of {tensor:?} is not a file name beside the index"),
                ));
            }
            if !shard_names.contains(&shard) {
                shard_names.push(shard);
            }
        }
        shard_names.sort_unstable();
        let files = shard_names
            .iter()
            .map(|name| SafetensorsFile::open(dir.join(name)))
            .collect::<VisionResult<Vec<_>>>()?;
        let store = Self::from_files(dir, files)?;
        for (tensor, shard) in map {
            let holder = store.index.get(tensor).map(|&i| store.files[i].path());
            if holder.and_then(Path::file_name).and_then(|n| n.to_str()) != shard.as_str() {
                return Err(VisionError::checkpoint(
                    index_path,
                    format!(
                        "tensor {tensor:?} is listed in {shard} but that shard does not hold it"
                    ),
                ));
            }
        }
        Ok(store)
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

    /// Number of tensors of each stored dtype (`"F32"`, `"F16"`, …).
    pub fn dtype_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (name, &i) in &self.index {
            if let Some(info) = self.files[i].info(name) {
                *counts.entry(format!("{:?}", info.dtype)).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The stored shape of `name`.
    ///
    /// # Errors
    /// [`VisionError::MissingWeight`].
    pub fn shape(&self, name: &str) -> VisionResult<&[usize]> {
        let file = self.file(name)?;
        Ok(file.info(name).map_or(&[][..], |i| &i.shape[..]))
    }

    /// The linear layer `{name}.weight` `[out_f, in_f]` and `{name}.bias` `[out_f]`.
    ///
    /// # Errors
    /// As [`TensorStore::tensor`].
    pub fn linear(&self, name: &str, out_f: usize, in_f: usize) -> VisionResult<Linear> {
        let weight = self.tensor(&format!("{name}.weight"), &[out_f, in_f])?;
        let bias = self.tensor(&format!("{name}.bias"), &[out_f])?;
        Ok(Linear::new(weight, Some(bias), in_f, out_f)?)
    }

    /// The LayerNorm `{name}.weight` and `{name}.bias`, both `[dim]`.
    ///
    /// # Errors
    /// As [`TensorStore::tensor`].
    pub fn layer_norm(&self, name: &str, dim: usize, eps: f32) -> VisionResult<LayerNorm> {
        let weight = self.tensor(&format!("{name}.weight"), &[dim])?;
        let bias = self.tensor(&format!("{name}.bias"), &[dim])?;
        Ok(LayerNorm::new(weight, bias, eps)?)
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
