//! Where `embed` writes: a `.npy` (with a sidecar of paths) or `.jsonl` file, grown batch by
//! batch, or JSON lines on stdout.
//!
//! Crash safety: rows go to `FILE.partial` (and `SIDECAR.partial`), appended and flushed per
//! batch; only a finished run renames them to their final names, so a file under its final
//! name is always complete. `--resume` reopens the partial files (or a finished output, to
//! extend it), drops a half-written tail, and reports which paths are done.

use crate::npy;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What the rows of an output are; written beside it as `FILE.meta.json` so that `similar`
/// (and `--resume`) can embed queries the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The `--model` argument.
    pub model: String,
    /// `image-embeds` or `pooled`.
    pub kind: String,
    /// Whether rows are L2-normalised.
    pub normalized: bool,
    /// Row width.
    pub dim: usize,
}

/// The output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.npy` rows plus a `.paths.txt` sidecar, one path per row.
    Npy,
    /// `{"path": …, "embedding": […]}` per line.
    Jsonl,
}

impl Format {
    /// The format a file name asks for.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => Ok(Self::Npy),
            Some("jsonl") => Ok(Self::Jsonl),
            _ => bail!("{}: the output must end in .npy or .jsonl", path.display()),
        }
    }
}

/// `FILE.meta.json`.
pub fn meta_path(output: &Path) -> PathBuf {
    with_suffix(output, ".meta.json")
}

/// The `.npy` sidecar listing paths in row order: `embeddings.npy` → `embeddings.paths.txt`.
pub fn sidecar_path(output: &Path) -> PathBuf {
    output.with_extension("paths.txt")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn partial(path: &Path) -> PathBuf {
    with_suffix(path, ".partial")
}

/// One output row: the image's path and its vector.
pub type Row = (String, Vec<f32>);

/// Rows sink: stdout or a growing file.
pub enum Output {
    /// JSON lines on stdout.
    Stdout(std::io::Stdout),
    /// A file (and sidecar) growing under `.partial` names.
    File(FileOutput),
}

/// An output file being written.
pub struct FileOutput {
    format: Format,
    path: PathBuf,
    data: File,
    /// The `.npy` sidecar of paths.
    sidecar: Option<File>,
    rows: u64,
    dim: usize,
}

impl Output {
    /// Appends rows and flushes them to the file system.
    pub fn append(&mut self, rows: &[Row]) -> Result<()> {
        match self {
            Output::Stdout(out) => {
                let mut lock = out.lock();
                for (path, v) in rows {
                    writeln!(lock, "{}", json_line(path, v)?)?;
                }
                lock.flush()?;
                Ok(())
            }
            Output::File(f) => f.append(rows),
        }
    }

    /// Completes the output: renames the partial files to their final names.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(_) => Ok(()),
            Output::File(f) => f.finish(),
        }
    }
}

/// `{"path": …, "embedding": […]}`, keys in that order.
fn json_line(path: &str, v: &[f32]) -> Result<String> {
    Ok(format!(
        "{{\"path\":{},\"embedding\":{}}}",
        serde_json::to_string(path)?,
        serde_json::to_string(v)?
    ))
}

impl FileOutput {
    /// Opens `path` for a run. Without `resume` any earlier partial output is discarded;
    /// with it, the rows already written (partial or finished) are kept and their paths
    /// returned. The meta file must then match `meta`.
    pub fn open(path: &Path, meta: &Meta, resume: bool) -> Result<(Self, HashSet<String>)> {
        let format = Format::of(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                bail!("{}: the output directory does not exist", dir.display());
            }
        }
        let meta_file = meta_path(path);
        let data_partial = partial(path);
        let side_partial = partial(&sidecar_path(path));
        if resume {
            if let Ok(text) = std::fs::read_to_string(&meta_file) {
                let old: Meta = serde_json::from_str(&text)
                    .with_context(|| format!("{}: unreadable", meta_file.display()))?;
                if &old != meta {
                    bail!(
                        "{}: the output was made with {old:?}, this run would add {meta:?}; use another output or drop --resume",
                        meta_file.display()
                    );
                }
            }
            // A finished output is extended: move it back under the partial names.
            if path.is_file() && !data_partial.exists() {
                std::fs::rename(path, &data_partial)?;
                if format == Format::Npy && sidecar_path(path).is_file() {
                    std::fs::rename(sidecar_path(path), &side_partial)?;
                }
            }
        } else {
            for p in [&data_partial, &side_partial] {
                if p.exists() {
                    std::fs::remove_file(p)
                        .with_context(|| format!("cannot remove {}", p.display()))?;
                }
            }
        }
        std::fs::write(&meta_file, serde_json::to_string_pretty(meta)?)
            .with_context(|| format!("cannot write {}", meta_file.display()))?;
        let (out, done) = match format {
            Format::Jsonl => Self::open_jsonl(path, &data_partial, meta.dim)?,
            Format::Npy => Self::open_npy(path, &data_partial, &side_partial, meta.dim)?,
        };
        Ok((out, done))
    }

    fn open_jsonl(path: &Path, data_partial: &Path, dim: usize) -> Result<(Self, HashSet<String>)> {
        let mut done = HashSet::new();
        let mut good_len = 0u64;
        if data_partial.exists() {
            let reader = BufReader::new(File::open(data_partial)?);
            for line in reader.split(b'\n') {
                let line = line?;
                // A line without its newline, or not valid, is the tail of a killed run.
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
                    break;
                };
                let (Some(p), Some(e)) = (v["path"].as_str(), v["embedding"].as_array()) else {
                    break;
                };
                if e.len() != dim {
                    bail!(
                        "{}: a row has {} values, this model gives {dim}",
                        data_partial.display(),
                        e.len()
                    );
                }
                done.insert(p.to_owned());
                good_len += line.len() as u64 + 1;
            }
        }
        let data = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(data_partial)?;
        if data.metadata()?.len() > good_len {
            data.set_len(good_len)?;
        }
        let rows = done.len() as u64;
        Ok((
            Self {
                format: Format::Jsonl,
                path: path.to_path_buf(),
                data,
                sidecar: None,
                rows,
                dim,
            },
            done,
        ))
    }

    fn open_npy(
        path: &Path,
        data_partial: &Path,
        side_partial: &Path,
        dim: usize,
    ) -> Result<(Self, HashSet<String>)> {
        let mut paths = Vec::new();
        if side_partial.exists() {
            let text = std::fs::read(side_partial)?;
            // Only lines that end in a newline were written whole.
            let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            paths = String::from_utf8_lossy(&text[..complete])
                .lines()
                .map(str::to_owned)
                .collect();
        }
        let mut rows = 0u64;
        if data_partial.exists() {
            let mut f = File::open(data_partial)?;
            let (_, file_dim, start) = npy::parse_header(&mut f, data_partial)?;
            if file_dim as usize != dim {
                bail!(
                    "{}: rows of {file_dim} values, this model gives {dim}",
                    data_partial.display()
                );
            }
            let data_rows = (f.metadata()?.len().saturating_sub(start)) / (4 * dim as u64);
            rows = data_rows.min(paths.len() as u64);
        }
        paths.truncate(rows as usize);
        let mut data = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(data_partial)?;
        data.set_len(npy::HEADER_LEN + rows * 4 * dim as u64)?;
        npy::write_header(&mut data, rows, dim as u64)?;
        let mut sidecar = File::create(side_partial)?;
        for p in &paths {
            writeln!(sidecar, "{p}")?;
        }
        sidecar.sync_data()?;
        let done = paths.into_iter().collect();
        Ok((
            Self {
                format: Format::Npy,
                path: path.to_path_buf(),
                data,
                sidecar: Some(sidecar),
                rows,
                dim,
            },
            done,
        ))
    }

    fn append(&mut self, rows: &[Row]) -> Result<()> {
        if let Some((p, v)) = rows.iter().find(|(_, v)| v.len() != self.dim) {
            bail!("row of {p} has {} values, expected {}", v.len(), self.dim);
        }
        match self.format {
            Format::Jsonl => {
                let mut text = String::new();
                for (path, v) in rows {
                    text.push_str(&json_line(path, v)?);
                    text.push('\n');
                }
                self.data.write_all(text.as_bytes())?;
            }
            Format::Npy => {
                // Data, then paths, then the header's row count: after a kill the sidecar
                // never lists a row whose data is missing.
                self.data.write_all(&npy::row_bytes(
                    &rows.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
                ))?;
                let mut text = String::new();
                for (path, _) in rows {
                    text.push_str(path);
                    text.push('\n');
                }
                if let Some(side) = &mut self.sidecar {
                    side.write_all(text.as_bytes())?;
                    side.flush()?;
                }
                npy::write_header(
                    &mut self.data,
                    self.rows + rows.len() as u64,
                    self.dim as u64,
                )?;
            }
        }
        self.data.flush()?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        self.data.sync_all()?;
        if let Some(side) = &self.sidecar {
            side.sync_all()?;
            std::fs::rename(partial(&sidecar_path(&self.path)), sidecar_path(&self.path))?;
        }
        std::fs::rename(partial(&self.path), &self.path).with_context(|| {
            format!("cannot move the finished output to {}", self.path.display())
        })?;
        Ok(())
    }
}

/// Bytes an output of `rows` rows of `dim` values will take at most: `.npy` rows and the
/// sidecar's paths, or JSON lines with up to 16 characters a value.
pub fn estimate_bytes(format: Format, rows: u64, dim: usize, mean_path_len: u64) -> u64 {
    let per_row = match format {
        Format::Npy => 4 * dim as u64 + mean_path_len + 1,
        Format::Jsonl => 16 * dim as u64 + mean_path_len + 32,
    };
    rows.saturating_mul(per_row)
        .saturating_add(npy::HEADER_LEN + 4096)
}

/// Refuses to start a run whose output will not fit on its file system (unix; elsewhere the
/// first failed write stops the run, keeping what was written for `--resume`).
pub fn check_free_space(output: &Path, need: u64) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(st) = rustix::fs::statvfs(dir) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < need {
                bail!(
                    "{}: not enough space: the output needs about {} kB, {} kB are free",
                    dir.display(),
                    need.div_ceil(1024),
                    free / 1024
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (output, need);
    Ok(())
}

/// Reads an index written by `embed`: its meta and its `(path, row)` pairs.
pub fn read_index(path: &Path) -> Result<(Meta, Vec<Row>)> {
    let meta_file = meta_path(path);
    let meta: Meta =
        serde_json::from_str(&std::fs::read_to_string(&meta_file).with_context(|| {
            format!(
                "cannot read {} (written by `embed` beside its output)",
                meta_file.display()
            )
        })?)
        .with_context(|| format!("{}: unreadable", meta_file.display()))?;
    let rows = match Format::of(path)? {
        Format::Jsonl => {
            let reader = BufReader::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            );
            let mut rows = Vec::new();
            for (i, line) in reader.lines().enumerate() {
                let line = line?;
                let v: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
                let (Some(p), Some(e)) = (v["path"].as_str(), v["embedding"].as_array()) else {
                    bail!("{}:{}: no path or embedding", path.display(), i + 1);
                };
                let e: Vec<f32> = e
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect();
                rows.push((p.to_owned(), e));
            }
            rows
        }
        Format::Npy => {
            let (_, data) = npy::read(path)?;
            let side = sidecar_path(path);
            let names: Vec<String> = std::fs::read_to_string(&side)
                .with_context(|| format!("cannot read the sidecar {}", side.display()))?
                .lines()
                .map(str::to_owned)
                .collect();
            if names.len() != data.len() {
                bail!(
                    "{} lists {} paths for {} rows",
                    side.display(),
                    names.len(),
                    data.len()
                );
            }
            names.into_iter().zip(data).collect()
        }
    };
    if let Some((p, r)) = rows.iter().find(|(_, r)| r.len() != meta.dim) {
        bail!(
            "{}: the row of {p} has {} values, the meta file says {}",
            path.display(),
            r.len(),
            meta.dim
        );
    }
    Ok((meta, rows))
}
