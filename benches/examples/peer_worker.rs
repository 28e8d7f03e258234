//! The clip-vision side of `scripts/bench_peers.py`: loads a `save_pretrained` checkpoint
//! with `ClipVisionEncoder::from_pretrained`, times `image_embeds` on the script's pixels the
//! way its Python workers time theirs, and prints one JSON line.
//!
//! ```text
//! peer_worker --model DIR --input pixels.npy --output out.npy --threads 2 \
//!             [--warmup 3] [--iters 10] [--min-time 5] [--max-iters 1000] [--max-wall 900]
//!             [--no-reject-busy]
//! ```
//!
//! Timing (warm-up, disturbed calls dropped) is `vit_benches::peer`, shared with the candle
//! worker.
#![forbid(unsafe_code)]

use clip_vision::ClipVisionEncoder;
use std::io::Write;
use vit_benches::peer::{proc_kib, time_calls, Options};

/// A `.npy` of little-endian f32: (shape, values).
fn read_npy(path: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header_len = match bytes[6] {
        1 => 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        _ => 12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
    };
    let header = String::from_utf8_lossy(&bytes[..header_len]).into_owned();
    assert!(
        header.contains("'<f4'") && header.contains("False"),
        "{path}: not C-order <f4"
    );
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_default();
    let shape: Vec<usize> = shape
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let values = bytes[header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (shape, values)
}

fn write_npy(path: &str, rows: &[Vec<f32>]) {
    let dim = rows.first().map_or(0, Vec::len);
    let mut dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        rows.len()
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(rows.iter().flatten().flat_map(|v| v.to_le_bytes()));
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn main() {
    let opts = Options::from_args();
    let threads = opts.num("threads", "2") as usize;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap_or_else(|e| panic!("{e}"));

    let rss_start = proc_kib("VmRSS");
    let (shape, pixels) = read_npy(&opts.get("input", ""));
    let batch = shape[0];
    let rss_libs = proc_kib("VmRSS");
    let model =
        ClipVisionEncoder::from_pretrained(opts.get("model", "")).unwrap_or_else(|e| panic!("{e}"));
    let call = || {
        model
            .image_embeds(&pixels, batch)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = call();
    let rss_loaded = proc_kib("VmRSS");
    write_npy(&opts.get("output", "out.npy"), &out);

    let timing = time_calls(&opts, call);
    println!(
        "{{{}, \"gemm_backend\": \"{}\", \"rayon_threads\": {}}}",
        timing.json_fields(rss_start, rss_libs, rss_loaded),
        vit_tensor::gemm::BACKEND,
        rayon::current_num_threads()
    );
}
