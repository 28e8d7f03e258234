//! Shapes and settings shared by the criterion benches of the clip-vision workspace.
//!
//! Benches are named after the real shape they time (`vit_b32_fc1_1600x768x3072`: the MLP's
//! first product at ViT-B/32, batch 32 → 1600 token rows, 768 in, 3072 out). Each declares
//! its throughput in criterion's "elements": floating-point operations for kernels and
//! layers (so elements/s reads as FLOP/s), images for the whole encoder.
//!
//! `VIT_BENCH_QUICK=1` (set by `cargo xtask bench --quick`) keeps only ViT-B/32 and short
//! measurement times, so CI runs the whole suite in seconds.
#![forbid(unsafe_code)]

pub mod npy;
pub mod peer;

use clip_vision::ClipVisionConfig;
use criterion::Criterion;
use std::time::Duration;

/// Whether the quick mode is on: `VIT_BENCH_QUICK=1`, or a run by `cargo test --benches`
/// (criterion's test mode, what CI does: `cargo bench` passes `--bench`, `cargo test` not).
pub fn quick() -> bool {
    std::env::var_os("VIT_BENCH_QUICK").is_some_and(|v| v != "0")
        || !std::env::args().any(|a| a == "--bench")
}

/// A criterion configured for the mode: short in quick mode, criterion's defaults otherwise.
pub fn criterion() -> Criterion {
    let c = Criterion::default().configure_from_args();
    if quick() {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .sample_size(10)
    } else {
        c.sample_size(20).measurement_time(Duration::from_secs(8))
    }
}

/// Sizes rayon's global pool to `--threads` (default 2), as every worker runs its runtime.
pub fn global_pool(opts: &peer::Options) {
    let threads = opts.num("threads", "2") as usize;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The towers benchmarked: `(short name, config)`; ViT-B/32 only in quick mode.
pub fn towers() -> Vec<(&'static str, ClipVisionConfig)> {
    let mut t = vec![("vit_b32", ClipVisionConfig::vit_base_patch32())];
    if !quick() {
        t.push(("vit_b16", ClipVisionConfig::vit_base_patch16()));
        t.push(("vit_l14", ClipVisionConfig::vit_large_patch14()));
    }
    t
}

/// Batch sizes benchmarked for a tower.
pub fn batch_sizes() -> Vec<usize> {
    if quick() {
        vec![1]
    } else {
        vec![1, 32]
    }
}

/// The four matrix products of one encoder block, `(name, m, k, n)` for `m` token rows:
/// q/k/v (fused), attention output projection, MLP fc1 and fc2.
pub fn block_products(
    cfg: &ClipVisionConfig,
    rows: usize,
) -> [(&'static str, usize, usize, usize); 4] {
    let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
    [
        ("qkv", rows, d, 3 * d),
        ("out_proj", rows, d, d),
        ("fc1", rows, d, i),
        ("fc2", rows, i, d),
    ]
}

/// Floating-point operations of one image through the tower with its projection
/// (matrix products and attention; elementwise work is not counted).
pub fn flops_per_image(cfg: &ClipVisionConfig) -> u64 {
    let (d, i, l) = (
        cfg.hidden_size as u64,
        cfg.intermediate_size as u64,
        cfg.num_hidden_layers as u64,
    );
    let t = cfg.seq_len() as u64;
    let patch = 2 * (t - 1) * d * (cfg.num_channels * cfg.patch_size * cfg.patch_size) as u64;
    let linear = 2 * t * d * (3 * d + d + 2 * i);
    let attention = 2 * 2 * t * t * d;
    patch + l * (linear + attention) + 2 * d * cfg.projection_dim as u64
}
