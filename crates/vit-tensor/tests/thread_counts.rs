//! `linear_with` against a naive f64 product on rayon pools of 1, 2, 4 and 7 threads.
//!
//! The kernel picks its split from `rayon::current_num_threads()`: one call below
//! 4 MFLOP or on one thread, row blocks when every thread gets at least 96 rows, column
//! blocks otherwise (some threads left without columns when there are fewer columns than
//! threads). Under the global pool only the paths of this machine's core count run; here
//! each shape runs inside a pool of each size, so every path runs on any machine.

use vit_tensor::{linear_with, Activation, Epilogue, LcgRng, WeightLayout};

/// Thread counts of the pools: one, even, the usual power of two, and odd.
const THREADS: [usize; 4] = [1, 2, 4, 7];
/// The kernel's thresholds, as documented on `linear_with`.
const PARALLEL_MIN_FLOPS: usize = 4_000_000;
const MIN_ROWS_PER_TASK: usize = 96;

/// The path `linear_with` takes for `[rows, inf, outf]` on `threads` threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    OneCall,
    RowBlocks,
    ColumnBlocks,
    /// Column blocks with threads that get no column.
    ColumnBlocksSomeIdle,
}

fn path(rows: usize, inf: usize, outf: usize, threads: usize) -> Path {
    if threads <= 1 || 2 * rows * inf * outf < PARALLEL_MIN_FLOPS {
        Path::OneCall
    } else if rows >= threads * MIN_ROWS_PER_TASK {
        Path::RowBlocks
    } else if outf.div_ceil(threads) * (threads - 1) >= outf {
        Path::ColumnBlocksSomeIdle
    } else {
        Path::ColumnBlocks
    }
}

/// `x · Wᵀ` in f64, `w` as `[outf, inf]`: `[rows, outf]`.
fn naive_linear(x: &[f32], w: &[f32], rows: usize, inf: usize, outf: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; rows * outf];
    for r in 0..rows {
        let xr = &x[r * inf..(r + 1) * inf];
        for o in 0..outf {
            let wo = &w[o * inf..(o + 1) * inf];
            y[r * outf + o] = xr
                .iter()
                .zip(wo)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
        }
    }
    y
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// Shapes `[rows, in_features, out_features]` that, across the pools, take every path:
/// tiny; row blocks on 2, 4 and 7 threads (701 rows: uneven blocks); exactly 2 × 96 rows and
/// one fewer; few rows with many columns (uneven column blocks); ten columns, so 4 and 7
/// threads leave some idle.
const SHAPES: [[usize; 3]; 6] = [
    [3, 8, 5],
    [701, 64, 48],
    [192, 128, 96],
    [191, 128, 96],
    [20, 300, 701],
    [50, 4100, 10],
];

#[test]
fn every_split_matches_the_naive_product_on_every_pool_size() {
    let mut seen = std::collections::HashSet::new();
    for [rows, inf, outf] in SHAPES {
        let mut rng = LcgRng::new((rows * 31 + inf * 7 + outf) as u64);
        let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
        let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
        let wt = transpose(&w, outf, inf);
        let b = rng.uniform_vec(outf, -1.0, 1.0);
        let base = rng.uniform_vec(rows * outf, -1.0, 1.0);
        let product = naive_linear(&x, &w, rows, inf, outf);
        // f32 rounding of `inf` random-sign terms of size ≤ 1 grows like √inf: measured at
        // most 1.0e-6·√inf over these shapes, pools and epilogues; a wrong block, offset or
        // bias is off by O(1).
        let tol = 4e-6 * (inf as f64).sqrt();
        for threads in THREADS {
            seen.insert(path(rows, inf, outf, threads));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(rayon::current_num_threads), threads);
            for (weight, layout) in [(&w, WeightLayout::OutIn), (&wt, WeightLayout::InOut)] {
                let cases = [(false, None), (true, None), (false, Some(Activation::Gelu))];
                for (accumulate, activation) in cases {
                    let mut out = base.clone();
                    let epilogue = Epilogue {
                        bias: Some(&b),
                        activation,
                        accumulate,
                    };
                    pool.install(|| {
                        linear_with(&x, weight, layout, [rows, inf, outf], &mut out, epilogue)
                    })
                    .unwrap();
                    let mut worst = 0.0f64;
                    for i in 0..rows * outf {
                        let prior = if accumulate { f64::from(base[i]) } else { 0.0 };
                        let mut expect = product[i] + f64::from(b[i % outf]) + prior;
                        if let Some(act) = activation {
                            expect = f64::from(act.apply(expect as f32));
                        }
                        worst = worst.max((f64::from(out[i]) - expect).abs());
                    }
                    assert!(
                        worst <= tol,
                        "{rows}x{inf}x{outf} on {threads} threads ({:?}), {layout:?}, \
                         accumulate {accumulate}, {activation:?}: error {worst:e} > {tol:e}",
                        path(rows, inf, outf, threads)
                    );
                }
            }
        }
    }
    for p in [
        Path::OneCall,
        Path::RowBlocks,
        Path::ColumnBlocks,
        Path::ColumnBlocksSomeIdle,
    ] {
        assert!(seen.contains(&p), "no shape takes {p:?}");
    }
}
