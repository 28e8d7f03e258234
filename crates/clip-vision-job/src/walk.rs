//! The images a run covers: files named on the command line and image files found by
//! walking directories, each once by its canonical path (absolute, symbolic links resolved,
//! so `./photos` and `photos`, or a file named twice, give one row per file), sorted.

use crate::JobError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Extensions (lower case) of the files a directory walk picks up.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// A path that could not be walked, and why.
pub type Problem = (PathBuf, String);

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every image under `roots`, by canonical path, sorted (by path components; the shard
/// split re-sorts by bytes, [`crate::units`]). A root that is a file is taken
/// whatever its name (and is reported later if it is not an image); a directory is walked
/// recursively for files with an image extension, following no symbolic links to
/// directories (so a link cycle cannot loop); a symbolic link to a file is taken as the file
/// it points to. Unreadable directories and broken links are returned in the second list.
///
/// # Errors
/// [`JobError::Input`] for a root that does not exist or cannot be resolved.
pub fn collect(roots: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Problem>), JobError> {
    let mut found = BTreeSet::new();
    let mut problems = Vec::new();
    for root in roots {
        let canonical = match std::fs::canonicalize(root) {
            Ok(p) => p,
            Err(source) => {
                return Err(JobError::Input {
                    path: root.clone(),
                    source,
                })
            }
        };
        if canonical.is_dir() {
            // Under a canonical directory, every entry but a symbolic link is canonical.
            walk(&canonical, &mut found, &mut problems);
        } else {
            found.insert(canonical);
        }
    }
    Ok((found.into_iter().collect(), problems))
}

fn walk(dir: &Path, found: &mut BTreeSet<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push((dir.to_path_buf(), format!("cannot read directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push((
                    dir.to_path_buf(),
                    format!("cannot read directory entry: {e}"),
                ));
                continue;
            }
        };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, found, problems);
        } else if is_image_name(&path) {
            if kind.is_symlink() {
                match std::fs::canonicalize(&path) {
                    Ok(target) if !target.is_dir() => {
                        found.insert(target);
                    }
                    Ok(_) => {}
                    Err(e) => problems.push((path, format!("broken symbolic link: {e}"))),
                }
            } else {
                found.insert(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_recursively_and_keeps_named_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        for f in ["b/c/z.JPG", "b/a.png", "b/notes.txt", "a.webp"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let (files, problems) = collect(&[
            d.to_path_buf(),
            d.join("b/notes.txt"),
            d.join("b/../b/./a.png"),
            d.join("b"),
        ])
        .unwrap();
        let d = std::fs::canonicalize(d).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a.webp", "b/a.png", "b/c/z.JPG", "b/notes.txt"]);
        assert!(problems.is_empty());
        assert!(collect(&[d.join("missing")]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_are_their_targets_and_broken_links_are_problems() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::write(d.join("real.png"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("real.png"), d.join("link.png")).unwrap();
        std::os::unix::fs::symlink(d.join("gone.png"), d.join("broken.png")).unwrap();
        let (files, problems) = collect(std::slice::from_ref(&d)).unwrap();
        assert_eq!(files, [d.join("real.png")]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, d.join("broken.png"));
        assert!(
            problems[0].1.starts_with("broken symbolic link"),
            "{problems:?}"
        );
    }
}
