//! Bounded reading of the small JSON files a checkpoint ships (`config.json`,
//! `preprocessor_config.json`, `open_clip_config.json`, shard indexes).

use crate::error::{CheckpointError, CheckpointResult};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// Largest config file read (real ones are a few kB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a JSON file of at most [`MAX_CONFIG_BYTES`] into a value.
///
/// The limit holds whatever the file is (a FIFO, a file growing while it is read): at most
/// `MAX_CONFIG_BYTES + 1` bytes are ever read.
///
/// # Errors
/// [`CheckpointError::Io`] when it cannot be read; [`CheckpointError::Invalid`] when it is
/// not a regular file or is larger than the limit; [`CheckpointError::Json`] when it does
/// not parse.
pub fn read_json(path: &Path) -> CheckpointResult<Value> {
    let file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let meta = file.metadata().map_err(|e| CheckpointError::io(path, e))?;
    if !meta.is_file() {
        return Err(CheckpointError::invalid(path, "not a regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_CONFIG_BYTES) as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CheckpointError::io(path, e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(CheckpointError::invalid(
            path,
            format!("JSON file exceeds the {MAX_CONFIG_BYTES}-byte limit for configs"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Json {
        path: path.into(),
        source,
    })
}

/// [`read_json`] for a file that may be absent: `Ok(None)` when `path` does not exist.
///
/// # Errors
/// As [`read_json`] for a file that exists.
pub fn read_json_if_present(path: &Path) -> CheckpointResult<Option<Value>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_json(path).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_small_files_and_refuses_large_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("config.json");
        std::fs::write(&ok, br#"{"hidden_size": 768}"#).unwrap();
        assert_eq!(read_json(&ok).unwrap()["hidden_size"], 768);

        let big = dir.path().join("big.json");
        let mut f = std::fs::File::create(&big).unwrap();
        f.write_all(b"[").unwrap();
        f.write_all(&vec![b' '; MAX_CONFIG_BYTES as usize]).unwrap();
        f.write_all(b"]").unwrap();
        drop(f);
        match read_json(&big) {
            Err(CheckpointError::Invalid { path, reason }) => {
                assert_eq!(path, big);
                assert!(reason.contains("limit"), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{\"a\": ").unwrap();
        assert!(matches!(read_json(&bad), Err(CheckpointError::Json { path, .. }) if path == bad));
        assert!(read_json_if_present(&dir.path().join("absent.json"))
            .unwrap()
            .is_none());
        assert!(matches!(
            read_json(dir.path()),
            Err(CheckpointError::Invalid { .. })
        ));
    }
}
