//! A hub id resolves offline in the HF cache that `HF_HUB_CACHE` names (its own test binary:
//! it sets the environment variable, which no other test may race with).

mod common;

use clip_vision::checkpoint::hub;
use clip_vision::ClipVisionEncoder;
use common::{assert_close, fixtures_dir, model_dir, Reference};

#[test]
fn hub_id_loads_from_the_cache_snapshot() {
    let cache = fixtures_dir().join("hub");
    let snapshot = hub::resolve_in(&cache, "clip-vision/tiny-hub").unwrap();
    assert!(snapshot.ends_with("snapshots/0123456789abcdef0123456789abcdef01234567"));
    assert_eq!(
        hub::resolve_in(&cache, "clip-vision/tiny-hub@main").unwrap(),
        snapshot
    );
    assert!(hub::resolve_in(&cache, "clip-vision/absent").is_err());
    assert!(hub::resolve_in(&cache, "clip-vision/tiny-hub@v9").is_err());

    std::env::set_var("HF_HUB_CACHE", &cache);
    let model = ClipVisionEncoder::from_pretrained("clip-vision/tiny-hub").unwrap();
    // The cache holds tiny-gelu-tanh: its reference applies.
    let reference = Reference::open(&model_dir("tiny-gelu-tanh"));
    let (pixels, shape) = reference.get("pixel_values");
    let (want, _) = reference.get("image_embeds");
    assert_close(
        "hub image_embeds",
        &model.image_embeds(&pixels, shape[0]).unwrap().concat(),
        &want,
        1e-5,
    );
    let err = ClipVisionEncoder::from_pretrained("openai/clip-vit-base-patch32").unwrap_err();
    assert!(err.to_string().contains("not in the HF cache"), "{err}");
}
