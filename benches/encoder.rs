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
        for batch in batch_sizes() {
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
