//! `TensorStore`: the tensors of a checkpoint, across one file or many shards, by name, and
//! [`Tensors`], a view of it under a name prefix (candle's `VarBuilder::pp`).

use crate::error::{CheckpointError, CheckpointResult};
use crate::safetensors::SafetensorsFile;
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
    pub fn open_file(path: impl AsRef<Path>) -> CheckpointResult<Self> {
        let file = SafetensorsFile::open(path.as_ref())?;
        Self::from_files(path.as_ref(), vec![file])
    }

    /// A store over the shards a `model.safetensors.index.json` lists (its `weight_map`
    /// maps each tensor name to a shard file beside the index).
    ///
    /// # Errors
    /// [`CheckpointError::Json`] / [`CheckpointError::Invalid`] for a malformed index (a shard
    /// path that leaves the directory, a tensor that is not in the shard named for it);
    /// [`CheckpointError::Io`] naming a shard that cannot be opened.
    pub fn open_sharded(index_path: impl AsRef<Path>) -> CheckpointResult<Self> {
        let index_path = index_path.as_ref();
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let index = crate::json::read_json(index_path)?;
        let map = index
            .get("weight_map")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                CheckpointError::invalid(index_path, "index has no weight_map object")
            })?;
        let mut shard_names: Vec<&str> = Vec::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                CheckpointError::invalid(
                    index_path,
                    format!("weight_map entry of {tensor:?} is not a file name"),
                )
            })?;
            let plain = Path::new(shard).components().count() == 1 && !shard.starts_with('.');
            if !plain {
                return Err(CheckpointError::invalid(
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
            .collect::<CheckpointResult<Vec<_>>>()?;
        let store = Self::from_files(dir, files)?;
        for (tensor, shard) in map {
            let holder = store.index.get(tensor).map(|&i| store.files[i].path());
            if holder.and_then(Path::file_name).and_then(|n| n.to_str()) != shard.as_str() {
                return Err(CheckpointError::invalid(
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
    /// [`CheckpointError::Invalid`] when two files hold a tensor of the same name.
    pub fn from_files(
        root: impl Into<PathBuf>,
        files: Vec<SafetensorsFile>,
    ) -> CheckpointResult<Self> {
        let root = root.into();
        let mut index = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            for name in file.names() {
                if let Some(prev) = index.insert(name.to_owned(), i) {
                    return Err(CheckpointError::invalid(
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
    fn file(&self, name: &str) -> CheckpointResult<&SafetensorsFile> {
        self.index
            .get(name)
            .and_then(|&i| self.files.get(i))
            .ok_or_else(|| CheckpointError::MissingTensor {
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
    /// [`CheckpointError::MissingTensor`].
    pub fn shape(&self, name: &str) -> CheckpointResult<&[usize]> {
        let file = self.file(name)?;
        Ok(file.info(name).map_or(&[][..], |i| &i.shape[..]))
    }

    /// Reads `name` as `f32`, after checking that its shape is `expected`.
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`], [`CheckpointError::TensorShape`] (before reading any data),
    /// [`CheckpointError::UnsupportedDtype`], [`CheckpointError::Io`].
    pub fn tensor(&self, name: &str, expected: &[usize]) -> CheckpointResult<Vec<f32>> {
        self.file_of_shape(name, expected)?.read_f32(name)
    }

    /// The file holding `name`, after checking that its shape is `expected`.
    fn file_of_shape(&self, name: &str, expected: &[usize]) -> CheckpointResult<&SafetensorsFile> {
        let file = self.file(name)?;
        let got = file.info(name).map_or(&[][..], |i| &i.shape[..]);
        if got != expected {
            return Err(CheckpointError::TensorShape {
                path: file.path().to_path_buf(),
                name: name.to_owned(),
                expected: expected.to_vec(),
                got: got.to_vec(),
            });
        }
        Ok(file)
    }

    /// Reads `name` as bfloat16 if it is stored in half precision (see
    /// [`SafetensorsFile::read_bf16`]), after checking that its shape is `expected`; `None`
    /// for a tensor stored otherwise.
    ///
    /// # Errors
    /// As [`TensorStore::tensor`].
    pub fn tensor_bf16(
        &self,
        name: &str,
        expected: &[usize],
    ) -> CheckpointResult<Option<Vec<half::bf16>>> {
        self.file_of_shape(name, expected)?.read_bf16(name)
    }

    /// The tensors under `prefix` (`store.pp("vision_model").tensor("pre_layrnorm.weight", ..)`
    /// reads `vision_model.pre_layrnorm.weight`); an empty prefix is the whole store.
    pub fn pp(&self, prefix: &str) -> Tensors<'_> {
        Tensors {
            store: self,
            prefix: prefix.trim_end_matches('.').to_owned(),
        }
    }

    /// The files of the checkpoint, in the order they were opened (shards sorted by name).
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    /// A stable identity of the weights: FNV-1a 64 over each file's header bytes and length,
    /// in file order, as `fnv1a64:` and 16 hex digits. Two checkpoints with the same tensors at the same
    /// offsets in files of the same sizes agree; changing any name, dtype, shape or the
    /// size of a file changes it. Tensor data is not read (hashing gigabytes on every load
    /// would cost more than the load), so it identifies a checkpoint, not its every bit.
    pub fn fingerprint(&self) -> String {
        let mut hash = Fnv1a::new();
        for file in &self.files {
            hash.write(file.header_bytes());
            hash.write(&file.file_len().to_le_bytes());
        }
        format!("fnv1a64:{:016x}", hash.0)
    }
}

/// FNV-1a, 64 bits: small, stable across platforms and releases (unlike `DefaultHasher`).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The tensors of a [`TensorStore`] under a name prefix.
#[derive(Debug, Clone)]
pub struct Tensors<'a> {
    store: &'a TensorStore,
    /// Without the trailing dot; empty for the whole store.
    prefix: String,
}

impl<'a> Tensors<'a> {
    /// The full name of `name` under this prefix.
    pub fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// A narrower view: `pp("encoder").pp("layers.0")`.
    pub fn pp(&self, sub: &str) -> Tensors<'a> {
        let sub = sub.trim_matches('.');
        if sub.is_empty() {
            return self.clone();
        }
        Tensors {
            store: self.store,
            prefix: self.name(sub),
        }
    }

    /// The store this view reads.
    pub fn store(&self) -> &'a TensorStore {
        self.store
    }

    /// Whether the store holds `name` under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.name(name))
    }

    /// The stored shape of `name`.
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`] with the full name.
    pub fn shape(&self, name: &str) -> CheckpointResult<&'a [usize]> {
        self.store.shape(&self.name(name))
    }

    /// Reads `name` as `f32` after checking that its shape is `expected`.
    ///
    /// # Errors
    /// As [`TensorStore::tensor`], with the full name.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> CheckpointResult<Vec<f32>> {
        self.store.tensor(&self.name(name), expected)
    }

    /// Reads `name` as bfloat16 if stored in half precision, after checking its shape.
    ///
    /// # Errors
    /// As [`TensorStore::tensor_bf16`], with the full name.
    pub fn tensor_bf16(
        &self,
        name: &str,
        expected: &[usize],
    ) -> CheckpointResult<Option<Vec<half::bf16>>> {
        self.store.tensor_bf16(&self.name(name), expected)
    }
}
