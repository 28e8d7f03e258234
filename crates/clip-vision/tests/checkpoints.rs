//! Every checkpoint format people download loads and matches transformers:
//! shards, f16 / bf16 weights, a whole CLIPModel, OpenAI naming without config, an open_clip
//! directory, other input sizes through position interpolation, and (ignored unless asked
//! for, with `CLIP_VISION_B32_DIR` pointing at one made by `scripts/make_fixtures.py --b32`)
//! a ViT-B/32-sized checkpoint.

mod common;

use clip_vision::{Activation, ClipVisionEncoder, LoadOptions};
use common::{assert_close, check_hidden_states, cosine, model_dir, Reference};

/// f32 checkpoints: `max |err| ≤ 1e-4 × max(1, max |reference|)` (the bound; the
/// measured errors are ~100× smaller).
const REL: f32 = 1e-4;

fn check_outputs(name: &str, model: &ClipVisionEncoder, reference: &Reference) -> (f32, f32, f32) {
    let (pixels, shape) = reference.get("pixel_values");
    let batch = shape[0];
    let (want, _) = reference.get("last_hidden_state");
    let e1 = assert_close(
        &format!("{name} last_hidden_state"),
        &model.last_hidden_state(&pixels, batch).unwrap(),
        &want,
        REL,
    );
    let (want, _) = reference.get("pooler_output");
    let e2 = assert_close(
        &format!("{name} pooler_output"),
        &model.forward_batch(&pixels, batch).unwrap().concat(),
        &want,
        REL,
    );
    let (want, _) = reference.get("image_embeds");
    let e3 = assert_close(
        &format!("{name} image_embeds"),
        &model.image_embeds(&pixels, batch).unwrap().concat(),
        &want,
        REL,
    );
    (e1, e2, e3)
}

#[test]
fn sharded_checkpoint_matches() {
    let dir = model_dir("sharded");
    assert!(dir.join("model.safetensors.index.json").is_file());
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    let reference = Reference::open(&dir);
    check_outputs("sharded", &model, &reference);
    check_hidden_states("sharded", &model, &reference, REL);
}

#[test]
fn half_precision_checkpoints_match_the_rounded_reference() {
    for name in ["f16", "bf16"] {
        let dir = model_dir(name);
        let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
        let reference = Reference::open(&dir);
        let (pixels, shape) = reference.get("pixel_values");
        let (want, _) = reference.get("image_embeds");
        let got = model.image_embeds(&pixels, shape[0]).unwrap();
        for (row, want) in got.iter().zip(want.chunks(got[0].len())) {
            let c = cosine(row, want);
            assert!(c >= 0.9999, "{name}: cosine {c}");
            eprintln!("{name} image_embeds row cosine {c:.9}");
        }
        // Converted to f32 on load, the weights are the reference's exactly: the outputs
        // match as closely as an f32 checkpoint's.
        check_outputs(name, &model, &reference);
    }
}

#[test]
fn whole_clip_model_with_text_tower_matches() {
    let dir = model_dir("clip-full");
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    assert_eq!(
        model.config.projection_dim, 20,
        "CLIPConfig's top-level projection_dim"
    );
    assert_eq!(model.config.num_attention_heads, 5);
    let reference = Reference::open(&dir);
    check_outputs("clip-full", &model, &reference);
    check_hidden_states("clip-full", &model, &reference, REL);
}

#[test]
fn openai_naming_without_config_matches_given_the_activation() {
    let file = model_dir("openai-naming").join("tiny.safetensors");
    let opts = LoadOptions {
        activation: Some(Activation::QuickGelu),
        ..LoadOptions::default()
    };
    let model = ClipVisionEncoder::from_pretrained_with(&file, &opts).unwrap();
    let cfg = &model.config;
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.intermediate_size,
            cfg.num_hidden_layers,
            cfg.image_size,
            cfg.patch_size,
            cfg.projection_dim
        ),
        (128, 2, 200, 2, 32, 8, 24),
        "architecture inferred from the tensor shapes"
    );
    let reference = Reference::open(&model_dir("openai-naming"));
    check_outputs("openai-naming", &model, &reference);
    check_hidden_states("openai-naming", &model, &reference, REL);
}

#[test]
fn open_clip_directory_matches() {
    let dir = model_dir("open-clip");
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    assert_eq!(
        model.config.activation().unwrap(),
        Activation::Gelu,
        "quick_gelu absent → nn.GELU"
    );
    assert_eq!(
        (
            model.config.num_attention_heads,
            model.config.intermediate_size
        ),
        (4, 120)
    );
    let reference = Reference::open(&dir);
    check_outputs("open-clip", &model, &reference);
}

#[test]
fn other_input_sizes_match_interpolate_pos_encoding() {
    let dir = model_dir("tiny-quickgelu");
    let reference = Reference::open(&dir);
    let mut model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    let trained = model.clone();
    for (tag, (h, w)) in [("interp_48x40", (48, 40)), ("interp_64x64", (64, 64))] {
        model.set_input_size(h, w).unwrap();
        assert_eq!(model.image_len(), 3 * h * w);
        let (pixels, shape) = reference.get(&format!("{tag}.pixel_values"));
        assert_eq!(shape, [2, 3, h, w]);
        let (want, _) = reference.get(&format!("{tag}.last_hidden_state"));
        assert_close(
            &format!("{tag} last_hidden_state"),
            &model.last_hidden_state(&pixels, 2).unwrap(),
            &want,
            REL,
        );
        let (want, _) = reference.get(&format!("{tag}.pooler_output"));
        assert_close(
            &format!("{tag} pooler_output"),
            &model.forward_batch(&pixels, 2).unwrap().concat(),
            &want,
            REL,
        );
        let (want, _) = reference.get(&format!("{tag}.image_embeds"));
        assert_close(
            &format!("{tag} image_embeds"),
            &model.image_embeds(&pixels, 2).unwrap().concat(),
            &want,
            REL,
        );
    }
    // Back at the trained size the original table is used again.
    model.set_input_size(32, 32).unwrap();
    let (pixels, _) = reference.get("pixel_values");
    assert_eq!(
        model.forward_batch(&pixels, 3).unwrap(),
        trained.forward_batch(&pixels, 3).unwrap()
    );
    assert!(
        model.set_input_size(36, 32).is_err(),
        "36 is not a multiple of the patch size 8"
    );
    assert!(model.set_input_size(0, 32).is_err());
}

#[test]
fn normalized_embeddings_have_unit_norm_and_the_same_direction() {
    let dir = model_dir("tiny-gelu");
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    let (pixels, shape) = Reference::open(&dir).get("pixel_values");
    let raw = model.image_embeds(&pixels, shape[0]).unwrap();
    let unit = model.image_embeds_normalized(&pixels, shape[0]).unwrap();
    for (r, u) in raw.iter().zip(&unit) {
        let norm: f32 = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        assert!(cosine(r, u) > 0.999_999);
    }
}

/// A ViT-B/32-sized random checkpoint made by `scripts/make_fixtures.py --b32 DIR` (352 MB,
/// not committed), named by `CLIP_VISION_B32_DIR`: `cargo test -p clip-vision --test
/// checkpoints -- --ignored vit_b32`.
#[test]
#[ignore = "needs a ViT-B/32 checkpoint in CLIP_VISION_B32_DIR"]
fn vit_b32_sized_checkpoint() {
    let dir = std::env::var_os("CLIP_VISION_B32_DIR").unwrap_or_else(|| {
        panic!(
            "CLIP_VISION_B32_DIR is not set: make the checkpoint with \
             `scripts/make_fixtures.py --b32 DIR` and set CLIP_VISION_B32_DIR=DIR"
        )
    });
    let dir = std::path::PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "CLIP_VISION_B32_DIR={} is not a directory",
        dir.display()
    );
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    assert_eq!(
        model.config,
        clip_vision::ClipVisionConfig::vit_base_patch32()
    );
    let reference = Reference::open(&dir);
    check_outputs("vit-b32", &model, &reference);
    let (pixels, shape) = reference.get("pixel_values");
    let (want, _) = reference.get("hidden_states.11");
    assert_close(
        "vit-b32 hidden_states[-2]",
        &model.hidden_state(&pixels, shape[0], -2).unwrap(),
        &want,
        REL,
    );
}
