//! `PatchEmbed`: the strided convolution that turns an image into patch tokens.
//!
//! A `Conv2d(C → D, kernel P, stride P)` touches each pixel once, so it is a matrix product:
//! gather every `P × P` patch of every channel into a row (`[C·P·P]`, in the kernel's
//! `(c, ky, kx)` order), then multiply by the kernel viewed as `[D, C·P·P]`.

use crate::Linear;
use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::{LcgRng, TensorError, TensorResult};

/// Non-overlapping patch embedding (ViT's `Conv2d(C, D, kernel_size=P, stride=P)`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchEmbed {
    /// The kernel `[D, C, P, P]` viewed as a linear layer `[D, C·P·P]`.
    proj: Linear,
    channels: usize,
    patch_size: usize,
}

impl PatchEmbed {
    /// A patch embedding from its kernel `[embed_dim, channels, patch_size, patch_size]` and
    /// optional bias `[embed_dim]` (CLIP has none).
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when a buffer does not match;
    /// [`TensorError::InvalidArgument`] when `patch_size` or `channels` is 0.
    pub fn new(
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        embed_dim: usize,
        channels: usize,
        patch_size: usize,
    ) -> TensorResult<Self> {
        for (what, v) in [("patch_size", patch_size), ("channels", channels)] {
            if v == 0 {
                return Err(TensorError::InvalidArgument {
                    op: "PatchEmbed::new",
                    what,
                    value: "0".into(),
                    reason: "must be positive",
                });
            }
        }
        let patch_len = checked_mul(
            "PatchEmbed::new",
            "C·P·P",
            channels,
            patch_size * patch_size,
        )?;
        let expected = checked_mul("PatchEmbed::new", "weight", embed_dim, patch_len)?;
        check_len(
            "PatchEmbed::new",
            "weight [D, C, P, P]",
            expected,
            weight.len(),
        )?;
        Ok(Self {
            proj: Linear::new(weight, bias, patch_len, embed_dim)?,
            channels,
            patch_size,
        })
    }

    /// A patch embedding with kernel weights from `N(0, std²)` and no bias.
    pub fn random(
        embed_dim: usize,
        channels: usize,
        patch_size: usize,
        std: f32,
        rng: &mut LcgRng,
    ) -> Self {
        Self {
            proj: Linear::random(
                channels * patch_size * patch_size,
                embed_dim,
                false,
                std,
                rng,
            ),
            channels,
            patch_size,
        }
    }

    /// Output width `D`.
    pub fn embed_dim(&self) -> usize {
        self.proj.out_features()
    }

    /// Input channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Patch side `P`.
    pub fn patch_size(&self) -> usize {
        self.patch_size
    }

    /// The kernel, `[D, C, P, P]` flat (a copy: it is held transposed for the GEMM).
    pub fn weight(&self) -> Vec<f32> {
        self.proj.weight()
    }

    /// The bias `[D]`, if any.
    pub fn bias(&self) -> Option<&[f32]> {
        self.proj.bias()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.proj.num_params()
    }

    /// The patch grid `(rows, cols)` of a `height × width` image.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] unless both sides are positive multiples of `P`.
    pub fn grid(&self, height: usize, width: usize) -> TensorResult<(usize, usize)> {
        for (what, side) in [("height", height), ("width", width)] {
            if side == 0 || side % self.patch_size != 0 {
                return Err(TensorError::InvalidArgument {
                    op: "PatchEmbed",
                    what,
                    value: side.to_string(),
                    reason: "must be a positive multiple of the patch size",
                });
            }
        }
        Ok((height / self.patch_size, width / self.patch_size))
    }

    /// Embeds every patch of every image.
    ///
    /// Patches are numbered row by row (`patch_idx = row · grid_cols + col`), as
    /// `conv(x).flatten(2).transpose(1, 2)` orders them.
    ///
    /// # Shapes
    /// - `images`: `[batch, C, height, width]`
    /// - output: `[batch, n_patches, D]` with `n_patches = (height/P)·(width/P)`
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for sides that are not multiples of `P`;
    /// [`TensorError::LengthMismatch`] when `images` has the wrong length.
    pub fn forward(
        &self,
        images: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> TensorResult<Vec<f32>> {
        let patches = self.im2col(images, batch, height, width)?;
        let (gh, gw) = self.grid(height, width)?;
        self.proj.forward(&patches, batch * gh * gw)
    }

    /// Gathers the patches into rows `[batch · n_patches, C·P·P]`.
    fn im2col(
        &self,
        images: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> TensorResult<Vec<f32>> {
        let (gh, gw) = self.grid(height, width)?;
        let (c, p) = (self.channels, self.patch_size);
        let image_len = checked_mul("PatchEmbed", "image [C, H, W]", c, height * width)?;
        let expected = checked_mul("PatchEmbed", "images", batch, image_len)?;
        check_len(
            "PatchEmbed",
            "images [batch, C, height, width]",
            expected,
            images.len(),
        )?;
        let patch_len = c * p * p;
        let mut out = vec![0.0f32; batch * gh * gw * patch_len];
        if patch_len == 0 {
            return Ok(out);
        }
        let mut rows = out.chunks_exact_mut(patch_len);
        for image in images.chunks_exact(image_len) {
            for py in 0..gh {
                for px in 0..gw {
                    let Some(row) = rows.next() else { break };
                    for ch in 0..c {
                        for ky in 0..p {
                            let src = ch * height * width + (py * p + ky) * width + px * p;
                            let dst = (ch * p + ky) * p;
                            row[dst..dst + p].copy_from_slice(&image[src..src + p]);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, one output at a time.
    fn naive_conv(pe: &PatchEmbed, img: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (c, p, d) = (pe.channels(), pe.patch_size(), pe.embed_dim());
        let (gh, gw) = (h / p, w / p);
        let kernel = pe.weight();
        let mut out = vec![0.0; gh * gw * d];
        for py in 0..gh {
            for px in 0..gw {
                for o in 0..d {
                    let mut acc = pe.bias().map_or(0.0, |b| f64::from(b[o]));
                    for ch in 0..c {
                        for ky in 0..p {
                            for kx in 0..p {
                                let wv = kernel[((o * c + ch) * p + ky) * p + kx];
                                let xv = img[ch * h * w + (py * p + ky) * w + px * p + kx];
                                acc += f64::from(wv) * f64::from(xv);
                            }
                        }
                    }
                    out[(py * gw + px) * d + o] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution_on_a_non_square_image() {
        let mut rng = LcgRng::new(5);
        let (d, c, p, h, w) = (5, 3, 2, 4, 6);
        let pe = PatchEmbed::new(
            rng.normal_vec(d * c * p * p, 0.0, 1.0),
            Some(rng.normal_vec(d, 0.0, 1.0)),
            d,
            c,
            p,
        )
        .unwrap();
        let imgs = rng.normal_vec(2 * c * h * w, 0.0, 1.0);
        let y = pe.forward(&imgs, 2, h, w).unwrap();
        assert_eq!(y.len(), 2 * 6 * d);
        for b in 0..2 {
            let want = naive_conv(&pe, &imgs[b * c * h * w..(b + 1) * c * h * w], h, w);
            for (got, want) in y[b * 6 * d..(b + 1) * 6 * d].iter().zip(&want) {
                assert!((got - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn refuses_sides_that_are_not_multiples_and_wrong_lengths() {
        let pe = PatchEmbed::random(4, 3, 2, 0.02, &mut LcgRng::new(0));
        assert!(matches!(
            pe.forward(&[0.0; 3 * 3 * 4], 1, 3, 4),
            Err(TensorError::InvalidArgument { what: "height", .. })
        ));
        assert!(matches!(
            pe.forward(&[0.0; 10], 1, 2, 2),
            Err(TensorError::LengthMismatch {
                expected: 12,
                got: 10,
                ..
            })
        ));
        assert!(PatchEmbed::new(vec![], None, 4, 3, 0).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `[batch, C, gh·P, gw·P] → [batch, gh·gw, D]`.
        #[test]
        fn patch_embed_output_shape(d in 1usize..6, c in 1usize..4, p in 1usize..5, gh in 1usize..4, gw in 1usize..4, batch in 0usize..3, seed: u64) {
            let mut rng = LcgRng::new(seed);
            let pe = PatchEmbed::random(d, c, p, 0.5, &mut rng);
            let (h, w) = (gh * p, gw * p);
            let imgs = rng.normal_vec(batch * c * h * w, 0.0, 1.0);
            let y = pe.forward(&imgs, batch, h, w).unwrap();
            prop_assert_eq!(y.len(), batch * gh * gw * d);
            prop_assert_eq!(pe.grid(h, w).unwrap(), (gh, gw));
        }
    }
}
