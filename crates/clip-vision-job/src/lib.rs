//! Embedding jobs at scale for clip-vision: webdataset shards in, clip-retrieval's layout
//! out, one partition per `--shard i/n`.
//!
//! - **Inputs** ([`units`]): image files and folders, or webdataset tar shards as
//!   img2dataset writes them ([`webdataset::ShardReader`], brace patterns through
//!   [`webdataset::expand_braces`]), cut into units by a deterministic rule.
//! - **Output** ([`partition`]): `img_emb/img_emb_{i}.npy` (float16 by default, [`npy`]),
//!   `metadata/metadata_{i}.parquet` ([`metadata`]), `text_emb/` with captions, and a done
//!   marker per partition ([`record::DoneMarker`]) — what embedding-reader, autofaiss and
//!   clip-back read.
//! - **A run** ([`Job::run`]) takes one partition: it resumes the partition's journal
//!   (only the batch in flight at a kill is redone), skips a partition already done, and
//!   refuses an output directory made with other settings, naming what differs.
//!
//! The design decision that shapes it: the partition a unit belongs to depends only on the
//! inputs and `n`, never on timing, so any scheduler (a shell loop, Kubernetes indexed
//! jobs, Spark, Ray through the Python package) can spread the shards, rerun failures and
//! run a straggler twice; the last complete writer of a partition wins and no reader ever
//! sees a half-written file. A shard is untrusted input read as a stream: never loaded
//! whole, never unpacked, no member name used as a path, every member bounded by
//! [`webdataset::Limits`]; a bad member costs its sample, damage to the archive ends that
//! shard with one error naming the offset.
//!
//! It does **not** schedule anything itself, read compressed (`.tar.gz`) shards or fetch
//! remote URLs (give [`webdataset::ShardReader::new`] any `Read`), or decode images (the
//! [`clip_vision::ImageEmbedder`] does).

#![forbid(unsafe_code)]

mod error;
pub mod metadata;
pub mod npy;
pub mod partition;
pub mod record;
mod run;
pub mod units;
pub mod walk;
pub mod webdataset;

pub use error::{JobError, MemberProblem};
pub use npy::Dtype;
pub use run::{Event, Job, Report};
pub use units::{Inputs, Shard, Unit, DEFAULT_FILES_PER_UNIT};
