//! Decode + preprocess of one JPEG file (`ImageProcessor::preprocess_path`, OpenAI CLIP at
//! 224), in images/s: a 640×480 photo and a 12-megapixel (4000×3000) one, exactly; and the
//! 12-megapixel one with `with_fast_decode(true)` (PIL's `Image.draft`: decoded at 1/8).
//!
//! The JPEGs are written at start-up (baseline, quality 90, 4:2:0) from a smooth pattern
//! plus noise, so that their entropy, and so their decode time, is that of a photo rather
//! than of a flat test card.

use clip_vision::preprocess::ImageProcessor;
use clip_vision::LcgRng;
use criterion::{BenchmarkId, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use vit_benches::criterion;

/// A `width × height` RGB8 JPEG at quality 90.
fn photo_like_jpeg(width: usize, height: usize) -> Vec<u8> {
    let mut rng = LcgRng::new(7);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
            for c in 0..3 {
                let wave = ((u * (7.0 + c as f32) + v * 5.0).sin() * (v * 11.0 - u * 3.0).cos())
                    * 80.0
                    + 128.0;
                let noise = (rng.uniform() - 0.5) * 24.0;
                rgb.push((wave + noise).clamp(0.0, 255.0) as u8);
            }
        }
    }
    let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    comp.set_fastest_defaults(); // baseline Huffman coding, as cameras write
    comp.set_quality(90.0);
    comp.set_size(width, height);
    let mut started = comp
        .start_compress(Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    started
        .write_scanlines(&rgb)
        .unwrap_or_else(|e| panic!("{e}"));
    started.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let mut c = criterion();
    let mut group = c.benchmark_group("preprocess");
    let dir = std::env::temp_dir().join(format!("vit-bench-jpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let exact = ImageProcessor::default();
    let fast = ImageProcessor::default().with_fast_decode(true);
    for (name, width, height, processor) in [
        ("jpeg_640x480", 640, 480, &exact),
        ("jpeg_4000x3000", 4000, 3000, &exact),
        ("jpeg_4000x3000_fast_decode", 4000, 3000, &fast),
    ] {
        let path: PathBuf = dir.join(format!("{width}x{height}.jpg"));
        if !path.exists() {
            std::fs::write(&path, photo_like_jpeg(width, height))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| processor.preprocess_path(black_box(&path)))
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
    c.final_summary();
}
