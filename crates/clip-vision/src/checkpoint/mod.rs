//! Checkpoints on disk → [`ClipVisionEncoder`](crate::ClipVisionEncoder).
//!
//! What [`load`] accepts, in the order it looks:
//! 1. a hub id (`ORG/NAME[@REVISION]`) that is not a local path: its snapshot in the local
//!    HF cache ([`hub`]);
//! 2. a `.safetensors` file;
//! 3. a directory holding `model.safetensors.index.json` (shards), `model.safetensors`,
//!    `open_clip_model.safetensors`, `open_clip_pytorch_model.safetensors`, or a single other
//!    `.safetensors` file — with `config.json` and/or `open_clip_config.json` beside it.
//!
//! The naming (HF `vision_model.*` or OpenAI `visual.*`) is detected from the tensor names;
//! text-tower tensors, `position_ids` and `logit_scale` are never read. Weights stored as
//! F32, F16 or BF16 are converted to `f32`.
//!
//! - [`safetensors`]: one file, validated, read tensor by tensor.
//! - [`store`]: every tensor of a checkpoint by name, across shards.
//! - [`config_files`]: `config.json` / `open_clip_config.json` → [`ClipVisionConfig`].
//! - [`hf`], [`openai`]: the two naming schemes → layers.
//! - [`hub`]: hub ids → cache snapshots.

pub mod config_files;
pub mod hf;
pub mod hub;
pub mod openai;
pub mod safetensors;
pub mod store;

use crate::config::ClipVisionConfig;
use crate::encoder::ClipVisionEncoder;
use crate::error::{VisionError, VisionResult};
use std::path::{Path, PathBuf};
use store::TensorStore;
use vit_tensor::Activation;

/// What a checkpoint may not say itself, given by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The MLP activation. Overrides the config file; required for OpenAI-named weights that
    /// come without one (OpenAI's use `QuickGelu`, most LAION ones `Gelu`).
    pub activation: Option<Activation>,
    /// Attention heads, for OpenAI-named weights without a config (default: width / 64, as
    /// every OpenAI tower has).
    pub num_attention_heads: Option<usize>,
}

/// Weight files a directory may hold, in the order they are preferred.
const WEIGHT_FILES: [&str; 3] = [
    "model.safetensors",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
];

/// What a checkpoint holds, without building a model from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The file or directory loaded (a hub id resolved to its snapshot).
    pub resolved: PathBuf,
    /// `"transformers"` (`vision_model.*`) or `"openai"` (`visual.*`).
    pub naming: &'static str,
    /// Number of tensors of each stored dtype, over the whole checkpoint (`"F16" → 212`).
    pub dtypes: std::collections::BTreeMap<String, usize>,
}

/// Opens a checkpoint's weights and reports its naming and stored dtypes.
///
/// # Errors
/// As [`load`], for the weight files.
pub fn inspect(path: &Path) -> VisionResult<Inspection> {
    let resolved = resolve(path)?;
    let store = open_weights(&resolved)?;
    let naming = if hf::detect(&store) {
        "transformers"
    } else if openai::detect(&store).is_some() {
        "openai"
    } else {
        "unknown"
    };
    Ok(Inspection {
        dtypes: store.dtype_counts(),
        resolved,
        naming,
    })
}

fn open_weights(path: &Path) -> VisionResult<TensorStore> {
    if path.is_file() {
        TensorStore::open_file(path)
    } else {
        open_dir_weights(path)
    }
}

/// Loads a checkpoint (see the module docs for what `path` may be).
pub fn load(path: &Path, opts: &LoadOptions) -> VisionResult<ClipVisionEncoder> {
    let path = resolve(path)?;
    let store = open_weights(&path)?;
    let dir = path.is_dir().then_some(path.as_path());

    if hf::detect(&store) {
        let dir = dir.ok_or_else(|| {
            VisionError::checkpoint(
                &path,
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
        let mut cfg =
            config_files::from_hf_config(&config_path, &config_files::read_json(&config_path)?)?;
        apply(&mut cfg, opts);
        return hf::load(&store, cfg).map_err(|e| e.in_file(&config_path));
    }
    if let Some(prefix) = openai::detect(&store) {
        let open_clip = dir
            .map(|d| d.join("open_clip_config.json"))
            .filter(|p| p.is_file());
        // Config errors name the file they came from: the open_clip config, else the weights.
        let source = open_clip
            .clone()
            .unwrap_or_else(|| store.root().to_path_buf());
        let build = || -> VisionResult<ClipVisionEncoder> {
            let (mut cfg, no_ln_pre) = match &open_clip {
                Some(config_path) => {
                    let json = config_files::read_json(config_path)?;
                    let (cfg, extras) = config_files::from_open_clip_config(config_path, &json)?;
                    (cfg, extras.no_ln_pre)
                }
                None => {
                    let cfg = openai::infer_config(&store, prefix, opts)?;
                    (cfg, !store.contains(&format!("{prefix}ln_pre.weight")))
                }
            };
            apply(&mut cfg, opts);
            openai::load(&store, prefix, cfg, no_ln_pre)
        };
        return build().map_err(|e| e.in_file(&source));
    }
    Err(VisionError::MissingWeight {
        path: store.root().to_path_buf(),
        name: "vision_model.embeddings.patch_embedding.weight (HF) or visual.conv1.weight (OpenAI)"
            .into(),
    })
}

/// A stable identity of a checkpoint's weights: `fnv1a64:` and 16 hex digits.
///
/// `path` is resolved as [`load`] resolves it (a hub id to its snapshot) and its weights are
/// opened (and validated) as [`load`] opens them. The hash is FNV-1a (64-bit) over, for each
/// `.safetensors` file in sorted shard order: the file size (8 bytes, little-endian) and the
/// file's first `8 + header_len` bytes (the header length and the JSON header naming every
/// tensor's dtype, shape and byte range). It reads no tensor data, so it is instant on
/// multi-GB checkpoints; it changes with any re-export, dtype, shape, size or metadata
/// change, but not with an edit of tensor values that keeps the header and size (use a
/// content hash for that). `config.json` is not part of it.
///
/// # Errors
/// As [`load`], for resolving and opening the weight files; [`VisionError::Io`] for a read
/// that fails.
pub fn fingerprint(path: &Path) -> VisionResult<String> {
    use std::io::Read;
    let resolved = resolve(path)?;
    let store = open_weights(&resolved)?;
    let root = store.root();
    let files: Vec<PathBuf> = if root.is_file() {
        vec![root.to_path_buf()]
    } else {
        // Only a sharded store is rooted at its directory: the shards named by the index.
        let index = root.join("model.safetensors.index.json");
        let json = config_files::read_json(&index)?;
        let mut names: Vec<String> = json
            .get("weight_map")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_unstable();
        names.dedup();
        names.iter().map(|n| root.join(n)).collect()
    };
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    for file in &files {
        let mut f = std::fs::File::open(file).map_err(|e| VisionError::io(file, e))?;
        let size = f.metadata().map_err(|e| VisionError::io(file, e))?.len();
        let mut len_bytes = [0u8; 8];
        f.read_exact(&mut len_bytes)
            .map_err(|e| VisionError::io(file, e))?;
        // Opening the store above checked the length against the file and the header cap.
        let header_len = u64::from_le_bytes(len_bytes).min(safetensors::MAX_HEADER_BYTES);
        let mut header = vec![0u8; header_len as usize];
        f.read_exact(&mut header)
            .map_err(|e| VisionError::io(file, e))?;
        eat(&size.to_le_bytes());
        eat(&len_bytes);
        eat(&header);
    }
    Ok(format!("fnv1a64:{hash:016x}"))
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

/// A local path as it is, or a hub id (`ORG/NAME[@REV]`) resolved to its snapshot directory
/// in the HF cache.
///
/// # Errors
/// [`VisionError::Io`] (not found) for a path that does not exist and is no hub id;
/// [`VisionError::Checkpoint`] for a hub id that is not in the cache.
pub fn resolve(path: &Path) -> VisionResult<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let text = path.to_string_lossy();
    if hub::looks_like_repo_id(&text) {
        let cache = hub::cache_dir().ok_or_else(|| {
            VisionError::checkpoint(
                path,
                "not a local path, and no HF cache (HF_HUB_CACHE, HF_HOME or HOME) to look in",
            )
        })?;
        return hub::resolve_in(&cache, &text);
    }
    Err(VisionError::io(
        path,
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

/// The weights of a checkpoint directory.
fn open_dir_weights(dir: &Path) -> VisionResult<TensorStore> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return TensorStore::open_sharded(&index);
    }
    if let Some(file) = WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    {
        return TensorStore::open_file(&file);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| VisionError::io(dir, e))?;
    let mut safetensors = Vec::new();
    let mut pickles = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") {
            safetensors.push(entry.path());
        } else if name.ends_with(".bin") || name.ends_with(".pth") || name.ends_with(".pt") {
            pickles.push(name);
        }
    }
    match safetensors.len() {
        1 => TensorStore::open_file(&safetensors[0]),
        0 if !pickles.is_empty() => Err(VisionError::checkpoint(
            dir,
            format!("only PyTorch pickle weights ({}): convert them to safetensors, pickles are not loaded", pickles.join(", ")),
        )),
        0 => Err(VisionError::checkpoint(dir, "no .safetensors weights in this directory")),
        _ => {
            safetensors.sort();
            Err(VisionError::checkpoint(
                dir,
                format!("several .safetensors files and none of {WEIGHT_FILES:?}: pass the file to load"),
            ))
        }
    }
}

/// Refuses a checkpoint holding a block numbered `n_layers` (more blocks than the config
/// says): a disagreement, not something to ignore.
pub(crate) fn check_no_extra_block(
    store: &TensorStore,
    blocks: &str,
    probe: &str,
    n_layers: usize,
) -> VisionResult<()> {
    let extra = format!("{blocks}.{n_layers}.{probe}");
    if store.contains(&extra) {
        return Err(VisionError::checkpoint(
            store.root(),
            format!("holds {extra:?} but the config has {n_layers} layers"),
        ));
    }
    Ok(())
}
