//! The int8 sensitivity sweep: each linear layer of a tower quantized alone, and the whole
//! tower in each precision, measured as the cosine of `image_embeds` to f32.
//!
//! ```text
//! quant_sweep --model DIR [--threads 2]
//! ```
//!
//! The inputs and the f32 reference are the fixture's (`DIR/reference.safetensors`:
//! `pixel_values`, `image_embeds`, as `scripts/make_fixtures.py` writes them); without one,
//! pixels of noise and the f32 tower's own output. Each row gives the smallest raw cosine
//! and the smallest batch-centred cosine (the batch mean subtracted first) over the batch,
//! for the layer as int8 with its calibrated outlier channels in f32 and as plain int8.
#![forbid(unsafe_code)]

use clip_vision::checkpoint::store::TensorStore;
use clip_vision::{ClipVisionEncoder, Precision};
use vit_benches::peer::Options;
use vit_tensor::LcgRng;

fn cosines(got: &[f32], want: &[f32], dim: usize) -> (f64, f64) {
    let rows = want.len() / dim;
    let cos = |a: &[f64], b: &[f64]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
            * b.iter().map(|x| x * x).sum::<f64>().sqrt())
    };
    let g: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
    let w: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    let mean = |v: &[f64]| -> Vec<f64> {
        (0..dim)
            .map(|j| (0..rows).map(|r| v[r * dim + j]).sum::<f64>() / rows as f64)
            .collect()
    };
    let (mg, mw) = (mean(&g), mean(&w));
    let (mut raw, mut centred) = (1.0f64, 1.0f64);
    for r in 0..rows {
        let (gr, wr) = (&g[r * dim..(r + 1) * dim], &w[r * dim..(r + 1) * dim]);
        raw = raw.min(cos(gr, wr));
        if rows > 1 {
            let gc: Vec<f64> = gr.iter().zip(&mg).map(|(a, m)| a - m).collect();
            let wc: Vec<f64> = wr.iter().zip(&mw).map(|(a, m)| a - m).collect();
            centred = centred.min(cos(&gc, &wc));
        }
    }
    (raw, centred)
}

fn main() {
    let opts = Options::from_args();
    vit_benches::global_pool(&opts);
    let dir = std::path::PathBuf::from(opts.get("model", ""));
    let f32_model = ClipVisionEncoder::from_pretrained(&dir).unwrap_or_else(|e| panic!("{e}"));
    let reference = TensorStore::open_file(dir.join("reference.safetensors")).ok();
    let (pixels, batch) = match &reference {
        Some(r) => {
            let shape = r
                .shape("pixel_values")
                .unwrap_or_else(|e| panic!("{e}"))
                .to_vec();
            (
                r.tensor("pixel_values", &shape)
                    .unwrap_or_else(|e| panic!("{e}")),
                shape[0],
            )
        }
        None => (
            LcgRng::new(1).normal_vec(8 * f32_model.image_len(), 0.0, 1.0),
            8,
        ),
    };
    let embed = |m: &ClipVisionEncoder| {
        m.image_embeds(&pixels, batch)
            .unwrap_or_else(|e| panic!("{e}"))
            .concat()
    };
    let ours = embed(&f32_model);
    let want = match &reference {
        Some(r) => {
            let shape = r
                .shape("image_embeds")
                .unwrap_or_else(|e| panic!("{e}"))
                .to_vec();
            r.tensor("image_embeds", &shape)
                .unwrap_or_else(|e| panic!("{e}"))
        }
        None => ours.clone(),
    };
    let dim = want.len() / batch;
    let mut int8 = f32_model.clone();
    int8.set_precision(Precision::Int8)
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{} images; cosine of image_embeds to transformers f32 (min over the batch), raw / centred",
        batch
    );
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>12} {:>12}",
        "layer", "outliers", "raw", "centred", "plain raw", "plain ctr"
    );
    let (r, c) = cosines(&ours, &want, dim);
    println!("{:<22} {:>9} {:>10.6} {:>10.6}", "f32 (ours)", "", r, c);
    for l in 0..f32_model.encoder.layers.len() {
        for i in 0..4 {
            let mut one = f32_model.clone();
            let mut plain = f32_model.clone();
            let (name, q) = int8.encoder.layers[l].linears()[i];
            let outliers = q.quantized().map_or(0, |w| w.outliers().len());
            *one.encoder.layers[l].linears_mut()[i].1 = q.clone();
            plain.encoder.layers[l].linears_mut()[i]
                .1
                .quantize_int8(&[])
                .unwrap_or_else(|e| panic!("{e}"));
            let (r, c) = cosines(&embed(&one), &want, dim);
            let (pr, pc) = cosines(&embed(&plain), &want, dim);
            println!(
                "{:<22} {:>9} {:>10.6} {:>10.6} {:>12.6} {:>12.6}",
                format!("{l}.{name}"),
                outliers,
                r,
                c,
                pr,
                pc
            );
        }
    }
    let (r, c) = cosines(&embed(&int8), &want, dim);
    println!("{:<22} {:>9} {:>10.6} {:>10.6}", "all int8", "", r, c);
    let mut plain = f32_model.clone();
    for b in &mut plain.encoder.layers {
        for (_, lin) in b.linears_mut() {
            lin.quantize_int8(&[]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let (pr, pc) = cosines(&embed(&plain), &want, dim);
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>12.6} {:>12.6}",
        "all int8, no outliers", "", "", "", pr, pc
    );
    let mut bf16 = f32_model.clone();
    bf16.set_precision(Precision::Bf16)
        .unwrap_or_else(|e| panic!("{e}"));
    let (r, c) = cosines(&embed(&bf16), &want, dim);
    println!("{:<22} {:>9} {:>10.6} {:>10.6}", "all bf16", "", r, c);
}
