//! `ImageProcessor` against transformers 5's `CLIPImageProcessorPil` on every committed
//! fixture image (made by `scripts/make_image_fixtures.py`, see `fixtures/images/README.md`).
//!
//! Parity is measured in 8-bit levels, after un-normalising our output: at most 1 level off
//! anywhere, and at least 99.9 % of values identical. The normalised output is compared with
//! transformers' own: bit-identical wherever the level agrees, and everywhere within one
//! level's step of the normalisation table (`1 / (255 · std)` ≈ 0.0150 for OpenAI's
//! constants), since the PIL backend's output is a pure function of level and channel.
//!
//! Those are the contract. What is measured is exact parity, and for the formats whose
//! decoding is pinned here (JPEG through the vendored libjpeg-turbo, lossless PNG and GIF)
//! exactness is asserted too: a subtly wrong rounding (e.g. truncating instead of rounding
//! the fixed-point coefficients) moves only 0.002–0.03 % of values by one level, which the
//! contract alone would let through. WebP is held to the contract only (`image-webp` is a
//! separate implementation of libwebp's decoder that happens to agree today).

use clip_preprocess::{ImageProcessor, PreprocessError, PreprocessorConfig, DEFAULT_MAX_PIXELS};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::path::PathBuf;

/// The workspace's `fixtures/` directory.
fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Worst level difference allowed anywhere.
const MAX_LEVEL_DIFF: u8 = 1;
/// Smallest fraction of values that must be identical in 8-bit levels.
const MIN_IDENTICAL: f64 = 0.999;
/// Image extensions held to exact parity.
const EXACT: [&str; 3] = ["jpg", "png", "gif"];

fn images_dir() -> PathBuf {
    fixtures_dir().join("images")
}

/// `reference.json` and the bytes of `reference.safetensors`.
fn reference() -> (Value, Vec<u8>) {
    let dir = images_dir();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    (
        meta,
        std::fs::read(dir.join("reference.safetensors")).unwrap(),
    )
}

fn u8_tensor(st: &SafeTensors, name: &str) -> (Vec<u8>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    (t.data().to_vec(), t.shape().to_vec())
}

fn f32_tensor(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The level whose table value is nearest `x` (tables are strictly monotonic).
fn unnormalise(table: &[f32], x: f32) -> u8 {
    let mut best = 0;
    for (level, v) in table.iter().enumerate() {
        if (v - x).abs() < (table[best] - x).abs() {
            best = level;
        }
    }
    best as u8
}

/// What one case measured.
struct Parity {
    max_level_diff: u8,
    identical: f64,
    max_norm_err: f32,
    norm_tolerance: f32,
}

fn check_case(st: &SafeTensors, case: &Value) -> Parity {
    let name = case["name"].as_str().unwrap();
    let (h, w) = (
        case["height"].as_u64().unwrap() as usize,
        case["width"].as_u64().unwrap() as usize,
    );
    let dir = images_dir();
    let processor_name = case["processor"].as_str().unwrap();
    let processor = ImageProcessor::from_pretrained(
        dir.join("processors")
            .join(format!("{processor_name}.json")),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let file = dir.join(case["image"].as_str().unwrap());
    let image = processor
        .open(&file)
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    // Our output, its 8-bit intermediate, and the path-based entry point agreeing.
    let ours = processor.preprocess(&image).unwrap();
    let ours_levels = processor.resize_and_crop(&image).unwrap();
    assert_eq!(
        processor.preprocess_path(&file).unwrap(),
        ours,
        "{name}: preprocess_path"
    );
    assert_eq!(
        processor.output_size(image.height() as usize, image.width() as usize),
        (h, w),
        "{name}"
    );
    assert_eq!(ours.len(), 3 * h * w, "{name}");

    // transformers' output: levels [H, W, 3] through its table [3, 256].
    let (want_levels, shape) = u8_tensor(st, &format!("{name}.levels"));
    assert_eq!(shape, [h, w, 3], "{name}");
    let table = f32_tensor(st, &format!("{processor_name}.table"));
    let table = [&table[..256], &table[256..512], &table[512..]];
    let norm_tolerance = table
        .iter()
        .flat_map(|t| t.windows(2).map(|p| (p[1] - p[0]).abs()))
        .fold(0f32, f32::max)
        * (1.0 + 1e-6);

    let (mut max_level_diff, mut same, mut max_norm_err) = (0u8, 0usize, 0f32);
    for c in 0..3 {
        for i in 0..h * w {
            let got = ours[c * h * w + i];
            let level = unnormalise(table[c], got);
            assert_eq!(
                level,
                ours_levels.as_raw()[i * 3 + c],
                "{name}: our output is not our levels normalised"
            );
            let want_level = want_levels[i * 3 + c];
            let want = table[c][usize::from(want_level)];
            let diff = level.abs_diff(want_level);
            max_level_diff = max_level_diff.max(diff);
            max_norm_err = max_norm_err.max((got - want).abs());
            if diff == 0 {
                same += 1;
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{name}: same level {level}, different value"
                );
            }
        }
    }
    Parity {
        max_level_diff,
        identical: same as f64 / (3 * h * w) as f64,
        max_norm_err,
        norm_tolerance,
    }
}

#[test]
fn every_fixture_image_matches_transformers() {
    let (meta, bytes) = reference();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 12,
        "reference.json lists {} cases",
        cases.len()
    );
    eprintln!(
        "{:44} {:>9} {:>11} {:>12} {:>10}",
        "case (image@processor)", "max Δlevel", "identical", "max Δnorm", "tolerance"
    );
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let p = check_case(&st, case);
        eprintln!(
            "{name:44} {:>9} {:>10.4}% {:>12.3e} {:>10.3e}",
            p.max_level_diff,
            100.0 * p.identical,
            p.max_norm_err,
            p.norm_tolerance
        );
        let ext = case["image"].as_str().unwrap().rsplit('.').next().unwrap();
        if EXACT.contains(&ext) && p.max_level_diff != 0 {
            failures.push(format!("{name} (not exact)"));
        }
        if p.max_level_diff > MAX_LEVEL_DIFF
            || p.identical < MIN_IDENTICAL
            || p.max_norm_err > p.norm_tolerance
        {
            failures.push(name.to_string());
        }
    }
    assert!(failures.is_empty(), "outside tolerance: {failures:?}");
}

#[test]
fn every_committed_image_has_a_case() {
    let (meta, _) = reference();
    let covered: Vec<&str> = meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    for entry in std::fs::read_dir(images_dir()).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ["jpg", "png", "gif", "webp", "bmp", "tif", "tiff"].contains(&ext) {
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(covered.contains(&file), "{file} is not in reference.json");
        }
    }
}

#[test]
fn processor_configs_written_by_transformers_parse() {
    let dir = images_dir().join("processors");
    let default = ImageProcessor::from_pretrained(dir.join("openai-224.json")).unwrap();
    assert_eq!(default.config(), &PreprocessorConfig::default());
    assert_eq!(default.config(), ImageProcessor::default().config());
    assert_eq!(default.max_pixels(), DEFAULT_MAX_PIXELS);
}

#[test]
fn model_directory_without_preprocessor_config_uses_its_image_size() {
    // The tiny fixtures are saved with save_pretrained: config.json, no preprocessor config.
    let p = ImageProcessor::from_pretrained(fixtures_dir().join("models/tiny-gelu")).unwrap();
    assert_eq!(p.output_size(480, 640), (30, 30));
}

#[test]
fn broken_files_are_errors_naming_the_file() {
    let p = ImageProcessor::default();
    let dir = images_dir();
    let tmp = std::env::temp_dir().join(format!("clip-vision-preprocess-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let msg = |path: &std::path::Path| p.preprocess_path(path).unwrap_err().to_string();

    // Truncated copies of a real JPEG and a real PNG.
    for file in ["coffee.jpg", "hubble_alpha.png"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let cut = tmp.join(format!("cut-{file}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = msg(&cut);
        assert!(e.starts_with(&cut.display().to_string()), "{e}");
    }
    // A JPEG with its Huffman tables damaged: libjpeg's fatal error, caught.
    let mut jpeg = std::fs::read(dir.join("chelsea.jpg")).unwrap();
    let dht = jpeg.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
    jpeg[dht + 5..dht + 21].fill(0xFF);
    let bad = tmp.join("bad-huffman.jpg");
    std::fs::write(&bad, &jpeg).unwrap();
    let e = msg(&bad);
    assert!(e.contains("bad-huffman.jpg: corrupt JPEG"), "{e}");
    // Not an image, a directory, a missing file.
    let e = msg(&dir.join("README.md"));
    assert!(
        e.contains("README.md: not an image this crate can read"),
        "{e}"
    );
    assert!(msg(&dir).ends_with("is a directory, not an image file"));
    assert!(matches!(
        p.preprocess_path(tmp.join("missing.jpg")),
        Err(PreprocessError::Io { .. })
    ));
    // The pixel limit applies to files, from their header.
    let small = ImageProcessor::default().with_max_pixels(100_000);
    let e = small
        .preprocess_path(dir.join("retina_large.jpg"))
        .unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::ImageTooLarge {
                width: 1080,
                height: 1120,
                limit: 100_000,
                ..
            }
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
