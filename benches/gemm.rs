//! `linear` (`x·Wᵀ + b` on the GEMM backend, weights held `[in, out]` as `vit_layers::Linear`
//! holds them, split across threads as the layer splits them) at the shapes of a ViT block,
//! in FLOP/s.

use criterion::{BenchmarkId, Throughput};
use std::hint::black_box;
use vit_benches::{batch_sizes, block_products, criterion, towers};
use vit_tensor::{linear_with, Epilogue, LcgRng, WeightLayout};

fn main() {
    let mut c = criterion();
    let mut group = c.benchmark_group("gemm");
    for (tower, cfg) in towers() {
        for batch in batch_sizes() {
            for (name, m, k, n) in block_products(&cfg, batch * cfg.seq_len()) {
                let mut rng = LcgRng::new(0);
                let x = rng.normal_vec(m * k, 0.0, 1.0);
                let w = rng.normal_vec(n * k, 0.0, 0.02);
                let b = rng.normal_vec(n, 0.0, 0.02);
                let mut out = vec![0.0f32; m * n];
                group.throughput(Throughput::Elements((2 * m * k * n) as u64));
                let id = BenchmarkId::from_parameter(format!("{tower}_{name}_{m}x{k}x{n}"));
                group.bench_function(id, |bench| {
                    bench.iter(|| {
                        linear_with(
                            black_box(&x),
                            &w,
                            WeightLayout::InOut,
                            [m, k, n],
                            &mut out,
                            Epilogue {
                                bias: Some(&b),
                                ..Epilogue::default()
                            },
                        )
                    })
                });
            }
        }
    }
    group.finish();
    c.final_summary();
}
