//! CLIP image preprocessing, value for value what HF transformers' `CLIPImageProcessor` with
//! the PIL backend (`CLIPImageProcessorPil` in transformers 5) gives.
//!
//! [`ImageProcessor`] is the entry point: it reads a checkpoint's `preprocessor_config.json`
//! ([`PreprocessorConfig`]) and turns an image file or a decoded [`image::DynamicImage`] into
//! the `[3, H, W]` `pixel_values` the encoder takes:
//!
//! 1. **decode** ([`decode`]): JPEG with libjpeg-turbo's decoder (the library PIL uses),
//!    PNG, WebP, GIF (first frame), BMP and TIFF with the `image` crate; the pixel count is
//!    checked against a decompression-bomb limit from the header, before decoding;
//! 2. **convert to RGB** (`convert`): alpha composited onto white with PIL's integer
//!    formula, greyscale and palettes expanded, 16-bit samples reduced to their high byte;
//! 3. **resize** ([`resize`]): shortest edge to `size` (long side truncated like
//!    transformers), PIL's antialiased bicubic in two 8-bit fixed-point passes;
//! 4. **center crop** (`crop`): transformers' offsets, zero padding when smaller;
//! 5. **rescale and normalise** (`normalize`): `× rescale_factor` in `f64` then `f32`,
//!    `(x − mean) / std` in `f32`, written channel-first.
//!
//! The design decision that shapes it: parity is decided in 8-bit levels. Every step up to
//! the crop reproduces PIL's integer arithmetic exactly, so the intermediate image
//! ([`ImageProcessor::resize_and_crop`]) is identical to transformers', and the `f32` output,
//! a pure function of a level and a channel, then is too. Resizing and cropping are fused:
//! only the crop window of the resized image is computed, which is faster and bounds memory
//! for extreme aspect ratios, without changing a value.
//!
//! Two opt-in departures, both off by default ([`decode`]): JPEG DCT-domain downscaling
//! as PIL's `Image.draft` ([`ImageProcessor::with_fast_decode`]), and EXIF orientation as
//! PIL's `ImageOps.exif_transpose` ([`ImageProcessor::with_exif_transpose`]).
//!
//! Known differences from transformers: EXIF orientation is ignored by default (as
//! `Image.open` + processor ignore it); 16-bit greyscale, which PIL clips to 255, keeps its high byte;
//! only `resample` 3 (bicubic) and 2 (bilinear) are implemented; `size` with
//! `longest_edge` or `max_height`/`max_width` is refused.
//!
//! It does **not** know or run any model (the image size it crops to comes from the config),
//! and depends on no `vit-*` crate: `clip-vision` re-exports it as `clip_vision::preprocess`
//! under its `image` feature, so crates that only run the encoder on ready-made pixels pull
//! in no image codec.
#![forbid(unsafe_code)]

pub mod config;
mod convert;
mod crop;
pub mod decode;
pub mod error;
mod normalize;
mod processor;
pub mod resize;

pub use config::{CropSize, PreprocessorConfig, ResizeTarget, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
pub use decode::DEFAULT_MAX_PIXELS;
pub use error::{PreprocessError, PreprocessResult};
pub use image;
pub use processor::ImageProcessor;
pub use resize::Resample;
