//! Int8 with outlier channels: which input channels of each linear layer stay in f32,
//! found by running the f32 block on fixed calibration images as the tower is loaded.
//!
//! CLIP towers carry massive activations — a few residual channels hundreds of times larger
//! than the rest, MLP neurons that fire on every token — and they fire whatever the image
//! (they act as biases), so a few fixed images find them: here the mean image (all zeros
//! once normalised) and three of deterministic noise. A channel is an outlier when its
//! largest magnitude over the calibration tokens exceeds [`OUTLIER_RATIO`] times the median
//! channel's; at most one channel in [`MAX_OUTLIER_SHARE`] is kept apart. The layers are
//! then quantized with those channels in f32 ([`vit_tensor::QuantizedWeight`]).
//!
//! The calibration advances block by block with the f32 block, before the block is
//! converted, so the loader never holds more than one block in f32.

use crate::encoder::Stem;
use crate::error::VisionResult;
use vit_encoder::ViTBlock;
use vit_layers::{Linear, MultiHeadAttention};
use vit_tensor::LcgRng;

/// A channel whose largest calibration magnitude exceeds this many times the median
/// channel's is kept in f32. Chosen by the sweep (`quant_sweep`, docs/performance.md): at 8
/// the massive-activation fixture lost a massive channel of a layer and the always-on
/// neurons of another (raw cosine 0.9987); at 4 it keeps 0.99975, and the random towers
/// get no outlier channel.
pub const OUTLIER_RATIO: f32 = 4.0;
/// At most `in_features / MAX_OUTLIER_SHARE` channels of a layer are kept in f32.
pub const MAX_OUTLIER_SHARE: usize = 32;
/// Calibration images: the mean image and this many of noise.
const NOISE_IMAGES: usize = 3;

/// The calibration tokens as they go through the tower, `[batch, seq, D]`.
pub(crate) struct Calibration {
    hidden: Vec<f32>,
    batch: usize,
    seq: usize,
}

impl Calibration {
    /// `hidden_states[0]` of the calibration images at `input` pixels.
    pub(crate) fn new(stem: &Stem<'_>, input: (usize, usize)) -> VisionResult<Self> {
        let c = stem.config.num_channels;
        let image = c * input.0 * input.1;
        let batch = 1 + NOISE_IMAGES;
        let mut pixels = vec![0.0f32; image];
        pixels.extend(LcgRng::new(0x5eed).normal_vec(NOISE_IMAGES * image, 0.0, 1.0));
        let hidden = stem.embed(&pixels, batch, input)?;
        let seq = hidden.len() / (batch * stem.config.hidden_size);
        Ok(Self { hidden, batch, seq })
    }

    /// Finds each linear layer's outlier channels on the calibration tokens, moves the
    /// tokens through the (f32) block, then quantizes the block's linear layers to int8 with
    /// those channels kept in f32.
    pub(crate) fn quantize_block(&mut self, block: &mut ViTBlock) -> VisionResult<()> {
        let (batch, seq, rows) = (self.batch, self.seq, self.batch * self.seq);
        let d = block.dim();
        let inner = block.mlp.fc1().out_features();
        // The block as it runs (pre-norm), keeping each linear layer's input.
        let x1 = block.layer_norm1.forward(&self.hidden)?;
        let context = context(&block.attn, &x1, batch, seq)?;
        // h = x + out_proj(context): attention's output from the context already computed.
        let mut h = std::mem::take(&mut self.hidden);
        block
            .attn
            .out_proj()
            .forward_add_into(&context, rows, &mut h)?;
        let x2 = block.layer_norm2.forward(&h)?;
        let mut act = vec![0.0; rows * inner];
        block
            .mlp
            .fc1()
            .forward_act_into(&x2, rows, &mut act, block.mlp.activation())?;
        let sets = [
            outlier_channels(&x1, d),
            outlier_channels(&context, d),
            outlier_channels(&x2, d),
            outlier_channels(&act, inner),
        ];
        block.mlp.fc2().forward_add_into(&act, rows, &mut h)?;
        self.hidden = h;
        for ((_, linear), outliers) in block.linears_mut().into_iter().zip(&sets) {
            linear.quantize_int8(outliers)?;
        }
        Ok(())
    }
}

/// Attention's output before its output projection (the projection's input): the layer
/// run with an identity projection.
fn context(
    attn: &MultiHeadAttention,
    x: &[f32],
    batch: usize,
    seq: usize,
) -> VisionResult<Vec<f32>> {
    let d = attn.dim();
    let mut eye = vec![0.0; d * d];
    (0..d).for_each(|i| eye[i * d + i] = 1.0);
    let bare = MultiHeadAttention::from_fused(
        attn.qkv().clone(),
        Linear::new(eye, None, d, d)?,
        attn.n_heads(),
    )?;
    Ok(bare.forward(x, batch, seq)?)
}

/// The channels of `x` (`[rows, width]`) whose largest magnitude exceeds [`OUTLIER_RATIO`]
/// times the median channel's, largest first, at most `width / MAX_OUTLIER_SHARE`.
pub fn outlier_channels(x: &[f32], width: usize) -> Vec<usize> {
    if width == 0 {
        return Vec::new();
    }
    let mut peak = vec![0.0f32; width];
    for row in x.chunks_exact(width) {
        for (p, v) in peak.iter_mut().zip(row) {
            *p = p.max(v.abs());
        }
    }
    let mut sorted = peak.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[width / 2];
    let mut out: Vec<usize> = (0..width)
        .filter(|&k| peak[k] > OUTLIER_RATIO * median)
        .collect();
    out.sort_by(|&a, &b| peak[b].total_cmp(&peak[a]));
    out.truncate(width / MAX_OUTLIER_SHARE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_are_the_channels_far_above_the_median() {
        // 4 rows of 64 channels near 1; channel 5 at 50, channel 9 at -20 in one row only,
        // channel 11 at 3 (not far enough).
        let mut x = vec![1.0f32; 4 * 64];
        (0..4).for_each(|r| x[r * 64 + 5] = 50.0);
        x[2 * 64 + 9] = -20.0;
        (0..4).for_each(|r| x[r * 64 + 11] = 3.0);
        assert_eq!(outlier_channels(&x, 64), [5, 9]);
        // At most one channel in 32.
        assert_eq!(outlier_channels(&x[..32], 32), [5]);
        assert!(outlier_channels(&[], 0).is_empty());
    }
}
