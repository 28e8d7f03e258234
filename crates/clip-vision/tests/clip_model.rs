//! `ClipModel` (feature `text`): both towers of one checkpoint against transformers'
//! `CLIPModel` — `logits_per_image` on the clip-text-full and openai-text fixtures, and the
//! bundled demo end to end from photo files and label strings (zero-shot probabilities,
//! prompt ensembles, search order).

mod common;

use clip_vision::model::{logit_scale, logits, ClipModel};
use clip_vision::text::{ClipTextTower, TextLoadOptions};
use clip_vision::{ClipVisionEncoder, ImageEmbedder, LoadOptions};
use common::{assert_close, fixtures_dir, model_dir, Reference};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width).map(<[f32]>::to_vec).collect()
}

/// logits_per_image from the vision tower on the reference pixels and the text tower on
/// the reference ids.
fn check_logits(name: &str, vision: &ClipVisionEncoder, text: &ClipTextTower, scale: f32) {
    let dir = model_dir(name);
    let reference = Reference::open(&dir);
    let meta = json(&dir.join("reference.json"));
    let (pixels, shape) = reference.get("pixel_values");
    let images = vision.image_embeds(&pixels, shape[0]).unwrap();
    let (want_images, _) = reference.get("image_embeds");
    assert_close(
        &format!("{name} image_embeds"),
        &images.concat(),
        &want_images,
        1e-5,
    );
    let out = text.forward_ids(&ids(&meta["input_ids"])).unwrap();
    let e = text.projection_dim().unwrap();
    let texts = rows(out.text_embeds.as_deref().unwrap(), e);
    let got = logits(scale, &images, &texts).unwrap().concat();
    let (want, _) = reference.get("logits_per_image");
    assert_close(&format!("{name} logits_per_image"), &got, &want, 1e-5);
}

#[test]
fn clip_model_logits_match_transformers() {
    let dir = model_dir("clip-text-full");
    let vision = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    let text = ClipTextTower::from_pretrained(&dir, &TextLoadOptions::default()).unwrap();
    let store = clip_vision::checkpoint::open_weights(&dir).unwrap();
    let scale = logit_scale(&store).unwrap();
    let want = json(&dir.join("reference.json"))["logit_scale"]
        .as_f64()
        .unwrap() as f32;
    assert!((scale - want).abs() < 1e-6, "{scale} vs {want}");
    check_logits("clip-text-full", &vision, &text, scale.exp());
}

#[test]
fn openai_named_clip_logits_match_transformers() {
    let file = model_dir("openai-text").join("model.safetensors");
    let opts = LoadOptions {
        activation: Some(clip_vision::Activation::QuickGelu),
        ..Default::default()
    };
    let vision = ClipVisionEncoder::from_pretrained_with(&file, &opts).unwrap();
    let text = ClipTextTower::from_pretrained(&file, &TextLoadOptions::default()).unwrap();
    let store = clip_vision::checkpoint::open_weights(&file).unwrap();
    let scale = logit_scale(&store).unwrap();
    assert!((scale.exp() - 100.0).abs() < 1e-3, "{scale}");
    check_logits("openai-text", &vision, &text, scale.exp());
}

/// The demo from files: transformers' CLIPImageProcessor + CLIPModel probabilities over the
/// labels (as given, and as a prompt ensemble), within 1e-4.
#[test]
fn demo_zero_shot_probabilities_match_transformers() {
    let dir = model_dir("demo");
    let model = ClipModel::from_pretrained(&dir).unwrap();
    let meta = json(&dir.join("reference.json"));
    let reference = Reference::open(&dir);
    let strings = |key: &str| -> Vec<String> {
        meta[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let (images, labels, templates) = (strings("images"), strings("labels"), strings("templates"));
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
    let embedder = ImageEmbedder::builder(&dir)
        .normalize(false)
        .build()
        .unwrap();
    let paths: Vec<_> = images
        .iter()
        .map(|n| fixtures_dir().join("images").join(n))
        .collect();
    let image_embeds: Vec<Vec<f32>> = embedder
        .embed_paths(&paths)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let labels_embeds = model.text.text_embeds(&labels).unwrap();
    let (want, _) = reference.get("logits_per_image.labels");
    assert_close(
        "demo logits_per_image",
        &model
            .logits_per_image(&image_embeds, &labels_embeds)
            .unwrap()
            .concat(),
        &want,
        1e-5,
    );
    for (what, templates, key) in [
        ("labels as given", &[][..], "probs.labels"),
        ("prompt ensemble", &templates[..], "probs.ensemble"),
    ] {
        let got = model
            .zero_shot(&image_embeds, &labels, templates)
            .unwrap()
            .concat();
        let (want, _) = reference.get(key);
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max);
        eprintln!("demo probabilities, {what}: max abs error {err:.3e}");
        assert!(
            err <= 1e-4,
            "demo probabilities, {what}: max abs error {err:.3e}"
        );
    }
}
