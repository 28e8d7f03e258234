//! The foundation fixtures (one `save_pretrained` file each) match transformers' outputs to
//! float precision: every output, every hidden state.

mod common;

use clip_vision::ClipVisionEncoder;
use common::{assert_close, model_dir, Reference};

/// `max |err| ≤ 1e-5 × max(1, max |reference|)`.
const REL: f32 = 1e-5;

const TINY: [&str; 3] = ["tiny-quickgelu", "tiny-gelu", "tiny-gelu-tanh"];

fn check_fixture(name: &str) {
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

    common::check_hidden_states(name, &model, &reference, REL);
}

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

/// Each micro-kernel path this CPU has (AVX-512, AVX2 + FMA, portable), forced in turn,
/// keeps the same tolerance. (Forcing is process-wide: tests running meanwhile take the
/// forced path too, which they pass on as well.)
#[test]
#[cfg_attr(
    not(feature = "packed"),
    ignore = "the linear layers use the micro-kernels only with the `packed` feature"
)]
fn every_kernel_path_matches_transformers() {
    use clip_vision::kernels::{force_kernel_path, kernel_path, KernelPath};
    let paths = KernelPath::supported();
    assert!(paths.contains(&KernelPath::Generic));
    for path in paths {
        force_kernel_path(Some(path)).unwrap();
        assert_eq!(kernel_path(), path);
        for name in TINY {
            check_fixture(name);
        }
    }
    force_kernel_path(None).unwrap();
}

/// The tiled attention path (online softmax, no `[N, N]` scores) on every kernel path this
/// CPU has keeps the transformers tolerance on the tiny towers. The paths are process-wide
/// settings; tests running beside this one see correct results on either.
#[test]
fn tiled_attention_matches_transformers() {
    use clip_vision::attention::{force_attention_path, AttentionPath};
    use clip_vision::kernels::{force_kernel_path, KernelPath};
    force_attention_path(Some(AttentionPath::Tiled));
    for path in KernelPath::supported() {
        force_kernel_path(Some(path)).unwrap();
        for name in TINY {
            check_fixture(name);
        }
    }
    force_kernel_path(None).unwrap();
    force_attention_path(None);
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
