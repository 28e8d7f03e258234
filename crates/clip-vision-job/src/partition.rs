//! One partition of clip-retrieval's layout on disk: its file names, the journal a run
//! grows batch by batch, and the finish that turns the journal into the final files.
//!
//! # Files of partition `i` (zero-padded, [`Shard::padded`])
//! - `img_emb/img_emb_{i}.npy`, `metadata/metadata_{i}.parquet` and, with captions,
//!   `text_emb/text_emb_{i}.npy`: written only by the finish, never with 0 rows;
//! - `partitions/partition_{i}.done.json` ([`DoneMarker`]): written last;
//! - while running, the journal `partitions/partition_{i}.{tag}.{lock,index.jsonl,img.f32,text.f32}`
//!   and, during the finish, `*.tmp` files: no name a reader of the layout picks up ends
//!   in `.npy` or `.parquet` until it is whole.
//!
//! # The journal (crash safety)
//! `index.jsonl` opens with a header line (the [`Record`], partition and inputs hash); then
//! one line per input item in stream order, a row (`{"row": …}`, whose vectors are the next
//! row of `img.f32` / `text.f32`, little-endian `f32`) or a skip (`{"skip": …}`). A batch
//! appends its vectors and fsyncs them, then appends its lines and fsyncs them: **a line
//! that ends in `\n` is the commit point**. A resume keeps the whole lines (a torn tail is
//! cut, never glued to), cuts the vector files to the rows those lines count, and goes on
//! after the items they cover: only the batch in flight at a kill is redone.
//!
//! # Two processes on one partition
//! The journal `tag` is `journal` for the process holding its `flock`; a second process
//! finds the lock taken and writes a private journal (`p{pid}`) instead, from the start.
//! Each finish writes its final files under temporary names and renames them into place,
//! so the last complete writer wins and no reader ever sees a half-written file. A private
//! journal whose owner is gone (its lock free) is removed by the next run.

use crate::metadata::{write_parquet, MetaRow};
use crate::npy::write_npy;
use crate::record::{read_json, DoneMarker, Record};
use crate::units::Shard;
use crate::JobError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The directories of the layout under an output directory.
pub const IMG_EMB: &str = "img_emb";
/// Captions' embeddings (`--embed-captions`).
pub const TEXT_EMB: &str = "text_emb";
/// The parquet metadata.
pub const METADATA: &str = "metadata";
/// Done markers and journals.
pub const PARTITIONS: &str = "partitions";

/// The names of one partition's files.
#[derive(Debug, Clone)]
pub struct PartitionFiles {
    /// The output directory.
    pub dir: PathBuf,
    /// The partition.
    pub shard: Shard,
}

impl PartitionFiles {
    /// The files of partition `shard.index` under `dir`.
    pub fn new(dir: impl Into<PathBuf>, shard: Shard) -> Self {
        Self {
            dir: dir.into(),
            shard,
        }
    }

    /// `img_emb/img_emb_{i}.npy`.
    pub fn img_emb(&self) -> PathBuf {
        self.dir
            .join(IMG_EMB)
            .join(format!("img_emb_{}.npy", self.shard.padded()))
    }

    /// `text_emb/text_emb_{i}.npy`.
    pub fn text_emb(&self) -> PathBuf {
        self.dir
            .join(TEXT_EMB)
            .join(format!("text_emb_{}.npy", self.shard.padded()))
    }

    /// `metadata/metadata_{i}.parquet`.
    pub fn metadata(&self) -> PathBuf {
        self.dir
            .join(METADATA)
            .join(format!("metadata_{}.parquet", self.shard.padded()))
    }

    /// `partitions/partition_{i}.done.json`.
    pub fn done(&self) -> PathBuf {
        self.dir
            .join(PARTITIONS)
            .join(format!("partition_{}.done.json", self.shard.padded()))
    }

    /// `partitions/partition_{i}.{tag}.{ext}`.
    fn journal(&self, tag: &str, ext: &str) -> PathBuf {
        self.dir
            .join(PARTITIONS)
            .join(format!("partition_{}.{tag}.{ext}", self.shard.padded()))
    }
}

/// An I/O error on `path`, saying what was being done.
pub(crate) fn io<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> JobError + 'a {
    move |e| JobError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// fsyncs a directory (so a rename or creation in it is durable).
fn sync_dir(dir: &Path) -> Result<(), JobError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir, "cannot sync the directory"))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), JobError> {
    std::fs::create_dir_all(dir).map_err(io(dir, "cannot create the directory"))
}

fn remove_if_there(path: &Path) -> Result<(), JobError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path, "cannot remove")(e)),
        _ => Ok(()),
    }
}

/// Takes the exclusive lock of `file` if it is free.
fn try_lock(file: &File) -> bool {
    #[cfg(unix)]
    {
        rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        true
    }
}

/// Writes `path` whole or not at all: `path.{tag}.tmp`, fsync, rename, fsync the directory.
fn write_atomically(
    path: &Path,
    tag: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), JobError>,
) -> Result<(), JobError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{tag}.tmp"));
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).map_err(io(&tmp, "cannot create"))?;
    {
        let mut w = BufWriter::new(&file);
        write(&mut w)?;
        w.flush().map_err(io(&tmp, "cannot write"))?;
    }
    file.sync_all().map_err(io(&tmp, "cannot sync"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path, "cannot rename into place"))?;
    sync_dir(dir)
}

/// The first line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalHeader {
    pub record: Record,
    pub partition: usize,
    pub inputs_hash: String,
}

/// One input item of a partition, as the journal records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Line {
    /// A sample with a row: its metadata.
    Row {
        key: String,
        caption: Option<String>,
        json: Option<Map<String, Value>>,
    },
    /// A sample without a row, and why.
    Skip { key: String, why: String },
}

/// A partition's journal, open for appending.
pub(crate) struct Journal {
    files: PartitionFiles,
    tag: String,
    _lock: File,
    index: File,
    img: File,
    text: Option<File>,
    dim: usize,
    /// Rows committed.
    pub rows: u64,
    /// Items committed (rows and skips).
    pub items: u64,
    /// Skips committed.
    pub skipped: u64,
}

impl Journal {
    /// Opens partition `files`'s journal for a run whose first line is `header`: resumes the
    /// shared one if its lock is free (refusing one made otherwise), else starts a private
    /// one. `text` says whether rows have caption vectors.
    pub fn open(
        files: &PartitionFiles,
        header: &JournalHeader,
        text: bool,
    ) -> Result<Self, JobError> {
        let dir = files.dir.join(PARTITIONS);
        create_dir(&dir)?;
        let open_lock = |tag: &str| -> Result<File, JobError> {
            let path = files.journal(tag, "lock");
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io(&path, "cannot open the lock file"))
        };
        let main = open_lock("journal")?;
        let (tag, lock) = if try_lock(&main) {
            remove_stale_private_journals(files)?;
            ("journal".to_owned(), main)
        } else {
            let tag = format!("p{}", std::process::id());
            for ext in ["index.jsonl", "img.f32", "text.f32"] {
                remove_if_there(&files.journal(&tag, ext))?;
            }
            let lock = open_lock(&tag)?;
            if !try_lock(&lock) {
                return Err(JobError::Options(format!(
                    "partition {}: another run of this process already holds it",
                    files.shard
                )));
            }
            (tag, lock)
        };
        let open = |ext: &str| -> Result<File, JobError> {
            let path = files.journal(&tag, ext);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path, "cannot open the journal"))
        };
        let mut journal = Self {
            files: files.clone(),
            _lock: lock,
            index: open("index.jsonl")?,
            img: open("img.f32")?,
            text: if text { Some(open("text.f32")?) } else { None },
            tag,
            dim: header.record.dim,
            rows: 0,
            items: 0,
            skipped: 0,
        };
        journal.recover(header)?;
        sync_dir(&dir)?;
        Ok(journal)
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.files.journal(&self.tag, ext)
    }

    fn row_bytes(&self) -> u64 {
        self.dim as u64 * 4
    }

    /// Keeps the whole lines of an earlier run with the same header and cuts every file to
    /// them; starts afresh when there is none.
    fn recover(&mut self, header: &JournalHeader) -> Result<(), JobError> {
        let index_path = self.path("index.jsonl");
        let mut text = Vec::new();
        self.index
            .read_to_end(&mut text)
            .map_err(io(&index_path, "cannot read the journal"))?;
        let mut lines = text
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| l.ends_with(b"\n"));
        let kept_header = match lines.next() {
            None => None,
            Some(first) => {
                let old: JournalHeader =
                    serde_json::from_slice(first).map_err(|e| JobError::Output {
                        path: index_path.clone(),
                        problem: format!("not a clip-vision journal header: {e}"),
                    })?;
                let mut differences = old.record.differences(&header.record);
                if old.partition != header.partition {
                    differences.push(format!(
                        "partition: {} (output) vs {} (this run)",
                        old.partition, header.partition
                    ));
                }
                if old.inputs_hash != header.inputs_hash {
                    differences.push(format!(
                        "inputs_hash: {} (output) vs {} (this run): the partition's inputs changed",
                        old.inputs_hash, header.inputs_hash
                    ));
                }
                if !differences.is_empty() {
                    return Err(JobError::MadeOtherwise {
                        path: index_path,
                        differences,
                    });
                }
                Some(first.len() as u64)
            }
        };
        let Some(mut keep) = kept_header else {
            return self.start(header);
        };
        // Whole vector rows on disk bound the rows a line may claim.
        let have = |f: &File, path: &Path| -> Result<u64, JobError> {
            Ok(f.metadata().map_err(io(path, "cannot stat"))?.len())
        };
        let mut max_rows = have(&self.img, &self.path("img.f32"))? / self.row_bytes();
        if let Some(t) = &self.text {
            max_rows = max_rows.min(have(t, &self.path("text.f32"))? / self.row_bytes());
        }
        for line in lines {
            let parsed: Line = match serde_json::from_slice(line) {
                Ok(l) => l,
                Err(e) => {
                    return Err(JobError::Output {
                        path: index_path,
                        problem: format!("line {} is not a journal line: {e}", self.items + 2),
                    })
                }
            };
            let is_row = matches!(parsed, Line::Row { .. });
            if is_row && self.rows == max_rows {
                break;
            }
            keep += line.len() as u64;
            self.items += 1;
            if is_row {
                self.rows += 1;
            } else {
                self.skipped += 1;
            }
        }
        let cut = |f: &File, len: u64, path: &Path| -> Result<(), JobError> {
            f.set_len(len).map_err(io(path, "cannot cut the journal"))?;
            f.sync_all().map_err(io(path, "cannot sync the journal"))
        };
        cut(&self.index, keep, &index_path)?;
        let data = self.rows * self.row_bytes();
        cut(&self.img, data, &self.path("img.f32"))?;
        if let Some(t) = &self.text {
            cut(t, data, &self.path("text.f32"))?;
        }
        self.seek_ends()
    }

    fn start(&mut self, header: &JournalHeader) -> Result<(), JobError> {
        for (f, ext) in [(&self.index, "index.jsonl"), (&self.img, "img.f32")]
            .into_iter()
            .chain(self.text.as_ref().map(|t| (t, "text.f32")))
        {
            f.set_len(0).map_err(io(
                &self.files.journal(&self.tag, ext),
                "cannot reset the journal",
            ))?;
        }
        let mut line = serde_json::to_vec(header).map_err(|e| JobError::Options(e.to_string()))?;
        line.push(b'\n');
        let path = self.path("index.jsonl");
        self.index
            .seek(SeekFrom::Start(0))
            .map_err(io(&path, "cannot seek"))?;
        self.index
            .write_all(&line)
            .map_err(io(&path, "cannot write"))?;
        self.index.sync_all().map_err(io(&path, "cannot sync"))?;
        self.seek_ends()
    }

    fn seek_ends(&mut self) -> Result<(), JobError> {
        let (i, m) = (self.path("index.jsonl"), self.path("img.f32"));
        self.index
            .seek(SeekFrom::End(0))
            .map_err(io(&i, "cannot seek"))?;
        self.img
            .seek(SeekFrom::End(0))
            .map_err(io(&m, "cannot seek"))?;
        if let Some(t) = &mut self.text {
            let p = self.files.journal(&self.tag, "text.f32");
            t.seek(SeekFrom::End(0)).map_err(io(&p, "cannot seek"))?;
        }
        Ok(())
    }

    /// Appends a batch: `lines` in item order, `img` / `text` the vectors of its rows
    /// (`[rows, dim]`, row-major), then commits it.
    pub fn append(&mut self, lines: &[Line], img: &[f32], text: &[f32]) -> Result<(), JobError> {
        let rows = lines
            .iter()
            .filter(|l| matches!(l, Line::Row { .. }))
            .count();
        debug_assert_eq!(img.len(), rows * self.dim);
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let m = self.path("img.f32");
        self.img
            .write_all(&bytes(img))
            .map_err(io(&m, "cannot write"))?;
        self.img.sync_data().map_err(io(&m, "cannot sync"))?;
        if let Some(t) = &mut self.text {
            let p = self.files.journal(&self.tag, "text.f32");
            t.write_all(&bytes(text)).map_err(io(&p, "cannot write"))?;
            t.sync_data().map_err(io(&p, "cannot sync"))?;
        }
        let mut out = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut out, line).map_err(|e| JobError::Options(e.to_string()))?;
            out.push(b'\n');
        }
        let i = self.path("index.jsonl");
        self.index.write_all(&out).map_err(io(&i, "cannot write"))?;
        self.index.sync_data().map_err(io(&i, "cannot sync"))?;
        self.items += lines.len() as u64;
        self.rows += rows as u64;
        self.skipped += (lines.len() - rows) as u64;
        Ok(())
    }

    /// Writes the final files from the journal, then the done marker, then removes the
    /// journal.
    pub fn finish(mut self, mut marker: DoneMarker) -> Result<DoneMarker, JobError> {
        let i = self.path("index.jsonl");
        let mut text = Vec::new();
        self.index
            .seek(SeekFrom::Start(0))
            .map_err(io(&i, "cannot seek"))?;
        self.index
            .read_to_end(&mut text)
            .map_err(io(&i, "cannot read"))?;
        let mut meta = Vec::new();
        for line in text
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            if let Ok(Line::Row { key, caption, json }) = serde_json::from_slice(line) {
                meta.push(MetaRow {
                    image_path: key,
                    caption,
                    json,
                });
            }
        }
        let read_vectors = |f: &mut File, path: &Path| -> Result<Vec<f32>, JobError> {
            let mut raw = Vec::new();
            f.seek(SeekFrom::Start(0))
                .map_err(io(path, "cannot seek"))?;
            f.read_to_end(&mut raw).map_err(io(path, "cannot read"))?;
            Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let (dim, dtype, tag) = (self.dim, marker.dtype, self.tag.clone());
        let files = self.files.clone();
        if meta.is_empty() {
            // Never a 0-row pair; nor one left by an earlier run of this partition.
            for p in [files.img_emb(), files.metadata(), files.text_emb()] {
                remove_if_there(&p)?;
            }
        } else {
            let img_path = self.path("img.f32");
            let img = read_vectors(&mut self.img, &img_path)?;
            if img.len() != meta.len() * dim {
                return Err(JobError::Output {
                    path: img_path,
                    problem: format!(
                        "holds {} values, the journal counts {} rows of {dim}",
                        img.len(),
                        meta.len()
                    ),
                });
            }
            let npy = |path: &Path, rows: &[f32]| {
                write_atomically(path, &tag, |w| {
                    write_npy(w, rows, dim, dtype).map_err(io(path, "cannot write"))
                })
            };
            npy(&files.img_emb(), &img)?;
            drop(img);
            if let Some(mut t) = self.text.take() {
                let p = self.path("text.f32");
                let rows = read_vectors(&mut t, &p)?;
                npy(&files.text_emb(), &rows)?;
            }
            let parquet = files.metadata();
            write_atomically(&parquet, &tag, |w| write_parquet(w, &meta))?;
        }
        marker.rows = meta.len() as u64;
        marker.skipped = self.skipped;
        let done = files.done();
        write_atomically(&done, &tag, |w| {
            serde_json::to_writer_pretty(&mut *w, &marker)
                .map_err(|e| JobError::Options(e.to_string()))?;
            w.write_all(b"\n").map_err(io(&done, "cannot write"))
        })?;
        for ext in ["index.jsonl", "img.f32", "text.f32", "lock"] {
            remove_if_there(&self.path(ext))?;
        }
        Ok(marker)
    }
}

/// Removes the private journals of partition `files` whose owner is gone.
fn remove_stale_private_journals(files: &PartitionFiles) -> Result<(), JobError> {
    let dir = files.dir.join(PARTITIONS);
    let prefix = format!("partition_{}.p", files.shard.padded());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".lock"))
        else {
            continue;
        };
        let tag = format!("p{tag}");
        if let Ok(lock) = File::open(entry.path()) {
            if try_lock(&lock) {
                for ext in ["index.jsonl", "img.f32", "text.f32", "lock"] {
                    remove_if_there(&files.journal(&tag, ext))?;
                }
            }
        }
    }
    Ok(())
}

/// The done markers under `dir/partitions`, with their paths, sorted by path.
pub fn done_markers(dir: &Path) -> Result<Vec<(PathBuf, DoneMarker)>, JobError> {
    let parts = dir.join(PARTITIONS);
    let entries = match std::fs::read_dir(&parts) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&parts, "cannot read the directory")(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("partition_") && n.ends_with(".done.json"))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| read_json(&p).map(|m| (p, m)))
        .collect()
}

/// An output directory read back whole: the record its partitions share and every row.
#[derive(Debug, Clone)]
pub struct Layout {
    /// What defines the rows.
    pub record: Record,
    /// `(image_path, image embedding)` in partition order, then row order.
    pub rows: Vec<(String, Vec<f32>)>,
}

/// Reads every done partition of an output directory (`similar` / `search --index DIR`).
///
/// # Errors
/// [`JobError::Output`] for a directory without done partitions, partitions made
/// otherwise ([`JobError::MadeOtherwise`]), or files that disagree with their marker.
pub fn read_layout(dir: &Path) -> Result<Layout, JobError> {
    let markers = done_markers(dir)?;
    let Some((first_path, first)) = markers.first() else {
        return Err(JobError::Output {
            path: dir.join(PARTITIONS),
            problem: "no finished partition (no partition_*.done.json): not an output of `embed --output-dir`, or not finished".into(),
        });
    };
    let (record, mut rows) = (first.record.clone(), Vec::new());
    for (path, marker) in &markers {
        let differences = record.differences(&marker.record);
        if !differences.is_empty() {
            return Err(JobError::MadeOtherwise {
                path: path.clone(),
                differences: differences
                    .into_iter()
                    .map(|d| format!("{d} [against {}]", first_path.display()))
                    .collect(),
            });
        }
        if marker.rows == 0 {
            continue;
        }
        let shard = Shard::new(marker.partition, record.shard_count)?;
        let files = PartitionFiles::new(dir, shard);
        let matrix = crate::npy::read_npy(&files.img_emb())?;
        let meta = crate::metadata::read_parquet(&files.metadata())?;
        if matrix.rows as u64 != marker.rows || meta.len() as u64 != marker.rows {
            return Err(JobError::Output {
                path: files.img_emb(),
                problem: format!(
                    "{} rows in the .npy and {} in {}, the done marker says {}",
                    matrix.rows,
                    meta.len(),
                    files.metadata().display(),
                    marker.rows
                ),
            });
        }
        if matrix.dim != record.dim {
            return Err(JobError::Output {
                path: files.img_emb(),
                problem: format!("rows of {}, the record says {}", matrix.dim, record.dim),
            });
        }
        rows.extend(
            meta.into_iter()
                .map(|m| m.image_path)
                .zip(matrix.data.chunks(matrix.dim.max(1)).map(<[f32]>::to_vec)),
        );
    }
    Ok(Layout { record, rows })
}
