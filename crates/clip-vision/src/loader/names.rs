//! The two ways checkpoints name a CLIP vision tower's tensors, mapped onto one set of roles.
//!
//! ```text
//! role                 HF transformers (vision_model.)          OpenAI / open_clip (visual.)
//! patch kernel         embeddings.patch_embedding.weight        conv1.weight            [D, C, P, P]
//! class embedding      embeddings.class_embedding               class_embedding         [D]
//! positions            embeddings.position_embedding.weight     positional_embedding    [N+1, D]
//! pre-LayerNorm        pre_layrnorm                             ln_pre                  [D]
//! blocks               encoder.layers.{i}.                      transformer.resblocks.{i}.
//!   LayerNorm 1        layer_norm1                              ln_1                    [D]
//!   q, k, v            self_attn.{q,k,v}_proj  (three [D, D])   attn.in_proj_{weight,bias} ([3D, D], rows q, k, v)
//!   output proj.       self_attn.out_proj                       attn.out_proj           [D, D]
//!   LayerNorm 2        layer_norm2                              ln_2                    [D]
//!   MLP in / out       mlp.fc1 / mlp.fc2                        mlp.c_fc / mlp.c_proj   [I, D] / [D, I]
//! post-LayerNorm       post_layernorm                           ln_post                 [D]
//! projection           visual_projection.weight (root, [E, D])  proj ([D, E], x · proj)
//! ```
//!
//! Names are kept verbatim, misspelling included (`pre_layrnorm`).

use clip_checkpoint::{TensorStore, Tensors};

/// How the q, k and v projections are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvNames {
    /// Three `[D, D]` linears (`{name}.weight`, `{name}.bias`).
    Separate {
        /// The query projection.
        q: &'static str,
        /// The key projection.
        k: &'static str,
        /// The value projection.
        v: &'static str,
    },
    /// One `[3D, D]` weight and `[3D]` bias, rows q, k, v (`torch.nn.MultiheadAttention`).
    Fused {
        /// The weight.
        weight: &'static str,
        /// The bias.
        bias: &'static str,
    },
}

/// Where the visual projection is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionName {
    /// `[E, D]`, applied as `x · Wᵀ`, named from the checkpoint's root.
    AtRoot(&'static str),
    /// `[D, E]`, applied as `x · proj`, named inside the tower.
    InTowerTransposed(&'static str),
}

/// The names of one naming scheme, relative to the tower's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    /// `"transformers"` or `"openai"`, for messages.
    pub scheme: &'static str,
    /// The patch kernel.
    pub patch: &'static str,
    /// The class embedding.
    pub class: &'static str,
    /// The position table.
    pub positions: &'static str,
    /// The LayerNorm before the blocks.
    pub pre_norm: &'static str,
    /// The blocks, numbered `{blocks}.{i}`.
    pub blocks: &'static str,
    /// In a block: the first LayerNorm.
    pub norm1: &'static str,
    /// In a block: q, k and v.
    pub qkv: QkvNames,
    /// In a block: the attention output projection.
    pub out_proj: &'static str,
    /// In a block: the second LayerNorm.
    pub norm2: &'static str,
    /// In a block: the MLP's first linear.
    pub fc1: &'static str,
    /// In a block: the MLP's second linear.
    pub fc2: &'static str,
    /// The LayerNorm of the pooled class token.
    pub post_norm: &'static str,
    /// The visual projection (optional in every checkpoint).
    pub projection: ProjectionName,
}

/// transformers' `CLIPVisionModelWithProjection` / `CLIPVisionModel` / `CLIPModel`, under
/// `vision_model.`.
pub const HF: Naming = Naming {
    scheme: "transformers",
    patch: "embeddings.patch_embedding.weight",
    class: "embeddings.class_embedding",
    positions: "embeddings.position_embedding.weight",
    pre_norm: "pre_layrnorm",
    blocks: "encoder.layers",
    norm1: "layer_norm1",
    qkv: QkvNames::Separate {
        q: "self_attn.q_proj",
        k: "self_attn.k_proj",
        v: "self_attn.v_proj",
    },
    out_proj: "self_attn.out_proj",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
    post_norm: "post_layernorm",
    projection: ProjectionName::AtRoot("visual_projection.weight"),
};

/// OpenAI CLIP and open_clip, under `visual.` (or at the root for a tower saved alone).
pub const OPENAI: Naming = Naming {
    scheme: "openai",
    patch: "conv1.weight",
    class: "class_embedding",
    positions: "positional_embedding",
    pre_norm: "ln_pre",
    blocks: "transformer.resblocks",
    norm1: "ln_1",
    qkv: QkvNames::Fused {
        weight: "attn.in_proj_weight",
        bias: "attn.in_proj_bias",
    },
    out_proj: "attn.out_proj",
    norm2: "ln_2",
    fc1: "mlp.c_fc",
    fc2: "mlp.c_proj",
    post_norm: "ln_post",
    projection: ProjectionName::InTowerTransposed("proj"),
};

/// The naming of the vision tower in `store` and the view of it, if there is one: HF
/// (`vision_model.` with its patch kernel), or OpenAI under `visual.` or at the root (with
/// `conv1.weight` and `class_embedding`, so that a stray `conv1` is not taken for a tower).
pub fn detect(store: &TensorStore) -> Option<(Naming, Tensors<'_>)> {
    let hf = store.pp("vision_model");
    if hf.contains(HF.patch) {
        return Some((HF, hf));
    }
    ["visual", ""]
        .into_iter()
        .map(|prefix| store.pp(prefix))
        .find(|tower| tower.contains(OPENAI.patch) && tower.contains(OPENAI.class))
        .map(|tower| (OPENAI, tower))
}

/// Number of consecutive blocks `{blocks}.0`, `{blocks}.1`, … in the tower.
pub fn count_blocks(tower: &Tensors<'_>, naming: &Naming) -> usize {
    (0..)
        .take_while(|i| tower.contains(&format!("{}.{i}.{}.weight", naming.blocks, naming.norm1)))
        .count()
}
