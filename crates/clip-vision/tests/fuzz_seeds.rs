//! Replays the fuzzers' committed inputs under plain `cargo test`: the seeds in
//! `fuzz/seeds/<target>/` and any crash reproducer in `fuzz/regressions/<target>/`, through
//! the same calls as the fuzz targets in `fuzz/fuzz_targets/` (see `docs/fuzzing.md`).
//!
//! The seeds are valid inputs, so each must give its documented outcome (decode, parse,
//! read every tensor). The regression inputs (written by
//! `fuzz/regressions/make_regressions.py`, plus any crash reproducer) must each give the
//! outcome listed for it below, error kind and message; a file without a listed outcome, a
//! listed file that is missing, or an empty directory fails the test.

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

/// The files of `fuzz/regressions/<target>/`: there must be some.
fn regressions(target: &str) -> Vec<PathBuf> {
    let files = inputs("regressions", target);
    assert!(
        !files.is_empty(),
        "{}: missing or empty (run fuzz/regressions/make_regressions.py)",
        fuzz_dir("regressions", target).display()
    );
    files
}

/// What a regression input must give: `(file name, error variant, part of the message)`.
type Outcome = (&'static str, &'static str, &'static str);

/// The variant name of an error, from its `Debug` form: `Json`, or `Outer::Inner` for the
/// errors of clip-checkpoint and clip-preprocess that `VisionError` wraps
/// (`Checkpoint::Invalid`, `Preprocess::ImageTooLarge`).
fn kind(e: &VisionError) -> String {
    let debug = format!("{e:?}");
    let name = |s: &str| -> String { s.chars().take_while(char::is_ascii_alphanumeric).collect() };
    let outer = name(&debug);
    match debug.strip_prefix(&format!("{outer}(")) {
        Some(inner) if matches!(outer.as_str(), "Checkpoint" | "Preprocess") => {
            format!("{outer}::{}", name(inner))
        }
        _ => outer,
    }
}

/// Runs `run` on every regression input of `target` and checks it against `outcomes`.
fn check_regressions(
    target: &str,
    outcomes: &[Outcome],
    run: impl Fn(&Path) -> Result<(), VisionError>,
) {
    let files = regressions(target);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (file, _, _) in outcomes {
        assert!(
            names.iter().any(|n| n == file),
            "{target}/{file} is listed but not in fuzz/regressions/"
        );
    }
    for (path, name) in files.iter().zip(&names) {
        let Some((_, want_kind, want_message)) = outcomes.iter().find(|o| o.0 == name) else {
            panic!("{target}/{name}: no expected outcome listed in fuzz_seeds.rs");
        };
        match run(path) {
            Ok(()) => panic!("{target}/{name}: accepted, expected {want_kind}"),
            Err(e) => {
                // The message with its causes, as `{:#}` prints it.
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message = format!("{message}: {cause}");
                    source = cause.source();
                }
                assert_eq!(kind(&e), *want_kind, "{target}/{name}: {message}");
                assert!(
                    message.contains(want_message),
                    "{target}/{name}: {message:?} lacks {want_message:?}"
                );
            }
        }
    }
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

/// The image regressions: bombs refused from their headers, broken files named.
const IMAGE_OUTCOMES: &[Outcome] = &[
    (
        "bomb-100000x100000.png",
        "Preprocess::ImageTooLarge",
        "bomb-100000x100000.png: 100000×100000 image has 10000000000 pixels, more than the limit of 4194304",
    ),
    (
        "bomb-65000x65000.jpg",
        "Preprocess::ImageTooLarge",
        "65000×65000 image has 4225000000 pixels, more than the limit of 4194304",
    ),
    // Refused by the png crate's header check, before ours.
    (
        "no-pixels-0x7.png",
        "Preprocess::Image",
        "Format error decoding Png: Invalid image dimensions",
    ),
    (
        "cut-before-scan.jpg",
        "Preprocess::Image",
        "corrupt JPEG: libjpeg fatal error: Invalid JPEG file structure: missing SOS marker",
    ),
    (
        "truncated-scan.jpg",
        "Preprocess::Image",
        "truncated JPEG: the data ends before the image does",
    ),
    ("empty.bin", "Preprocess::Image", "empty.bin: empty file"),
    ("text.txt", "Preprocess::Image", "not an image this crate can read"),
    ("qoi.qoi", "Preprocess::Image", "Qoi images are not supported"),
];

#[test]
fn image_regressions_give_their_errors() {
    check_regressions("decode_preprocess", IMAGE_OUTCOMES, |path| {
        let bytes = std::fs::read(path).unwrap();
        let values = decode_preprocess(&bytes, path)?;
        assert!(values.iter().all(|v| v.is_finite()), "{}", path.display());
        Ok(())
    });
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

/// The safetensors regressions: headers that lie, refused before any data is read.
const SAFETENSORS_OUTCOMES: &[Outcome] = &[
    (
        "header-past-end.safetensors",
        "Checkpoint::Invalid",
        "reaches past the end",
    ),
    (
        "header-length-2pow63.safetensors",
        "Checkpoint::Invalid",
        "exceeds the 100000000-byte limit",
    ),
    ("too-short.safetensors", "Checkpoint::Invalid", "too short"),
    (
        "shape-overflows.safetensors",
        "Checkpoint::Invalid",
        "invalid header",
    ),
    ("claims-4tb.safetensors", "Checkpoint::Invalid", "truncated"),
    (
        "overlapping.safetensors",
        "Checkpoint::Invalid",
        "invalid header",
    ),
    (
        "duplicate-names.safetensors",
        "Checkpoint::Invalid",
        "twice",
    ),
    (
        "trailing-bytes.safetensors",
        "Checkpoint::Invalid",
        "trailing bytes",
    ),
];

#[test]
fn safetensors_regressions_give_their_errors() {
    check_regressions("safetensors_reader", SAFETENSORS_OUTCOMES, |path| {
        let message_names_the_file = |e: VisionError| {
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "{e}"
            );
            e
        };
        for t in read_all(path).map_err(message_names_the_file)? {
            t?;
        }
        Ok(())
    });
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

/// The config regressions, each read by the parser its name prefix names (as the seeds).
const CONFIG_OUTCOMES: &[Outcome] = &[
    // Found by the seed replay: was refused as "only {"approximate": "tanh"} is supported".
    (
        "open_clip-quick_gelu-act_kwargs.json",
        "InvalidConfig",
        "invalid config: vision_cfg.act_kwargs = {\"approximate\":\"tanh\"}: open_clip's \
         QuickGELU (quick_gelu = true) takes no act_kwargs",
    ),
    (
        "open_clip-act_kwargs-none.json",
        "InvalidConfig",
        "vision_cfg.act_kwargs = {\"approximate\":\"none\"}: only {\"approximate\": \"tanh\"} is supported",
    ),
    (
        "open_clip-resnet-layers.json",
        "InvalidConfig",
        "vision_cfg.layers = [3,4,6,3]: a ResNet tower",
    ),
    (
        "open_clip-width-2pow40.json",
        "InvalidConfig",
        "hidden_size = 1099511627776: must be at most 65536",
    ),
    (
        "config-heads-do-not-divide.json",
        "InvalidConfig",
        "num_attention_heads = 5: must divide hidden_size = 64",
    ),
    ("config-swish.json", "UnknownActivation", "unknown activation \"swish\""),
    (
        "config-tokens-past-limit.json",
        "InvalidConfig",
        "image_size = 65536: gives more than 16385 tokens with patch_size = 1",
    ),
    ("preprocessor_config-zero-crop.json", "Preprocess::InvalidConfig", "crop_size = 0"),
    (
        "preprocessor_config-zero-std.json",
        "Preprocess::InvalidConfig",
        "<string>: image_std = [0.5, 0.0, 0.5]: must be finite and non-zero",
    ),
    ("vision_config-truncated.json", "Json", "EOF while parsing"),
];

#[test]
fn config_regressions_give_their_errors() {
    check_regressions("config_parsing", CONFIG_OUTCOMES, |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        // Every parser of the fuzz target, as it calls them: none may panic.
        let _ = ClipVisionConfig::from_json_str(&text);
        let _ = PreprocessorConfig::from_json_str(&text);
        let value = serde_json::from_str::<serde_json::Value>(&text);
        if let Ok(value) = &value {
            let _ = clip_vision::loader::configs::from_hf_config(path, value).map(|c| c.validate());
            let _ = clip_vision::loader::configs::from_open_clip_config(path, value)
                .map(|(c, _)| c.validate());
        }
        if name.starts_with("preprocessor_config") {
            ImageProcessor::new(PreprocessorConfig::from_json_str(&text)?)?;
        } else if name.starts_with("vision_config") {
            ClipVisionConfig::from_json_str(&text)?;
        } else {
            let value = value.unwrap_or_else(|e| panic!("{name}: {e}"));
            let cfg = if name.starts_with("open_clip") {
                clip_vision::loader::configs::from_open_clip_config(path, &value)?.0
            } else {
                clip_vision::loader::configs::from_hf_config(path, &value)?
            };
            cfg.validate()?;
        }
        Ok(())
    });
}
