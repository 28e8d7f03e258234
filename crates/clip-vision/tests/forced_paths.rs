//! The tiny fixtures under forced process-wide settings: each micro-kernel path and the
//! tiled attention path. They live in a test binary of their own because forcing is
//! process-wide: beside the other fixture tests it would change their numbers mid-test
//! (`check_hidden_states` compares two calls bit for bit), and the two tests here take
//! turns.

mod common;

use common::{check_fixture, TINY};
use std::sync::Mutex;

/// Held by each test for as long as it forces a setting.
static FORCING: Mutex<()> = Mutex::new(());

/// Each micro-kernel path this CPU has (AVX-512, AVX2 + FMA, portable), forced in turn,
/// keeps the same tolerance.
#[test]
#[cfg_attr(
    not(feature = "packed"),
    ignore = "the linear layers use the micro-kernels only with the `packed` feature"
)]
fn every_kernel_path_matches_transformers() {
    use clip_vision::kernels::{force_kernel_path, kernel_path, KernelPath};
    let _one_at_a_time = FORCING.lock().unwrap_or_else(|e| e.into_inner());
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
/// CPU has keeps the transformers tolerance on the tiny towers.
#[test]
fn tiled_attention_matches_transformers() {
    use clip_vision::attention::{force_attention_path, AttentionPath};
    use clip_vision::kernels::{force_kernel_path, KernelPath};
    let _one_at_a_time = FORCING.lock().unwrap_or_else(|e| e.into_inner());
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

/// Int8 on each kernel path this CPU has (AVX-512 VNNI, AVX2 `vpmaddwd`, portable), forced
/// in turn: the int8 sums are exact on every path, so the massive-activation tower's
/// embeddings are the same bits on each (with `packed` the f32 layers outside the blocks
/// change path too, so there the test asks for the accuracy target instead).
#[test]
fn every_int8_kernel_gives_the_same_embeddings() {
    use clip_vision::kernels::int8::Int8Kernel;
    use clip_vision::kernels::{force_kernel_path, KernelPath};
    use clip_vision::{ClipVisionEncoder, LoadOptions, Precision};
    let _one_at_a_time = FORCING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::model_dir("massive");
    let options = LoadOptions {
        precision: Precision::Int8,
        ..LoadOptions::default()
    };
    let model = ClipVisionEncoder::from_pretrained_with(&dir, &options).unwrap();
    let reference = common::Reference::open(&dir);
    let (pixels, shape) = reference.get("pixel_values");
    let (want, _) = reference.get("image_embeds");
    let mut first: Option<Vec<f32>> = None;
    let mut kernels = Vec::new();
    for path in KernelPath::supported() {
        force_kernel_path(Some(path)).unwrap();
        kernels.push(Int8Kernel::current());
        let got = model.image_embeds(&pixels, shape[0]).unwrap().concat();
        match &first {
            None => first = Some(got),
            Some(f) if !clip_vision::kernels::PACKED_KERNELS => {
                assert!(
                    f == &got,
                    "{path} ({}) changed the bits",
                    Int8Kernel::current()
                );
            }
            Some(_) => {
                let dim = want.len() / shape[0];
                for (g, w) in got.chunks(dim).zip(want.chunks(dim)) {
                    assert!(common::cosine(g, w) >= 0.9995, "{path}");
                }
            }
        }
    }
    force_kernel_path(None).unwrap();
    assert!(kernels.contains(&Int8Kernel::Generic), "{kernels:?}");
}
