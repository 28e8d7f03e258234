//! Hub ids (`"openai/clip-vit-base-patch32"`) resolved offline in the local HF cache.
//!
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid
//! out by huggingface_hub as `models--ORG--NAME/{refs/main, snapshots/<commit>/…, blobs/…}`.
//! Nothing is downloaded.

use crate::error::{CheckpointError, CheckpointResult};
use std::path::{Path, PathBuf};

/// Whether `s` has the form of a hub id `ORG/NAME` (optionally `@REVISION`).
pub fn looks_like_repo_id(s: &str) -> bool {
    let id = s.split_once('@').map_or(s, |(id, _)| id);
    let mut parts = id.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(org) && ok(name)
}

/// The HF hub cache directory the environment names.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// The snapshot directory of `repo_id` (`ORG/NAME` or `ORG/NAME@REVISION`) in `cache`.
///
/// The revision is a branch under `refs/` (default `main`) or a commit present under
/// `snapshots/`. With no `refs/main` and a single snapshot, that snapshot is taken.
///
/// # Errors
/// [`CheckpointError::Invalid`] saying what was looked for and where.
pub fn resolve_in(cache: &Path, repo_id: &str) -> CheckpointResult<PathBuf> {
    let (id, revision) = match repo_id.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (repo_id, None),
    };
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    if !repo.is_dir() {
        return Err(CheckpointError::invalid(
            &repo,
            format!(
                "{id:?} is not a local path and is not in the HF cache (nothing is downloaded)"
            ),
        ));
    }
    let snapshots = repo.join("snapshots");
    let branch = revision.unwrap_or("main");
    let by_ref = repo.join("refs").join(branch);
    let commit = if by_ref.is_file() {
        std::fs::read_to_string(&by_ref)
            .map_err(|e| CheckpointError::io(&by_ref, e))?
            .trim()
            .to_owned()
    } else if let Some(rev) = revision {
        rev.to_owned()
    } else {
        let mut all: Vec<String> = std::fs::read_dir(&snapshots)
            .map_err(|e| CheckpointError::io(&snapshots, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        match all.len() {
            1 => all.remove(0),
            n => {
                all.sort();
                return Err(CheckpointError::invalid(
                    &repo,
                    format!("no refs/main and {n} snapshots {all:?}: name one as {id}@REVISION"),
                ));
            }
        }
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return Err(CheckpointError::invalid(
            &repo,
            format!("invalid revision {commit:?}"),
        ));
    }
    let snapshot = snapshots.join(&commit);
    if !snapshot.is_dir() {
        return Err(CheckpointError::invalid(
            &snapshot,
            format!("revision {branch:?} points at a snapshot that is not in the cache"),
        ));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_told_from_paths() {
        assert!(looks_like_repo_id("openai/clip-vit-base-patch32"));
        assert!(looks_like_repo_id(
            "laion/CLIP-ViT-H-14-laion2B-s32B-b79K@main"
        ));
        for not in [
            "model",
            "./a/b",
            "/abs/path",
            "a/b/c",
            "a/",
            "../x",
            "a b/c",
        ] {
            assert!(!looks_like_repo_id(not), "{not}");
        }
    }
}
