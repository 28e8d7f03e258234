//! A streaming reader of one `.safetensors` file.
//!
//! The format: 8 bytes little-endian `N`, then `N` bytes of JSON mapping each tensor name to
//! `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the data section), then
//! the data section. The `safetensors` crate validates the header (offsets contiguous and in
//! order, sizes equal to shape × dtype, no overflow); this module adds what a file on disk
//! needs: a cap on the header before it is read, duplicate names refused, the file length
//! checked against the header, and each tensor read on its own, so loading never holds the
//! whole file and the weights in memory at once.

use crate::error::{CheckpointError, CheckpointResult};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest header read (the `safetensors` crate's own limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// An opened `.safetensors` file: its validated header, tensor data left on disk.
#[derive(Debug, Clone)]
pub struct SafetensorsFile {
    path: PathBuf,
    /// Byte offset of the data section, `8 + N`.
    data_start: u64,
    /// The file's length in bytes when opened.
    file_len: u64,
    /// The header's JSON text as stored (for [`crate::TensorStore::fingerprint`]).
    header: Vec<u8>,
    tensors: HashMap<String, TensorInfo>,
}

impl SafetensorsFile {
    /// Opens `path` and validates its header against the file's length.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] when it cannot be read; [`CheckpointError::Invalid`] naming the
    /// problem when the header is too large, not UTF-8 JSON, holds a name twice, has offsets
    /// out of order or sizes that disagree with shape × dtype, or when the file is shorter
    /// or longer than the header says.
    pub fn open(path: impl AsRef<Path>) -> CheckpointResult<Self> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| CheckpointError::io(path, e))?
            .len();
        let mut len_bytes = [0u8; 8];
        if file_len < 8 {
            return Err(CheckpointError::invalid(
                path,
                format!("file is {file_len} bytes, too short for a safetensors header"),
            ));
        }
        file.read_exact(&mut len_bytes)
            .map_err(|e| CheckpointError::io(path, e))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(CheckpointError::invalid(
                path,
                format!("header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit"),
            ));
        }
        if header_len > file_len - 8 {
            return Err(CheckpointError::invalid(
                path,
                format!(
                    "header length {header_len} reaches past the end of the {file_len}-byte file"
                ),
            ));
        }
        // Bounded by MAX_HEADER_BYTES and by the file's real length.
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| CheckpointError::io(path, e))?;
        let text = std::str::from_utf8(&header)
            .map_err(|e| CheckpointError::invalid(path, format!("header is not UTF-8: {e}")))?;
        if let Some(name) = first_duplicate_key(text).map_err(|e| {
            CheckpointError::invalid(path, format!("header is not a JSON object: {e}"))
        })? {
            return Err(CheckpointError::invalid(
                path,
                format!("header names tensor {name:?} twice"),
            ));
        }
        let metadata: Metadata = serde_json::from_str(text)
            .map_err(|e| CheckpointError::invalid(path, format!("invalid header: {e}")))?;
        let data_len = metadata.data_len() as u64;
        let data_start = 8 + header_len;
        let actual = file_len - data_start;
        if data_len != actual {
            let what = if actual < data_len {
                "truncated"
            } else {
                "has trailing bytes"
            };
            return Err(CheckpointError::invalid(
                path,
                format!("file is {what}: the header describes {data_len} bytes of tensor data, the file holds {actual}"),
            ));
        }
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            data_start,
            file_len,
            header,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header's JSON bytes, as stored.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header
    }

    /// The file's length in bytes when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Names of the tensors in the file (in no particular order).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Shape and dtype of a tensor, if the file holds it.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Reads a tensor and converts it to `f32` (from F32, F16 or BF16, little-endian).
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`], [`CheckpointError::UnsupportedDtype`], or
    /// [`CheckpointError::Io`] when the bytes cannot be read.
    pub fn read_f32(&self, name: &str) -> CheckpointResult<Vec<f32>> {
        let info = self
            .info(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        let width = match info.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => {
                return Err(CheckpointError::UnsupportedDtype {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let bytes = self.read_bytes(info)?;
        let values = match (info.dtype, width) {
            (Dtype::F32, _) => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            (Dtype::F16, _) => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(values)
    }
}

impl SafetensorsFile {
    /// The stored bytes of the tensor `info` describes (the header check guarantees
    /// `end − begin = numel × width` and `end ≤` the data's length).
    fn read_bytes(&self, info: &TensorInfo) -> CheckpointResult<Vec<u8>> {
        let (begin, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - begin];
        let mut file = File::open(&self.path).map_err(|e| CheckpointError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.data_start + begin as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| CheckpointError::io(&self.path, e))?;
        Ok(bytes)
    }

    /// Reads a tensor stored in half precision as bfloat16 without an f32 copy: BF16 as
    /// stored, F16 rounded to bf16 value by value; `None` for any other dtype (read it with
    /// [`SafetensorsFile::read_f32`]).
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`], or [`CheckpointError::Io`] when the bytes cannot
    /// be read.
    pub fn read_bf16(&self, name: &str) -> CheckpointResult<Option<Vec<half::bf16>>> {
        let info = self
            .info(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        if !matches!(info.dtype, Dtype::F16 | Dtype::BF16) {
            return Ok(None);
        }
        let bytes = self.read_bytes(info)?;
        let values = bytes.chunks_exact(2).map(|b| [b[0], b[1]]);
        Ok(Some(if info.dtype == Dtype::BF16 {
            values.map(half::bf16::from_le_bytes).collect()
        } else {
            values
                .map(|b| half::bf16::from_f32(half::f16::from_le_bytes(b).to_f32()))
                .collect()
        }))
    }
}

/// The first key that a JSON object's top level holds twice (serde keeps the last silently).
fn first_duplicate_key(json: &str) -> Result<Option<String>, serde_json::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = HashSet::new();
            let mut duplicate = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if duplicate.is_none() && !seen.insert(key.clone()) {
                    duplicate = Some(key);
                }
            }
            Ok(duplicate)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(Keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found() {
        assert_eq!(
            first_duplicate_key(r#"{"a": 1, "b": {"a": 2}}"#).unwrap(),
            None
        );
        assert_eq!(
            first_duplicate_key(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap(),
            Some("a".into())
        );
        assert!(first_duplicate_key("[1, 2]").is_err());
    }
}
