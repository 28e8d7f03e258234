//! Checkpoints on disk → [`ClipVisionEncoder`](crate::ClipVisionEncoder).
//!
//! - [`safetensors`]: one `.safetensors` file, validated, read tensor by tensor.
//! - [`store`]: all tensors of a checkpoint by name.
//! - [`hf`]: HF transformers names → layers.

pub mod hf;
pub mod safetensors;
pub mod store;

use crate::config::ClipVisionConfig;
use crate::encoder::ClipVisionEncoder;
use crate::error::{VisionError, VisionResult};
use std::path::Path;
use store::TensorStore;

/// Loads a `save_pretrained` directory: `config.json` and `model.safetensors`.
pub(crate) fn load_pretrained(dir: &Path) -> VisionResult<ClipVisionEncoder> {
    if !dir.is_dir() {
        return Err(VisionError::checkpoint(
            dir,
            "not a directory holding config.json and model.safetensors",
        ));
    }
    let cfg = ClipVisionConfig::from_file(dir.join("config.json"))?;
    let weights = dir.join("model.safetensors");
    let store = TensorStore::open_file(&weights)?;
    if !hf::detect(&store) {
        return Err(VisionError::MissingWeight {
            path: weights,
            name: "vision_model.embeddings.patch_embedding.weight".into(),
        });
    }
    hf::load(&store, cfg)
}
