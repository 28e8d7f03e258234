//! `ClipVisionEncoder`: CLIP's vision tower, from pixels to pooled output and image embeddings.
//!
//! The computation of transformers' `CLIPVisionModelWithProjection` (eval mode):
//!
//! ```text
//! pixels [B, C, S, S]
//!  → patch_embed (conv P×P, stride P, no bias)          [B, N, D]      N = (S/P)²
//!  → prepend cls_token                                   [B, N+1, D]
//!  → + pos_embed                                         [B, N+1, D]
//!  → pre_layer_norm ("pre_layrnorm")                     = hidden_states[0]
//!  → encoder blocks                                      = hidden_states[1..=L]
//!                                                        last_hidden_state = hidden_states[L]
//!  → encoder.final_norm on token 0 ("post_layernorm")    pooler_output  [B, D]
//!  → projection (no bias)                                image_embeds   [B, projection_dim]
//! ```
//!
//! Without `pre_layer_norm` and `projection` this is the plain ViT pipeline
//! (patch_embed → prepend_cls → add_pos_embed → encoder → token 0).

use crate::config::ClipVisionConfig;
use crate::error::{VisionError, VisionResult};
use crate::loader::LoadOptions;
use std::path::Path;
use vit_encoder::{ViTBlock, ViTEncoder};
use vit_layers::{prepend_cls, LayerNorm, LearnablePosEmbed, Linear, PatchEmbed};
use vit_tensor::{LcgRng, Precision};

/// Standard deviation of every random weight [`ClipVisionEncoder::new`] draws.
pub const INIT_STD: f32 = 0.02;

/// Images pushed through the encoder together; larger batches run in chunks of this many,
/// which bounds the activations held at once (about `32 · seq_len · 4·D` floats for the MLP).
pub const MAX_IMAGES_IN_FLIGHT: usize = 32;

/// A CLIP vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionEncoder {
    /// The hyper-parameters it was built from.
    pub config: ClipVisionConfig,
    /// Patchifying convolution, kernel `[D, C, P, P]`.
    pub patch_embed: PatchEmbed,
    /// Position table, `[N + 1, D]` (row 0 is the class token's).
    pub pos_embed: LearnablePosEmbed,
    /// The blocks and the final LayerNorm (CLIP's `post_layernorm`).
    pub encoder: ViTEncoder,
    /// The class embedding, `[D]`.
    pub cls_token: Vec<f32>,
    /// LayerNorm applied to the embeddings before the blocks (CLIP's `pre_layrnorm`);
    /// `None` for a plain ViT.
    pub pre_layer_norm: Option<LayerNorm>,
    /// Visual projection `[projection_dim, D]`, no bias (CLIP's `visual_projection`);
    /// `None` for a tower without one (`CLIPVisionModel`).
    pub projection: Option<Linear>,
    /// Input `(height, width)` in pixels; `(image_size, image_size)` unless
    /// [`ClipVisionEncoder::set_input_size`] changed it. At another size than the trained
    /// one, `pos_embed` is resized to the new grid on each call, from whatever `pos_embed`
    /// holds then (no cached copy can go stale when the public field is replaced).
    input_size: (usize, usize),
}

/// The parts before the blocks: what turns pixels into `hidden_states[0]` (the loader
/// needs it before the blocks exist, to calibrate them).
pub(crate) struct Stem<'a> {
    pub(crate) config: &'a ClipVisionConfig,
    pub(crate) patch_embed: &'a PatchEmbed,
    pub(crate) pos_embed: &'a LearnablePosEmbed,
    pub(crate) cls_token: &'a [f32],
    pub(crate) pre_layer_norm: Option<&'a LayerNorm>,
}

impl Stem<'_> {
    /// Patches, class token, positions, pre-LayerNorm, at `(h, w)` pixels; `pixels` already
    /// checked.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `[batch, N + 1, D]`
    pub(crate) fn embed(
        &self,
        pixels: &[f32],
        batch: usize,
        (h, w): (usize, usize),
    ) -> VisionResult<Vec<f32>> {
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        let patches = self.patch_embed.forward(pixels, batch, h, w)?;
        let mut tokens = prepend_cls(&patches, self.cls_token, batch, gh * gw)?;
        let g = self.config.grid_size();
        if (gh, gw) == (g, g) {
            self.pos_embed.add_to(&mut tokens)?;
        } else {
            self.pos_embed.interpolate(1, gh, gw)?.add_to(&mut tokens)?;
        }
        if let Some(ln) = self.pre_layer_norm {
            ln.forward_inplace(&mut tokens)?;
        }
        Ok(tokens)
    }
}

impl ClipVisionEncoder {
    /// A tower with deterministic random weights, the full CLIP layout.
    ///
    /// Distributions (drawn in this order from `rng`): patch kernel, class embedding and
    /// position table `N(0, 0.02²)`; in each block the fused q/k/v projection, the output
    /// projection, `fc1` and `fc2` `N(0, 0.02²)` with zero biases; every LayerNorm γ = 1,
    /// β = 0; the visual projection `N(0, 0.02²)`. Set `pre_layer_norm` or `projection` to
    /// `None` afterwards for the plain ViT pipeline.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] or [`VisionError::UnknownActivation`] when `cfg` does
    /// not validate.
    ///
    /// # Example
    /// ```
    /// use clip_vision::{ClipVisionConfig, ClipVisionEncoder, LcgRng};
    /// let cfg = ClipVisionConfig { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
    ///     num_attention_heads: 4, image_size: 32, patch_size: 16, projection_dim: 8,
    ///     ..ClipVisionConfig::default() };
    /// let model = ClipVisionEncoder::new(cfg, &mut LcgRng::new(0))?;
    /// let pooled = model.forward_single(&vec![0.5; 3 * 32 * 32])?;
    /// assert_eq!(pooled.len(), 32);
    /// # Ok::<(), clip_vision::VisionError>(())
    /// ```
    pub fn new(cfg: ClipVisionConfig, rng: &mut LcgRng) -> VisionResult<Self> {
        cfg.validate()?;
        let d = cfg.hidden_size;
        let eps = cfg.layer_norm_eps as f32;
        let activation = cfg.activation()?;
        let patch_embed = PatchEmbed::random(d, cfg.num_channels, cfg.patch_size, INIT_STD, rng);
        let cls_token = rng.normal_vec(d, 0.0, INIT_STD);
        let pos_embed = LearnablePosEmbed::random(cfg.seq_len(), d, INIT_STD, rng);
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| {
                ViTBlock::random(
                    d,
                    cfg.num_attention_heads,
                    cfg.intermediate_size,
                    activation,
                    eps,
                    INIT_STD,
                    rng,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let encoder = ViTEncoder::new(layers, LayerNorm::identity(d, eps)?)?;
        let projection = Linear::random(d, cfg.projection_dim, false, INIT_STD, rng);
        let pre_layer_norm = LayerNorm::identity(d, eps)?;
        Self::from_parts(
            cfg,
            patch_embed,
            pos_embed,
            encoder,
            cls_token,
            Some(pre_layer_norm),
            Some(projection),
        )
    }

    /// A tower from its parts, checked against `cfg`.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] when `cfg` does not validate; [`VisionError::Tensor`]
    /// ([`vit_tensor::TensorError::ShapeMismatch`]) when a part's shape disagrees with it.
    pub fn from_parts(
        cfg: ClipVisionConfig,
        patch_embed: PatchEmbed,
        pos_embed: LearnablePosEmbed,
        encoder: ViTEncoder,
        cls_token: Vec<f32>,
        pre_layer_norm: Option<LayerNorm>,
        projection: Option<Linear>,
    ) -> VisionResult<Self> {
        cfg.validate()?;
        let d = cfg.hidden_size;
        let mismatch = |what: &'static str, expected: Vec<usize>, got: Vec<usize>| {
            VisionError::Tensor(vit_tensor::TensorError::ShapeMismatch {
                op: "ClipVisionEncoder::from_parts",
                what,
                expected,
                got,
            })
        };
        let (c, p) = (cfg.num_channels, cfg.patch_size);
        let pe = (
            patch_embed.embed_dim(),
            patch_embed.channels(),
            patch_embed.patch_size(),
        );
        if pe != (d, c, p) {
            return Err(mismatch(
                "patch_embed",
                vec![d, c, p, p],
                vec![pe.0, pe.1, pe.2, pe.2],
            ));
        }
        if (pos_embed.n_positions(), pos_embed.dim()) != (cfg.seq_len(), d) {
            return Err(mismatch(
                "pos_embed",
                vec![cfg.seq_len(), d],
                vec![pos_embed.n_positions(), pos_embed.dim()],
            ));
        }
        if (encoder.depth(), encoder.dim()) != (cfg.num_hidden_layers, d) {
            return Err(mismatch(
                "encoder [layers, D]",
                vec![cfg.num_hidden_layers, d],
                vec![encoder.depth(), encoder.dim()],
            ));
        }
        if cls_token.len() != d {
            return Err(mismatch("cls_token", vec![d], vec![cls_token.len()]));
        }
        if let Some(ln) = pre_layer_norm.as_ref().filter(|ln| ln.dim() != d) {
            return Err(mismatch("pre_layer_norm", vec![d], vec![ln.dim()]));
        }
        if let Some(proj) = projection
            .as_ref()
            .filter(|l| (l.out_features(), l.in_features()) != (cfg.projection_dim, d))
        {
            return Err(mismatch(
                "projection",
                vec![cfg.projection_dim, d],
                vec![proj.out_features(), proj.in_features()],
            ));
        }
        Ok(Self {
            input_size: (cfg.image_size, cfg.image_size),
            config: cfg,
            patch_embed,
            pos_embed,
            encoder,
            cls_token,
            pre_layer_norm,
            projection,
        })
    }

    /// Loads a checkpoint directory as `save_pretrained` writes it (`config.json` and
    /// `model.safetensors`).
    ///
    /// # Errors
    /// [`VisionError::Json`] / [`VisionError::InvalidConfig`] for the config;
    /// [`VisionError::Checkpoint`] for files that cannot be found or read and for a tensor
    /// that is missing, misshapen or of a foreign dtype.
    /// Nothing missing is ever replaced by random values.
    ///
    /// `path` may also be a hub id (`"openai/clip-vit-base-patch32"`) found in the local HF
    /// cache, a directory of shards, an open_clip directory, or a single `.safetensors` file:
    /// see [`crate::loader`].
    pub fn from_pretrained(path: impl AsRef<Path>) -> VisionResult<Self> {
        Self::from_pretrained_with(path, &LoadOptions::default())
    }

    /// [`ClipVisionEncoder::from_pretrained`] with what the checkpoint may not say itself
    /// (the activation or head count of OpenAI-named weights without a config).
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::from_pretrained`].
    pub fn from_pretrained_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> VisionResult<Self> {
        crate::loader::load(path.as_ref(), options)
    }

    /// Number of parameters held.
    pub fn num_params(&self) -> usize {
        self.patch_embed.num_params()
            + self.cls_token.len()
            + self.pos_embed.weight().len()
            + self
                .pre_layer_norm
                .as_ref()
                .map_or(0, LayerNorm::num_params)
            + self.encoder.num_params()
            + self.projection.as_ref().map_or(0, Linear::num_params)
    }

    /// Input `(height, width)` in pixels.
    pub fn input_size(&self) -> (usize, usize) {
        self.input_size
    }

    /// Runs the tower on `height × width` images from now on, resizing the position table
    /// to the new patch grid as transformers' `interpolate_pos_encoding=True` does (bicubic,
    /// `align_corners = False`, class position kept); the trained size restores the
    /// original table. The table is resized from the current `pos_embed` on each forward
    /// call (a small bicubic pass next to the encoder), so replacing `pos_embed` later takes
    /// effect.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] (`image_size`) unless both sides are positive multiples
    /// of the patch size and the grid stays within [`crate::config::MAX_TOKENS`].
    pub fn set_input_size(&mut self, height: usize, width: usize) -> VisionResult<()> {
        let p = self.config.patch_size;
        let (gh, gw) = (height / p, width / p);
        let tokens = gh.checked_mul(gw).and_then(|n| n.checked_add(1));
        if height == 0
            || width == 0
            || !height.is_multiple_of(p)
            || !width.is_multiple_of(p)
            || tokens.is_none_or(|t| t > crate::config::MAX_TOKENS)
        {
            return Err(VisionError::InvalidConfig {
                path: None,
                field: "image_size",
                value: format!("{height}×{width}"),
                reason: format!(
                    "sides must be positive multiples of patch_size = {p}, within {} tokens",
                    crate::config::MAX_TOKENS
                ),
            });
        }
        let g = self.config.grid_size();
        if (gh, gw) != (g, g) {
            // Fails now, not at the first forward, if the table cannot be resized.
            self.pos_embed.interpolate(1, gh, gw)?;
        }
        self.input_size = (height, width);
        Ok(())
    }

    /// Patches per image at the current input size.
    pub fn num_patches(&self) -> usize {
        let p = self.config.patch_size;
        (self.input_size.0 / p) * (self.input_size.1 / p)
    }

    /// The precision of the blocks' linear layers (f32 for a tower without blocks).
    pub fn precision(&self) -> Precision {
        self.encoder
            .layers
            .first()
            .map_or(Precision::F32, |b| b.attn.qkv().precision())
    }

    /// Holds the blocks' linear layers in `precision`, converting the values held; for
    /// int8, with the outlier channels found by calibration ([`crate::calibrate`]) kept in
    /// f32. Patch embedding, LayerNorms, attention and the projection stay f32. (Loading
    /// with [`LoadOptions::precision`] does the same from the checkpoint's values, one block
    /// at a time.)
    ///
    /// # Errors
    /// [`VisionError::Tensor`] when a weight cannot be converted (int8 of a non-finite
    /// value).
    pub fn set_precision(&mut self, precision: Precision) -> VisionResult<()> {
        if precision != Precision::Int8 {
            self.encoder.set_precision(precision)?;
            return Ok(());
        }
        let stem = Stem {
            config: &self.config,
            patch_embed: &self.patch_embed,
            pos_embed: &self.pos_embed,
            cls_token: &self.cls_token,
            pre_layer_norm: self.pre_layer_norm.as_ref(),
        };
        let size = (self.config.image_size, self.config.image_size);
        let mut calibration = crate::calibrate::Calibration::new(&stem, size)?;
        for block in &mut self.encoder.layers {
            // Calibrated on the f32 values (a block already int8 is first widened back).
            for (_, linear) in block.linears_mut() {
                linear.set_precision(Precision::F32)?;
            }
            calibration.quantize_block(block)?;
        }
        Ok(())
    }

    /// Values in one image at the current input size, `C × H × W`.
    pub fn image_len(&self) -> usize {
        self.config.num_channels * self.input_size.0 * self.input_size.1
    }

    /// Tokens per image, `N + 1`.
    pub fn seq_len(&self) -> usize {
        self.num_patches() + 1
    }

    /// Number of blocks `L`.
    pub fn num_layers(&self) -> usize {
        self.encoder.depth()
    }

    /// Checks the pixel buffer of `batch` images: its length and that every value is finite.
    fn check_pixels(&self, pixels: &[f32], batch: usize) -> VisionResult<()> {
        let expected =
            batch
                .checked_mul(self.image_len())
                .ok_or(VisionError::DimensionMismatch {
                    expected: usize::MAX,
                    got: pixels.len(),
                })?;
        if pixels.len() != expected {
            return Err(VisionError::DimensionMismatch {
                expected,
                got: pixels.len(),
            });
        }
        if let Some(pos) = pixels.iter().position(|v| !v.is_finite()) {
            let per = self.image_len().max(1);
            return Err(VisionError::NonFiniteInput {
                image: pos / per,
                index: pos % per,
                value: pixels[pos],
            });
        }
        Ok(())
    }

    /// The embeddings fed to the first block (`hidden_states[0]`): patches, class token,
    /// positions, pre-LayerNorm. `pixels` is already checked.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `[batch, N + 1, D]`
    fn embed(&self, pixels: &[f32], batch: usize) -> VisionResult<Vec<f32>> {
        Stem {
            config: &self.config,
            patch_embed: &self.patch_embed,
            pos_embed: &self.pos_embed,
            cls_token: &self.cls_token,
            pre_layer_norm: self.pre_layer_norm.as_ref(),
        }
        .embed(pixels, batch, self.input_size)
    }

    /// Runs `f` on each chunk of at most [`MAX_IMAGES_IN_FLIGHT`] images, after checking the
    /// whole buffer, and concatenates the results.
    fn chunked<T>(
        &self,
        pixels: &[f32],
        batch: usize,
        mut f: impl FnMut(&[f32], usize) -> VisionResult<Vec<T>>,
    ) -> VisionResult<Vec<T>> {
        self.check_pixels(pixels, batch)?;
        let mut out = Vec::new();
        if batch == 0 {
            return Ok(out);
        }
        for chunk in pixels.chunks(MAX_IMAGES_IN_FLIGHT * self.image_len()) {
            out.extend(f(chunk, chunk.len() / self.image_len())?);
        }
        Ok(out)
    }

    /// The output of the last block (transformers' `last_hidden_state`, no final LayerNorm).
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `[batch, N + 1, D]` flat
    ///
    /// # Errors
    /// [`VisionError::DimensionMismatch`] for a wrong length (also `batch = 0` with a
    /// non-empty buffer); [`VisionError::NonFiniteInput`] for a NaN or infinite pixel.
    pub fn last_hidden_state(&self, pixels: &[f32], batch: usize) -> VisionResult<Vec<f32>> {
        let seq = self.seq_len();
        self.chunked(pixels, batch, |chunk, n| {
            let mut x = self.embed(chunk, n)?;
            self.encoder.forward_hidden(&mut x, n, seq)?;
            Ok(x)
        })
    }

    /// transformers' `hidden_states[index]` for `index` in `-(L+1)..=L`, Python-style:
    /// `0` is the pre-LayerNormed embeddings, `L` (or `-1`) the last block's output,
    /// `-2` the penultimate layer LLaVA-style models take. Only the blocks up to `index` run.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `[batch, N + 1, D]` flat
    ///
    /// # Errors
    /// [`VisionError::HiddenStateIndex`] for an index out of range;
    /// otherwise as [`ClipVisionEncoder::last_hidden_state`].
    pub fn hidden_state(
        &self,
        pixels: &[f32],
        batch: usize,
        index: isize,
    ) -> VisionResult<Vec<f32>> {
        let n_layers = self.layer_of(index)?;
        let seq = self.seq_len();
        self.chunked(pixels, batch, |chunk, n| {
            let mut x = self.embed(chunk, n)?;
            self.encoder.forward_layers(&mut x, n, seq, n_layers)?;
            Ok(x)
        })
    }

    /// The patch tokens of `hidden_states[index]`, the class token's row left out
    /// (`hidden_states[index][:, 1:]`, what LLaVA-style models feed their projector).
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `[batch, N, D]` flat
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::hidden_state`].
    pub fn patch_tokens(
        &self,
        pixels: &[f32],
        batch: usize,
        index: isize,
    ) -> VisionResult<Vec<f32>> {
        let hidden = self.hidden_state(pixels, batch, index)?;
        let (seq, d) = (self.seq_len(), self.config.hidden_size);
        Ok(hidden
            .chunks_exact(seq * d)
            .flat_map(|image| &image[d..])
            .copied()
            .collect())
    }

    /// Number of blocks to run for a Python-style hidden-state index.
    fn layer_of(&self, index: isize) -> VisionResult<usize> {
        let depth = self.encoder.depth();
        let resolved = if index < 0 {
            (depth + 1).checked_sub(index.unsigned_abs())
        } else {
            Some(index.unsigned_abs()).filter(|&i| i <= depth)
        };
        resolved.ok_or(VisionError::HiddenStateIndex {
            index,
            layers: depth,
        })
    }

    /// The pooled output of each image: the final-LayerNormed class token (transformers'
    /// `pooler_output`). The whole chunk runs through each matrix product at once; attention
    /// runs image by image in parallel (rayon), and result `i` equals
    /// `forward_single(image i)`.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `batch` vectors of `[D]`
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::last_hidden_state`].
    pub fn forward_batch(&self, pixels: &[f32], batch: usize) -> VisionResult<Vec<Vec<f32>>> {
        let (seq, d) = (self.seq_len(), self.config.hidden_size);
        self.chunked(pixels, batch, |chunk, n| {
            let mut x = self.embed(chunk, n)?;
            self.encoder.forward_hidden(&mut x, n, seq)?;
            let pooled = self.encoder.pool_cls(&x, n, seq)?;
            Ok(pooled.chunks_exact(d).map(<[f32]>::to_vec).collect())
        })
    }

    /// The pooled output of one image.
    ///
    /// # Shapes
    /// - `pixels`: `[C, H, W]` → `[D]`
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::last_hidden_state`].
    pub fn forward_single(&self, pixels: &[f32]) -> VisionResult<Vec<f32>> {
        self.check_pixels(pixels, 1)?;
        self.forward_batch(pixels, 1)?
            .pop()
            .ok_or(VisionError::DimensionMismatch {
                expected: self.image_len(),
                got: pixels.len(),
            })
    }

    /// The projected embedding of each image (transformers' `image_embeds`): the pooled
    /// output times the visual projection, **not** L2-normalised.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `batch` vectors of `[projection_dim]`
    ///
    /// # Errors
    /// [`VisionError::NoProjection`] for a tower without projection; otherwise as
    /// [`ClipVisionEncoder::last_hidden_state`].
    pub fn image_embeds(&self, pixels: &[f32], batch: usize) -> VisionResult<Vec<Vec<f32>>> {
        let projection = self.projection.as_ref().ok_or(VisionError::NoProjection)?;
        let pooled = self.forward_batch(pixels, batch)?;
        let flat: Vec<f32> = pooled.concat();
        let projected = projection.forward(&flat, batch)?;
        let width = projection.out_features();
        Ok(projected
            .chunks_exact(width.max(1))
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// [`ClipVisionEncoder::image_embeds`] scaled to unit L2 norm, ready for cosine
    /// similarity (CLIP's `image_embeds / image_embeds.norm(dim=-1, keepdim=True)`).
    ///
    /// # Shapes
    /// - `pixels`: `[batch, C, H, W]` → `batch` vectors of `[projection_dim]`
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::image_embeds`].
    pub fn image_embeds_normalized(
        &self,
        pixels: &[f32],
        batch: usize,
    ) -> VisionResult<Vec<Vec<f32>>> {
        let mut embeds = self.image_embeds(pixels, batch)?;
        embeds.iter_mut().for_each(|e| l2_normalize(e));
        Ok(embeds)
    }
}

/// Scales `v` to unit L2 norm (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}
