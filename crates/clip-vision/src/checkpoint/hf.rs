//! HF transformers weight names (`save_pretrained` of `CLIPVisionModelWithProjection`,
//! `CLIPVisionModel` or `CLIPModel`) → layers.
//!
//! Names are kept verbatim, misspelling included (`pre_layrnorm`). Every shape is checked
//! against the config before the tensor is read.

use super::store::TensorStore;
use crate::config::ClipVisionConfig;
use crate::encoder::ClipVisionEncoder;
use crate::error::VisionResult;
use vit_encoder::{ViTBlock, ViTEncoder};
use vit_layers::{LearnablePosEmbed, Linear, Mlp, MultiHeadAttention, PatchEmbed};

/// Prefix of the vision tower's tensors.
pub const PREFIX: &str = "vision_model.";
/// The visual projection, outside the tower.
pub const PROJECTION: &str = "visual_projection.weight";

/// Whether `store` holds a tower in HF naming.
pub fn detect(store: &TensorStore) -> bool {
    store.contains("vision_model.embeddings.patch_embedding.weight")
}

/// Builds the tower `cfg` describes from HF-named tensors.
///
/// `visual_projection.weight` is optional (a `CLIPVisionModel` has none); every other tensor
/// is required.
pub fn load(store: &TensorStore, cfg: ClipVisionConfig) -> VisionResult<ClipVisionEncoder> {
    cfg.validate()?;
    let (d, i, c, p) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_channels,
        cfg.patch_size,
    );
    let eps = cfg.layer_norm_eps as f32;
    let activation = cfg.activation()?;
    let e = "vision_model.embeddings";
    super::check_no_extra_block(
        store,
        "vision_model.encoder.layers",
        "layer_norm1.weight",
        cfg.num_hidden_layers,
    )?;

    let patch_embed = PatchEmbed::new(
        store.tensor(&format!("{e}.patch_embedding.weight"), &[d, c, p, p])?,
        None,
        d,
        c,
        p,
    )?;
    let cls_token = store.tensor(&format!("{e}.class_embedding"), &[d])?;
    let n_pos = cfg.seq_len();
    let pos_embed = LearnablePosEmbed::new(
        store.tensor(&format!("{e}.position_embedding.weight"), &[n_pos, d])?,
        n_pos,
        d,
    )?;
    let pre_layer_norm = store.layer_norm("vision_model.pre_layrnorm", d, eps)?;

    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for l in 0..cfg.num_hidden_layers {
        let b = format!("vision_model.encoder.layers.{l}");
        let attn = MultiHeadAttention::new(
            store.linear(&format!("{b}.self_attn.q_proj"), d, d)?,
            store.linear(&format!("{b}.self_attn.k_proj"), d, d)?,
            store.linear(&format!("{b}.self_attn.v_proj"), d, d)?,
            store.linear(&format!("{b}.self_attn.out_proj"), d, d)?,
            cfg.num_attention_heads,
        )?;
        let mlp = Mlp::new(
            store.linear(&format!("{b}.mlp.fc1"), i, d)?,
            store.linear(&format!("{b}.mlp.fc2"), d, i)?,
            activation,
        )?;
        layers.push(ViTBlock::new(
            store.layer_norm(&format!("{b}.layer_norm1"), d, eps)?,
            attn,
            store.layer_norm(&format!("{b}.layer_norm2"), d, eps)?,
            mlp,
        )?);
    }
    let encoder = ViTEncoder::new(
        layers,
        store.layer_norm("vision_model.post_layernorm", d, eps)?,
    )?;
    let projection = if store.contains(PROJECTION) {
        let e = cfg.projection_dim;
        Some(Linear::new(store.tensor(PROJECTION, &[e, d])?, None, d, e)?)
    } else {
        None
    };
    ClipVisionEncoder::from_parts(
        cfg,
        patch_embed,
        pos_embed,
        encoder,
        cls_token,
        Some(pre_layer_norm),
        projection,
    )
}
