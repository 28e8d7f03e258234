//! Streaming reader of one webdataset tar shard: members grouped into samples by key.

use crate::{JobError, MemberProblem};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Image extensions a sample's image is taken from, in webdataset's order of priority
/// (`to_tuple("jpg;jpeg;png;webp")`): the first present wins, whatever the member order.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// One webdataset sample: the consecutive members of a shard that share a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The member path up to the first dot of its file name (`part/000123` for
    /// `part/000123.jpg`), verbatim.
    pub key: String,
    /// The extension (one of [`IMAGE_EXTENSIONS`]) and the encoded bytes of the sample's
    /// image, by priority.
    pub image: Option<(&'static str, Vec<u8>)>,
    /// The `.txt` member.
    pub caption: Option<String>,
    /// The `.json` member.
    pub json: Option<Map<String, Value>>,
    /// Extensions of the sample's members that were not read (`.parquet`, an image of lower
    /// priority than the one kept, …), in member order.
    pub other: Vec<String>,
}

/// The most bytes a member is read into memory with; a larger member costs its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For image members (default 64 MiB).
    pub image_bytes: u64,
    /// For `.txt` and `.json` members (default 1 MiB).
    pub text_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            image_bytes: 64 << 20,
            text_bytes: 1 << 20,
        }
    }
}

/// A webdataset shard opened for reading; [`ShardReader::samples`] walks it once.
///
/// The design decision: the shard is read as a stream, member by member (never loaded,
/// never seeked), and no member is trusted: names are only ever keys (nothing is written
/// to disk), links and devices are never followed, a member is read only up to its
/// [`Limits`], and truncation is detected rather than read as the end of the archive.
pub struct ShardReader<R: Read> {
    shard: PathBuf,
    archive: tar::Archive<Counting<R>>,
    read: Arc<AtomicU64>,
    limits: Limits,
}

impl ShardReader<BufReader<File>> {
    /// Opens a shard file.
    ///
    /// # Errors
    /// [`JobError::OpenShard`] when the file cannot be opened.
    pub fn open(shard: impl AsRef<Path>) -> Result<Self, JobError> {
        let shard = shard.as_ref();
        let file = File::open(shard).map_err(|source| JobError::OpenShard {
            shard: shard.to_owned(),
            source,
        })?;
        Ok(Self::new(shard, BufReader::new(file)))
    }
}

impl<R: Read> ShardReader<R> {
    /// Reads a shard from any stream (an object-store body, a pipe); `shard` names it in
    /// errors.
    pub fn new(shard: impl Into<PathBuf>, reader: R) -> Self {
        let read = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: reader,
            read: Arc::clone(&read),
        };
        Self {
            shard: shard.into(),
            archive: tar::Archive::new(counting),
            read,
            limits: Limits::default(),
        }
    }

    /// Sets the member size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The shard's name, as errors give it.
    pub fn shard(&self) -> &Path {
        &self.shard
    }

    /// The samples of the shard in member order, each a [`Sample`] or the error that cost
    /// it; a shard-level error ([`JobError::ends_shard`]) is the last item.
    ///
    /// A shard is walked once: a second call yields only a [`JobError::ShardDamaged`]
    /// (the stream is no longer at its start).
    pub fn samples(&mut self) -> Samples<'_, R> {
        let entries = self.archive.entries();
        let (entries, queue) = match entries {
            Ok(entries) => (Some(entries), VecDeque::new()),
            Err(source) => (
                None,
                VecDeque::from([Err(damaged(
                    &self.shard,
                    self.read.load(Ordering::Relaxed),
                    None,
                    source,
                ))]),
            ),
        };
        Samples {
            shard: &self.shard,
            entries,
            read: &self.read,
            limits: self.limits,
            pending: None,
            queue,
            end_of_last: 0,
            last_member: None,
        }
    }
}

/// A reader that counts the bytes it hands out (the shard offset reached).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A sample being gathered.
struct Pending {
    key: String,
    sample: Sample,
    seen: Vec<String>,
    failed: Option<JobError>,
}

/// The iterator of [`ShardReader::samples`].
pub struct Samples<'a, R: Read> {
    shard: &'a Path,
    entries: Option<tar::Entries<'a, Counting<R>>>,
    read: &'a AtomicU64,
    limits: Limits,
    pending: Option<Pending>,
    queue: VecDeque<Result<Sample, JobError>>,
    /// Where the member after the last one read starts (its data padded to 512 bytes).
    end_of_last: u64,
    last_member: Option<String>,
}

fn damaged(shard: &Path, offset: u64, last_member: Option<String>, source: io::Error) -> JobError {
    JobError::ShardDamaged {
        shard: shard.to_owned(),
        offset,
        last_member,
        source,
    }
}

/// `(key, lower-cased extension)` of a member name by webdataset's rule
/// (`^((?:.*/|)[^.]+)[.]([^/]*)$`): the key runs to the first dot of the file name. `None`
/// for a name whose file name has no dot or starts with one (webdataset skips those).
pub fn key_and_extension(name: &str) -> Option<(&str, String)> {
    let file_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[file_start..].find('.')? + file_start;
    if dot == file_start {
        return None;
    }
    Some((&name[..dot], name[dot + 1..].to_lowercase()))
}

/// Whether a name is absolute or has a `..` component.
fn unsafe_name(name: &str) -> bool {
    name.starts_with('/') || name.split('/').any(|c| c == "..")
}

/// webdataset's `skip_meta` (`__[^/]*__($|/)`): names such as `__index__` it ignores.
fn is_meta(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or_default();
    first.len() >= 4 && first.starts_with("__") && first.ends_with("__")
}

fn kind_of(t: tar::EntryType) -> Option<&'static str> {
    use tar::EntryType as T;
    Some(match t {
        T::Regular | T::Continuous => return None,
        T::Link => "hard link",
        T::Symlink => "symbolic link",
        T::Char => "character device",
        T::Block => "block device",
        T::Directory => "directory",
        T::Fifo => "fifo",
        T::GNUSparse => "sparse file",
        _ => "member of an unknown type",
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a member read to its end holds, or why it could not be read.
enum MemberRead {
    Bytes(Vec<u8>),
    /// Fewer bytes than the header claims: the shard ends inside the member.
    Short(io::Error),
}

fn read_member(entry: &mut impl Read, size: u64) -> MemberRead {
    // Capacity grows with the bytes that really arrive, never with the size claimed.
    let mut buf = Vec::with_capacity(usize::try_from(size.min(64 << 10)).unwrap_or(0));
    match entry.take(size).read_to_end(&mut buf) {
        Ok(n) if n as u64 == size => MemberRead::Bytes(buf),
        Ok(n) => MemberRead::Short(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("member data ends after {n} of the {size} bytes its header claims"),
        )),
        Err(e) => MemberRead::Short(e),
    }
}

impl<R: Read> Samples<'_, R> {
    fn offset(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Ends the shard with `source`: a failed sample in flight is reported, a good one
    /// dropped (it may be missing members).
    fn end_damaged(&mut self, source: io::Error) {
        if let Some(Pending {
            failed: Some(e), ..
        }) = self.pending.take()
        {
            self.queue.push_back(Err(e));
        }
        let err = damaged(self.shard, self.offset(), self.last_member.take(), source);
        self.queue.push_back(Err(err));
        self.entries = None;
    }

    fn finish_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.queue.push_back(match p.failed {
                Some(e) => Err(e),
                None => Ok(p.sample),
            });
        }
    }

    /// Reads one more member into the queue / pending sample; `false` at the end.
    fn step(&mut self) -> bool {
        let Some(entries) = self.entries.as_mut() else {
            return false;
        };
        let mut entry = match entries.next() {
            None => {
                let read = self.offset();
                if read == 0 {
                    self.entries = None;
                    self.queue.push_back(Err(JobError::EmptyShard {
                        shard: self.shard.to_owned(),
                    }));
                } else if read <= self.end_of_last {
                    // The tar reader takes EOF at a member boundary for the end: without
                    // the zero end blocks, the shard was cut (maybe inside a sample).
                    self.end_damaged(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ends without its end-of-archive blocks",
                    ));
                } else {
                    self.entries = None;
                    self.finish_pending();
                }
                return false;
            }
            Some(Err(source)) => {
                self.end_damaged(source);
                return false;
            }
            Some(Ok(entry)) => entry,
        };
        let header_at = entry.raw_header_position();
        let size = entry.size();
        self.end_of_last = entry
            .raw_file_position()
            .saturating_add(size.div_ceil(512).saturating_mul(512));
        let name_bytes = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        self.last_member = Some(name.clone());
        let entry_type = entry.header().entry_type();
        if entry_type == tar::EntryType::XGlobalHeader || is_meta(&name) {
            return true;
        }
        let keyed = key_and_extension(&name).map(|(k, e)| (k.to_owned(), e));
        let problem = if std::str::from_utf8(&name_bytes).is_err() {
            Some(MemberProblem::NameNotUtf8)
        } else if unsafe_name(&name) {
            Some(MemberProblem::UnsafeName)
        } else {
            kind_of(entry_type).map(|kind| MemberProblem::NotAFile { kind })
        };
        let Some((key, ext)) = keyed else {
            // No key: a regular file is ignored as webdataset ignores it, anything else is
            // its own problem.
            if let Some(problem) = problem {
                self.finish_pending();
                self.queue.push_back(Err(JobError::Member {
                    shard: self.shard.into(),
                    member: name,
                    offset: header_at,
                    problem,
                }));
            }
            return true;
        };
        if self.pending.as_ref().is_none_or(|p| p.key != key) {
            self.finish_pending();
            self.pending = Some(Pending {
                key: key.clone(),
                sample: Sample {
                    key: key.clone(),
                    image: None,
                    caption: None,
                    json: None,
                    other: Vec::new(),
                },
                seen: Vec::new(),
                failed: None,
            });
        }
        let shard = self.shard;
        let limits = self.limits;
        let Some(pending) = self.pending.as_mut() else {
            return true;
        };
        let fail = |problem| JobError::Sample {
            shard: shard.into(),
            key: key.clone(),
            member: name.clone(),
            offset: header_at,
            problem,
        };
        if pending.failed.is_some() {
            return true;
        }
        if let Some(problem) = problem {
            pending.failed = Some(fail(problem));
            return true;
        }
        if pending.seen.contains(&ext) {
            pending.failed = Some(fail(MemberProblem::DuplicateExtension { ext }));
            return true;
        }
        pending.seen.push(ext.clone());
        let image_rank = IMAGE_EXTENSIONS.iter().position(|e| *e == ext);
        let current_rank = pending
            .sample
            .image
            .as_ref()
            .and_then(|(e, _)| IMAGE_EXTENSIONS.iter().position(|x| x == e));
        let wanted = match image_rank {
            Some(rank) => current_rank.is_none_or(|c| rank < c),
            None => ext == "txt" || ext == "json",
        };
        if !wanted {
            pending.sample.other.push(ext);
            return true;
        }
        let limit = if image_rank.is_some() {
            limits.image_bytes
        } else {
            limits.text_bytes
        };
        if size > limit {
            pending.failed = Some(fail(MemberProblem::TooLarge { ext, size, limit }));
            return true;
        }
        let bytes = match read_member(&mut entry, size) {
            MemberRead::Bytes(bytes) => bytes,
            MemberRead::Short(source) => {
                drop(entry);
                self.end_damaged(source);
                return false;
            }
        };
        if let Some(rank) = image_rank {
            if let Some((old, _)) = pending.sample.image.take() {
                pending.sample.other.push(old.to_owned());
            }
            pending.sample.image = Some((IMAGE_EXTENSIONS[rank], bytes));
        } else if ext == "txt" {
            match String::from_utf8(bytes) {
                Ok(caption) => pending.sample.caption = Some(caption),
                Err(e) => {
                    let valid_up_to = e.utf8_error().valid_up_to();
                    pending.failed = Some(fail(MemberProblem::CaptionNotUtf8 { valid_up_to }));
                }
            }
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => pending.sample.json = Some(map),
                Ok(other) => {
                    let found = json_kind(&other);
                    pending.failed = Some(fail(MemberProblem::JsonNotObject { found }));
                }
                Err(e) => {
                    let message = e.to_string();
                    pending.failed = Some(fail(MemberProblem::JsonInvalid { message }));
                }
            }
        }
        true
    }
}

impl<R: Read> Iterator for Samples<'_, R> {
    type Item = Result<Sample, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if !self.step() {
                return self.queue.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_run_to_the_first_dot_of_the_file_name() {
        assert_eq!(
            key_and_extension("000123.jpg"),
            Some(("000123", "jpg".into()))
        );
        assert_eq!(
            key_and_extension("a.b/c/000123.seg.PNG"),
            Some(("a.b/c/000123", "seg.png".into()))
        );
        assert_eq!(key_and_extension("dir/"), None);
        assert_eq!(key_and_extension("noext"), None);
        assert_eq!(key_and_extension("d/.hidden.jpg"), None);
        assert_eq!(key_and_extension("k."), Some(("k", String::new())));
    }

    #[test]
    fn unsafe_and_meta_names() {
        assert!(unsafe_name("../../x.jpg"));
        assert!(unsafe_name("/etc/x"));
        assert!(unsafe_name("a/../b.jpg"));
        assert!(!unsafe_name("a/..b.jpg"));
        assert!(!unsafe_name("./a.jpg"));
        assert!(is_meta("__index__"));
        assert!(is_meta("__meta__/x.json"));
        assert!(!is_meta("__x.jpg"));
    }
}
