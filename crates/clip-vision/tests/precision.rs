//! Reduced precision against transformers' f32 `image_embeds`: every fixture with pixel
//! inputs (random pixels for the tiny towers; real photos for `massive`, the tower with
//! massive activations), loaded in each precision, measured as the smallest raw cosine and
//! the smallest batch-centred cosine (the batch mean subtracted from both sides first) over
//! the batch.

mod common;

use clip_vision::{ClipVisionEncoder, LoadOptions, Precision};
use common::{model_dir, Reference};

/// Fixtures with `pixel_values` in their reference, and whether the inputs are photos.
const FIXTURES: [&str; 6] = [
    "tiny-quickgelu",
    "tiny-gelu",
    "tiny-gelu-tanh",
    "sharded",
    "open-clip",
    "massive",
];

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// `(min raw cosine, min centred cosine)` of `got` to `want`, rows of `dim`.
pub fn cosines(got: &[f32], want: &[f32], dim: usize) -> (f64, f64) {
    let rows = want.len() / dim;
    let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let (g, w) = (to64(got), to64(want));
    let mean = |v: &[f64]| {
        (0..dim)
            .map(|j| (0..rows).map(|r| v[r * dim + j]).sum::<f64>() / rows as f64)
            .collect::<Vec<_>>()
    };
    let (mg, mw) = (mean(&g), mean(&w));
    let (mut raw, mut centred) = (1.0f64, 1.0f64);
    for r in 0..rows {
        let (gr, wr) = (&g[r * dim..(r + 1) * dim], &w[r * dim..(r + 1) * dim]);
        raw = raw.min(cosine(gr, wr));
        let gc: Vec<f64> = gr.iter().zip(&mg).map(|(a, m)| a - m).collect();
        let wc: Vec<f64> = wr.iter().zip(&mw).map(|(a, m)| a - m).collect();
        centred = centred.min(cosine(&gc, &wc));
    }
    (raw, centred)
}

fn measure(name: &str, precision: Precision) -> (f64, f64) {
    let dir = model_dir(name);
    let options = LoadOptions {
        precision,
        ..LoadOptions::default()
    };
    let model = ClipVisionEncoder::from_pretrained_with(&dir, &options)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = Reference::open(&dir);
    let (pixels, shape) = reference.get("pixel_values");
    let (want, want_shape) = reference.get("image_embeds");
    let got = model.image_embeds(&pixels, shape[0]).unwrap().concat();
    cosines(&got, &want, want_shape[1])
}

#[test]
fn int8_and_bf16_keep_the_embeddings() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        for (precision, raw_min, centred_min) in [
            (Precision::Int8, 0.9995, 0.995),
            (Precision::Bf16, 0.9999, 0.999),
        ] {
            let (raw, centred) = measure(name, precision);
            eprintln!("{name:>16} {precision:>5}: raw {raw:.6}, centred {centred:.6}");
            if raw < raw_min || centred < centred_min {
                failures.push(format!(
                    "{name} {precision}: raw {raw:.6}, centred {centred:.6}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A bf16 checkpoint read as bf16 keeps its values exactly (nothing to round), so the tower
/// computes what the f32 load of the same file computes; its weights take half the bytes.
#[test]
fn a_bf16_checkpoint_loads_as_bf16_without_rounding() {
    let dir = model_dir("bf16");
    let load = |precision| {
        let options = LoadOptions {
            precision,
            ..LoadOptions::default()
        };
        ClipVisionEncoder::from_pretrained_with(&dir, &options).unwrap()
    };
    let (f32_model, bf16_model) = (load(Precision::F32), load(Precision::Bf16));
    assert_eq!(bf16_model.precision(), Precision::Bf16);
    let (a, b) = (
        f32_model.encoder.layers[0].mlp.fc1(),
        bf16_model.encoder.layers[0].mlp.fc1(),
    );
    assert_eq!(a.weight(), b.weight(), "the stored values, unrounded");
    let (k, n) = (b.in_features(), b.out_features());
    assert_eq!(b.weight_bytes(), 2 * k * n);
    assert!(a.weight_bytes() >= 4 * k * n);
    let reference = Reference::open(&dir);
    let (pixels, shape) = reference.get("pixel_values");
    let x = f32_model.image_embeds(&pixels, shape[0]).unwrap().concat();
    let y = bf16_model.image_embeds(&pixels, shape[0]).unwrap().concat();
    for (u, v) in x.iter().zip(&y) {
        assert!((u - v).abs() <= 1e-6 * (1.0 + u.abs()), "{u} vs {v}");
    }
}

/// `set_precision` on a tower in memory gives what loading in that precision gives.
#[test]
fn set_precision_equals_loading_in_the_precision() {
    let dir = model_dir("massive");
    for precision in [Precision::Int8, Precision::Bf16] {
        let options = LoadOptions {
            precision,
            ..LoadOptions::default()
        };
        let loaded = ClipVisionEncoder::from_pretrained_with(&dir, &options).unwrap();
        let mut converted = ClipVisionEncoder::from_pretrained(&dir).unwrap();
        converted.set_precision(precision).unwrap();
        assert_eq!(converted.precision(), precision);
        assert!(converted == loaded, "{precision}");
    }
}
