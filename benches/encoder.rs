//! The whole tower with its projection (`image_embeds`), random weights, in images/s.

use clip_vision::{ClipVisionEncoder, LcgRng};
use criterion::{BenchmarkId, Throughput};
use std::hint::black_box;
use vit_benches::{batch_sizes, criterion, towers};

fn main() {
    let mut c = criterion();
    let mut group = c.benchmark_group("encoder");
    for (tower, cfg) in towers() {
        let mut rng = LcgRng::new(0);
        let model = ClipVisionEncoder::new(cfg.clone(), &mut rng).unwrap_or_else(|e| panic!("{e}"));
        // L/14 at batch 32 takes ~35 s a call: criterion's ten samples would take minutes, and
        // `cargo xtask bench --peers` times that case beside the peers anyway.
        let batches = batch_sizes()
            .into_iter()
            .filter(|&b| tower != "vit_l14" || b == 1);
        for batch in batches {
            let pixels = rng.normal_vec(batch * cfg.image_len(), 0.0, 1.0);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_b{batch}")),
                |b| b.iter(|| model.image_embeds(black_box(&pixels), batch)),
            );
        }
    }
    group.finish();
    c.final_summary();
}
