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
//! A timed call during which other processes used more than `0.03 s + 10 %` of its wall time
//! in CPU (from `/proc/stat`, minus this process's own time) is dropped and re-run once the
//! machine is quiet, as the Python workers do.
#![forbid(unsafe_code)]

use clip_vision::ClipVisionEncoder;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/stat` and `/proc/self/stat` (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// (CPU seconds of the whole machine, CPU seconds of this process).
fn sample() -> (f64, f64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let v: Vec<f64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((v[0] + v[1] + v[2] + v[5] + v[6]) / HZ)
        })
        .unwrap_or(0.0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / HZ)
        })
        .unwrap_or(0.0);
    (machine, own)
}

fn others(s0: (f64, f64), s1: (f64, f64)) -> f64 {
    ((s1.0 - s0.0) - (s1.1 - s0.1)).max(0.0)
}

fn wait_quiet(enabled: bool, max_wait: f64) -> f64 {
    let t0 = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    while enabled && t0.elapsed().as_secs_f64() < max_wait {
        let s0 = sample();
        std::thread::sleep(Duration::from_secs(1));
        if others(s0, sample()) < 0.05 * cores {
            break;
        }
    }
    t0.elapsed().as_secs_f64()
}

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = HashMap::new();
    let mut reject_busy = true;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--no-reject-busy" {
            reject_busy = false;
            i += 1;
        } else {
            opts.insert(
                args[i].trim_start_matches("--").to_owned(),
                args.get(i + 1).cloned().unwrap_or_default(),
            );
            i += 2;
        }
    }
    let get = |k: &str, d: &str| opts.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let num = |k: &str, d: &str| {
        get(k, d)
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("--{k} takes a number"))
    };
    let threads = num("threads", "2") as usize;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap_or_else(|e| panic!("{e}"));

    let rss_start = proc_kib("VmRSS");
    let (shape, pixels) = read_npy(&get("input", ""));
    let batch = shape[0];
    let rss_libs = proc_kib("VmRSS");
    let model =
        ClipVisionEncoder::from_pretrained(get("model", "")).unwrap_or_else(|e| panic!("{e}"));
    let call = || {
        model
            .image_embeds(&pixels, batch)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = call();
    let rss_loaded = proc_kib("VmRSS");
    write_npy(&get("output", "out.npy"), &out);

    let (warmup, iters, min_time, max_iters, max_wall) = (
        num("warmup", "3") as usize,
        num("iters", "10") as usize,
        num("min-time", "5"),
        num("max-iters", "1000") as usize,
        num("max-wall", "900"),
    );
    let mut waited = wait_quiet(reject_busy, max_wall);
    for _ in 0..warmup {
        std::hint::black_box(call());
    }
    let (mut times, mut dropped) = (Vec::new(), Vec::new());
    let (mut spent, start) = (0.0, Instant::now());
    while times.len() < iters || (spent < min_time && times.len() < max_iters) {
        if start.elapsed().as_secs_f64() > max_wall {
            break;
        }
        let s0 = sample();
        let t0 = Instant::now();
        std::hint::black_box(call());
        let dt = t0.elapsed().as_secs_f64();
        if reject_busy && others(s0, sample()) > 0.03 + 0.1 * dt {
            dropped.push(dt);
            waited += wait_quiet(reject_busy, max_wall);
            std::hint::black_box(call());
            continue;
        }
        times.push(dt);
        spent += dt;
    }
    let json = |v: Option<u64>| v.map_or("null".to_owned(), |n| n.to_string());
    let list = |v: &[f64]| {
        format!(
            "[{}]",
            v.iter()
                .map(|t| format!("{t:.6}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!(
        "{{\"times_s\": {}, \"rss_start_kib\": {}, \"rss_after_import_kib\": {}, \"rss_after_load_kib\": {}, \"vmhwm_kib\": {}, \"ru_maxrss_kib\": {}, \"dropped_calls_s\": {}, \"waited_for_quiet_s\": {waited:.3}, \"hit_max_wall\": {}, \"gemm_backend\": \"{}\", \"rayon_threads\": {}}}",
        list(&times),
        json(rss_start),
        json(rss_libs),
        json(rss_loaded),
        json(proc_kib("VmHWM")),
        json(proc_kib("VmHWM")),
        list(&dropped),
        times.len() < iters,
        vit_tensor::gemm::BACKEND,
        rayon::current_num_threads()
    );
}
