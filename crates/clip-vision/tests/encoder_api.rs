//! `ClipVisionEncoder`'s public API on random small configs: shapes, batch = single,
//! and the errors a wrong buffer gets.

use clip_vision::{ClipVisionConfig, ClipVisionEncoder, LcgRng, VisionError};
use proptest::prelude::*;

/// Equal up to float rounding: bit-identical with matrixmultiply; the `gemm` backend may
/// order a row's dot products differently when the number of rows in a product changes.
fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
}

fn small(
    hidden_per_head: usize,
    heads: usize,
    layers: usize,
    grid: usize,
    patch: usize,
    act: &str,
) -> ClipVisionConfig {
    ClipVisionConfig {
        hidden_size: hidden_per_head * heads,
        intermediate_size: 3 * hidden_per_head * heads + 1,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        image_size: grid * patch,
        patch_size: patch,
        projection_dim: 5,
        hidden_act: act.into(),
        ..ClipVisionConfig::default()
    }
}

/// A random config and batch; `check` asserts every output's shape and batch = single.
#[derive(Debug, Clone)]
struct EncoderProblem {
    cfg: ClipVisionConfig,
    batch: usize,
    seed: u64,
}

fn problems() -> impl Strategy<Value = EncoderProblem> {
    (
        1usize..5,
        1usize..4,
        1usize..3,
        1usize..4,
        1usize..5,
        prop::sample::select(vec!["quick_gelu", "gelu", "gelu_new"]),
        0usize..4,
        any::<u64>(),
    )
        .prop_map(
            |(hd, heads, layers, grid, patch, act, batch, seed)| EncoderProblem {
                cfg: small(hd, heads, layers, grid, patch, act),
                batch,
                seed,
            },
        )
}

impl EncoderProblem {
    fn check(&self) -> Result<(), TestCaseError> {
        let mut rng = LcgRng::new(self.seed);
        let model = ClipVisionEncoder::new(self.cfg.clone(), &mut rng).unwrap();
        let (d, seq, len) = (
            self.cfg.hidden_size,
            self.cfg.seq_len(),
            self.cfg.image_len(),
        );
        let pixels = rng.normal_vec(self.batch * len, 0.0, 1.0);

        let pooled = model.forward_batch(&pixels, self.batch).unwrap();
        prop_assert_eq!(pooled.len(), self.batch);
        prop_assert!(pooled.iter().all(|p| p.len() == d));
        let embeds = model.image_embeds(&pixels, self.batch).unwrap();
        prop_assert!(embeds.len() == self.batch && embeds.iter().all(|e| e.len() == 5));
        let hidden = model.last_hidden_state(&pixels, self.batch).unwrap();
        prop_assert_eq!(hidden.len(), self.batch * seq * d);
        for (i, image) in pixels.chunks(len).enumerate() {
            prop_assert!(
                close(&model.forward_single(image).unwrap(), &pooled[i]),
                "image {}",
                i
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn shapes_and_batch_equals_single(p in problems()) {
        p.check()?;
    }
}

fn tiny() -> ClipVisionEncoder {
    ClipVisionEncoder::new(small(4, 2, 1, 2, 4, "quick_gelu"), &mut LcgRng::new(1)).unwrap()
}

#[test]
fn wrong_lengths_are_dimension_mismatches() {
    let model = tiny();
    let len = model.image_len();
    assert_eq!(len, 3 * 8 * 8);
    match model.forward_single(&vec![0.0; len - 1]) {
        Err(VisionError::DimensionMismatch { expected, got }) => {
            assert_eq!((expected, got), (len, len - 1))
        }
        other => panic!("{other:?}"),
    }
    match model.forward_batch(&vec![0.0; 2 * len], 3) {
        Err(VisionError::DimensionMismatch { expected, got }) => {
            assert_eq!((expected, got), (3 * len, 2 * len))
        }
        other => panic!("{other:?}"),
    }
    match model.forward_batch(&vec![0.0; len], 0) {
        Err(VisionError::DimensionMismatch { expected, got }) => {
            assert_eq!((expected, got), (0, len))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        model.image_embeds(&[1.0], 0),
        Err(VisionError::DimensionMismatch {
            expected: 0,
            got: 1
        })
    ));
    assert!(matches!(
        model.last_hidden_state(&[], 1),
        Err(VisionError::DimensionMismatch { .. })
    ));
    assert!(model.forward_batch(&[], 0).unwrap().is_empty());
}

#[test]
fn non_finite_pixels_are_refused_with_their_position() {
    let model = tiny();
    let mut pixels = vec![0.0; 2 * model.image_len()];
    pixels[model.image_len() + 7] = f32::NAN;
    match model.forward_batch(&pixels, 2) {
        Err(VisionError::NonFiniteInput { image, index, .. }) => assert_eq!((image, index), (1, 7)),
        other => panic!("{other:?}"),
    }
    pixels[model.image_len() + 7] = f32::INFINITY;
    assert!(matches!(
        model.image_embeds(&pixels, 2),
        Err(VisionError::NonFiniteInput { .. })
    ));
}

#[test]
fn no_projection_is_an_error_not_a_guess() {
    let mut model = tiny();
    model.projection = None;
    let pixels = vec![0.0; model.image_len()];
    assert!(matches!(
        model.image_embeds(&pixels, 1),
        Err(VisionError::NoProjection)
    ));
    assert!(model.forward_single(&pixels).is_ok());
}

#[test]
fn random_init_is_deterministic_and_documented() {
    let cfg = small(8, 2, 2, 2, 4, "gelu");
    let a = ClipVisionEncoder::new(cfg.clone(), &mut LcgRng::new(7)).unwrap();
    let b = ClipVisionEncoder::new(cfg.clone(), &mut LcgRng::new(7)).unwrap();
    assert_eq!(a, b);
    assert_ne!(
        a,
        ClipVisionEncoder::new(cfg.clone(), &mut LcgRng::new(8)).unwrap()
    );
    // CLS and positions ~ N(0, 0.02²): with 16 + 80 draws the sample std is near 0.02.
    let draws: Vec<f32> = a
        .cls_token
        .iter()
        .chain(a.pos_embed.weight())
        .copied()
        .collect();
    let std = (draws.iter().map(|v| v * v).sum::<f32>() / draws.len() as f32).sqrt();
    assert!((0.014..0.026).contains(&std), "std {std}");
    assert_eq!(a.num_params() as u128, cfg.num_parameters());
    assert!(a.pre_layer_norm.is_some() && a.projection.is_some());
}

#[test]
fn plain_vit_pipeline_is_the_clip_one_without_pre_norm() {
    // patch_embed → prepend_cls → add_pos_embed → encoder → final norm of token 0.
    let mut model = tiny();
    model.pre_layer_norm = None;
    let mut rng = LcgRng::new(3);
    let pixels = rng.normal_vec(model.image_len(), 0.0, 1.0);
    let s = model.config.image_size;
    let patches = model.patch_embed.forward(&pixels, 1, s, s).unwrap();
    let mut x =
        vit_layers::prepend_cls(&patches, &model.cls_token, 1, model.config.num_patches()).unwrap();
    model.pos_embed.add_to(&mut x).unwrap();
    model
        .encoder
        .forward_hidden(&mut x, 1, model.seq_len())
        .unwrap();
    let want = model.encoder.pool_cls(&x, 1, model.seq_len()).unwrap();
    assert!(close(&model.forward_single(&pixels).unwrap(), &want));
}

#[test]
fn the_encoder_is_shared_across_threads_with_identical_results() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ClipVisionEncoder>();
    let model = std::sync::Arc::new(
        ClipVisionEncoder::new(small(8, 4, 2, 3, 4, "gelu"), &mut LcgRng::new(5)).unwrap(),
    );
    let images = 6;
    let pixels = LcgRng::new(6).normal_vec(images * model.image_len(), 0.0, 1.0);
    let alone = model.image_embeds(&pixels, images).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (model, pixels) = (model.clone(), pixels.clone());
            std::thread::spawn(move || {
                // Each thread embeds every image, in batches of a different size.
                let per = model.image_len();
                let batch = t + 1;
                let mut out = Vec::new();
                for chunk in pixels.chunks(batch * per) {
                    out.extend(model.image_embeds(chunk, chunk.len() / per).unwrap());
                }
                out
            })
        })
        .collect();
    for t in threads {
        let rows = t.join().unwrap();
        assert!(rows.iter().zip(&alone).all(|(a, b)| close(a, b)));
    }
}

#[test]
fn a_batch_larger_than_the_chunk_size_equals_single_calls() {
    use clip_vision::encoder::MAX_IMAGES_IN_FLIGHT;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-gelu");
    let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
    // Two full chunks and a partial one.
    let images = 70;
    assert!(images > 2 * MAX_IMAGES_IN_FLIGHT && images % MAX_IMAGES_IN_FLIGHT != 0);
    let len = model.image_len();
    let mut rng = LcgRng::new(70);
    // Distinct images: each its own noise around its own brightness.
    let pixels: Vec<f32> = (0..images)
        .flat_map(|i| {
            let shift = i as f32 / images as f32 - 0.5;
            rng.normal_vec(len, shift, 1.0)
        })
        .collect();
    let pooled = model.forward_batch(&pixels, images).unwrap();
    let embeds = model.image_embeds(&pixels, images).unwrap();
    assert_eq!((pooled.len(), embeds.len()), (images, images));
    // 1e-6 relative: the chunks are products of 32 or 6 images against one of 1, so only
    // the GEMM's blocking may differ.
    let near = |a: &[f32], b: &[f32]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0))
    };
    for (i, image) in pixels.chunks_exact(len).enumerate() {
        let one_pooled = model.forward_batch(image, 1).unwrap();
        let one_embeds = model.image_embeds(image, 1).unwrap();
        assert!(
            near(&pooled[i], &one_pooled[0]),
            "pooler_output of image {i}"
        );
        assert!(
            near(&embeds[i], &one_embeds[0]),
            "image_embeds of image {i}"
        );
        if i > 0 {
            assert!(
                !near(&embeds[i], &embeds[i - 1]),
                "images {} and {i} embed alike: the inputs are not distinct",
                i - 1
            );
        }
    }
}
