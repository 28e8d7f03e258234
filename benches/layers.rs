//! Each layer of a ViT block at real shapes, in FLOP/s (LayerNorm in elements/s).

use criterion::{BenchmarkId, Throughput};
use std::hint::black_box;
use vit_benches::{batch_sizes, criterion, towers};
use vit_layers::{AttentionPath, LayerNorm, Mlp, MultiHeadAttention, PatchEmbed};
use vit_tensor::LcgRng;

fn main() {
    let mut c = criterion();
    let mut group = c.benchmark_group("layers");
    for (tower, cfg) in towers() {
        let (d, i, t) = (cfg.hidden_size, cfg.intermediate_size, cfg.seq_len());
        let act = cfg
            .activation()
            .unwrap_or(vit_tensor::Activation::QuickGelu);
        let mut rng = LcgRng::new(0);
        let attn = MultiHeadAttention::random(d, cfg.num_attention_heads, 0.02, &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let mlp = Mlp::random(d, i, act, 0.02, &mut rng);
        let ln = LayerNorm::identity(d, 1e-5).unwrap_or_else(|e| panic!("{e}"));
        let patch = PatchEmbed::random(d, 3, cfg.patch_size, 0.02, &mut rng);
        for batch in batch_sizes() {
            let rows = batch * t;
            let x = rng.normal_vec(rows * d, 0.0, 1.0);

            let flops = 2 * rows * d * 4 * d + 4 * batch * t * t * d;
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_attention_b{batch}")),
                |b| b.iter(|| attn.forward(black_box(&x), batch, t)),
            );
            // The tiled path (online softmax, no [N, N] scores) beside the default two-pass.
            let tiled = attn.clone().with_path(AttentionPath::Tiled);
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_attention_tiled_b{batch}")),
                |b| b.iter(|| tiled.forward(black_box(&x), batch, t)),
            );

            group.throughput(Throughput::Elements((4 * rows * d * i) as u64));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_mlp_b{batch}")),
                |b| b.iter(|| mlp.forward(black_box(&x), rows)),
            );

            group.throughput(Throughput::Elements((rows * d) as u64));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_layer_norm_b{batch}")),
                |b| b.iter(|| ln.forward(black_box(&x))),
            );

            let s = cfg.image_size;
            let pixels = rng.normal_vec(batch * 3 * s * s, 0.0, 1.0);
            let n = cfg.num_patches();
            group.throughput(Throughput::Elements(
                (2 * batch * n * d * 3 * cfg.patch_size * cfg.patch_size) as u64,
            ));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{tower}_patch_embed_b{batch}")),
                |b| b.iter(|| patch.forward(black_box(&pixels), batch, s, s)),
            );
        }
    }
    group.finish();
    c.final_summary();
}
