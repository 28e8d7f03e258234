//! Helpers shared by the fixture tests: where fixtures live, how to read a reference, how
//! to compare against it.
#![allow(dead_code)]

use clip_vision::checkpoint::store::TensorStore;
use clip_vision::ClipVisionEncoder;
use std::path::PathBuf;

/// `fixtures/` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A fixture model directory by name.
pub fn model_dir(name: &str) -> PathBuf {
    fixtures_dir().join("models").join(name)
}

/// The reference outputs of a fixture, by tensor name.
pub struct Reference {
    store: TensorStore,
}

impl Reference {
    /// Opens `reference.safetensors` in a fixture directory.
    pub fn open(dir: &std::path::Path) -> Self {
        let path = dir.join("reference.safetensors");
        Self {
            store: TensorStore::open_file(&path).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// A tensor and its shape.
    pub fn get(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let shape = self
            .store
            .shape(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_vec();
        (
            self.store
                .tensor(name, &shape)
                .unwrap_or_else(|e| panic!("{e}")),
            shape,
        )
    }

    /// Whether the reference holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.store.contains(name)
    }
}

/// Max |got − want| and the tolerance `rel × max(1, max |want|)`.
pub fn max_err(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "length differs from the reference");
    let err = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|w| w.abs()).fold(1.0f32, f32::max);
    (err, scale)
}

/// Asserts `max |got − want| ≤ rel × max(1, max |want|)` and returns the error.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) -> f32 {
    let (err, scale) = max_err(got, want);
    assert!(
        err <= rel * scale,
        "{what}: max abs error {err:.3e} exceeds {rel:e} × {scale:.3}"
    );
    eprintln!(
        "{what}: max abs error {err:.3e} (reference max {scale:.3}, tolerance {:.3e})",
        rel * scale
    );
    err
}

/// Cosine of two vectors, in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Every `hidden_states.{i}` of the reference, through `hidden_state` with both the positive
/// and the negative index, and `patch_tokens(-2)` against `hidden_states[-2][:, 1:]`.
pub fn check_hidden_states(name: &str, model: &ClipVisionEncoder, reference: &Reference, rel: f32) {
    let (pixels, shape) = reference.get("pixel_values");
    let batch = shape[0];
    let layers = model.num_layers() as isize;
    for i in 0..=layers {
        let key = format!("hidden_states.{i}");
        if !reference.has(&key) {
            continue;
        }
        let (want, _) = reference.get(&key);
        let got = model.hidden_state(&pixels, batch, i).unwrap();
        assert_close(&format!("{name} {key}"), &got, &want, rel);
        let negative = i - layers - 1;
        assert_eq!(
            model.hidden_state(&pixels, batch, negative).unwrap(),
            got,
            "{name} index {negative}"
        );
    }
    let key = format!("hidden_states.{}", layers - 1);
    if reference.has(&key) {
        let (want, _) = reference.get(&key);
        let (seq, d) = (model.seq_len(), model.config.hidden_size);
        let want: Vec<f32> = want
            .chunks(seq * d)
            .flat_map(|img| img[d..].to_vec())
            .collect();
        let got = model.patch_tokens(&pixels, batch, -2).unwrap();
        assert_close(&format!("{name} patch_tokens(-2)"), &got, &want, rel);
    }
    for bad in [layers + 1, -layers - 2] {
        assert!(
            model.hidden_state(&pixels, batch, bad).is_err(),
            "{name} index {bad}"
        );
    }
}

/// The foundation fixtures' tolerance: `max |err| ≤ 1e-5 × max(1, max |reference|)`.
pub const REL: f32 = 1e-5;

pub const TINY: [&str; 3] = ["tiny-quickgelu", "tiny-gelu", "tiny-gelu-tanh"];

pub fn check_fixture(name: &str) {
    let dir = model_dir(name);
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = Reference::open(&dir);
    let (pixels, shape) = reference.get("pixel_values");
    let batch = shape[0];

    let (want, _) = reference.get("last_hidden_state");
    let got = model.last_hidden_state(&pixels, batch).unwrap();
    assert_close(&format!("{name} last_hidden_state"), &got, &want, REL);

    let (want, _) = reference.get("pooler_output");
    let got = model.forward_batch(&pixels, batch).unwrap().concat();
    assert_close(&format!("{name} pooler_output"), &got, &want, REL);

    let (want, _) = reference.get("image_embeds");
    let got = model.image_embeds(&pixels, batch).unwrap().concat();
    assert_close(&format!("{name} image_embeds"), &got, &want, REL);

    check_hidden_states(name, &model, &reference, REL);
}
