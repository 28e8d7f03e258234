//! `x·Wᵀ + b` at the shapes of a ViT block, in FLOP/s, split across threads as the layers
//! split them:
//! - `gemm/…`: `linear_with` on `Wᵀ` `[in, out]` (matrixmultiply, or the `gemm` crate with
//!   the feature), packing the weight on every call;
//! - `packed/<path>/…` (feature `packed`): `linear_packed` on a `PackedWeight`, what
//!   `vit_layers::Linear` runs, once per micro-kernel path this CPU supports.

use criterion::{BenchmarkId, Throughput};
use std::hint::black_box;
use vit_benches::{batch_sizes, block_products, criterion, towers};
use vit_tensor::{linear_packed, linear_with, Epilogue, LcgRng, PackedWeight, WeightLayout};

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
                if !cfg!(feature = "packed") {
                    continue;
                }
                let packed = PackedWeight::pack(&w, WeightLayout::InOut, k, n)
                    .unwrap_or_else(|e| panic!("{e}"));
                for path in vit_tensor::kernels::KernelPath::supported() {
                    vit_tensor::kernels::force_kernel_path(Some(path))
                        .unwrap_or_else(|e| panic!("{e}"));
                    let id = BenchmarkId::new(
                        format!("packed/{path}"),
                        format!("{tower}_{name}_{m}x{k}x{n}"),
                    );
                    group.bench_function(id, |bench| {
                        bench.iter(|| {
                            linear_packed(
                                black_box(&x),
                                &packed,
                                m,
                                &mut out,
                                Epilogue {
                                    bias: Some(&b),
                                    ..Epilogue::default()
                                },
                            )
                        })
                    });
                }
                vit_tensor::kernels::force_kernel_path(None).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    group.finish();
    c.final_summary();
}
