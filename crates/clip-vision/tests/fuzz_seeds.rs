//! Replays the fuzzers' committed inputs under plain `cargo test`: the seeds in
//! `fuzz/seeds/<target>/` and any crash reproducer in `fuzz/regressions/<target>/`, through
//! the same calls as the fuzz targets in `fuzz/fuzz_targets/` (see `docs/fuzzing.md`).
//!
//! The seeds are valid inputs, so each must give its documented outcome (decode, parse,
//! read every tensor); a regression input must give an error or an outcome, never a panic.

use clip_vision::checkpoint::store::TensorStore;
use clip_vision::checkpoint::CheckpointError;
use clip_vision::preprocess::decode::decode;
use clip_vision::preprocess::PreprocessorConfig;
use clip_vision::{ClipVisionConfig, ImageProcessor, VisionError};
use std::path::{Path, PathBuf};

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target)
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the directory is absent.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir(kind, target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "py"))
        .collect();
    files.sort();
    files
}

const CROP: usize = 32;
const MAX_PIXELS: u64 = 4 << 20;

/// The `decode_preprocess` target's calls: `Ok(values)` when the bytes decode.
fn decode_preprocess(bytes: &[u8], path: &Path) -> Result<Vec<f32>, VisionError> {
    let image = decode(bytes, path, MAX_PIXELS)?;
    let processor =
        ImageProcessor::new(PreprocessorConfig::with_image_size(CROP))?.with_max_pixels(MAX_PIXELS);
    Ok(processor.preprocess(&image)?)
}

#[test]
fn image_seeds_decode_to_finite_crops() {
    let seeds = inputs("seeds", "decode_preprocess");
    assert!(seeds.len() >= 12, "{} image seeds", seeds.len());
    for path in seeds {
        let bytes = std::fs::read(&path).unwrap();
        let values =
            decode_preprocess(&bytes, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(values.len(), 3 * CROP * CROP, "{}", path.display());
        assert!(values.iter().all(|v| v.is_finite()), "{}", path.display());
        // Normalised with OpenAI's mean and std, values lie within [-1.8, 2.2].
        assert!(
            values.iter().all(|v| (-1.8..=2.2).contains(v)),
            "{}",
            path.display()
        );
    }
}

#[test]
fn image_regressions_do_not_panic() {
    for path in inputs("regressions", "decode_preprocess") {
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(values) = decode_preprocess(&bytes, &path) {
            assert!(values.iter().all(|v| v.is_finite()), "{}", path.display());
        }
    }
}

/// The `safetensors_reader` target's calls: every tensor read back, or the reason it cannot.
fn read_all(path: &Path) -> Result<Vec<Result<Vec<f32>, VisionError>>, VisionError> {
    let store = TensorStore::open_file(path)?;
    Ok(store
        .names()
        .into_iter()
        .map(|name| {
            let shape = store.shape(name)?.to_vec();
            Ok(store.tensor(name, &shape)?)
        })
        .collect())
}

#[test]
fn safetensors_seeds_open_and_read() {
    let seeds = inputs("seeds", "safetensors_reader");
    assert!(seeds.len() >= 5, "{} safetensors seeds", seeds.len());
    for path in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let tensors = read_all(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        for t in tensors {
            match t {
                // Values pass through as stored (the f32 seed holds an infinity).
                Ok(values) => assert!(!values.is_empty() || name.contains("zero"), "{name}"),
                Err(VisionError::Checkpoint(CheckpointError::UnsupportedDtype { .. }))
                    if name.contains("unsupported") => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        if name == "empty.safetensors" {
            assert!(TensorStore::open_file(&path).unwrap().names().is_empty());
        }
    }
}

#[test]
fn safetensors_regressions_do_not_panic() {
    for path in inputs("regressions", "safetensors_reader") {
        let _ = read_all(&path);
    }
}

#[test]
fn config_seeds_parse() {
    let seeds = inputs("seeds", "config_parsing");
    assert!(seeds.len() >= 10, "{} config seeds", seeds.len());
    for path in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("preprocessor_config") {
            let pre =
                PreprocessorConfig::from_json_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            ImageProcessor::new(pre).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("open_clip") {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let (cfg, _) = clip_vision::loader::configs::from_open_clip_config(&path, &value)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            cfg.validate().unwrap();
        } else {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let cfg = clip_vision::loader::configs::from_hf_config(&path, &value)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            cfg.validate().unwrap();
            let back = ClipVisionConfig::from_json_str(&cfg.to_json_string()).unwrap();
            assert_eq!(back.hidden_size, cfg.hidden_size, "{name}");
        }
    }
}

#[test]
fn config_regressions_do_not_panic() {
    for path in inputs("regressions", "config_parsing") {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let _ = ClipVisionConfig::from_json_str(&text);
        let _ = PreprocessorConfig::from_json_str(&text);
    }
}
