//! One builder for every naming: the tensors of a tower, by role, → [`ClipVisionEncoder`].
//!
//! Every shape is checked against the config before its tensor is read; nothing missing is
//! replaced by random values.

use super::names::{Naming, ProjectionName, QkvNames};
use crate::calibrate::Calibration;
use crate::config::ClipVisionConfig;
use crate::encoder::{ClipVisionEncoder, Stem};
use crate::error::{VisionError, VisionResult};
use clip_checkpoint::Tensors;
use vit_encoder::{ViTBlock, ViTEncoder};
use vit_layers::{
    LayerNorm, LearnablePosEmbed, Linear, Mlp, MultiHeadAttention, PatchEmbed, Precision,
};
use vit_tensor::Bf16Weight;

/// The linear `{name}.weight` `[out_f, in_f]` + `{name}.bias` `[out_f]` (PyTorch's layout),
/// with its sizes in the order of [`Linear::new`], held in `precision`.
pub(crate) fn linear(
    t: &Tensors<'_>,
    name: &str,
    in_f: usize,
    out_f: usize,
    precision: Precision,
) -> VisionResult<Linear> {
    let bias = t.tensor(&format!("{name}.bias"), &[out_f])?;
    if precision == Precision::Bf16 {
        // A half-precision checkpoint's weight goes to bf16 with no f32 copy.
        if let Some(w) = t.tensor_bf16(&format!("{name}.weight"), &[out_f, in_f])? {
            let weight = Bf16Weight::from_out_in(&w, in_f, out_f)?;
            return Ok(Linear::from_bf16(weight, Some(bias))?);
        }
    }
    let weight = t.tensor(&format!("{name}.weight"), &[out_f, in_f])?;
    Linear::with_precision(weight, Some(bias), in_f, out_f, precision).map_err(|e| {
        VisionError::checkpoint(
            t.store().root(),
            format!("{}: {e}", t.name(&format!("{name}.weight"))),
        )
    })
}

/// The LayerNorm `{name}.weight`, `{name}.bias`, both `[dim]`.
pub(crate) fn layer_norm(
    t: &Tensors<'_>,
    name: &str,
    dim: usize,
    eps: f32,
) -> VisionResult<LayerNorm> {
    let weight = t.tensor(&format!("{name}.weight"), &[dim])?;
    let bias = t.tensor(&format!("{name}.bias"), &[dim])?;
    Ok(LayerNorm::new(weight, bias, eps)?)
}

/// The fused `[3D, D]` q/k/v projection (rows q, k, v) of block `b`, whichever way it is
/// stored, held in `precision`.
fn qkv(b: &Tensors<'_>, names: QkvNames, d: usize, precision: Precision) -> VisionResult<Linear> {
    if precision == Precision::Bf16 {
        if let Some(linear) = qkv_bf16(b, names, d)? {
            return Ok(linear);
        }
    }
    let (weight, bias) = match names {
        QkvNames::Fused { weight, bias } => {
            (b.tensor(weight, &[3 * d, d])?, b.tensor(bias, &[3 * d])?)
        }
        QkvNames::Separate { q, k, v } => {
            let mut weight = Vec::with_capacity(3 * d * d);
            let mut bias = Vec::with_capacity(3 * d);
            for name in [q, k, v] {
                weight.extend(b.tensor(&format!("{name}.weight"), &[d, d])?);
                bias.extend(b.tensor(&format!("{name}.bias"), &[d])?);
            }
            (weight, bias)
        }
    };
    Linear::with_precision(weight, Some(bias), d, 3 * d, precision).map_err(|e| {
        VisionError::checkpoint(
            b.store().root(),
            format!("{}: {e}", b.name("q/k/v projection")),
        )
    })
}

/// The fused q/k/v projection in bf16 straight from a half-precision checkpoint; `None`
/// when a weight is stored otherwise.
fn qkv_bf16(b: &Tensors<'_>, names: QkvNames, d: usize) -> VisionResult<Option<Linear>> {
    let (weight, bias) = match names {
        QkvNames::Fused { weight, bias } => match b.tensor_bf16(weight, &[3 * d, d])? {
            Some(w) => (w, b.tensor(bias, &[3 * d])?),
            None => return Ok(None),
        },
        QkvNames::Separate { q, k, v } => {
            let mut weight = Vec::with_capacity(3 * d * d);
            let mut bias = Vec::with_capacity(3 * d);
            for name in [q, k, v] {
                match b.tensor_bf16(&format!("{name}.weight"), &[d, d])? {
                    Some(w) => weight.extend(w),
                    None => return Ok(None),
                }
                bias.extend(b.tensor(&format!("{name}.bias"), &[d])?);
            }
            (weight, bias)
        }
    };
    let weight = Bf16Weight::from_out_in(&weight, d, 3 * d)?;
    Ok(Some(Linear::from_bf16(weight, Some(bias))?))
}

/// Builds the tower `cfg` describes from `tower` (the view under its prefix) named by
/// `naming`, the blocks' linear layers in `precision`. The pre-LayerNorm is required when `pre_norm`; the projection is optional (a
/// `CLIPVisionModel` has none), every other tensor is required, and a block numbered past
/// `num_hidden_layers` is a disagreement with the config, refused.
///
/// # Errors
/// [`VisionError::InvalidConfig`] when `cfg` does not validate; [`VisionError::Checkpoint`]
/// for a missing, misshapen or unreadable tensor, or an extra block.
pub fn build(
    tower: &Tensors<'_>,
    naming: &Naming,
    cfg: ClipVisionConfig,
    pre_norm: bool,
    precision: Precision,
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
    let layers_n = cfg.num_hidden_layers;
    let extra = format!("{}.{layers_n}.{}.weight", naming.blocks, naming.norm1);
    if tower.contains(&extra) {
        return Err(VisionError::checkpoint(
            tower.store().root(),
            format!(
                "holds {:?} but the config has {layers_n} layers",
                tower.name(&extra)
            ),
        ));
    }

    let patch_embed = PatchEmbed::new(tower.tensor(naming.patch, &[d, c, p, p])?, None, d, c, p)?;
    let cls_token = tower.tensor(naming.class, &[d])?;
    let n_pos = cfg.seq_len();
    let pos_embed = LearnablePosEmbed::new(tower.tensor(naming.positions, &[n_pos, d])?, n_pos, d)?;
    let pre_layer_norm = if pre_norm {
        Some(layer_norm(tower, naming.pre_norm, d, eps)?)
    } else {
        None
    };

    // Int8 blocks are built in f32, calibrated, then quantized, one at a time.
    let (block_precision, mut calibration) = if precision == Precision::Int8 {
        let stem = Stem {
            config: &cfg,
            patch_embed: &patch_embed,
            pos_embed: &pos_embed,
            cls_token: &cls_token,
            pre_layer_norm: pre_layer_norm.as_ref(),
        };
        let size = (cfg.image_size, cfg.image_size);
        (Precision::F32, Some(Calibration::new(&stem, size)?))
    } else {
        (precision, None)
    };
    let precision = block_precision;
    let mut layers = Vec::with_capacity(layers_n);
    for l in 0..layers_n {
        let b = tower.pp(&format!("{}.{l}", naming.blocks));
        let attn = MultiHeadAttention::from_fused(
            qkv(&b, naming.qkv, d, precision)?,
            linear(&b, naming.out_proj, d, d, precision)?,
            cfg.num_attention_heads,
        )?;
        let mlp = Mlp::new(
            linear(&b, naming.fc1, d, i, precision)?,
            linear(&b, naming.fc2, i, d, precision)?,
            activation,
        )?;
        let mut block = ViTBlock::new(
            layer_norm(&b, naming.norm1, d, eps)?,
            attn,
            layer_norm(&b, naming.norm2, d, eps)?,
            mlp,
        )?;
        if let Some(c) = &mut calibration {
            c.quantize_block(&mut block)?;
        }
        layers.push(block);
    }
    let encoder = ViTEncoder::new(layers, layer_norm(tower, naming.post_norm, d, eps)?)?;

    let e = cfg.projection_dim;
    let projection = match naming.projection {
        ProjectionName::AtRoot(name) => {
            let root = tower.store().pp("");
            if root.contains(name) {
                Some(Linear::new(root.tensor(name, &[e, d])?, None, d, e)?)
            } else {
                None
            }
        }
        ProjectionName::InTowerTransposed(name) => {
            if tower.contains(name) {
                // [D, E], applied as x · proj: already Wᵀ of the [E, D] projection.
                Some(Linear::from_transposed(
                    tower.tensor(name, &[d, e])?,
                    None,
                    d,
                    e,
                )?)
            } else {
                None
            }
        }
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
