//! `MultiHeadAttention` against a naive f64 attention on rayon pools of 1, 2, 4 and 7 threads.
//!
//! The layer picks its path from `rayon::current_num_threads()`: sequences in parallel
//! (heads one after another, written through strided views) when the batch has at least as
//! many sequences as there are threads, the heads of each sequence in parallel otherwise.
//! Under the global pool only this machine's path runs; here each case runs inside a pool of
//! each size, so both paths run on any machine.

use vit_layers::{AttentionScratch, MultiHeadAttention};
use vit_tensor::LcgRng;

const THREADS: [usize; 4] = [1, 2, 4, 7];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    SequencesInParallel,
    HeadsInParallel,
}

fn path(batch: usize, threads: usize) -> Path {
    if batch >= threads {
        Path::SequencesInParallel
    } else {
        Path::HeadsInParallel
    }
}

/// `x · Wᵀ + b` in f64, `w` as `[outf, inf]`.
fn naive_linear(x: &[f64], w: &[f32], b: Option<&[f32]>, inf: usize, outf: usize) -> Vec<f64> {
    x.chunks_exact(inf)
        .flat_map(|row| {
            (0..outf).map(move |o| {
                let dot: f64 = row
                    .iter()
                    .zip(&w[o * inf..(o + 1) * inf])
                    .map(|(a, w)| a * f64::from(*w))
                    .sum();
                dot + b.map_or(0.0, |b| f64::from(b[o]))
            })
        })
        .collect()
}

/// Attention of a batch computed element by element in f64, from the layer's weights only.
///
/// # Shapes
/// - `x`: `[batch, t, D]` → `[batch, t, D]`
fn naive_attention(attn: &MultiHeadAttention, x: &[f32], t: usize) -> Vec<f64> {
    let (d, hd) = (attn.dim(), attn.head_dim());
    let x: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let qkv = naive_linear(&x, &attn.qkv().weight(), attn.qkv().bias(), d, 3 * d);
    let mut ctx = vec![0.0f64; x.len()];
    for (s, seq) in qkv.chunks_exact(t * 3 * d).enumerate() {
        let at = |i: usize, part: usize, h: usize, e: usize| seq[i * 3 * d + part * d + h * hd + e];
        for h in 0..attn.n_heads() {
            for i in 0..t {
                let mut scores: Vec<f64> = (0..t)
                    .map(|j| {
                        (0..hd)
                            .map(|e| at(i, 0, h, e) * at(j, 1, h, e))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                scores.iter_mut().for_each(|v| *v = (*v - max).exp());
                let z: f64 = scores.iter().sum();
                for e in 0..hd {
                    ctx[(s * t + i) * d + h * hd + e] =
                        (0..t).map(|j| scores[j] / z * at(j, 2, h, e)).sum();
                }
            }
        }
    }
    let out = attn.out_proj();
    naive_linear(&ctx, &out.weight(), out.bias(), d, d)
}

/// Cases `(D, heads, batch, seq_len)`: one sequence (heads in parallel on every pool but
/// one thread), three sequences (either path depending on the pool), seven (sequences in
/// parallel everywhere), fewer heads than threads, and a ViT-B-like width whose q/k/v
/// product is large enough to be split across threads as well.
const CASES: [(usize, usize, usize, usize); 5] = [
    (48, 4, 1, 17),
    (48, 4, 3, 17),
    (24, 2, 7, 9),
    (48, 3, 2, 10),
    (128, 8, 2, 50),
];

#[test]
fn both_paths_match_naive_attention_on_every_pool_size() {
    let mut seen = std::collections::HashSet::new();
    for (d, heads, batch, t) in CASES {
        let mut rng = LcgRng::new((d * 100 + heads * 10 + batch) as u64);
        let mut attn = MultiHeadAttention::random(d, heads, 0.3, &mut rng).unwrap();
        // Non-zero biases, so a head reading the wrong columns of q/k/v shows.
        let qkv = attn.qkv();
        let bias = rng.normal_vec(3 * d, 0.0, 0.5);
        let qkv = vit_layers::Linear::new(qkv.weight(), Some(bias), d, 3 * d).unwrap();
        let out_proj = attn.out_proj().clone();
        attn = MultiHeadAttention::from_fused(qkv, out_proj, heads).unwrap();
        let x = rng.normal_vec(batch * t * d, 0.0, 1.0);
        let base = rng.normal_vec(batch * t * d, 0.0, 1.0);
        let attention = naive_attention(&attn, &x, t);
        let scale = attention.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let mut scratch = AttentionScratch::default();
        for threads in THREADS {
            seen.insert(path(batch, threads));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(rayon::current_num_threads), threads);
            let mut out = base.clone();
            pool.install(|| attn.forward_add_into(&x, batch, t, &mut out, &mut scratch))
                .unwrap();
            let worst = out
                .iter()
                .zip(&base)
                .zip(&attention)
                .map(|((o, b), a)| (f64::from(*o) - f64::from(*b) - a).abs())
                .fold(0.0f64, f64::max);
            assert!(
                worst <= 1e-5 * scale,
                "D={d} heads={heads} batch={batch} t={t} on {threads} threads ({:?}): \
                 error {worst:e}, bound {:e}",
                path(batch, threads),
                1e-5 * scale
            );
        }
    }
    assert!(seen.contains(&Path::SequencesInParallel));
    assert!(seen.contains(&Path::HeadsInParallel));
}
