//! `ImageProcessor`: decode → RGB → resize → center crop → rescale → normalise, as HF
//! `CLIPImageProcessor` with the PIL backend computes it.

use crate::config::{PreprocessorConfig, ResizeTarget};
use crate::convert::to_rgb8;
use crate::crop::{place, CropAxis};
use crate::decode::{self, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::error::{PreprocessError, PreprocessResult};
use crate::normalize::Normalizer;
use crate::resize::resize_rgb8_region;
use image::{DynamicImage, RgbImage};
use std::path::Path;

/// Names an image that did not come from a file, in errors.
const IN_MEMORY: &str = "<in-memory image>";

/// transformers' `CLIPImageProcessor` (PIL backend): images in, `pixel_values` out.
///
/// One image gives `[3, H, W]` CHW `f32` (`H × W` = the crop size, or the resized size when
/// `do_center_crop` is false), the layout `clip_vision::ClipVisionEncoder` takes.
///
/// ```
/// use clip_preprocess::ImageProcessor;
/// use image::{DynamicImage, RgbImage, Rgb};
/// let processor = ImageProcessor::default(); // OpenAI CLIP, 224 px
/// let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(640, 480, Rgb([200, 100, 50])));
/// let pixels = processor.preprocess(&photo)?;
/// assert_eq!(pixels.len(), 3 * 224 * 224);
/// // resize + crop alone, in 8-bit levels: 640×480 → 298×224 → 224×224
/// let levels = processor.resize_and_crop(&photo)?;
/// assert_eq!((levels.width(), levels.height()), (224, 224));
/// assert_eq!(levels.get_pixel(0, 0).0, [200, 100, 50]);
/// # Ok::<(), clip_preprocess::PreprocessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: PreprocessorConfig,
    normalizer: Normalizer,
    max_pixels: u64,
    fast_decode: bool,
    exif_transpose: bool,
}

impl Default for ImageProcessor {
    /// `CLIPImageProcessor()`: OpenAI CLIP at 224 px, PIL's pixel limit.
    fn default() -> Self {
        let config = PreprocessorConfig::default();
        Self {
            normalizer: Normalizer::new(&config),
            config,
            max_pixels: DEFAULT_MAX_PIXELS,
            fast_decode: false,
            exif_transpose: false,
        }
    }
}

impl ImageProcessor {
    /// A processor for `config`, with the default pixel limit.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidConfig`] when the config does not validate.
    pub fn new(config: PreprocessorConfig) -> PreprocessResult<Self> {
        config.validate()?;
        Ok(Self {
            normalizer: Normalizer::new(&config),
            config,
            max_pixels: DEFAULT_MAX_PIXELS,
            fast_decode: false,
            exif_transpose: false,
        })
    }

    /// The processor of a checkpoint: `path` is a directory holding
    /// `preprocessor_config.json` (or, lacking one, a `config.json` whose `image_size` is
    /// used with the defaults), the path of a preprocessor config file, or a hub id in the
    /// local HF cache. See
    /// [`PreprocessorConfig::from_pretrained`].
    ///
    /// # Errors
    /// [`PreprocessError::Checkpoint`] (not found, unreadable, not JSON) or
    /// [`PreprocessError::InvalidConfig`], naming the file.
    pub fn from_pretrained(path: impl AsRef<Path>) -> PreprocessResult<Self> {
        Self::new(PreprocessorConfig::from_pretrained(path)?)
    }

    /// The same processor with another decompression-bomb limit, in pixels: images whose
    /// header declares more are refused before decoding, and outputs larger than this are
    /// refused before they are allocated. Default [`DEFAULT_MAX_PIXELS`] (PIL's).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The pixel limit in force.
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// The same processor with JPEG DCT-domain downscaling on or off (default off): files
    /// are decoded as PIL's `Image.draft("RGB", size)` does, `size` the resize target
    /// (`(n, n)` for a shortest edge `n`), then resized and cropped as always. Several
    /// times faster on large photos; the pixels are no longer transformers' (a few levels
    /// apart, docs/performance.md). Only JPEG files are affected, and only with `do_resize`.
    pub fn with_fast_decode(mut self, fast_decode: bool) -> Self {
        self.fast_decode = fast_decode;
        self
    }

    /// Whether JPEGs are decoded downscaled ([`ImageProcessor::with_fast_decode`]).
    pub fn fast_decode(&self) -> bool {
        self.fast_decode
    }

    /// The same processor applying the EXIF orientation of image files after decoding, as
    /// PIL's `ImageOps.exif_transpose` (default off: transformers' processor ignores it).
    pub fn with_exif_transpose(mut self, exif_transpose: bool) -> Self {
        self.exif_transpose = exif_transpose;
        self
    }

    /// Whether files' EXIF orientation is applied ([`ImageProcessor::with_exif_transpose`]).
    pub fn exif_transpose(&self) -> bool {
        self.exif_transpose
    }

    /// How this processor decodes files: its pixel limit, the `Image.draft` size when fast
    /// decoding is on (the resize target, as `(width, height)`), and the orientation flag.
    pub fn decode_options(&self) -> DecodeOptions {
        let cfg = &self.config;
        let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let draft = (self.fast_decode && cfg.do_resize).then(|| match cfg.size {
            ResizeTarget::ShortestEdge(n) => (saturate(n), saturate(n)),
            ResizeTarget::Exact { height, width } => (saturate(width), saturate(height)),
        });
        DecodeOptions {
            max_pixels: self.max_pixels,
            draft,
            exif_transpose: self.exif_transpose,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PreprocessorConfig {
        &self.config
    }

    /// `(H, W)` of the output for an `height × width` input.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        self.config.output_size(height, width)
    }

    /// Decodes an image file under this processor's pixel limit, downscaled and oriented
    /// when those options are on ([`ImageProcessor::decode_options`], [`crate::decode`]).
    ///
    /// # Errors
    /// As [`decode::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> PreprocessResult<DynamicImage> {
        decode::open_with(path.as_ref(), &self.decode_options())
    }

    /// Preprocesses one decoded image.
    ///
    /// # Shapes
    /// - returns: `[3, H, W]`, `(H, W)` = [`ImageProcessor::output_size`]
    ///
    /// # Errors
    /// [`PreprocessError::Image`] for an image without pixels, or a non-RGB image when
    /// `do_convert_rgb` is false; [`PreprocessError::ImageTooLarge`] when the output would exceed
    /// the pixel limit (only possible without `do_center_crop`).
    pub fn preprocess(&self, image: &DynamicImage) -> PreprocessResult<Vec<f32>> {
        let (levels, _, _) = self.levels(image, Path::new(IN_MEMORY))?;
        Ok(self.normalizer.to_chw(&levels))
    }

    /// Reads, decodes and preprocesses one image file.
    ///
    /// # Shapes
    /// - returns: `[3, H, W]`
    ///
    /// # Errors
    /// As [`ImageProcessor::open`] and [`ImageProcessor::preprocess`], naming the file.
    pub fn preprocess_path(&self, path: impl AsRef<Path>) -> PreprocessResult<Vec<f32>> {
        let path = path.as_ref();
        let image = self.open(path)?;
        let (levels, _, _) = self.levels(&image, path)?;
        Ok(self.normalizer.to_chw(&levels))
    }

    /// Decodes and preprocesses one encoded image held in memory (the bytes of a JPEG, PNG,
    /// … file: an archive member, an HTTP body).
    ///
    /// # Shapes
    /// - returns: `[3, H, W]`
    ///
    /// # Errors
    /// As [`decode::decode`] and [`ImageProcessor::preprocess`], naming `<in-memory image>`.
    pub fn preprocess_bytes(&self, bytes: &[u8]) -> PreprocessResult<Vec<f32>> {
        let path = Path::new(IN_MEMORY);
        let image = decode::decode_with(bytes, path, &self.decode_options())?;
        let (levels, _, _) = self.levels(&image, path)?;
        Ok(self.normalizer.to_chw(&levels))
    }

    /// The 8-bit image after RGB conversion, resizing and center cropping, before rescaling
    /// and normalising: what transformers computes with `do_rescale` and `do_normalize` off.
    ///
    /// # Errors
    /// As [`ImageProcessor::preprocess`].
    pub fn resize_and_crop(&self, image: &DynamicImage) -> PreprocessResult<RgbImage> {
        let (levels, h, w) = self.levels(image, Path::new(IN_MEMORY))?;
        let (h, w) = (saturate(h), saturate(w));
        RgbImage::from_raw(w, h, levels).ok_or_else(|| PreprocessError::Image {
            path: IN_MEMORY.into(),
            reason: format!("{w}×{h} output does not fit an image buffer"),
        })
    }

    /// `[H, W, 3]` levels of the resized and cropped image, with `H` and `W`.
    fn levels(
        &self,
        image: &DynamicImage,
        path: &Path,
    ) -> PreprocessResult<(Vec<u8>, usize, usize)> {
        let cfg = &self.config;
        let rgb = to_rgb8(image, cfg.do_convert_rgb, path)?;
        let (in_h, in_w) = (rgb.height() as usize, rgb.width() as usize);
        if in_h == 0 || in_w == 0 {
            return Err(PreprocessError::Image {
                path: path.into(),
                reason: format!("image has no pixels ({in_w}×{in_h})"),
            });
        }
        let (rh, rw) = cfg.resized_size(in_h, in_w);
        let (rows, cols) = if cfg.do_center_crop {
            (
                CropAxis::center(rh, cfg.crop_size.height),
                CropAxis::center(rw, cfg.crop_size.width),
            )
        } else {
            (CropAxis::whole(rh), CropAxis::whole(rw))
        };
        if (rows.len as u128) * (cols.len as u128) > u128::from(self.max_pixels) {
            return Err(PreprocessError::ImageTooLarge {
                path: path.into(),
                width: saturate(cols.len),
                height: saturate(rows.len),
                limit: self.max_pixels,
            });
        }
        // Without do_resize the "resize" is to the same size, which copies the crop.
        let visible = resize_rgb8_region(
            rgb.as_raw(),
            (in_h, in_w),
            (rh, rw),
            cfg.resample,
            rows.source.clone(),
            cols.source.clone(),
        );
        Ok((place(visible, &rows, &cols), rows.len, cols.len))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CropSize, ResizeTarget};
    use crate::resize::{resize_rgb8, Resample};
    use image::{GrayImage, ImageBuffer, Luma, Rgb, Rgba, RgbaImage};

    fn noise_image(w: u32, h: u32, seed: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed)
                .wrapping_mul(2_246_822_519);
            Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
        }))
    }

    #[test]
    fn resize_then_crop_equals_full_resize_cropped() {
        let p = ImageProcessor::default();
        for (w, h) in [
            (640, 480),
            (480, 640),
            (300, 451),
            (224, 224),
            (100, 150),
            (2, 900),
            (900, 2),
        ] {
            let im = noise_image(w, h, w ^ h);
            let rgb = im.to_rgb8();
            let (rh, rw) = p.config().resized_size(h as usize, w as usize);
            let full = resize_rgb8(
                rgb.as_raw(),
                (h as usize, w as usize),
                (rh, rw),
                Resample::Bicubic,
            );
            let (top, left) = (
                (rh as i64 - 224).div_euclid(2),
                (rw as i64 - 224).div_euclid(2),
            );
            let got = p.resize_and_crop(&im).unwrap();
            for y in 0..224i64 {
                for x in 0..224i64 {
                    let (sy, sx) = (y + top, x + left);
                    let want = if (0..rh as i64).contains(&sy) && (0..rw as i64).contains(&sx) {
                        let i = (sy as usize * rw + sx as usize) * 3;
                        [full[i], full[i + 1], full[i + 2]]
                    } else {
                        [0, 0, 0]
                    };
                    assert_eq!(
                        got.get_pixel(x as u32, y as u32).0,
                        want,
                        "{w}×{h} at ({x}, {y})"
                    );
                }
            }
        }
    }

    #[test]
    fn thin_images_are_handled_without_huge_buffers() {
        let p = ImageProcessor::default();
        // 1×N and N×1: the short side is 1, so the long side becomes 224·N; only the
        // 224×224 crop is ever computed.
        for (w, h) in [(1, 5000), (5000, 1), (1, 1)] {
            let im = noise_image(w, h, 1);
            let out = p.preprocess(&im).unwrap();
            assert_eq!(out.len(), 3 * 224 * 224, "{w}×{h}");
        }
        // A single pixel upscales to a constant image.
        let dot = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([9, 8, 7])));
        assert!(p
            .resize_and_crop(&dot)
            .unwrap()
            .pixels()
            .all(|px| px.0 == [9, 8, 7]));
    }

    #[test]
    fn zero_size_images_are_refused() {
        let p = ImageProcessor::default();
        for (w, h) in [(0, 0), (0, 5), (5, 0)] {
            let im = DynamicImage::ImageRgb8(RgbImage::new(w, h));
            let err = p.preprocess(&im).unwrap_err().to_string();
            assert!(err.contains("image has no pixels"), "{err}");
        }
    }

    #[test]
    fn flags_are_honoured() {
        let im = noise_image(40, 30, 5);
        let cfg = PreprocessorConfig {
            do_resize: false,
            do_center_crop: false,
            do_rescale: false,
            do_normalize: false,
            ..PreprocessorConfig::default()
        };
        let p = ImageProcessor::new(cfg.clone()).unwrap();
        assert_eq!(p.output_size(30, 40), (30, 40));
        let out = p.preprocess(&im).unwrap();
        let rgb = im.to_rgb8();
        assert_eq!(out[0], f32::from(rgb.get_pixel(0, 0).0[0]));
        assert_eq!(out[30 * 40], f32::from(rgb.get_pixel(0, 0).0[1]));
        // Crop without resize: the middle of the original, padded where smaller.
        let p = ImageProcessor::new(PreprocessorConfig {
            do_center_crop: true,
            crop_size: CropSize {
                height: 20,
                width: 50,
            },
            ..cfg.clone()
        })
        .unwrap();
        let levels = p.resize_and_crop(&im).unwrap();
        assert_eq!((levels.width(), levels.height()), (50, 20));
        assert_eq!(levels.get_pixel(5, 0).0, rgb.get_pixel(0, 5).0);
        assert_eq!(levels.get_pixel(4, 0).0, [0, 0, 0]);
        // Exact resize, bilinear, no crop.
        let p = ImageProcessor::new(PreprocessorConfig {
            do_resize: true,
            size: ResizeTarget::Exact {
                height: 7,
                width: 9,
            },
            resample: Resample::Bilinear,
            ..cfg
        })
        .unwrap();
        let levels = p.resize_and_crop(&im).unwrap();
        let want = resize_rgb8(rgb.as_raw(), (30, 40), (7, 9), Resample::Bilinear);
        assert_eq!(levels.as_raw(), &want);
    }

    #[test]
    fn greyscale_palette_and_alpha_inputs_become_rgb() {
        let p = ImageProcessor::default();
        let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([77])));
        assert!(p
            .resize_and_crop(&grey)
            .unwrap()
            .pixels()
            .all(|px| px.0 == [77; 3]));
        // Fully transparent → white.
        let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(30, 30, Rgba([0, 0, 0, 0])));
        assert!(p
            .resize_and_crop(&clear)
            .unwrap()
            .pixels()
            .all(|px| px.0 == [255; 3]));
        let l16 = DynamicImage::ImageLuma16(ImageBuffer::from_pixel(30, 30, Luma([0xAB00u16])));
        assert!(p
            .resize_and_crop(&l16)
            .unwrap()
            .pixels()
            .all(|px| px.0 == [0xAB; 3]));
    }

    #[test]
    fn output_limit_guards_uncropped_outputs() {
        let p = ImageProcessor::new(PreprocessorConfig {
            do_center_crop: false,
            ..PreprocessorConfig::default()
        })
        .unwrap()
        .with_max_pixels(1_000_000);
        let thin = noise_image(1, 100, 3);
        // 224 × 22 400 = 5 017 600 pixels > 10⁶
        let err = p.preprocess(&thin).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::ImageTooLarge {
                    width: 224,
                    height: 22_400,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(p.max_pixels(), 1_000_000);
    }

    #[test]
    fn processor_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ImageProcessor>();
    }

    #[test]
    fn invalid_config_is_refused() {
        let bad = PreprocessorConfig {
            image_std: [1.0, 0.0, 1.0],
            ..PreprocessorConfig::default()
        };
        let err = ImageProcessor::new(bad).unwrap_err().to_string();
        assert!(err.starts_with("<config>: image_std"), "{err}");
    }
}
