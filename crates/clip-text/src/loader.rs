//! Checkpoints on disk → [`ClipTextEncoder`], by one path.
//!
//! The two namings of a text tower, mapped onto one set of roles:
//!
//! ```text
//! role              HF transformers (text_model., or none)     OpenAI / open_clip (root)
//! token embedding   embeddings.token_embedding.weight          token_embedding.weight   [V, D]
//! positions         embeddings.position_embedding.weight       positional_embedding     [P, D]
//! blocks            encoder.layers.{i}.                        transformer.resblocks.{i}.
//!   LayerNorm 1     layer_norm1                                ln_1                     [D]
//!   q, k, v         self_attn.{q,k,v}_proj (three [D, D])      attn.in_proj_{weight,bias} ([3D, D])
//!   output proj.    self_attn.out_proj                         attn.out_proj            [D, D]
//!   LayerNorm 2     layer_norm2                                ln_2                     [D]
//!   MLP in / out    mlp.fc1 / mlp.fc2                          mlp.c_fc / mlp.c_proj    [I, D] / [D, I]
//! final LayerNorm   final_layer_norm                           ln_final                 [D]
//! projection        text_projection.weight (root, [E, D])      text_projection ([D, E], x · P)
//! ```
//!
//! The config comes from `config.json` (a `CLIPConfig`'s `text_config` and `projection_dim`,
//! or a `CLIPTextConfig`), `open_clip_config.json` (`text_cfg`, `quick_gelu`), or, for
//! OpenAI's files that come without one, the tensor shapes (heads = width / 64, QuickGELU, as
//! every OpenAI tower has; [`TextLoadOptions`] overrides both). The tokenizer is read from the
//! checkpoint's directory. Vision tensors are never read.

use crate::config::{ClipTextConfig, Pooling};
use crate::encoder::{ClipTextEncoder, ClipTextTower};
use crate::error::{TextError, TextResult};
use crate::tokenizer::ClipTokenizer;
use clip_checkpoint::{open_weights, read_json_if_present, resolve, TensorStore, Tensors};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vit_encoder::{ViTBlock, ViTEncoder};
use vit_layers::{LayerNorm, Linear, Mlp, MultiHeadAttention};
use vit_tensor::Activation;

/// What a checkpoint may not say itself, given by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextLoadOptions {
    /// The MLP activation; overrides the config (OpenAI's files have none: QuickGELU).
    pub activation: Option<Activation>,
    /// Attention heads, for OpenAI-named weights without a config (default width / 64).
    pub num_attention_heads: Option<usize>,
}

/// How a checkpoint names its text tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextNaming {
    /// transformers: `text_model.*` (`CLIPModel`, `CLIPTextModelWithProjection`) and
    /// `text_projection.weight`.
    Transformers,
    /// transformers' `CLIPTextModel` saved alone: the same names without `text_model.`.
    TransformersUnprefixed,
    /// OpenAI / open_clip: `token_embedding`, `transformer.resblocks.*`, `ln_final`.
    OpenAi,
}

impl TextNaming {
    /// The naming of `store`'s text tower, if it holds one.
    pub fn detect(store: &TensorStore) -> Option<Self> {
        if store.contains("text_model.embeddings.token_embedding.weight") {
            Some(Self::Transformers)
        } else if store.contains("embeddings.token_embedding.weight") {
            Some(Self::TransformersUnprefixed)
        } else if store.contains("token_embedding.weight") {
            Some(Self::OpenAi)
        } else {
            None
        }
    }

    fn is_transformers(self) -> bool {
        self != Self::OpenAi
    }
}

impl ClipTextEncoder {
    /// The text tower of a checkpoint (directory, `.safetensors` file, or hub id in the
    /// local HF cache) with the tokenizer of its directory.
    ///
    /// # Errors
    /// [`TextError::NoTextTower`] for a checkpoint without one; [`TextError::MissingTokenizer`]
    /// naming the files that are missing; as [`ClipTextTower::load_store`].
    pub fn from_pretrained(path: impl AsRef<Path>) -> TextResult<Self> {
        Self::load(path.as_ref(), &TextLoadOptions::default())
    }

    /// [`ClipTextEncoder::from_pretrained`] with options.
    ///
    /// # Errors
    /// As [`ClipTextEncoder::from_pretrained`].
    pub fn load(path: &Path, options: &TextLoadOptions) -> TextResult<Self> {
        let resolved = resolve(path)?;
        let store = open_weights(&resolved)?;
        Self::load_store(&store, &resolved, options)
    }

    /// The text tower of an opened store and the tokenizer of its directory; `resolved`
    /// is the file or directory the store came from.
    ///
    /// # Errors
    /// As [`ClipTextTower::load_store`], and the tokenizer's errors.
    pub fn load_store(
        store: &TensorStore,
        resolved: &Path,
        options: &TextLoadOptions,
    ) -> TextResult<Self> {
        let tower = ClipTextTower::load_store(store, resolved, options)?;
        let tokenizer = ClipTokenizer::from_pretrained(checkpoint_dir(resolved))?;
        Self::from_parts(tower, tokenizer)
    }
}

impl ClipTextTower {
    /// The text tower of a checkpoint, without its tokenizer (for ids made elsewhere).
    ///
    /// # Errors
    /// As [`ClipTextTower::load_store`].
    pub fn from_pretrained(path: impl AsRef<Path>, options: &TextLoadOptions) -> TextResult<Self> {
        let resolved = resolve(path.as_ref())?;
        let store = open_weights(&resolved)?;
        Self::load_store(&store, &resolved, options)
    }

    /// The text tower of an opened store; `resolved` is the file or directory it came from.
    /// Config files are read from a directory only (a lone `.safetensors` file is read with
    /// OpenAI's rules; an HF-named one needs its directory), as the vision loader does.
    ///
    /// # Errors
    /// [`TextError::NoTextTower`]; [`TextError::InvalidConfig`] for a config that does not
    /// describe the tensors; [`TextError::Checkpoint`] for a missing or misshapen tensor.
    pub fn load_store(
        store: &TensorStore,
        resolved: &Path,
        options: &TextLoadOptions,
    ) -> TextResult<Self> {
        let naming = TextNaming::detect(store).ok_or_else(|| TextError::NoTextTower {
            path: resolved.to_path_buf(),
        })?;
        let dir = resolved.is_dir().then_some(resolved);
        let (mut cfg, pooling) = config_for(store, dir, naming)?;
        if let Some(act) = options.activation {
            cfg.hidden_act = act.hf_name().into();
        }
        if let Some(h) = options.num_attention_heads {
            cfg.num_attention_heads = h;
        }
        build(store, naming, cfg, pooling)
    }
}

/// The directory of a checkpoint path (itself, or a file's parent).
fn checkpoint_dir(resolved: &Path) -> PathBuf {
    if resolved.is_dir() {
        resolved.to_path_buf()
    } else {
        resolved
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// The config of the tower and its pooling rule.
fn config_for(
    store: &TensorStore,
    dir: Option<&Path>,
    naming: TextNaming,
) -> TextResult<(ClipTextConfig, Pooling)> {
    let root = store.root();
    match naming {
        TextNaming::Transformers | TextNaming::TransformersUnprefixed => {
            // As the vision loader: HF-named weights are read with their directory's config.
            let Some(dir) = dir else {
                return Err(TextError::config(
                    root,
                    "HF-named weights need the config.json of their directory: pass the directory",
                ));
            };
            let path = dir.join("config.json");
            let mut cfg = match read_json_if_present(&path)? {
                Some(json) => hf_config(&json, &path)?,
                None => infer(store, naming, root)?,
            };
            if let Ok([e, _]) = store.shape("text_projection.weight") {
                cfg.projection_dim = *e;
            }
            let pooling = cfg.pooling();
            Ok((cfg, pooling))
        }
        TextNaming::OpenAi => {
            let mut cfg = infer(store, naming, root)?;
            let path = dir.map(|d| d.join("open_clip_config.json"));
            if let Some(json) = path
                .as_deref()
                .map(read_json_if_present)
                .transpose()?
                .flatten()
            {
                let path = path.as_deref().unwrap_or(root);
                let model = json.get("model_cfg").unwrap_or(&json);
                let text_cfg = model.get("text_cfg").cloned().unwrap_or(Value::Null);
                refuse_open_clip_features(model, &text_cfg, path)?;
                let quick = model
                    .get("quick_gelu")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                cfg.hidden_act = if quick { "quick_gelu" } else { "gelu" }.into();
                // open_clip's CLIPTextCfg default is 8 heads, whatever the width.
                cfg.num_attention_heads = match text_cfg.get("heads") {
                    None => 8,
                    Some(h) => h
                        .as_u64()
                        .and_then(|h| usize::try_from(h).ok())
                        .ok_or_else(|| {
                            TextError::config(path, format!("text_cfg.heads = {h} is not a count"))
                        })?,
                };
            }
            // OpenAI and open_clip pool at the argmax of the ids.
            Ok((cfg, Pooling::Argmax))
        }
    }
}

/// open_clip text-tower settings that change the computation in ways this tower does not
/// implement: refused, naming the key, rather than computed wrong.
fn refuse_open_clip_features(model: &Value, text_cfg: &Value, path: &Path) -> TextResult<()> {
    let refuse = |key: &str, value: &Value| {
        Err(TextError::config(
            path,
            format!("{key} = {value}: open_clip text towers with it are not supported"),
        ))
    };
    if let Some(v) = model
        .get("custom_text")
        .filter(|v| v.as_bool() == Some(true))
    {
        return refuse("custom_text", v);
    }
    let set = |key: &str| text_cfg.get(key).filter(|v| !v.is_null());
    if let Some(v) = set("hf_model_name") {
        return refuse("text_cfg.hf_model_name", v);
    }
    if let Some(v) = set("ls_init_value") {
        return refuse("text_cfg.ls_init_value", v);
    }
    for key in [
        "embed_cls",
        "no_causal_mask",
        "proj_bias",
        "final_ln_after_pool",
        "qk_norm",
        "scaled_cosine_attn",
        "scale_heads",
        "scale_attn_inner",
        "scale_attn",
        "scale_fc",
    ] {
        if let Some(v) = set(key).filter(|v| v.as_bool() != Some(false)) {
            return refuse(&format!("text_cfg.{key}"), v);
        }
    }
    for (key, default) in [("pool_type", "argmax"), ("proj_type", "linear")] {
        if let Some(v) = set(key).filter(|v| v.as_str() != Some(default)) {
            return refuse(&format!("text_cfg.{key}"), v);
        }
    }
    if let Some(v) = set("block_type").filter(|v| v.as_str() != Some("default")) {
        return refuse("text_cfg.block_type", v);
    }
    for key in ["norm_kwargs", "act_kwargs"] {
        if let Some(v) = set(key).filter(|v| v.as_object().is_none_or(|o| !o.is_empty())) {
            return refuse(&format!("text_cfg.{key}"), v);
        }
    }
    Ok(())
}

/// A `config.json`: a `CLIPConfig` (text_config nested, projection_dim at the top) or a
/// `CLIPTextConfig`.
fn hf_config(json: &Value, path: &Path) -> TextResult<ClipTextConfig> {
    let (text, top_projection) = match json.get("text_config") {
        Some(text) => (text.clone(), json.get("projection_dim").cloned()),
        None => (json.clone(), None),
    };
    let mut cfg: ClipTextConfig = serde_json::from_value(text)
        .map_err(|e| TextError::config(path, format!("not a CLIP text config: {e}")))?;
    if let Some(p) = top_projection.and_then(|v| v.as_u64()) {
        cfg.projection_dim = usize::try_from(p)
            .map_err(|_| TextError::config(path, "projection_dim is out of range"))?;
    }
    Ok(cfg)
}

/// The config a checkpoint's shapes imply (OpenAI's rules where shapes are silent).
fn infer(store: &TensorStore, naming: TextNaming, root: &Path) -> TextResult<ClipTextConfig> {
    let names = Names::of(naming);
    let t = store.pp(names.prefix);
    let dims = |name: &str| -> TextResult<Vec<usize>> { Ok(t.shape(name)?.to_vec()) };
    let bad = |what: &str, got: &[usize]| {
        TextError::config(root, format!("{what} has shape {got:?}, expected 2-D"))
    };
    let tok = dims(names.token)?;
    let &[vocab_size, hidden_size] = tok.as_slice() else {
        return Err(bad(names.token, &tok));
    };
    let pos = dims(names.positions)?;
    let &[max_position_embeddings, _] = pos.as_slice() else {
        return Err(bad(names.positions, &pos));
    };
    let fc1 = dims(&format!("{}.0.{}.weight", names.blocks, names.fc1))?;
    let &[intermediate_size, _] = fc1.as_slice() else {
        return Err(bad(names.fc1, &fc1));
    };
    let mut layers = 0;
    while t.contains(&format!("{}.{layers}.{}.weight", names.blocks, names.norm1)) {
        layers += 1;
    }
    let projection_dim = match naming {
        TextNaming::OpenAi => store
            .shape("text_projection")
            .ok()
            .and_then(|s| s.get(1).copied()),
        TextNaming::Transformers | TextNaming::TransformersUnprefixed => store
            .shape("text_projection.weight")
            .ok()
            .and_then(|s| s.first().copied()),
    };
    Ok(ClipTextConfig {
        vocab_size,
        hidden_size,
        intermediate_size,
        projection_dim: projection_dim.unwrap_or(hidden_size),
        num_hidden_layers: layers,
        num_attention_heads: (hidden_size / 64).max(1),
        max_position_embeddings,
        // Without a config the end token is the largest id: pool at the argmax.
        eos_token_id: None,
        ..ClipTextConfig::default()
    })
}

/// The names of one naming scheme.
struct Names {
    prefix: &'static str,
    token: &'static str,
    positions: &'static str,
    blocks: &'static str,
    norm1: &'static str,
    norm2: &'static str,
    fused_qkv: bool,
    out_proj: &'static str,
    fc1: &'static str,
    fc2: &'static str,
    final_norm: &'static str,
}

impl Names {
    fn of(naming: TextNaming) -> Self {
        match naming {
            TextNaming::Transformers | TextNaming::TransformersUnprefixed => Self {
                prefix: if naming == TextNaming::Transformers {
                    "text_model"
                } else {
                    ""
                },
                token: "embeddings.token_embedding.weight",
                positions: "embeddings.position_embedding.weight",
                blocks: "encoder.layers",
                norm1: "layer_norm1",
                norm2: "layer_norm2",
                fused_qkv: false,
                out_proj: "self_attn.out_proj",
                fc1: "mlp.fc1",
                fc2: "mlp.fc2",
                final_norm: "final_layer_norm",
            },
            TextNaming::OpenAi => Self {
                prefix: "",
                token: "token_embedding.weight",
                positions: "positional_embedding",
                blocks: "transformer.resblocks",
                norm1: "ln_1",
                norm2: "ln_2",
                fused_qkv: true,
                out_proj: "attn.out_proj",
                fc1: "mlp.c_fc",
                fc2: "mlp.c_proj",
                final_norm: "ln_final",
            },
        }
    }
}

fn linear(t: &Tensors<'_>, name: &str, in_f: usize, out_f: usize) -> TextResult<Linear> {
    let weight = t.tensor(&format!("{name}.weight"), &[out_f, in_f])?;
    let bias = t.tensor(&format!("{name}.bias"), &[out_f])?;
    Ok(Linear::new(weight, Some(bias), in_f, out_f)?)
}

fn layer_norm(t: &Tensors<'_>, name: &str, dim: usize, eps: f32) -> TextResult<LayerNorm> {
    let weight = t.tensor(&format!("{name}.weight"), &[dim])?;
    let bias = t.tensor(&format!("{name}.bias"), &[dim])?;
    Ok(LayerNorm::new(weight, bias, eps)?)
}

/// The tower `cfg` describes, read by role.
fn build(
    store: &TensorStore,
    naming: TextNaming,
    cfg: ClipTextConfig,
    pooling: Pooling,
) -> TextResult<ClipTextTower> {
    let root = store.root().to_path_buf();
    cfg.validate(&root)?;
    let names = Names::of(naming);
    let t = store.pp(names.prefix);
    let (d, i, layers_n) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
    );
    let eps = cfg.layer_norm_eps as f32;
    let activation = cfg.activation(&root)?;
    let extra = format!("{}.{layers_n}.{}.weight", names.blocks, names.norm1);
    if t.contains(&extra) {
        return Err(TextError::config(
            &root,
            format!(
                "holds {:?} but the config has {layers_n} text layers",
                t.name(&extra)
            ),
        ));
    }
    let token_embedding = t.tensor(names.token, &[cfg.vocab_size, d])?;
    let position_embedding = t.tensor(names.positions, &[cfg.max_position_embeddings, d])?;
    let mut blocks = Vec::with_capacity(layers_n);
    for l in 0..layers_n {
        let b = t.pp(&format!("{}.{l}", names.blocks));
        let qkv = if names.fused_qkv {
            Linear::new(
                b.tensor("attn.in_proj_weight", &[3 * d, d])?,
                Some(b.tensor("attn.in_proj_bias", &[3 * d])?),
                d,
                3 * d,
            )?
        } else {
            let (mut weight, mut bias) = (Vec::new(), Vec::new());
            for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] {
                weight.extend(b.tensor(&format!("{p}.weight"), &[d, d])?);
                bias.extend(b.tensor(&format!("{p}.bias"), &[d])?);
            }
            Linear::new(weight, Some(bias), d, 3 * d)?
        };
        let attn = MultiHeadAttention::from_fused(
            qkv,
            linear(&b, names.out_proj, d, d)?,
            cfg.num_attention_heads,
        )?;
        let mlp = Mlp::new(
            linear(&b, names.fc1, d, i)?,
            linear(&b, names.fc2, i, d)?,
            activation,
        )?;
        blocks.push(ViTBlock::new(
            layer_norm(&b, names.norm1, d, eps)?,
            attn,
            layer_norm(&b, names.norm2, d, eps)?,
            mlp,
        )?);
    }
    let encoder = ViTEncoder::new(blocks, layer_norm(&t, names.final_norm, d, eps)?)?;
    let e = cfg.projection_dim;
    let projection =
        match naming {
            _ if naming.is_transformers() && store.contains("text_projection.weight") => Some(
                Linear::new(store.tensor("text_projection.weight", &[e, d])?, None, d, e)?,
            ),
            // [D, E], applied as x · P: already Wᵀ of an [E, D] projection.
            TextNaming::OpenAi if store.contains("text_projection") => Some(
                Linear::from_transposed(store.tensor("text_projection", &[d, e])?, None, d, e)?,
            ),
            _ => None,
        };
    ClipTextTower::from_parts(
        cfg,
        token_embedding,
        position_embedding,
        encoder,
        projection,
        pooling,
        &root,
    )
}
