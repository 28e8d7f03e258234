//! Decode + preprocess time of image files, one thread, exact and with fast decoding:
//! `cargo run --release -p vit-benches --example decode_time -- FILE [ROUNDS]` prints, per
//! file, the median milliseconds of `ImageProcessor::preprocess_path` (OpenAI CLIP, 224)
//! for each mode, and how far the fast levels are from the exact ones. Driven by
//! `scripts/bench_fast_decode.py`, which times PIL on the same file in the same run.

use clip_vision::preprocess::ImageProcessor;
use std::time::Instant;

type Result<T> = std::result::Result<T, clip_vision::preprocess::PreprocessError>;

fn median_ms(rounds: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm the page cache and the allocator
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: decode_time FILE [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(11)
        .max(1);
    let exact = ImageProcessor::default();
    let fast = ImageProcessor::default().with_fast_decode(true);
    let levels = |p: &ImageProcessor| p.resize_and_crop(&p.open(&file)?);
    let (a, b) = (levels(&exact)?, levels(&fast)?);
    let diffs: Vec<u8> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    let max = diffs.iter().copied().max().unwrap_or(0);
    let time = |p: &ImageProcessor| {
        median_ms(rounds, || {
            std::hint::black_box(p.preprocess_path(&file)?);
            Ok(())
        })
    };
    let (t_exact, t_fast) = (time(&exact)?, time(&fast)?);
    println!(
        "{{\"exact_ms\": {t_exact:.2}, \"fast_ms\": {t_fast:.2}, \"mean_abs\": {mean:.4}, \"max_abs\": {max}}}"
    );
    Ok(())
}
