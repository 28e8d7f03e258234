//! The config files a checkpoint directory may hold, read into a [`ClipVisionConfig`] — or,
//! for OpenAI weights that come without one, the config read off the tensor shapes.
//!
//! - `config.json` of transformers: a `CLIPVisionConfig` at top level, or a `CLIPConfig` with
//!   `vision_config` nested (the projection width then comes from the top level, as
//!   `CLIPModel` builds it) — or the legacy `vision_config_dict`, which transformers lets
//!   override `vision_config` entirely.
//! - `open_clip_config.json` of open_clip: `{"model_cfg": {"embed_dim", "vision_cfg": {width,
//!   layers, head_width, mlp_ratio, patch_size, image_size, …}, "quick_gelu"}}`.
//!
//! Keys that are absent take the defaults of transformers / open_clip respectively. A
//! feature this crate does not implement (timm backbones, LayerScale, attentional pooling,
//! …) is an error naming the key, never ignored.

use super::names::{self, Naming};
use super::LoadOptions;
use crate::config::ClipVisionConfig;
use crate::error::{VisionError, VisionResult};
use clip_checkpoint::Tensors;
use serde_json::{Map, Value};
use std::path::Path;

fn as_object<'a>(path: &Path, v: &'a Value, what: &str) -> VisionResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| VisionError::checkpoint(path, format!("{what} is not a JSON object")))
}

fn vision_from(path: &Path, v: &Value) -> VisionResult<ClipVisionConfig> {
    serde_json::from_value(v.clone()).map_err(|source| VisionError::Json {
        path: path.into(),
        source,
    })
}

/// The vision tower's config from a transformers `config.json` (not yet validated).
///
/// # Errors
/// [`VisionError::Json`] naming the file for a value of the wrong type;
/// [`VisionError::Checkpoint`] when the file is not a JSON object.
pub fn from_hf_config(path: &Path, v: &Value) -> VisionResult<ClipVisionConfig> {
    let top = as_object(path, v, "config.json")?;
    let nested = top.contains_key("vision_config")
        || top.contains_key("vision_config_dict")
        || top.get("model_type").and_then(Value::as_str) == Some("clip");
    if !nested {
        return vision_from(path, v);
    }
    let empty = Value::Object(Map::new());
    // transformers expands vision_config_dict to a full CLIPVisionConfig and lets it
    // override vision_config key by key, defaults included: it alone decides.
    let vision = match (top.get("vision_config_dict"), top.get("vision_config")) {
        (Some(d @ Value::Object(_)), _) => d,
        (_, Some(c @ Value::Object(_))) => c,
        _ => &empty,
    };
    let mut cfg = vision_from(path, vision)?;
    cfg.projection_dim = match top.get("projection_dim") {
        None | Some(Value::Null) => 512,
        Some(p) => serde_json::from_value(p.clone()).map_err(|source| VisionError::Json {
            path: path.into(),
            source,
        })?,
    };
    Ok(cfg)
}

/// What an open_clip config says beyond [`ClipVisionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenClipExtras {
    /// `vision_cfg.no_ln_pre`: the tower has no LayerNorm before the blocks.
    pub no_ln_pre: bool,
}

fn unsupported(field: &'static str, value: &Value, reason: &str) -> VisionError {
    VisionError::InvalidConfig {
        path: None,
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The vision tower's config from an `open_clip_config.json` (not yet validated).
///
/// # Errors
/// [`VisionError::Checkpoint`] when `model_cfg` / `vision_cfg` is missing or malformed;
/// [`VisionError::InvalidConfig`] naming the key of an open_clip feature this crate does
/// not implement.
pub fn from_open_clip_config(
    path: &Path,
    v: &Value,
) -> VisionResult<(ClipVisionConfig, OpenClipExtras)> {
    let top = as_object(path, v, "open_clip_config.json")?;
    let model = match top.get("model_cfg") {
        Some(m) => as_object(path, m, "model_cfg")?,
        None => top,
    };
    let vision = as_object(
        path,
        model
            .get("vision_cfg")
            .ok_or_else(|| VisionError::checkpoint(path, "open_clip config has no vision_cfg"))?,
        "vision_cfg",
    )?;
    let get_usize =
        |map: &Map<String, Value>, key: &'static str, default: usize| -> VisionResult<usize> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| unsupported(key, v, "must be a non-negative integer")),
            }
        };
    let truthy = |key: &str| vision.get(key).is_some_and(|v| v.as_bool() == Some(true));
    let present = |key: &str| vision.get(key).is_some_and(|v| !v.is_null());

    for (key, field) in [
        ("timm_model_name", "vision_cfg.timm_model_name"),
        ("ls_init_value", "vision_cfg.ls_init_value"),
    ] {
        if present(key) {
            return Err(unsupported(
                field,
                &vision[key],
                "not supported by clip-vision (timm backbones, LayerScale)",
            ));
        }
    }
    for (key, field) in [
        ("attentional_pool", "vision_cfg.attentional_pool"),
        ("final_ln_after_pool", "vision_cfg.final_ln_after_pool"),
        ("qk_norm", "vision_cfg.qk_norm"),
        ("scaled_cosine_attn", "vision_cfg.scaled_cosine_attn"),
        ("scale_heads", "vision_cfg.scale_heads"),
        ("scale_attn_inner", "vision_cfg.scale_attn_inner"),
        ("scale_attn", "vision_cfg.scale_attn"),
        ("scale_fc", "vision_cfg.scale_fc"),
    ] {
        if truthy(key) {
            return Err(unsupported(
                field,
                &vision[key],
                "this open_clip variant is not supported by clip-vision",
            ));
        }
    }
    for (key, field, allowed) in [
        ("pool_type", "vision_cfg.pool_type", "tok"),
        ("pos_embed_type", "vision_cfg.pos_embed_type", "learnable"),
    ] {
        if let Some(v) = vision.get(key).filter(|v| !v.is_null()) {
            if v.as_str() != Some(allowed) {
                return Err(unsupported(
                    field,
                    v,
                    "only the class-token ViT with learned positions is supported",
                ));
            }
        }
    }
    if let Some(layers) = vision.get("layers") {
        if !layers.is_u64() {
            return Err(unsupported(
                "vision_cfg.layers",
                layers,
                "a ResNet tower (layers as a list) is not supported",
            ));
        }
    }
    let image_size = match vision.get("image_size") {
        Some(Value::Array(sides)) => {
            let sides: Vec<Option<u64>> = sides.iter().map(Value::as_u64).collect();
            match sides.as_slice() {
                [Some(h), Some(w)] if h == w => usize::try_from(*h).unwrap_or(usize::MAX),
                _ => {
                    return Err(unsupported(
                        "vision_cfg.image_size",
                        &vision["image_size"],
                        "only square images are supported",
                    ))
                }
            }
        }
        _ => get_usize(vision, "image_size", 224)?,
    };
    let width = get_usize(vision, "width", 768)?;
    let head_width = get_usize(vision, "head_width", 64)?;
    let mlp_ratio = match vision.get("mlp_ratio") {
        None | Some(Value::Null) => 4.0,
        Some(v) => v
            .as_f64()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| unsupported("vision_cfg.mlp_ratio", v, "must be a positive number"))?,
    };
    if head_width == 0 || width % head_width != 0 {
        return Err(unsupported(
            "vision_cfg.head_width",
            &Value::from(head_width as u64),
            "must divide width",
        ));
    }
    let quick_gelu = model
        .get("quick_gelu")
        .is_some_and(|v| v.as_bool() == Some(true));
    let mut hidden_act = if quick_gelu { "quick_gelu" } else { "gelu" }.to_owned();
    if let Some(act) = vision.get("act_kwargs").filter(|v| !v.is_null()) {
        // open_clip passes act_kwargs to QuickGELU too, which takes no arguments.
        if quick_gelu {
            return Err(unsupported(
                "vision_cfg.act_kwargs",
                act,
                "open_clip's QuickGELU (quick_gelu = true) takes no act_kwargs",
            ));
        }
        match act.get("approximate").and_then(Value::as_str) {
            Some("tanh") if act.as_object().is_some_and(|m| m.len() == 1) => {
                hidden_act = "gelu_new".into()
            }
            _ => {
                return Err(unsupported(
                    "vision_cfg.act_kwargs",
                    act,
                    "only {\"approximate\": \"tanh\"} is supported",
                ))
            }
        }
    }
    let mut layer_norm_eps = 1e-5;
    if let Some(norm) = vision.get("norm_kwargs").filter(|v| !v.is_null()) {
        match (
            norm.get("eps").and_then(Value::as_f64),
            norm.as_object().map(Map::len),
        ) {
            (Some(eps), Some(1)) => layer_norm_eps = eps,
            _ => {
                return Err(unsupported(
                    "vision_cfg.norm_kwargs",
                    norm,
                    "only {\"eps\": …} is supported",
                ))
            }
        }
    }
    let embed_dim = get_usize(model, "embed_dim", 0)?;
    if embed_dim == 0 {
        return Err(VisionError::checkpoint(
            path,
            "open_clip config has no model_cfg.embed_dim",
        ));
    }
    let cfg = ClipVisionConfig {
        hidden_size: width,
        // open_clip: mlp_width = int(width * mlp_ratio)
        intermediate_size: (width as f64 * mlp_ratio) as usize,
        num_hidden_layers: get_usize(vision, "layers", 12)?,
        num_attention_heads: width / head_width,
        num_channels: 3,
        image_size,
        patch_size: get_usize(vision, "patch_size", 16)?,
        hidden_act,
        layer_norm_eps,
        projection_dim: embed_dim,
    };
    Ok((
        cfg,
        OpenClipExtras {
            no_ln_pre: truthy("no_ln_pre"),
        },
    ))
}

fn dims(tower: &Tensors<'_>, name: &str, rank: usize) -> VisionResult<Vec<usize>> {
    let shape = tower.shape(name)?.to_vec();
    if shape.len() != rank {
        return Err(VisionError::checkpoint(
            tower.store().root(),
            format!(
                "tensor {:?} has shape {shape:?}, expected {rank} dimensions",
                tower.name(name)
            ),
        ));
    }
    // Every dimension of a ViT tensor is at least 1 and at most the widest config allowed
    // (4 × MAX_WIDTH covers an MLP of ratio 4): a zero-sized tensor passes every byte-size
    // check, and sizes read off it must not overflow the arithmetic below.
    let most = 4 * crate::config::MAX_WIDTH;
    if let Some(&bad) = shape.iter().find(|&&n| n == 0 || n > most) {
        return Err(VisionError::checkpoint(
            tower.store().root(),
            format!(
                "tensor {:?} has shape {shape:?}: dimension {bad} is outside 1..={most}",
                tower.name(name)
            ),
        ));
    }
    Ok(shape)
}

/// The architecture of an OpenAI-named tower without a config, read off its tensor shapes;
/// the head count (OpenAI's `width / 64` unless told) and the activation cannot be, so they
/// come from `opts`.
///
/// # Errors
/// [`VisionError::Checkpoint`] for shapes that do not describe a ViT;
/// [`VisionError::InvalidConfig`] when the activation is not given, or the head count
/// cannot be inferred.
pub fn infer_from_shapes(
    tower: &Tensors<'_>,
    naming: &Naming,
    opts: &LoadOptions,
) -> VisionResult<ClipVisionConfig> {
    let conv = dims(tower, naming.patch, 4)?;
    let (d, c, p) = (conv[0], conv[1], conv[2]);
    if conv[3] != p {
        return Err(VisionError::checkpoint(
            tower.store().root(),
            format!(
                "{} has a non-square kernel {conv:?}",
                tower.name(naming.patch)
            ),
        ));
    }
    let pos = dims(tower, naming.positions, 2)?;
    let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid == 0 || grid * grid + 1 != pos[0] {
        return Err(VisionError::checkpoint(
            tower.store().root(),
            format!(
                "{} has {} rows, not 1 + a square number of patches",
                tower.name(naming.positions),
                pos[0]
            ),
        ));
    }
    let layers = names::count_blocks(tower, naming);
    let intermediate = if layers > 0 {
        dims(
            tower,
            &format!("{}.0.{}.weight", naming.blocks, naming.fc1),
            2,
        )?[0]
    } else {
        4 * d
    };
    let projection_dim = match naming.projection {
        names::ProjectionName::InTowerTransposed(proj) if tower.contains(proj) => {
            dims(tower, proj, 2)?[1]
        }
        _ => d,
    };
    let heads = match opts.num_attention_heads {
        Some(h) => h,
        None if d % 64 == 0 => d / 64,
        None => {
            return Err(VisionError::InvalidConfig {
                path: None,
                field: "num_attention_heads",
                value: "unknown".into(),
                reason: format!(
                    "the checkpoint has no config and its width {d} is not a multiple of OpenAI's head width 64: \
                     pass LoadOptions::num_attention_heads"
                ),
            })
        }
    };
    let activation = opts.activation.ok_or_else(|| VisionError::InvalidConfig {
        path: None,
        field: "hidden_act",
        value: "unknown".into(),
        reason: "the checkpoint has no config naming its activation: pass LoadOptions::activation \
                 (OpenAI weights use quick_gelu, most LAION ones gelu)"
            .into(),
    })?;
    Ok(ClipVisionConfig {
        hidden_size: d,
        intermediate_size: intermediate,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_channels: c,
        image_size: grid * p,
        patch_size: p,
        hidden_act: activation.hf_name().into(),
        layer_norm_eps: 1e-5,
        projection_dim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(json: &str) -> VisionResult<ClipVisionConfig> {
        from_hf_config(
            Path::new("config.json"),
            &serde_json::from_str(json).unwrap(),
        )
    }

    fn oc(json: &str) -> VisionResult<(ClipVisionConfig, OpenClipExtras)> {
        from_open_clip_config(
            Path::new("open_clip_config.json"),
            &serde_json::from_str(json).unwrap(),
        )
    }

    #[test]
    fn hf_vision_config_at_top_level_or_nested() {
        let top =
            hf(r#"{"model_type": "clip_vision_model", "hidden_size": 64, "projection_dim": 32}"#)
                .unwrap();
        assert_eq!(
            (top.hidden_size, top.projection_dim, top.patch_size),
            (64, 32, 32)
        );
        let nested = hf(r#"{"model_type": "clip", "projection_dim": 768,
            "vision_config": {"hidden_size": 1024, "patch_size": 14, "projection_dim": 512}}"#)
        .unwrap();
        assert_eq!(
            (nested.hidden_size, nested.patch_size, nested.projection_dim),
            (1024, 14, 768)
        );
        // vision_config_dict wins over vision_config, defaults included.
        let legacy = hf(
            r#"{"vision_config": {"hidden_size": 1024, "patch_size": 14},
            "vision_config_dict": {"hidden_size": 1024}}"#,
        )
        .unwrap();
        assert_eq!(
            (legacy.hidden_size, legacy.patch_size, legacy.projection_dim),
            (1024, 32, 512)
        );
        assert!(matches!(
            hf(r#"{"hidden_size": "wide"}"#),
            Err(VisionError::Json { .. })
        ));
        assert!(matches!(hf("[1]"), Err(VisionError::Checkpoint(_))));
    }

    #[test]
    fn open_clip_vit_h_config() {
        let (cfg, extras) = oc(
            r#"{"model_cfg": {"embed_dim": 1024, "vision_cfg": {"image_size": 224,
            "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14}, "text_cfg": {}},
            "preprocess_cfg": {}}"#,
        )
        .unwrap();
        assert_eq!(cfg, ClipVisionConfig::vit_huge_patch14());
        assert!(!extras.no_ln_pre);
        let (openai, _) = oc(
            r#"{"embed_dim": 512, "quick_gelu": true, "vision_cfg": {"width": 768,
            "layers": 12, "patch_size": 32, "image_size": [224, 224]}}"#,
        )
        .unwrap();
        assert_eq!(openai, ClipVisionConfig::vit_base_patch32());
    }

    #[test]
    fn open_clip_features_we_lack_are_named() {
        let field = |json: &str| match oc(json) {
            Err(VisionError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let with =
            |extra: &str| format!(r#"{{"embed_dim": 8, "vision_cfg": {{"width": 64, {extra}}}}}"#);
        assert_eq!(
            field(&with(r#""ls_init_value": 0.1"#)),
            "vision_cfg.ls_init_value"
        );
        assert_eq!(
            field(&with(r#""timm_model_name": "vit""#)),
            "vision_cfg.timm_model_name"
        );
        assert_eq!(
            field(&with(r#""attentional_pool": true"#)),
            "vision_cfg.attentional_pool"
        );
        assert_eq!(
            field(&with(r#""pool_type": "avg""#)),
            "vision_cfg.pool_type"
        );
        assert_eq!(
            field(&with(r#""layers": [3, 4, 6, 3]"#)),
            "vision_cfg.layers"
        );
        assert_eq!(field(&with(r#""head_width": 48"#)), "vision_cfg.head_width");
        assert_eq!(
            field(&with(r#""image_size": [224, 160]"#)),
            "vision_cfg.image_size"
        );
        assert!(oc(&with(r#""no_ln_pre": true"#)).unwrap().1.no_ln_pre);
        assert_eq!(
            oc(&with(r#""act_kwargs": {"approximate": "tanh"}"#))
                .unwrap()
                .0
                .hidden_act,
            "gelu_new"
        );
        let both = oc(
            r#"{"embed_dim": 8, "quick_gelu": true, "vision_cfg": {"width": 64,
            "layers": 2, "act_kwargs": {"approximate": "tanh"}}}"#,
        );
        assert!(
            matches!(&both, Err(e) if e.to_string().contains("QuickGELU")),
            "{both:?}"
        );
        assert!(matches!(
            oc(r#"{"vision_cfg": {}}"#),
            Err(VisionError::Checkpoint(_))
        ));
    }

    #[test]
    fn zero_sized_and_absurd_dimensions_are_refused_before_a_config_is_inferred() {
        use clip_checkpoint::TensorStore;
        let tmp = tempfile::tempdir().unwrap();
        // Zero-sized tensors hold no bytes, so their claimed sizes pass every byte check.
        let t = |name: &str, shape: &str, begin: usize, end: usize| {
            format!(
                r#""{name}": {{"dtype": "F32", "shape": {shape}, "data_offsets": [{begin}, {end}]}}"#
            )
        };
        let cases = [
            (
                "huge positions",
                [
                    t("visual.conv1.weight", "[1, 1, 1, 1]", 0, 4),
                    t("visual.class_embedding", "[1]", 4, 8),
                    t("visual.positional_embedding", "[1099511627776, 0]", 8, 8),
                ],
                8,
            ),
            (
                "huge width",
                [
                    t("visual.conv1.weight", "[1099511627776, 0, 1, 1]", 0, 0),
                    t("visual.class_embedding", "[1]", 0, 4),
                    t("visual.positional_embedding", "[2, 1]", 4, 12),
                ],
                12,
            ),
        ];
        for (what, tensors, data_len) in cases {
            let header = format!("{{{}}}", tensors.join(", "));
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend(std::iter::repeat_n(0u8, data_len));
            let path = tmp.path().join("w.safetensors");
            std::fs::write(&path, bytes).unwrap();
            let store = TensorStore::open_file(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let (naming, tower) = super::super::names::detect(&store).unwrap();
            let opts = LoadOptions {
                activation: Some(vit_tensor::Activation::QuickGelu),
                ..LoadOptions::default()
            };
            match infer_from_shapes(&tower, &naming, &opts) {
                Err(VisionError::Checkpoint(e)) => {
                    assert!(e.to_string().contains("outside 1..="), "{what}: {e}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
