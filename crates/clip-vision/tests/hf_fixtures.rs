//! The foundation fixtures (one `save_pretrained` file each) match transformers' outputs to
//! float precision: every output, every hidden state.

mod common;

use clip_vision::ClipVisionEncoder;
use common::{check_fixture, model_dir, Reference, TINY};

#[test]
fn tiny_quickgelu_matches_transformers() {
    check_fixture(TINY[0]);
}

#[test]
fn tiny_gelu_matches_transformers() {
    check_fixture(TINY[1]);
}

#[test]
fn tiny_gelu_tanh_matches_transformers() {
    check_fixture(TINY[2]);
}

/// The tower with massive activations (real photos; the int8 fixture), in f32.
#[test]
fn massive_matches_transformers() {
    check_fixture("massive");
}

#[test]
fn batch_results_equal_single_results() {
    for name in TINY {
        let dir = model_dir(name);
        let model = ClipVisionEncoder::from_pretrained(&dir).unwrap();
        let (pixels, shape) = Reference::open(&dir).get("pixel_values");
        let batch = model.forward_batch(&pixels, shape[0]).unwrap();
        for (i, image) in pixels.chunks(model.image_len()).enumerate() {
            let single = model.forward_single(image).unwrap();
            // Bit-identical with matrixmultiply; the `gemm` backend may order a row's dot
            // products differently when the number of rows changes.
            let (err, scale) = common::max_err(&single, &batch[i]);
            assert!(err <= 1e-6 * scale, "{name} image {i}: {err}");
        }
    }
}
