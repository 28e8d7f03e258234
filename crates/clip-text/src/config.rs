//! `ClipTextConfig`: the shape of a text tower, read with transformers' `CLIPTextConfig` keys.

use crate::error::{TextError, TextResult};
use serde::{Deserialize, Serialize};
use std::path::Path;
use vit_tensor::Activation;

/// Where the pooled output is taken from, as transformers' `CLIPTextTransformer` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// The first position holding this id (`eos_token_id`); position 0 when it is absent.
    FirstEos(u32),
    /// The position of the largest id (its first occurrence): configs whose `eos_token_id`
    /// is the legacy 2, and OpenAI / open_clip (`text.argmax(dim=-1)`), rely on the end token
    /// being the largest id.
    Argmax,
}

impl Pooling {
    /// The pooled position of one unpadded sequence.
    pub fn position(self, ids: &[u32]) -> usize {
        match self {
            Pooling::FirstEos(eos) => ids.iter().position(|&id| id == eos).unwrap_or(0),
            Pooling::Argmax => {
                // First occurrence of the maximum, as torch.argmax.
                let mut best = 0;
                for (i, &id) in ids.iter().enumerate() {
                    if id > ids[best] {
                        best = i;
                    }
                }
                best
            }
        }
    }
}

/// The shape of a CLIP text tower (transformers' `CLIPTextConfig`; the defaults are its
/// defaults, OpenAI's ViT-B/32 text tower).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Rows of the token embedding.
    pub vocab_size: usize,
    /// Width `D`.
    pub hidden_size: usize,
    /// MLP width `I`.
    pub intermediate_size: usize,
    /// Width `E` of `text_embeds`.
    pub projection_dim: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Positions, the context length (77).
    pub max_position_embeddings: usize,
    /// MLP activation, by transformers' name (`quick_gelu`, `gelu`, …).
    pub hidden_act: String,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding id of the tokenizer config (unused by the tower: padding is masked).
    pub pad_token_id: Option<u32>,
    /// `<|startoftext|>`.
    pub bos_token_id: Option<u32>,
    /// `<|endoftext|>`; the legacy value 2 means "pool at the argmax of the ids".
    pub eos_token_id: Option<u32>,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: Some(49407),
        }
    }
}

impl ClipTextConfig {
    /// The MLP activation.
    ///
    /// # Errors
    /// [`TextError::InvalidConfig`] naming `path` for an activation transformers' CLIP does
    /// not use.
    pub fn activation(&self, path: &Path) -> TextResult<Activation> {
        Activation::from_hf_name(&self.hidden_act).ok_or_else(|| {
            TextError::config(
                path,
                format!(
                    "unknown hidden_act {:?} in the text config",
                    self.hidden_act
                ),
            )
        })
    }

    /// transformers' pooling rule: the first `eos_token_id`, or the argmax of the ids when
    /// `eos_token_id` is the legacy 2 (or absent).
    pub fn pooling(&self) -> Pooling {
        match self.eos_token_id {
            None | Some(2) => Pooling::Argmax,
            Some(eos) => Pooling::FirstEos(eos),
        }
    }

    /// Checks that the sizes can describe a tower.
    ///
    /// # Errors
    /// [`TextError::InvalidConfig`] naming `path` and the bad value.
    pub fn validate(&self, path: &Path) -> TextResult<()> {
        for (what, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 || v > 1 << 24 {
                return Err(TextError::config(
                    path,
                    format!("text {what} = {v} is out of range"),
                ));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(TextError::config(
                path,
                format!(
                    "text hidden_size {} is not a multiple of num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.num_hidden_layers > 1024 {
            return Err(TextError::config(
                path,
                format!(
                    "text num_hidden_layers = {} is out of range",
                    self.num_hidden_layers
                ),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(TextError::config(
                path,
                format!(
                    "text layer_norm_eps = {} must be positive",
                    self.layer_norm_eps
                ),
            ));
        }
        self.activation(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_follows_transformers_rules() {
        let ids = [49406, 2, 320, 49407, 49407];
        let legacy = ClipTextConfig {
            eos_token_id: Some(2),
            ..Default::default()
        };
        assert_eq!(legacy.pooling().position(&ids), 3);
        assert_eq!(ClipTextConfig::default().pooling().position(&ids), 3);
        assert_eq!(Pooling::FirstEos(2).position(&ids), 1);
        assert_eq!(Pooling::FirstEos(7).position(&ids), 0);
    }

    #[test]
    fn hf_keys_and_defaults() {
        let cfg: ClipTextConfig = serde_json::from_str(
            r#"{"hidden_size": 36, "num_attention_heads": 3, "eos_token_id": 399}"#,
        )
        .unwrap();
        assert_eq!(cfg.hidden_size, 36);
        assert_eq!(cfg.vocab_size, 49408);
        assert_eq!(cfg.pooling(), Pooling::FirstEos(399));
        cfg.validate(Path::new("config.json")).unwrap();
        let bad = ClipTextConfig {
            num_attention_heads: 5,
            ..cfg
        };
        let err = bad.validate(Path::new("config.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json: text hidden_size 36 is not a multiple of num_attention_heads 5"
        );
    }
}
