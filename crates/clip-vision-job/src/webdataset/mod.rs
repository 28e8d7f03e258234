//! webdataset tar shards as img2dataset writes them (`key.jpg` + `key.txt` + `key.json`):
//! brace-expanded shard lists ([`expand_braces`]) and a streaming, hostile-input-proof
//! reader of one shard ([`ShardReader`]).
//!
//! Samples follow webdataset's rules: a member's key is its path up to the first dot of the
//! file name, its extension (lower-cased) the rest; consecutive members sharing a key form
//! one sample; the image is taken by [`IMAGE_EXTENSIONS`] priority.
//!
//! ```no_run
//! use clip_vision_job::webdataset::{expand_braces, ShardReader};
//! for shard in expand_braces("shards/{00000..00009}.tar")? {
//!     let mut reader = ShardReader::open(&shard)?;
//!     for sample in reader.samples() {
//!         match sample {
//!             Ok(s) => println!("{} {:?}", s.key, s.caption),
//!             Err(e) => eprintln!("{e}"),
//!         }
//!     }
//! }
//! # Ok::<(), clip_vision_job::JobError>(())
//! ```

mod braces;
mod shard;

pub use braces::{expand_braces, MAX_EXPANSIONS};
pub use shard::{key_and_extension, Limits, Sample, Samples, ShardReader, IMAGE_EXTENSIONS};
