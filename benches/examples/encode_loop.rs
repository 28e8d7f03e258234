//! Runs a tower in a loop, for profilers and for `scripts/bench_cli.sh`: `cargo run --release
//! -p vit-benches --example encode_loop -- vit_base_patch32 32 10` (preset with random
//! weights, or a checkpoint directory; batch; iterations). Prints the median images/s.
#![forbid(unsafe_code)]

use clip_vision::{ClipVisionConfig, ClipVisionEncoder, LcgRng};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().map_or("vit_base_patch32", String::as_str);
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = LcgRng::new(0);
    let model = if std::path::Path::new(preset).is_dir() {
        ClipVisionEncoder::from_pretrained(preset)
    } else {
        let cfg =
            ClipVisionConfig::preset(preset).unwrap_or_else(|| panic!("unknown preset {preset}"));
        ClipVisionEncoder::new(cfg, &mut rng)
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let pixels = rng.normal_vec(batch * model.image_len(), 0.0, 1.0);
    model
        .image_embeds(&pixels, batch)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(
            model
                .image_embeds(&pixels, batch)
                .unwrap_or_else(|e| panic!("{e}")),
        );
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{preset} batch {batch}: median {:.1} ms/batch, {:.2} images/s (min {:.1} ms, max {:.1} ms, backend {})",
        median * 1e3,
        batch as f64 / median,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3,
        vit_tensor::gemm::BACKEND
    );
}
