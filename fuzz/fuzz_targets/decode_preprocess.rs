//! Fuzz target: arbitrary bytes as an image file, decoded with
//! `clip_vision::preprocess::decode::decode` under a 4-megapixel limit and, when it
//! decodes, preprocessed to a 32-pixel crop.
//!
//! Property: decoding never panics (libjpeg's fatal errors included: they unwind into
//! `PreprocessError::Image`), hangs, or allocates for pixels a header claims past the limit.
//! Oracles: a decoded image has between 1 and `MAX_PIXELS` pixels, and preprocessing it
//! gives `3 × 32 × 32` finite values.
#![no_main]

use clip_vision::preprocess::decode::decode;
use clip_vision::preprocess::PreprocessorConfig;
use clip_vision::ImageProcessor;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

/// The pixel limit: small enough that a valid but huge image does not slow the fuzzer.
const MAX_PIXELS: u64 = 4 << 20;
/// Side of the (square) crop.
const CROP: usize = 32;

fn processor() -> &'static ImageProcessor {
    static PROCESSOR: OnceLock<ImageProcessor> = OnceLock::new();
    PROCESSOR.get_or_init(|| {
        ImageProcessor::new(PreprocessorConfig::with_image_size(CROP))
            .expect("a 32-pixel config is valid")
            .with_max_pixels(MAX_PIXELS)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(image) = decode(data, Path::new("fuzz"), MAX_PIXELS) else {
        return;
    };
    let pixels = u64::from(image.width()) * u64::from(image.height());
    assert!(
        (1..=MAX_PIXELS).contains(&pixels),
        "{pixels} pixels decoded"
    );
    let values = processor()
        .preprocess(&image)
        .expect("a decoded image preprocesses");
    assert_eq!(values.len(), 3 * CROP * CROP);
    assert!(values.iter().all(|v| v.is_finite()));
});
