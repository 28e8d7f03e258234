//! Files in, embeddings out: clip-vision's preprocessing and encoder together against
//! transformers' `CLIPImageProcessor` (PIL) + the vision tower of the demo `CLIPModel` on the
//! committed sample photos (the bundled demo model).
#![cfg(feature = "image")]

mod common;

use clip_vision::preprocess::ImageProcessor;
use clip_vision::ClipVisionEncoder;
use common::{assert_close, cosine, fixtures_dir, model_dir, Reference};

#[test]
fn photos_through_processor_and_model_match_transformers() {
    let dir = model_dir("demo");
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    let processor = ImageProcessor::from_pretrained(&dir).unwrap();
    let reference = Reference::open(&dir);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.len() >= 10, "{names:?}");

    let mut pixels = Vec::new();
    for name in &names {
        pixels.extend(
            processor
                .preprocess_path(fixtures_dir().join("images").join(name))
                .unwrap(),
        );
    }
    let n = names.len();
    let (want_embeds, _) = reference.get("image_embeds");
    let (want_hidden, _) = reference.get("last_hidden_state");
    let got_embeds = model.image_embeds(&pixels, n).unwrap();
    let got_hidden = model.last_hidden_state(&pixels, n).unwrap();

    // Random weights make image_embeds of different photos alike: compare after removing
    // the mean over the photos, so the cosine measures what differs between them.
    let dim = got_embeds[0].len();
    let mean: Vec<f32> = (0..dim)
        .map(|j| want_embeds.chunks(dim).map(|r| r[j]).sum::<f32>() / n as f32)
        .collect();
    let centred = |r: &[f32]| {
        r.iter()
            .zip(&mean)
            .map(|(a, m)| a - m)
            .collect::<Vec<f32>>()
    };
    let mut worst = 1.0f64;
    for (i, (got, want)) in got_embeds.iter().zip(want_embeds.chunks(dim)).enumerate() {
        let c = cosine(&centred(got), &centred(want));
        let raw = cosine(got, want);
        eprintln!("{}: cosine {raw:.9}, mean-removed cosine {c:.9}", names[i]);
        assert!(
            raw >= 0.99999 && c >= 0.99999,
            "{}: cosine {raw}, mean-removed {c}",
            names[i]
        );
        worst = worst.min(c);
    }
    // The bound of the fixture tests (hf_fixtures.rs): preprocessing is PIL-exact, so the
    // photos' hidden states meet it as the reference pixels do.
    assert_close(
        &format!("last_hidden_state over {n} photos"),
        &got_hidden,
        &want_hidden,
        1e-5,
    );
    eprintln!("worst mean-removed cosine {worst:.9}");
}
