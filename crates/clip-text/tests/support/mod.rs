//! Helpers of the text fixture tests: where fixtures live, reading references, comparing.
#![allow(dead_code)]

use clip_checkpoint::TensorStore;
use clip_text::{ClipTextTower, TextLoadOptions};
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

/// Checks a tower against `reference{suffix}.safetensors` / `.json` in `dir`.
pub fn check_tower(dir: &Path, tower: &ClipTextTower, suffix: &str) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let meta = json(&dir.join(format!("{suffix}.json")));
    let reference = TensorStore::open_file(dir.join(format!("{suffix}.safetensors"))).unwrap();
    let ids = id_lists(&meta["input_ids"]);
    let d = tower.hidden_size();
    let padded = tower.forward_ids(&ids).unwrap();
    let mut pooled = Vec::new();
    let mut embeds = Vec::new();
    for (i, seq) in ids.iter().enumerate() {
        let alone = tower.forward_ids(std::slice::from_ref(seq)).unwrap();
        let want = tensor(&reference, &format!("last_hidden_state.{i}"));
        assert_close(
            &format!("{name} last_hidden_state.{i}"),
            &alone.last_hidden_state,
            &want,
        );
        let start = i * padded.seq_len * d;
        assert_close(
            &format!("{name} last_hidden_state.{i} in the padded batch"),
            &padded.last_hidden_state[start..start + seq.len() * d],
            &want,
        );
        pooled.extend(alone.pooler_output);
        if let Some(e) = alone.text_embeds {
            embeds.extend(e);
        }
    }
    assert_close(
        &format!("{name} pooler_output"),
        &pooled,
        &tensor(&reference, "pooler_output"),
    );
    assert_close(
        &format!("{name} pooler_output (padded batch)"),
        &padded.pooler_output,
        &tensor(&reference, "pooler_output"),
    );
    if reference.contains("text_embeds") {
        let want = tensor(&reference, "text_embeds");
        assert_close(&format!("{name} text_embeds"), &embeds, &want);
        assert_close(
            &format!("{name} text_embeds (padded batch)"),
            padded.text_embeds.as_deref().unwrap(),
            &want,
        );
    } else {
        assert!(
            tower.projection.is_none(),
            "{name}: a projection the reference lacks"
        );
    }
}

/// The tower of fixture `name`.
pub fn tower(name: &str) -> ClipTextTower {
    ClipTextTower::from_pretrained(model_dir(name), &TextLoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
