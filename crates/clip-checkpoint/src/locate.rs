//! From what a user names (a directory, a `.safetensors` file, a hub id) to the files to read.

use crate::error::{CheckpointError, CheckpointResult};
use crate::hub;
use crate::store::TensorStore;
use std::path::{Path, PathBuf};

/// Weight files a directory may hold, in the order they are preferred (after a
/// `model.safetensors.index.json`, which wins).
pub const WEIGHT_FILES: [&str; 3] = [
    "model.safetensors",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
];

/// A local path as it is, or a hub id (`ORG/NAME[@REV]`) resolved to its snapshot directory
/// in the HF cache ([`hub::cache_dir`]).
///
/// # Errors
/// [`CheckpointError::Io`] (not found) for a path that does not exist and is no hub id;
/// [`CheckpointError::Invalid`] for a hub id that is not in the cache.
pub fn resolve(path: &Path) -> CheckpointResult<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let text = path.to_string_lossy();
    if hub::looks_like_repo_id(&text) {
        let cache = hub::cache_dir().ok_or_else(|| {
            CheckpointError::invalid(
                path,
                "not a local path, and no HF cache (HF_HUB_CACHE, HF_HOME or HOME) to look in",
            )
        })?;
        return hub::resolve_in(&cache, &text);
    }
    Err(CheckpointError::io(
        path,
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

/// The weights of a resolved checkpoint: a `.safetensors` file, or a directory holding
/// `model.safetensors.index.json` (shards), one of [`WEIGHT_FILES`], or a single other
/// `.safetensors` file.
///
/// # Errors
/// [`CheckpointError::Invalid`] for a directory with no safetensors weights (naming the
/// pickles it holds instead, which are never loaded) or several candidates; otherwise as
/// [`TensorStore::open_file`] / [`TensorStore::open_sharded`].
pub fn open_weights(path: &Path) -> CheckpointResult<TensorStore> {
    if !path.is_dir() {
        return TensorStore::open_file(path);
    }
    let dir = path;
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return TensorStore::open_sharded(&index);
    }
    if let Some(file) = WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    {
        return TensorStore::open_file(&file);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CheckpointError::io(dir, e))?;
    let mut safetensors = Vec::new();
    let mut pickles = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") {
            safetensors.push(entry.path());
        } else if name.ends_with(".bin") || name.ends_with(".pth") || name.ends_with(".pt") {
            pickles.push(name);
        }
    }
    pickles.sort();
    match safetensors.len() {
        1 => TensorStore::open_file(&safetensors[0]),
        0 if !pickles.is_empty() => Err(CheckpointError::invalid(
            dir,
            format!(
                "only PyTorch pickle weights ({}): pickles are not loaded; convert them once \
                 with scripts/convert_to_safetensors.py",
                pickles.join(", ")
            ),
        )),
        0 => Err(CheckpointError::invalid(
            dir,
            "no .safetensors weights in this directory",
        )),
        _ => Err(CheckpointError::invalid(
            dir,
            format!(
                "several .safetensors files and none of {WEIGHT_FILES:?}: pass the file to load"
            ),
        )),
    }
}
