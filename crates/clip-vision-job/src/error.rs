//! `JobError`: everything `clip-vision-job` can refuse, each naming the pattern, shard,
//! key or member that was wrong.

use std::path::PathBuf;
use thiserror::Error;

/// What can go wrong expanding a shard list or reading a shard.
///
/// A shard-level error ([`JobError::ends_shard`]) is the last item a shard yields; every
/// other error costs one sample (or one member that belongs to no sample) and reading goes
/// on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JobError {
    /// A brace pattern that is malformed or expands to too many names.
    #[error("brace pattern {pattern:?}: {problem}")]
    BracePattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A shard that cannot be opened.
    #[error("{}: cannot open shard: {source}", shard.display())]
    OpenShard {
        /// The shard.
        shard: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A shard of zero bytes (a tar archive, even an empty one, holds its end blocks).
    #[error("{}: empty file, not a tar archive", shard.display())]
    EmptyShard {
        /// The shard.
        shard: PathBuf,
    },
    /// A shard that is truncated or damaged (bad header, short member, read error): the
    /// samples before the damage were yielded, the sample in flight is dropped.
    #[error(
        "{}: damaged or truncated tar, found at byte {offset}{}: {source}; \
         the samples before it were read",
        shard.display(),
        last_member.as_ref().map(|m| format!(" (after member {m:?})")).unwrap_or_default()
    )]
    ShardDamaged {
        /// The shard.
        shard: PathBuf,
        /// Bytes of the shard read when the damage was found.
        offset: u64,
        /// The last member whose header was read, if any.
        last_member: Option<String>,
        /// What the tar reader found.
        source: std::io::Error,
    },
    /// A sample that cannot be used because one of its members is bad.
    #[error(
        "{}: sample {key:?}: member {member:?} at byte {offset}: {problem}",
        shard.display()
    )]
    Sample {
        /// The shard.
        shard: Box<std::path::Path>,
        /// The sample's key.
        key: String,
        /// The bad member's name.
        member: String,
        /// Offset of the member's header in the shard.
        offset: u64,
        /// What is wrong with it.
        problem: MemberProblem,
    },
    /// A bad member that belongs to no sample (its name yields no key).
    #[error("{}: member {member:?} at byte {offset}: {problem}", shard.display())]
    Member {
        /// The shard.
        shard: Box<std::path::Path>,
        /// The member's name (lossily decoded when it is not UTF-8).
        member: String,
        /// Offset of the member's header in the shard.
        offset: u64,
        /// What is wrong with it.
        problem: MemberProblem,
    },
    /// An input that does not exist or cannot be resolved.
    #[error("{}: {source}", path.display())]
    Input {
        /// The input as given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--shard` that is not `i/n` with `0 <= i < n`.
    #[error("--shard {spec:?}: {problem}")]
    ShardSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A job without inputs.
    #[error("no inputs: give image files, folders or .tar shards")]
    NoInputs,
    /// Tar shards and image files in one job (their units are cut differently).
    #[error(
        "{} is a tar shard and {} is not: a job takes either webdataset shards or image files and folders",
        shard.display(),
        file.display()
    )]
    MixedInputs {
        /// The first shard given.
        shard: PathBuf,
        /// The first other input given.
        file: PathBuf,
    },
    /// An output file that is not what this crate writes (a torn journal line is not this:
    /// it is cut away).
    #[error("{}: {problem}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An output directory holding partitions (or a journal) made otherwise: every field
    /// that differs, `field: output vs this run`.
    #[error(
        "{}: made otherwise, refusing to mix: {}",
        path.display(),
        differences.join("; ")
    )]
    MadeOtherwise {
        /// The done marker or journal read.
        path: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// An option the job cannot run with (`--embed-captions` without a text tower, …).
    #[error("{0}")]
    Options(String),
    /// Embedding the captions failed as a whole (not one caption).
    #[error("embedding captions: {0}")]
    Captions(#[from] clip_vision::text::TextError),
    /// The caller stopped the run (its progress callback said so); the rows written so
    /// far are kept and a rerun resumes after them.
    #[error("partition {partition}: stopped after {rows} rows; run again to resume")]
    Stopped {
        /// The partition.
        partition: String,
        /// Rows kept in its journal.
        rows: u64,
    },
    /// A `.npy` file (`img_emb_{i}.npy`) that is not a 2-D C-order float16 / float32
    /// matrix.
    #[error("{}: {problem}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: crate::npy::NpyProblem,
    },
    /// A parquet file (`metadata_{i}.parquet`) that the parquet library cannot write or
    /// read.
    #[error(
        "{}: parquet: {source}",
        path.as_ref().map_or_else(|| "parquet output".to_string(), |p| p.display().to_string())
    )]
    Parquet {
        /// The file, when known (`None` for a writer handed in by the caller).
        path: Option<PathBuf>,
        /// What the parquet library found.
        source: Box<parquet::errors::ParquetError>,
    },
    /// A parquet file whose columns are not what a metadata table holds (a missing
    /// `image_path`, a column of the wrong type, a null path).
    #[error("{}: column {column:?}: {problem}", path.display())]
    ParquetColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An input or output file that cannot be opened, read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl JobError {
    /// Whether this error ends its shard (nothing after it can be trusted).
    pub fn ends_shard(&self) -> bool {
        matches!(
            self,
            Self::OpenShard { .. } | Self::EmptyShard { .. } | Self::ShardDamaged { .. }
        )
    }
}

/// What is wrong with one tar member.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MemberProblem {
    /// A name that is absolute or has a `..` component: refused, though it is only ever used
    /// as a key.
    #[error("name is absolute or has a `..` component (refused)")]
    UnsafeName,
    /// A name that is not UTF-8.
    #[error("name is not UTF-8")]
    NameNotUtf8,
    /// A member that is not a regular file (link, device, fifo, directory, sparse file…):
    /// skipped, never followed.
    #[error("a {kind}, not a regular file (skipped, never followed)")]
    NotAFile {
        /// What it is.
        kind: &'static str,
    },
    /// A member larger than the limit for its extension: not read.
    #[error("claims {size} bytes, over the limit of {limit} for .{ext} members (not read)")]
    TooLarge {
        /// The member's extension.
        ext: String,
        /// The size its header claims.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A `.txt` caption that is not UTF-8.
    #[error("caption is not UTF-8 (invalid byte at {valid_up_to})")]
    CaptionNotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// A `.json` member that does not parse.
    #[error("invalid JSON: {message}")]
    JsonInvalid {
        /// The parser's message.
        message: String,
    },
    /// A `.json` member holding something other than an object.
    #[error("JSON is {found}, not an object")]
    JsonNotObject {
        /// The kind of value found (`"an array"`, `"a string"`, …).
        found: &'static str,
    },
    /// A second member with the same key and extension in one sample.
    #[error("a second .{ext} member in the sample")]
    DuplicateExtension {
        /// The repeated extension.
        ext: String,
    },
}
