//! Reading the checkpoints people download, without knowing any model.
//!
//! `clip-checkpoint` finds and reads the files of a checkpoint as they come from the HF hub,
//! OpenAI or open_clip: [`TensorStore`] holds every tensor of a `.safetensors` file or of a
//! sharded checkpoint (`model.safetensors.index.json`) by name and reads each one on its own
//! as `f32` (from F32, F16 or BF16); [`Tensors`] is a view of it under a name prefix, the
//! way candle's `VarBuilder::pp` walks a checkpoint's key tree. [`resolve`] turns a hub id
//! into its snapshot in the local HF cache, [`open_weights`] picks the weight files of a
//! directory, and [`read_json`] reads `config.json`-sized files with a size limit.
//!
//! The design decision that shapes it: everything read from disk is checked before it is
//! trusted. A safetensors header is capped before it is read, its offsets and sizes are
//! validated against the file's real length, a duplicated name is refused, and a shape is
//! checked before a tensor's bytes are read, so a hostile file ends in a
//! [`CheckpointError`] naming the file and the problem, never in a panic or an allocation
//! the file merely claims.
//!
//! It does **not** know any model: which names a CLIP tower has, what shapes its config
//! calls for, or how layers are built is the business of the crates above (`clip-vision`,
//! `clip-text`). It never downloads anything and never unpickles: PyTorch `.bin` / `.pt`
//! files are refused with a pointer to the conversion script.
//!
//! ```no_run
//! use clip_checkpoint::{open_weights, resolve};
//! let dir = resolve("openai/clip-vit-base-patch32".as_ref())?; // snapshot in the HF cache
//! let store = open_weights(&dir)?;
//! let tower = store.pp("vision_model");
//! let cls = tower.tensor("embeddings.class_embedding", &[768])?;
//! # Ok::<(), clip_checkpoint::CheckpointError>(())
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod hub;
pub mod json;
pub mod locate;
pub mod safetensors;
pub mod store;

pub use error::{CheckpointError, CheckpointResult};
pub use json::{read_json, read_json_if_present, MAX_CONFIG_BYTES};
pub use locate::{open_weights, resolve, WEIGHT_FILES};
pub use safetensors::SafetensorsFile;
pub use store::{TensorStore, Tensors};
