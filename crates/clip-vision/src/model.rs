//! `ClipModel`: both towers of one checkpoint, as transformers' `CLIPModel` (feature `text`).
//!
//! ```text
//! logits_per_image[i, t] = exp(logit_scale) · cos(image_embeds[i], text_embeds[t])
//! probs[i, :]            = softmax over the texts of logits_per_image[i, :]
//! ```
//!
//! A prompt ensemble (CLIP's zero-shot recipe) embeds each label in every template, L2-
//! normalises each embedding, takes their mean and normalises it again.

use crate::encoder::ClipVisionEncoder;
use crate::error::VisionResult;
use crate::loader::{self, LoadOptions};
use clip_checkpoint::{open_weights, resolve, TensorStore};
use clip_text::{ClipTextEncoder, TextLoadOptions};
use std::path::Path;

/// The name of the learned temperature, in both namings (a scalar, stored as the log).
pub const LOGIT_SCALE: &str = "logit_scale";

/// The vision and text towers of one CLIP checkpoint and its temperature.
#[derive(Debug, Clone)]
pub struct ClipModel {
    /// The image tower.
    pub vision: ClipVisionEncoder,
    /// The text tower and its tokenizer.
    pub text: ClipTextEncoder,
    /// `logit_scale` as stored: the log of the multiplier (`ln 100` after CLIP's training).
    pub logit_scale: f32,
}

impl ClipModel {
    /// Both towers of a `CLIPModel` (HF), OpenAI or open_clip checkpoint, with the
    /// tokenizer of its directory.
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::from_pretrained`] and [`ClipTextEncoder::from_pretrained`];
    /// [`crate::VisionError::Checkpoint`] when `logit_scale` is missing.
    pub fn from_pretrained(path: impl AsRef<Path>) -> VisionResult<Self> {
        Self::load(
            path.as_ref(),
            &LoadOptions::default(),
            &TextLoadOptions::default(),
        )
    }

    /// [`ClipModel::from_pretrained`] with options for each tower; the weights are opened
    /// once.
    ///
    /// # Errors
    /// As [`ClipModel::from_pretrained`].
    pub fn load(path: &Path, vision: &LoadOptions, text: &TextLoadOptions) -> VisionResult<Self> {
        let resolved = resolve(path)?;
        let store = open_weights(&resolved)?;
        let dir = resolved.is_dir().then_some(resolved.as_path());
        Ok(Self {
            vision: loader::load_store(&store, dir, vision)?,
            text: ClipTextEncoder::load_store(&store, &resolved, text)?,
            logit_scale: logit_scale(&store)?,
        })
    }

    /// `exp(logit_scale)`, the multiplier of the cosines.
    pub fn scale(&self) -> f32 {
        self.logit_scale.exp()
    }

    /// transformers' `logits_per_image`: `[images][texts]`.
    ///
    /// # Errors
    /// [`crate::VisionError::EmbeddingWidth`] when the embeddings are not all of one width.
    pub fn logits_per_image(
        &self,
        image_embeds: &[Vec<f32>],
        text_embeds: &[Vec<f32>],
    ) -> VisionResult<Vec<Vec<f32>>> {
        logits(self.scale(), image_embeds, text_embeds)
    }

    /// Zero-shot probabilities of each image over `labels`, each label embedded in every
    /// template (`{}` replaced by the label) and ensembled; without templates, each label
    /// is embedded exactly as given.
    ///
    /// # Shapes
    /// - `image_embeds`: `[images][E]` → `[images][labels]`
    ///
    /// # Errors
    /// As [`ClipTextEncoder::text_embeds`].
    pub fn zero_shot(
        &self,
        image_embeds: &[Vec<f32>],
        labels: &[&str],
        templates: &[&str],
    ) -> VisionResult<Vec<Vec<f32>>> {
        let classes = label_embeddings(&self.text, labels, templates)?;
        let mut probs = self.logits_per_image(image_embeds, &classes)?;
        probs.iter_mut().for_each(|row| softmax(row));
        Ok(probs)
    }
}

/// The `logit_scale` scalar of a checkpoint.
///
/// # Errors
/// [`crate::VisionError::Checkpoint`] when it is missing or not a scalar.
pub fn logit_scale(store: &TensorStore) -> VisionResult<f32> {
    let shape = store.shape(LOGIT_SCALE)?.to_vec();
    let values = store.tensor(LOGIT_SCALE, &shape)?;
    match values.as_slice() {
        [v] => Ok(*v),
        _ => Err(crate::VisionError::checkpoint(
            store.root(),
            format!("{LOGIT_SCALE} has shape {shape:?}, expected a scalar"),
        )),
    }
}

/// `logit_scale` of the checkpoint at `path`, read alone.
///
/// # Errors
/// As [`logit_scale`].
pub fn logit_scale_of(path: &Path) -> VisionResult<f32> {
    logit_scale(&open_weights(&resolve(path)?)?)
}

/// `scale · cos(a_i, b_j)`: `[a][b]`.
///
/// # Errors
/// [`crate::VisionError::EmbeddingWidth`] when the vectors are not all of one width.
pub fn logits(scale: f32, a: &[Vec<f32>], b: &[Vec<f32>]) -> VisionResult<Vec<Vec<f32>>> {
    if let Some(width) = a.first().or(b.first()).map(Vec::len) {
        if let Some(bad) = a.iter().chain(b).find(|v| v.len() != width) {
            return Err(crate::VisionError::EmbeddingWidth {
                expected: width,
                got: bad.len(),
            });
        }
    }
    let bn: Vec<Vec<f32>> = b.iter().map(|v| normalized(v)).collect();
    Ok(a.iter()
        .map(|v| {
            let v = normalized(v);
            bn.iter().map(|w| scale * dot(&v, w)).collect()
        })
        .collect())
}

/// One L2-normalised embedding per label: the label as given when `templates` is empty,
/// else the renormalised mean of its normalised embeddings in every template.
///
/// # Errors
/// As [`ClipTextEncoder::text_embeds`].
pub fn label_embeddings(
    text: &ClipTextEncoder,
    labels: &[&str],
    templates: &[&str],
) -> VisionResult<Vec<Vec<f32>>> {
    if templates.is_empty() {
        return Ok(text
            .text_embeds(labels)?
            .iter()
            .map(|v| normalized(v))
            .collect());
    }
    let prompts: Vec<String> = labels
        .iter()
        .flat_map(|l| templates.iter().map(move |t| t.replace("{}", l)))
        .collect();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let embeds = text.text_embeds(&refs)?;
    Ok(embeds
        .chunks(templates.len())
        .map(|group| {
            let mut mean = vec![0.0f32; group[0].len()];
            for e in group {
                for (m, x) in mean.iter_mut().zip(normalized(e)) {
                    *m += x;
                }
            }
            normalized(&mean)
        })
        .collect())
}

/// `v / ‖v‖₂` (computed in f64; a zero vector stays zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|&x| (f64::from(x) / norm) as f32).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum::<f64>() as f32
}

/// Softmax of a row in place (max-subtracted, in f64).
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = row.iter().map(|&x| f64::from(x - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    for (r, e) in row.iter_mut().zip(exps) {
        *r = (e / sum) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_are_scaled_cosines() {
        let l = logits(2.0, &[vec![3.0, 4.0]], &[vec![1.0, 0.0], vec![0.0, -2.0]]).unwrap();
        assert!(logits(1.0, &[vec![1.0]], &[vec![1.0, 2.0]]).is_err());
        assert_eq!(l.len(), 1);
        assert!(
            (l[0][0] - 1.2).abs() < 1e-6 && (l[0][1] + 1.6).abs() < 1e-6,
            "{l:?}"
        );
        let mut row = [1.0f32, 2.0, 3.0];
        softmax(&mut row);
        let want = [0.090_030_57, 0.244_728_47, 0.665_240_96];
        assert!(
            row.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-7),
            "{row:?}"
        );
    }
}
