//! Checkpoints on disk → [`ClipVisionEncoder`], by one path.
//!
//! What [`load`] accepts, in the order it looks (the files are found and read by
//! `clip-checkpoint`):
//! 1. a hub id (`ORG/NAME[@REVISION]`) that is not a local path: its snapshot in the local
//!    HF cache;
//! 2. a `.safetensors` file;
//! 3. a directory holding `model.safetensors.index.json` (shards), `model.safetensors`,
//!    `open_clip_model.safetensors`, `open_clip_pytorch_model.safetensors`, or a single other
//!    `.safetensors` file — with `config.json` and/or `open_clip_config.json` beside it.
//!
//! Then: the naming (HF `vision_model.*` or OpenAI `visual.*`) is detected from the tensor
//! names ([`names`]); the config comes from `config.json` (HF), `open_clip_config.json`, or
//! the tensor shapes plus [`LoadOptions`] ([`configs`]); the caller's options override it;
//! and [`build`] reads the tensors by role, whichever the naming. Text-tower tensors,
//! `position_ids` and `logit_scale` are never read. Weights stored as F32, F16 or BF16 are
//! converted to `f32`.

pub mod build;
pub mod configs;
pub mod names;

use crate::config::ClipVisionConfig;
use crate::encoder::ClipVisionEncoder;
use crate::error::{VisionError, VisionResult};
pub use clip_checkpoint::resolve;
use clip_checkpoint::{open_weights, read_json, TensorStore};
use std::path::{Path, PathBuf};
use vit_tensor::{Activation, Precision};

/// What a checkpoint may not say itself, given by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The MLP activation. Overrides the config file; required for OpenAI-named weights that
    /// come without one (OpenAI's use `QuickGelu`, most LAION ones `Gelu`).
    pub activation: Option<Activation>,
    /// Attention heads, for OpenAI-named weights without a config (default: width / 64, as
    /// every OpenAI tower has).
    pub num_attention_heads: Option<usize>,
    /// The precision the blocks' linear layers (attention projections, MLP) are held and
    /// run in; each weight is converted as it is read, so no f32 copy of the tower is ever
    /// held beside it. Patch embedding, LayerNorms, attention itself and the projection stay
    /// f32. Default [`Precision::F32`] (the checkpoint's values).
    pub precision: Precision,
}

/// What a checkpoint holds, without building a model from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The file or directory loaded (a hub id resolved to its snapshot).
    pub resolved: PathBuf,
    /// `"transformers"` (`vision_model.*`), `"openai"` (`visual.*`) or `"unknown"`.
    pub naming: &'static str,
    /// Number of tensors of each stored dtype, over the whole checkpoint (`"F16" → 212`).
    pub dtypes: std::collections::BTreeMap<String, usize>,
    /// [`TensorStore::fingerprint`] of the weights: changes when any tensor's name, dtype,
    /// shape or offset, or a file's size, changes.
    pub fingerprint: String,
}

/// Opens a checkpoint's weights and reports its naming, stored dtypes and fingerprint.
///
/// # Errors
/// As [`load`], for the weight files.
pub fn inspect(path: &Path) -> VisionResult<Inspection> {
    let resolved = resolve(path)?;
    let store = open_weights(&resolved)?;
    let naming = names::detect(&store).map_or("unknown", |(n, _)| n.scheme);
    Ok(Inspection {
        dtypes: store.dtype_counts(),
        fingerprint: store.fingerprint(),
        resolved,
        naming,
    })
}

/// Loads a checkpoint (see the module docs for what `path` may be).
///
/// # Errors
/// [`VisionError::Checkpoint`] when files are missing, unreadable, not JSON, or hold other
/// tensors than the config calls for; [`VisionError::InvalidConfig`] /
/// [`VisionError::UnknownActivation`] / [`VisionError::Json`] (a value of the wrong type)
/// naming the config file.
pub fn load(path: &Path, opts: &LoadOptions) -> VisionResult<ClipVisionEncoder> {
    let path = resolve(path)?;
    let store = open_weights(&path)?;
    load_store(&store, path.is_dir().then_some(path.as_path()), opts)
}

/// Builds the tower from an opened store; `dir` is the checkpoint directory holding its
/// config files (`None` for a lone `.safetensors` file).
///
/// # Errors
/// As [`load`].
pub fn load_store(
    store: &TensorStore,
    dir: Option<&Path>,
    opts: &LoadOptions,
) -> VisionResult<ClipVisionEncoder> {
    let Some((naming, tower)) = names::detect(store) else {
        return Err(VisionError::Checkpoint(clip_checkpoint::CheckpointError::MissingTensor {
            path: store.root().to_path_buf(),
            name: "vision_model.embeddings.patch_embedding.weight (HF) or visual.conv1.weight (OpenAI)"
                .into(),
        }));
    };
    let (config_file, mut cfg, pre_norm) = if naming == names::HF {
        let config_path = hf_config_path(store, dir)?;
        let cfg = configs::from_hf_config(&config_path, &read_json(&config_path)?)?;
        (config_path, cfg, true)
    } else {
        match dir
            .map(|d| d.join("open_clip_config.json"))
            .filter(|p| p.is_file())
        {
            Some(config_path) => {
                let json = read_json(&config_path)?;
                let (cfg, extras) = configs::from_open_clip_config(&config_path, &json)
                    .map_err(|e| e.in_file(&config_path))?;
                (config_path, cfg, !extras.no_ln_pre)
            }
            None => {
                // Config errors name the file they came from: here, the weights.
                let root = store.root().to_path_buf();
                let cfg = configs::infer_from_shapes(&tower, &naming, opts)
                    .map_err(|e| e.in_file(&root))?;
                (
                    root,
                    cfg,
                    tower.contains(&format!("{}.weight", naming.pre_norm)),
                )
            }
        }
    };
    apply(&mut cfg, opts);
    build::build(&tower, &naming, cfg, pre_norm, opts.precision)
        .map_err(|e| e.in_file(&config_file))
}

/// The `config.json` HF-named weights need.
fn hf_config_path(store: &TensorStore, dir: Option<&Path>) -> VisionResult<PathBuf> {
    let dir = dir.ok_or_else(|| {
        VisionError::checkpoint(
            store.root(),
            "HF-named weights need the config.json of their directory: pass the directory",
        )
    })?;
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(VisionError::checkpoint(
            dir,
            "HF-named weights but no config.json beside them",
        ));
    }
    Ok(config_path)
}

/// The caller's options take precedence over the config file.
fn apply(cfg: &mut ClipVisionConfig, opts: &LoadOptions) {
    if let Some(act) = opts.activation {
        cfg.hidden_act = act.hf_name().into();
    }
    if let Some(heads) = opts.num_attention_heads {
        cfg.num_attention_heads = heads;
    }
}
