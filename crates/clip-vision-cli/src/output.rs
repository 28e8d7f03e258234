//! Where `embed` writes: a `.npy` (with a sidecar of paths) or `.jsonl` file, grown batch by
//! batch, or JSON lines on stdout.
//!
//! # Files
//! For `--output x.npy`: the rows `x.npy`, the sidecar `x.paths.txt` (one JSON string per line,
//! the path of the row of the same number: `"/photos/a.jpg"`, so that any file name, even one
//! holding a newline, takes exactly one line; sidecars written before this format, one plain
//! path per line, are still read), and `x.npy.meta.json` ([`Meta`]). For `x.jsonl`: the rows
//! `{"path": …, "embedding": […]}`, one per line, and `x.jsonl.meta.json`. While a run is
//! going the rows and the sidecar live under `NAME.partial`; the finished run renames them.
//!
//! # Crash safety (the protocol)
//! Invariant: the rows and sidecar on disk (under final or `.partial` names) are always of
//! one run, the one the meta file describes, and each of them is under exactly one name.
//! - A run without `--resume` first removes the earlier output (partial and final), then
//!   writes the meta file (`tmp`, fsync, rename, fsync dir), then creates the empty sidecar
//!   and the `.npy` header (fsync, fsync dir).
//! - A batch of `.npy` rows: data appended, fsync; paths appended (**the commit point**: a
//!   row counts once its path line is whole), fsync; header row count rewritten. A batch of
//!   JSON lines: appended (a row counts once its line ends in `\n`), fsync.
//! - The finish: fsync, rename the rows, rename the sidecar, fsync the directory.
//! - `--resume` takes each file under its `.partial` name, else its final name (moving it
//!   back to `.partial`); the rows kept are the first `min(whole rows in the data, whole
//!   lines in the sidecar)` (the header's count is written last, so it is never more), or
//!   the JSON lines ending in a newline. Both files are cut in place to those rows (a torn
//!   tail, never glued to) and fsynced; only the batch in flight at the kill is redone.
//!   It refuses an output whose meta differs from this run's, naming each field.
//!
//! `docs/robustness.md` lists every window a kill can hit and the test that covers it.
//!
//! # Fault injection (tests only)
//! `CLIP_VISION_FAULT_ABORT_AT=N` (hidden, for the crash tests) numbers every step above
//! that touches the disk (each write, fsync, rename, truncation, removal) from 1, prints
//! `fault step K: …` to stderr after each, and calls `std::process::abort()` right after
//! step `N` (a kill at that instant; `0` only prints the steps).

use crate::npy;
use anyhow::{bail, Context, Result};
use clip_vision::ImageEmbedder;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The version of the files `embed` writes ([`Meta::format_version`]).
pub const FORMAT_VERSION: u32 = 1;

/// What defines the rows of an output; written beside it as `FILE.meta.json` so that
/// `similar` (and `--resume`) embed queries (and new rows) the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// [`FORMAT_VERSION`]; 0 for outputs written before the field existed.
    #[serde(default)]
    pub format_version: u32,
    /// The checkpoint: the `--model` argument resolved (a hub id to its snapshot) and made
    /// absolute and canonical (format 0: the argument as given).
    pub model: String,
    /// The `--activation` given, if any.
    #[serde(default)]
    pub activation: Option<String>,
    /// The `--num-attention-heads` given, if any.
    #[serde(default)]
    pub num_attention_heads: Option<u32>,
    /// [`clip_vision::checkpoint::TensorStore::fingerprint`] of the weights.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `--precision` of the vision tower: `f32`, `int8` or `bf16` (f32 in outputs written
    /// before the option existed).
    #[serde(default = "f32_name")]
    pub precision: String,
    /// `image-embeds` or `pooled`.
    pub kind: String,
    /// Whether rows are L2-normalised.
    pub normalized: bool,
    /// Row width.
    pub dim: usize,
    /// `--fast-decode` (false in outputs written before the option existed).
    #[serde(default)]
    pub fast_decode: bool,
    /// `--exif-transpose` (false in outputs written before the option existed).
    #[serde(default)]
    pub exif_transpose: bool,
}

/// The precision of outputs written before `--precision` existed.
fn f32_name() -> String {
    "f32".to_owned()
}

impl Meta {
    /// The meta of the rows `embedder` makes (`--activation activation`, as given).
    pub fn for_embedder(embedder: &ImageEmbedder, activation: Option<&str>) -> Result<Self> {
        let precision = embedder.load_options().precision.name().to_owned();
        let model = embedder
            .model_path()
            .context("the embedder was not loaded from a checkpoint")?;
        Ok(Self {
            format_version: FORMAT_VERSION,
            fingerprint: embedder.fingerprint().map(str::to_owned),
            model: model.to_string_lossy().into_owned(),
            activation: activation.map(str::to_owned),
            num_attention_heads: embedder
                .load_options()
                .num_attention_heads
                .and_then(|h| u32::try_from(h).ok()),
            precision,
            kind: embedder.kind().name().to_owned(),
            normalized: embedder.normalizes(),
            dim: embedder.dim(),
            fast_decode: embedder.processor().fast_decode(),
            exif_transpose: embedder.processor().exif_transpose(),
        })
    }

    /// Each field, by its name in the file, rendered.
    fn fields(&self) -> [(&'static str, String); 11] {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".to_owned());
        [
            ("format_version", self.format_version.to_string()),
            ("model", self.model.clone()),
            ("activation", opt(&self.activation)),
            (
                "num_attention_heads",
                opt(&self.num_attention_heads.map(|h| h.to_string())),
            ),
            ("fingerprint", opt(&self.fingerprint)),
            ("precision", self.precision.clone()),
            ("kind", self.kind.clone()),
            ("normalized", self.normalized.to_string()),
            ("dim", self.dim.to_string()),
            ("fast_decode", self.fast_decode.to_string()),
            ("exif_transpose", self.exif_transpose.to_string()),
        ]
    }

    /// `field: old vs new` for every field where `self` (old) and `new` differ.
    pub fn differences(&self, new: &Self) -> Vec<String> {
        self.fields()
            .into_iter()
            .zip(new.fields())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| format!("{name}: {a} (output) vs {b} (this run)"))
            .collect()
    }

    /// Refuses a meta whose weights no longer have the fingerprint it recorded, `now`.
    pub fn check_weights(&self, meta_file: &Path, now: Option<&str>) -> Result<()> {
        if let (Some(want), Some(now)) = (&self.fingerprint, now) {
            if now != want {
                bail!(
                    "{}: the weights of {} changed since the index was built (fingerprint {want}, now {now}): embed the images again",
                    meta_file.display(),
                    self.model
                );
            }
        }
        Ok(())
    }
}

/// The output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.npy` rows plus a `.paths.txt` sidecar, one JSON string (path) per row.
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
    if output.is_dir() {
        // An `--output-dir` layout: its records are the done markers.
        return output.join(clip_vision_job::partition::PARTITIONS);
    }
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

/// The test-only fault hook (see the module docs).
mod fault {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The hidden variable of the crash tests.
    pub const VAR: &str = "CLIP_VISION_FAULT_ABORT_AT";

    static DONE: AtomicU64 = AtomicU64::new(0);
    static AT: OnceLock<Option<u64>> = OnceLock::new();

    /// Marks a protocol step as done: under [`VAR`], reports it and aborts if it is the one.
    pub fn step(what: &str, file: &std::path::Path) {
        let Some(at) = *AT.get_or_init(|| std::env::var(VAR).ok()?.parse().ok()) else {
            return;
        };
        let n = DONE.fetch_add(1, Ordering::SeqCst) + 1;
        let name = file
            .file_name()
            .unwrap_or(file.as_os_str())
            .to_string_lossy();
        eprintln!("fault step {n}: {what} {name}");
        if n == at {
            eprintln!("fault injection: abort after step {n}");
            std::process::abort();
        }
    }
}
use fault::step;

/// `path`'s directory made durable (the renames, creations and removals in it).
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
        step("fsync the directory of", path);
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
    step("rename to", to);
    Ok(())
}

fn sync(file: &File, path: &Path) -> Result<()> {
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    step("fsync", path);
    Ok(())
}

fn set_len(file: &File, len: u64, path: &Path) -> Result<()> {
    file.set_len(len)
        .with_context(|| format!("cannot cut {} to {len} bytes", path.display()))?;
    step("cut (truncate)", path);
    Ok(())
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

/// The names of an output's files.
struct Names {
    /// The rows, final name.
    data: PathBuf,
    /// The `.npy` sidecar, final name.
    sidecar: Option<PathBuf>,
    meta: PathBuf,
}

impl Names {
    fn of(path: &Path, format: Format) -> Self {
        Self {
            data: path.to_path_buf(),
            sidecar: (format == Format::Npy).then(|| sidecar_path(path)),
            meta: meta_path(path),
        }
    }

    /// The row files (data, then sidecar), final names.
    fn row_files(&self) -> Vec<&Path> {
        std::iter::once(self.data.as_path())
            .chain(self.sidecar.as_deref())
            .collect()
    }
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
    /// Appends rows and makes them durable.
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

/// A sidecar line (without its newline): a JSON string, or (sidecars written before
/// format 1) the plain path.
fn sidecar_entry(line: &[u8]) -> String {
    if line.first() == Some(&b'"') {
        if let Ok(s) = serde_json::from_slice::<String>(line) {
            return s;
        }
    }
    String::from_utf8_lossy(line).into_owned()
}

/// The file's meta, if it has one.
fn read_meta(meta_file: &Path) -> Result<Option<Meta>> {
    match std::fs::read_to_string(meta_file) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{}: unreadable", meta_file.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", meta_file.display())),
    }
}

/// Replaces the meta file atomically: temporary file, fsync, rename, fsync the directory.
fn write_meta(meta_file: &Path, meta: &Meta) -> Result<()> {
    let tmp = with_suffix(meta_file, ".tmp");
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(meta)?.as_bytes())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    step("write", &tmp);
    sync(&f, &tmp)?;
    rename(&tmp, meta_file)?;
    sync_dir(meta_file)
}

impl FileOutput {
    /// Opens `path` for a run. Without `resume` any earlier output (partial or finished) is
    /// removed; with it, the rows already written (partial or finished) are kept and their
    /// paths returned. The meta file must then match `meta`.
    pub fn open(path: &Path, meta: &Meta, resume: bool) -> Result<(Self, HashSet<String>)> {
        let format = Format::of(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                bail!("{}: the output directory does not exist", dir.display());
            }
        }
        let names = Names::of(path, format);
        let present: Vec<PathBuf> = names
            .row_files()
            .into_iter()
            .flat_map(|f| [partial(f), f.to_path_buf()])
            .filter(|f| f.exists())
            .collect();
        if !resume || present.is_empty() {
            // Old rows go first: the new meta must never stand beside them.
            for f in &present {
                std::fs::remove_file(f)
                    .with_context(|| format!("cannot remove {}", f.display()))?;
                step("remove", f);
            }
            if !present.is_empty() {
                sync_dir(path)?;
            }
            write_meta(&names.meta, meta)?;
        } else {
            match read_meta(&names.meta)? {
                Some(old) => {
                    let diff = old.differences(meta);
                    if !diff.is_empty() {
                        bail!(
                            "{}: --resume would mix rows made differently: {}; use another output or drop --resume",
                            names.meta.display(),
                            diff.join("; ")
                        );
                    }
                }
                None => bail!(
                    "{}: missing, so the rows of {} cannot be told apart from this run's; drop --resume to start over",
                    names.meta.display(),
                    path.display()
                ),
            }
            // A file under its final name (a finished output to extend, or the window of
            // the finish between its two renames) goes back under its partial name.
            for f in names.row_files() {
                if f.exists() && !partial(f).exists() {
                    rename(f, &partial(f))?;
                }
            }
        }
        let (out, done) = match format {
            Format::Jsonl => Self::open_jsonl(path, meta.dim)?,
            Format::Npy => Self::open_npy(path, meta.dim)?,
        };
        sync_dir(path)?;
        Ok((out, done))
    }

    fn open_jsonl(path: &Path, dim: usize) -> Result<(Self, HashSet<String>)> {
        let data_partial = partial(path);
        let mut done = HashSet::new();
        let mut good_len = 0u64;
        let mut rows = 0u64;
        let exists = data_partial.exists();
        if exists {
            let mut reader = BufReader::new(
                File::open(&data_partial)
                    .with_context(|| format!("cannot open {}", data_partial.display()))?,
            );
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .with_context(|| format!("cannot read {}", data_partial.display()))?;
                // A last line without its newline is the tail of a killed run: cut, redone.
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                let row = serde_json::from_slice::<serde_json::Value>(&line).ok();
                let fields = row
                    .as_ref()
                    .and_then(|v| Some((v["path"].as_str()?, v["embedding"].as_array()?)));
                let Some((p, e)) = fields else {
                    bail!(
                        "{}:{}: a whole line that is not a row (not written by `embed`?): fix or remove the file, or drop --resume",
                        data_partial.display(),
                        rows + 1
                    );
                };
                if e.len() != dim {
                    bail!(
                        "{}:{}: a row of {} values, this model gives {dim}",
                        data_partial.display(),
                        rows + 1,
                        e.len()
                    );
                }
                done.insert(p.to_owned());
                good_len += n as u64;
                rows += 1;
            }
        }
        let data = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&data_partial)
            .with_context(|| format!("cannot write {}", data_partial.display()))?;
        if !exists {
            step("create", &data_partial);
        }
        if data.metadata()?.len() > good_len {
            set_len(&data, good_len, &data_partial)?;
        }
        sync(&data, &data_partial)?;
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

    fn open_npy(path: &Path, dim: usize) -> Result<(Self, HashSet<String>)> {
        let data_partial = partial(path);
        let side_partial = partial(&sidecar_path(path));
        // Sidecar: the byte offset after each whole line.
        let text = match std::fs::read(&side_partial) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", side_partial.display()))
            }
        };
        let ends: Vec<usize> = text
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        // Data: whole rows after the header.
        let row_bytes = 4 * dim as u64;
        let mut data_rows = 0u64;
        if let Ok(m) = std::fs::metadata(&data_partial) {
            // Shorter than a header: created, killed before its header was whole; no rows.
            if m.len() >= npy::HEADER_LEN {
                let mut f = File::open(&data_partial)
                    .with_context(|| format!("cannot open {}", data_partial.display()))?;
                let (_, file_dim, start) = npy::parse_header(&mut f, &data_partial)?;
                if file_dim as usize != dim {
                    bail!(
                        "{}: rows of {file_dim} values, this model gives {dim}",
                        data_partial.display()
                    );
                }
                if start != npy::HEADER_LEN {
                    bail!(
                        "{}: a {start}-byte .npy header, not one `embed` writes ({} bytes)",
                        data_partial.display(),
                        npy::HEADER_LEN
                    );
                }
                data_rows = (m.len() - start) / row_bytes.max(1);
            }
        }
        let rows = data_rows.min(ends.len() as u64);
        let keep = if rows == 0 {
            0
        } else {
            ends[rows as usize - 1]
        };
        let mut done = HashSet::new();
        let mut from = 0;
        for &end in &ends[..rows as usize] {
            done.insert(sidecar_entry(&text[from..end - 1]));
            from = end;
        }

        // Sidecar first, cut in place to the rows kept (never rewritten).
        let side_existed = side_partial.exists();
        let sidecar = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&side_partial)
            .with_context(|| format!("cannot write {}", side_partial.display()))?;
        if !side_existed {
            step("create", &side_partial);
        }
        if text.len() as u64 > keep as u64 {
            set_len(&sidecar, keep as u64, &side_partial)?;
        }
        sync(&sidecar, &side_partial)?;

        let data_existed = data_partial.exists();
        let mut data = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&data_partial)
            .with_context(|| format!("cannot write {}", data_partial.display()))?;
        if !data_existed {
            step("create", &data_partial);
        }
        let want_len = npy::HEADER_LEN + rows * row_bytes;
        let len = data.metadata()?.len();
        if len > want_len {
            set_len(&data, want_len, &data_partial)?;
        }
        npy::write_header(&mut data, rows, dim as u64)
            .with_context(|| format!("cannot write {}", data_partial.display()))?;
        step("write the header of", &data_partial);
        sync(&data, &data_partial)?;
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
        let data_partial = partial(&self.path);
        let write_err = || format!("cannot write {}", data_partial.display());
        match self.format {
            Format::Jsonl => {
                let mut text = String::new();
                for (path, v) in rows {
                    text.push_str(&json_line(path, v)?);
                    text.push('\n');
                }
                self.data
                    .write_all(text.as_bytes())
                    .with_context(write_err)?;
                step(
                    &format!("append {} rows (commit) to", rows.len()),
                    &data_partial,
                );
                sync(&self.data, &data_partial)?;
            }
            Format::Npy => {
                // Data (durable), then paths: a path line is never whole before its row.
                self.data
                    .write_all(&npy::row_bytes(
                        &rows.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
                    ))
                    .with_context(write_err)?;
                step(&format!("append {} rows to", rows.len()), &data_partial);
                sync(&self.data, &data_partial)?;
                let mut text = String::new();
                for (path, _) in rows {
                    text.push_str(&serde_json::to_string(path)?);
                    text.push('\n');
                }
                let side_partial = partial(&sidecar_path(&self.path));
                if let Some(side) = &mut self.sidecar {
                    side.write_all(text.as_bytes())
                        .with_context(|| format!("cannot write {}", side_partial.display()))?;
                    step(
                        &format!("append {} paths (commit) to", rows.len()),
                        &side_partial,
                    );
                    sync(side, &side_partial)?;
                }
                npy::write_header(
                    &mut self.data,
                    self.rows + rows.len() as u64,
                    self.dim as u64,
                )
                .with_context(write_err)?;
                step("write the header of", &data_partial);
            }
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let data_partial = partial(&self.path);
        if self.format == Format::Npy {
            // The header's row count, written after the last batch's fsync.
            sync(&self.data, &data_partial)?;
        }
        rename(&data_partial, &self.path).with_context(|| {
            format!("cannot move the finished output to {}", self.path.display())
        })?;
        if self.sidecar.is_some() {
            let side = sidecar_path(&self.path);
            rename(&partial(&side), &side)?;
        }
        sync_dir(&self.path)
    }
}

/// Bytes an output of `rows` rows of `dim` values will take at most: `.npy` rows and the
/// sidecar's quoted paths, or JSON lines with up to 16 characters a value.
pub fn estimate_bytes(format: Format, rows: u64, dim: usize, mean_path_len: u64) -> u64 {
    let per_row = match format {
        Format::Npy => 4 * dim as u64 + mean_path_len + 3,
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
/// An output directory of `embed --output-dir` is read through its done markers (their
/// record gives the meta).
pub fn read_index(path: &Path) -> Result<(Meta, Vec<Row>)> {
    if path.is_dir() {
        let layout = clip_vision_job::partition::read_layout(path)?;
        let r = layout.record;
        let meta = Meta {
            format_version: FORMAT_VERSION,
            model: r.model,
            activation: r.activation,
            num_attention_heads: r.num_attention_heads,
            precision: r.precision,
            fingerprint: r.fingerprint,
            kind: r.kind,
            normalized: r.normalized,
            dim: r.dim,
            fast_decode: r.fast_decode,
            exif_transpose: r.exif_transpose,
        };
        return Ok((meta, layout.rows));
    }
    let meta_file = meta_path(path);
    let meta = read_meta(&meta_file)?.with_context(|| {
        format!(
            "cannot read {} (written by `embed` beside its output)",
            meta_file.display()
        )
    })?;
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
            let text = std::fs::read(&side)
                .with_context(|| format!("cannot read the sidecar {}", side.display()))?;
            let names: Vec<String> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(sidecar_entry)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_lines_are_json_strings_or_old_plain_paths() {
        assert_eq!(sidecar_entry(br#""/a/b\nc.jpg""#), "/a/b\nc.jpg");
        assert_eq!(sidecar_entry(b"/old/plain path.jpg"), "/old/plain path.jpg");
        assert_eq!(sidecar_entry(br#""unterminated"#), "\"unterminated");
    }

    #[test]
    fn meta_differences_name_the_field_and_both_values() {
        let a = Meta {
            format_version: 1,
            model: "/m".into(),
            activation: None,
            num_attention_heads: None,
            precision: "f32".into(),
            fingerprint: Some("fnv1a64:1".into()),
            kind: "pooled".into(),
            normalized: true,
            dim: 8,
            fast_decode: false,
            exif_transpose: false,
        };
        let b = Meta {
            activation: Some("quick_gelu".into()),
            dim: 16,
            ..a.clone()
        };
        assert_eq!(
            a.differences(&b),
            [
                "activation: none (output) vs quick_gelu (this run)",
                "dim: 8 (output) vs 16 (this run)"
            ]
        );
        assert!(a.differences(&a).is_empty());
        // A meta of format 0 reads, with the fields it lacked absent.
        let old: Meta =
            serde_json::from_str(r#"{"model":"m","kind":"pooled","normalized":true,"dim":8}"#)
                .unwrap();
        assert_eq!((old.format_version, old.fingerprint), (0, None));
    }
}
