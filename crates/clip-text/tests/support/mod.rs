//! Helpers of the text fixture tests: where fixtures live, reading references, comparing.
#![allow(dead_code)]

use clip_checkpoint::TensorStore;
use std::path::{Path, PathBuf};

/// `fixtures/` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A fixture model directory by name.
pub fn model_dir(name: &str) -> PathBuf {
    fixtures_dir().join("models").join(name)
}

/// A JSON file of a fixture.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A reference tensor (flattened) from a safetensors file.
pub fn tensor(store: &TensorStore, name: &str) -> Vec<f32> {
    let shape = store.shape(name).unwrap_or_else(|e| panic!("{e}")).to_vec();
    store.tensor(name, &shape).unwrap_or_else(|e| panic!("{e}"))
}

/// Id sequences of a JSON list of lists.
pub fn id_lists(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("ids: {e}"))
}

/// Asserts `max |got − want| ≤ 1e-5 × max(1, max |want|)` (the vision tower's tolerance)
/// and returns the error.
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length differs from the reference"
    );
    let err = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|w| w.abs()).fold(1.0f32, f32::max);
    assert!(
        err <= 1e-5 * scale,
        "{what}: max abs error {err:.3e} exceeds 1e-5 × {scale:.3}"
    );
    eprintln!("{what}: max abs error {err:.3e} (reference max {scale:.3})");
    err
}
