//! `ClipVisionConfig`: the vision tower's hyper-parameters, with HF `config.json` key names.

use crate::error::{VisionError, VisionResult};
use serde::{Deserialize, Serialize};
use std::path::Path;
use vit_tensor::Activation;

/// Largest number of parameters a config may describe (8 × 10⁹, 32 GB of `f32`): beyond
/// any published CLIP tower, small enough that a corrupt config is refused before anything
/// is allocated for it.
pub const MAX_PARAMETERS: u128 = 8_000_000_000;
/// Largest `hidden_size`, `image_size`, `patch_size`, `projection_dim` (and a quarter of the
/// largest `intermediate_size`): far above any CLIP tower (ViT-bigG is 1664 wide).
pub const MAX_WIDTH: usize = 65_536;
/// Largest `num_hidden_layers`.
pub const MAX_LAYERS: usize = 1_024;
/// Largest `num_channels`.
pub const MAX_CHANNELS: usize = 64;
/// Largest number of tokens (patches + class token) per image: the attention scores of one
/// head are `tokens²` floats.
pub const MAX_TOKENS: usize = 16_385;

/// Hyper-parameters of a CLIP vision tower (transformers' `CLIPVisionConfig`).
///
/// Field names are the `config.json` keys; a key that is absent takes transformers'
/// default (those of ViT-B/32), and unknown keys are ignored, so the file a hub checkpoint
/// ships parses as it is.
///
/// ```
/// use clip_vision::ClipVisionConfig;
/// let cfg: ClipVisionConfig = serde_json::from_str(r#"{"hidden_size": 64, "num_attention_heads": 4,
///     "intermediate_size": 96, "num_hidden_layers": 2, "image_size": 32, "patch_size": 8}"#)?;
/// cfg.validate()?;
/// assert_eq!(cfg.num_patches(), 16);
/// assert_eq!(cfg.hidden_act, "quick_gelu"); // transformers' default
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Token width `D`.
    pub hidden_size: usize,
    /// MLP hidden width `I`.
    pub intermediate_size: usize,
    /// Number of encoder blocks `L`.
    pub num_hidden_layers: usize,
    /// Attention heads per block; divides `hidden_size`.
    pub num_attention_heads: usize,
    /// Image channels `C` (3 for RGB).
    pub num_channels: usize,
    /// Side `S` of the square input image, in pixels.
    pub image_size: usize,
    /// Side `P` of a patch; divides `image_size`.
    pub patch_size: usize,
    /// MLP activation, as HF names it (`quick_gelu`, `gelu`, `gelu_new`, …).
    pub hidden_act: String,
    /// ε of every LayerNorm.
    pub layer_norm_eps: f64,
    /// Width of `image_embeds` (the visual projection's output).
    pub projection_dim: usize,
}

impl Default for ClipVisionConfig {
    /// transformers' `CLIPVisionConfig()` defaults: the ViT-B/32 tower.
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            projection_dim: 512,
        }
    }
}

impl ClipVisionConfig {
    /// OpenAI ViT-B/32: 224 px, patch 32, width 768, 12 layers, 12 heads, projection 512.
    pub fn vit_base_patch32() -> Self {
        Self::default()
    }

    /// OpenAI ViT-B/16: 224 px, patch 16, width 768, 12 layers, 12 heads, projection 512.
    pub fn vit_base_patch16() -> Self {
        Self {
            patch_size: 16,
            ..Self::default()
        }
    }

    /// OpenAI ViT-L/14: 224 px, patch 14, width 1024, 24 layers, 16 heads, projection 768.
    pub fn vit_large_patch14() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            patch_size: 14,
            projection_dim: 768,
            ..Self::default()
        }
    }

    /// OpenAI ViT-L/14@336px: ViT-L/14 at 336 px (577 tokens).
    pub fn vit_large_patch14_336() -> Self {
        Self {
            image_size: 336,
            ..Self::vit_large_patch14()
        }
    }

    /// LAION ViT-H/14 (open_clip): 224 px, patch 14, width 1280, 32 layers, 16 heads,
    /// MLP 5120, projection 1024, exact GELU.
    pub fn vit_huge_patch14() -> Self {
        Self {
            hidden_size: 1280,
            intermediate_size: 5120,
            num_hidden_layers: 32,
            num_attention_heads: 16,
            patch_size: 14,
            projection_dim: 1024,
            hidden_act: "gelu".into(),
            ..Self::default()
        }
    }

    /// The preset of a name: `vit_base_patch32`, `vit_base_patch16`, `vit_large_patch14`,
    /// `vit_large_patch14_336`, `vit_huge_patch14`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "vit_base_patch32" => Some(Self::vit_base_patch32()),
            "vit_base_patch16" => Some(Self::vit_base_patch16()),
            "vit_large_patch14" => Some(Self::vit_large_patch14()),
            "vit_large_patch14_336" => Some(Self::vit_large_patch14_336()),
            "vit_huge_patch14" => Some(Self::vit_huge_patch14()),
            _ => None,
        }
    }

    /// Parses a config from JSON text (a `CLIPVisionConfig` object) and validates it.
    ///
    /// # Errors
    /// [`VisionError::Json`] (with `<string>` as path) when it does not parse;
    /// [`VisionError::InvalidConfig`] when a value is unusable.
    pub fn from_json_str(json: &str) -> VisionResult<Self> {
        let cfg: Self = serde_json::from_str(json).map_err(|source| VisionError::Json {
            path: "<string>".into(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a `CLIPVisionConfig` JSON file.
    ///
    /// # Errors
    /// [`VisionError::Checkpoint`] when it cannot be read or is not JSON (read with
    /// clip-checkpoint's size limit), [`VisionError::Json`] naming the file for a value of
    /// the wrong type, or [`VisionError::InvalidConfig`].
    pub fn from_file(path: impl AsRef<Path>) -> VisionResult<Self> {
        let path = path.as_ref();
        let value = clip_checkpoint::read_json(path)?;
        let cfg: Self = serde_json::from_value(value).map_err(|source| VisionError::Json {
            path: path.into(),
            source,
        })?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// The config as pretty JSON, with HF key names.
    pub fn to_json_string(&self) -> String {
        // A struct of numbers and one string always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Patches per side, `S / P`.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Patches per image, `(S / P)²`.
    pub fn num_patches(&self) -> usize {
        self.grid_size() * self.grid_size()
    }

    /// Tokens per image, patches plus the class token.
    pub fn seq_len(&self) -> usize {
        self.num_patches() + 1
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Values per image, `C × S × S`.
    pub fn image_len(&self) -> usize {
        self.num_channels * self.image_size * self.image_size
    }

    /// The activation `hidden_act` names.
    ///
    /// # Errors
    /// [`VisionError::UnknownActivation`] for a name this crate lacks.
    pub fn activation(&self) -> VisionResult<Activation> {
        Activation::from_hf_name(&self.hidden_act).ok_or_else(|| VisionError::UnknownActivation {
            path: None,
            name: self.hidden_act.clone(),
        })
    }

    /// Number of parameters of the tower with its projection, computed without overflow.
    pub fn num_parameters(&self) -> u128 {
        let (d, i, l, c, p) = (
            self.hidden_size as u128,
            self.intermediate_size as u128,
            self.num_hidden_layers as u128,
            self.num_channels as u128,
            self.patch_size as u128,
        );
        // Saturating: any config, however absurd, gets a count (then refused by validate).
        let mul = |a: u128, b: u128| a.saturating_mul(b);
        let sum = |terms: &[u128]| terms.iter().fold(0u128, |acc, &t| acc.saturating_add(t));
        let grid = self.image_size as u128 / p.max(1);
        let tokens = mul(grid, grid).saturating_add(1);
        let embeddings = sum(&[mul(mul(d, c), mul(p, p)), d, mul(tokens, d)]);
        let block = sum(&[mul(4, mul(d, d) + d), mul(mul(2, d), i), i, d, mul(4, d)]);
        sum(&[
            embeddings,
            mul(2, d),
            mul(l, block),
            mul(2, d),
            mul(d, self.projection_dim as u128),
        ])
    }

    /// Checks that a model can be built from this config.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] naming the first bad key: a zero size or one above its
    /// cap ([`MAX_WIDTH`], [`MAX_LAYERS`], [`MAX_CHANNELS`]), heads that do not divide
    /// `hidden_size`, a patch that does not divide the image, a bad eps, more than
    /// [`MAX_TOKENS`] tokens or [`MAX_PARAMETERS`] parameters;
    /// [`VisionError::UnknownActivation`] for an unknown `hidden_act`.
    pub fn validate(&self) -> VisionResult<()> {
        let bad = |field: &'static str, value: String, reason: &str| {
            Err(VisionError::InvalidConfig {
                path: None,
                field,
                value,
                reason: reason.into(),
            })
        };
        for (field, v, max) in [
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, 4 * MAX_WIDTH),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_WIDTH),
            ("num_channels", self.num_channels, MAX_CHANNELS),
            ("image_size", self.image_size, MAX_WIDTH),
            ("patch_size", self.patch_size, MAX_WIDTH),
            ("projection_dim", self.projection_dim, MAX_WIDTH),
        ] {
            if v == 0 {
                return bad(field, "0".into(), "must be positive");
            }
            if v > max {
                return bad(field, v.to_string(), &format!("must be at most {max}"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(
                "num_attention_heads",
                self.num_attention_heads.to_string(),
                &format!("must divide hidden_size = {}", self.hidden_size),
            );
        }
        if self.patch_size > self.image_size || !self.image_size.is_multiple_of(self.patch_size) {
            return bad(
                "patch_size",
                self.patch_size.to_string(),
                &format!("must divide image_size = {}", self.image_size),
            );
        }
        if !(self.layer_norm_eps.is_finite()
            && self.layer_norm_eps >= 0.0
            && self.layer_norm_eps < 1.0)
        {
            return bad(
                "layer_norm_eps",
                self.layer_norm_eps.to_string(),
                "must be in [0, 1)",
            );
        }
        let tokens =
            (self.image_size / self.patch_size).checked_mul(self.image_size / self.patch_size);
        if tokens.is_none_or(|t| t >= MAX_TOKENS) {
            return bad(
                "image_size",
                self.image_size.to_string(),
                &format!(
                    "gives more than {MAX_TOKENS} tokens with patch_size = {}",
                    self.patch_size
                ),
            );
        }
        if self.num_parameters() > MAX_PARAMETERS {
            return bad(
                "num_hidden_layers",
                self.num_hidden_layers.to_string(),
                &format!(
                    "the config describes {} parameters, more than the {MAX_PARAMETERS} allowed",
                    self.num_parameters()
                ),
            );
        }
        self.activation()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_vit_b32_and_counts_its_parameters() {
        let cfg = ClipVisionConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.seq_len(), 50);
        // sum(p.numel()) of transformers' CLIPVisionModelWithProjection at ViT-B/32.
        assert_eq!(cfg.num_parameters(), 87_849_216);
    }

    #[test]
    fn presets_have_the_published_shapes() {
        // (preset, tokens, parameters of CLIPVisionModelWithProjection as transformers counts them)
        for (name, tokens, params) in [
            ("vit_base_patch32", 50, 87_849_216u128),
            ("vit_base_patch16", 197, 86_192_640),
            ("vit_large_patch14", 257, 303_966_208),
            ("vit_large_patch14_336", 577, 304_293_888),
            ("vit_huge_patch14", 257, 632_076_800),
        ] {
            let cfg = ClipVisionConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            assert_eq!(
                (cfg.seq_len(), cfg.num_parameters()),
                (tokens, params),
                "{name}"
            );
        }
        assert!(ClipVisionConfig::preset("vit_giant").is_none());
        assert_eq!(
            ClipVisionConfig::vit_huge_patch14().activation().unwrap(),
            Activation::Gelu
        );
    }

    #[test]
    fn json_round_trips_with_hf_keys_and_defaults() {
        let cfg = ClipVisionConfig::from_json_str(r#"{"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 96,
            "num_hidden_layers": 2, "image_size": 30, "patch_size": 6, "hidden_act": "gelu",
            "layer_norm_eps": 1e-6, "projection_dim": 40, "model_type": "clip_vision_model", "architectures": ["X"]}"#)
        .unwrap();
        assert_eq!(cfg.num_channels, 3);
        let json = cfg.to_json_string();
        assert!(json.contains("\"num_attention_heads\": 4"));
        assert_eq!(ClipVisionConfig::from_json_str(&json).unwrap(), cfg);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let field_of = |json: &str| match ClipVisionConfig::from_json_str(json) {
            Err(VisionError::InvalidConfig { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(field_of(r#"{"hidden_size": 100}"#), "num_attention_heads");
        assert_eq!(field_of(r#"{"image_size": 0}"#), "image_size");
        assert_eq!(field_of(r#"{"patch_size": 30}"#), "patch_size");
        assert_eq!(
            field_of(r#"{"image_size": 16, "patch_size": 32}"#),
            "patch_size"
        );
        assert_eq!(field_of(r#"{"layer_norm_eps": -1.0}"#), "layer_norm_eps");
        assert_eq!(
            field_of(r#"{"num_hidden_layers": 1000000000}"#),
            "num_hidden_layers"
        );
        assert_eq!(
            field_of(r#"{"image_size": 4096, "patch_size": 2}"#),
            "image_size"
        );
        assert!(matches!(
            ClipVisionConfig::from_json_str(r#"{"hidden_act": "swish"}"#),
            Err(VisionError::UnknownActivation { .. })
        ));
        assert!(matches!(
            ClipVisionConfig::from_json_str(r#"{"hidden_size": -5}"#),
            Err(VisionError::Json { .. })
        ));
        assert!(matches!(
            ClipVisionConfig::from_json_str(r#"{"hidden_size": "big"}"#),
            Err(VisionError::Json { .. })
        ));
    }
}
