//! Embedding jobs at scale for clip-vision: inputs and outputs beyond a folder of files.
//!
//! Today it reads **webdataset tar shards** as img2dataset writes them
//! ([`webdataset::ShardReader`], [`webdataset::expand_braces`]); clip-retrieval's output
//! layout (`img_emb/`, `metadata/`) and `--shard i/n` splitting come later. The
//! `clip-vision` CLI and the Python / Ray package are both thin clients of it.
//!
//! The design decision that shapes it: a shard is untrusted input read as a stream — never
//! loaded whole, never unpacked, no member name ever used as a path, every member bounded
//! by [`webdataset::Limits`] — and a bad member costs its sample (a [`JobError`] item),
//! while damage to the archive itself ends that shard with one error naming the offset.
//!
//! It does **not** embed anything itself (hand [`webdataset::Sample::image`] bytes to
//! `clip_vision::ImageEmbedder::embed_bytes`), decode images, write outputs, read
//! compressed (`.tar.gz`) shards, or fetch remote URLs (give [`webdataset::ShardReader::new`]
//! any `Read`).

#![forbid(unsafe_code)]

mod error;
pub mod metadata;
pub mod npy;
pub mod webdataset;

pub use error::{JobError, MemberProblem};
