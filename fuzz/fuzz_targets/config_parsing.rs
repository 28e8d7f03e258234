//! Fuzz target: arbitrary text as each JSON config clip-vision reads — a
//! `CLIPVisionConfig`, a `preprocessor_config.json`, a transformers `config.json` and an
//! `open_clip_config.json` — then validated.
//!
//! Property: parsing and validation never panic (no overflow in the size arithmetic) and
//! never allocate for the sizes a config claims. Oracles: a config that validates has at
//! most `MAX_PARAMETERS` parameters and fewer than `MAX_TOKENS` tokens, its derived sizes
//! are computed without overflow, and it survives a JSON round trip; a preprocessor config
//! that parses makes an `ImageProcessor`.
#![no_main]

use clip_vision::loader::configs::{from_hf_config, from_open_clip_config};
use clip_vision::config::{MAX_PARAMETERS, MAX_TOKENS};
use clip_vision::preprocess::PreprocessorConfig;
use clip_vision::{ClipVisionConfig, ImageProcessor};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// What every config that validates must satisfy.
fn check_valid(cfg: &ClipVisionConfig) {
    assert!(cfg.num_parameters() <= MAX_PARAMETERS, "{cfg:?}");
    assert!(cfg.seq_len() <= MAX_TOKENS, "{cfg:?}");
    // The sizes the encoder allocates from, computed with overflow checks on.
    let image_len = cfg
        .num_channels
        .checked_mul(cfg.image_size)
        .and_then(|n| n.checked_mul(cfg.image_size));
    assert!(image_len.is_some(), "C × S × S overflows: {cfg:?}");
    let _ = (cfg.head_dim(), cfg.grid_size(), cfg.image_len());
    // Round trip through JSON (eps may move by an ulp: serde_json parses floats fast, not
    // exactly, without its `float_roundtrip` feature).
    let back = ClipVisionConfig::from_json_str(&cfg.to_json_string())
        .expect("a valid config round-trips through JSON");
    let mut back_eps = back.clone();
    back_eps.layer_norm_eps = cfg.layer_norm_eps;
    assert_eq!(&back_eps, cfg);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = ClipVisionConfig::from_json_str(text) {
        check_valid(&cfg);
    }
    if let Ok(pre) = PreprocessorConfig::from_json_str(text) {
        assert!(pre.crop_size.height > 0 && pre.crop_size.width > 0);
        let _ = (pre.output_size(480, 640), pre.output_size(1, usize::MAX));
        ImageProcessor::new(pre).expect("a parsed preprocessor config validates");
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if let Ok(cfg) = from_hf_config(Path::new("config.json"), &value) {
        if cfg.validate().is_ok() {
            check_valid(&cfg);
        }
    }
    if let Ok((cfg, _extras)) = from_open_clip_config(Path::new("open_clip_config.json"), &value) {
        if cfg.validate().is_ok() {
            check_valid(&cfg);
        }
    }
});
