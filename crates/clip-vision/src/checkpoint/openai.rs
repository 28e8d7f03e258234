//! OpenAI CLIP / open_clip weight names (`visual.conv1.weight`, …) → layers.
//!
//! ```text
//! visual.conv1.weight                         [D, C, P, P]   patch_embedding (no bias)
//! visual.class_embedding                      [D]
//! visual.positional_embedding                 [N+1, D]
//! visual.ln_pre.{weight,bias}                 [D]            (absent with no_ln_pre)
//! visual.transformer.resblocks.{i}.
//!     ln_1.{weight,bias}                      [D]
//!     attn.in_proj_weight / in_proj_bias      [3D, D] / [3D] rows q, k, v
//!     attn.out_proj.{weight,bias}             [D, D] / [D]
//!     ln_2.{weight,bias}                      [D]
//!     mlp.c_fc.{weight,bias}                  [I, D] / [I]
//!     mlp.c_proj.{weight,bias}                [D, I] / [D]
//! visual.ln_post.{weight,bias}                [D]
//! visual.proj                                 [D, E]         applied as x · proj
//! ```
//!
//! Without a config file the architecture is read off these shapes; the head count
//! (OpenAI's `width / 64` unless told) and the activation cannot be, so they come from the
//! caller's [`LoadOptions`](super::LoadOptions).

use super::store::TensorStore;
use super::LoadOptions;
use crate::config::ClipVisionConfig;
use crate::encoder::ClipVisionEncoder;
use crate::error::{VisionError, VisionResult};
use vit_encoder::{ViTBlock, ViTEncoder};
use vit_layers::{LearnablePosEmbed, Linear, Mlp, MultiHeadAttention, PatchEmbed};

/// The name prefix of the visual tower in `store` (`"visual."`, or `""` for a tower saved on
/// its own), if it is in OpenAI naming.
pub fn detect(store: &TensorStore) -> Option<&'static str> {
    ["visual.", ""].into_iter().find(|p| {
        store.contains(&format!("{p}conv1.weight"))
            && store.contains(&format!("{p}class_embedding"))
    })
}

fn dims(store: &TensorStore, name: &str, rank: usize) -> VisionResult<Vec<usize>> {
    let shape = store.shape(name)?.to_vec();
    if shape.len() != rank {
        return Err(VisionError::checkpoint(
            store.root(),
            format!("tensor {name:?} has shape {shape:?}, expected {rank} dimensions"),
        ));
    }
    Ok(shape)
}

/// Number of consecutive blocks `{prefix}transformer.resblocks.{0..}` in the store.
pub fn count_blocks(store: &TensorStore, prefix: &str) -> usize {
    (0..)
        .take_while(|i| store.contains(&format!("{prefix}transformer.resblocks.{i}.ln_1.weight")))
        .count()
}

/// The architecture read off the tensor shapes, with heads and activation from `opts`.
///
/// # Errors
/// [`VisionError::Checkpoint`] for shapes that do not describe a ViT;
/// [`VisionError::InvalidConfig`] when the activation is not given, or the head count
/// cannot be inferred.
pub fn infer_config(
    store: &TensorStore,
    prefix: &str,
    opts: &LoadOptions,
) -> VisionResult<ClipVisionConfig> {
    let conv = dims(store, &format!("{prefix}conv1.weight"), 4)?;
    let (d, c, p) = (conv[0], conv[1], conv[2]);
    if conv[3] != p {
        return Err(VisionError::checkpoint(
            store.root(),
            format!("conv1.weight has a non-square kernel {conv:?}"),
        ));
    }
    let pos = dims(store, &format!("{prefix}positional_embedding"), 2)?;
    let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid == 0 || grid * grid + 1 != pos[0] {
        return Err(VisionError::checkpoint(
            store.root(),
            format!(
                "positional_embedding has {} rows, not 1 + a square number of patches",
                pos[0]
            ),
        ));
    }
    let layers = count_blocks(store, prefix);
    let intermediate = if layers > 0 {
        dims(
            store,
            &format!("{prefix}transformer.resblocks.0.mlp.c_fc.weight"),
            2,
        )?[0]
    } else {
        4 * d
    };
    let projection_dim = if store.contains(&format!("{prefix}proj")) {
        dims(store, &format!("{prefix}proj"), 2)?[1]
    } else {
        d
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

/// Builds the tower `cfg` describes from OpenAI-named tensors under `prefix`.
///
/// `ln_pre` is required unless `no_ln_pre`; `proj` is optional.
pub fn load(
    store: &TensorStore,
    prefix: &str,
    cfg: ClipVisionConfig,
    no_ln_pre: bool,
) -> VisionResult<ClipVisionEncoder> {
    cfg.validate()?;
    let (d, i, c, p) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_channels,
        cfg.patch_size,
    );
    let eps = cfg.layer_norm_eps as f32;
    let activation = cfg.activation()?;
    super::check_no_extra_block(
        store,
        &format!("{prefix}transformer.resblocks"),
        "ln_1.weight",
        cfg.num_hidden_layers,
    )?;

    let patch_embed = PatchEmbed::new(
        store.tensor(&format!("{prefix}conv1.weight"), &[d, c, p, p])?,
        None,
        d,
        c,
        p,
    )?;
    let cls_token = store.tensor(&format!("{prefix}class_embedding"), &[d])?;
    let n_pos = cfg.seq_len();
    let pos_embed = LearnablePosEmbed::new(
        store.tensor(&format!("{prefix}positional_embedding"), &[n_pos, d])?,
        n_pos,
        d,
    )?;
    let pre_layer_norm = if no_ln_pre {
        None
    } else {
        Some(store.layer_norm(&format!("{prefix}ln_pre"), d, eps)?)
    };
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for l in 0..cfg.num_hidden_layers {
        let b = format!("{prefix}transformer.resblocks.{l}");
        let qkv = Linear::new(
            store.tensor(&format!("{b}.attn.in_proj_weight"), &[3 * d, d])?,
            Some(store.tensor(&format!("{b}.attn.in_proj_bias"), &[3 * d])?),
            d,
            3 * d,
        )?;
        let attn = MultiHeadAttention::from_fused(
            qkv,
            store.linear(&format!("{b}.attn.out_proj"), d, d)?,
            cfg.num_attention_heads,
        )?;
        let mlp = Mlp::new(
            store.linear(&format!("{b}.mlp.c_fc"), i, d)?,
            store.linear(&format!("{b}.mlp.c_proj"), d, i)?,
            activation,
        )?;
        layers.push(ViTBlock::new(
            store.layer_norm(&format!("{b}.ln_1"), d, eps)?,
            attn,
            store.layer_norm(&format!("{b}.ln_2"), d, eps)?,
            mlp,
        )?);
    }
    let encoder = ViTEncoder::new(
        layers,
        store.layer_norm(&format!("{prefix}ln_post"), d, eps)?,
    )?;
    let proj_name = format!("{prefix}proj");
    let projection = if store.contains(&proj_name) {
        let e = cfg.projection_dim;
        // [D, E], applied as x · proj: already Wᵀ of the [E, D] projection.
        let proj = store.tensor(&proj_name, &[d, e])?;
        Some(Linear::from_transposed(proj, None, d, e)?)
    } else {
        None
    };
    ClipVisionEncoder::from_parts(
        cfg,
        patch_embed,
        pos_embed,
        encoder,
        cls_token,
        pre_layer_norm,
        projection,
    )
}
