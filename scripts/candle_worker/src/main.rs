//! The candle side of `scripts/bench_peers.py`: loads a `save_pretrained`
//! `CLIPVisionModelWithProjection` checkpoint (config.json + model.safetensors) with
//! candle-transformers' CLIP vision tower plus the visual projection, times `image_embeds`
//! on the script's pixels exactly as `benches/examples/peer_worker.rs` times clip-vision's,
//! writes the embeddings as `.npy` and prints one JSON line.
//!
//! ```text
//! candle_worker --model DIR --input pixels.npy --output out.npy --threads 2 \
//!               [--warmup 3] [--iters 10] [--min-time 5] [--max-iters 1000] [--max-wall 900]
//!               [--no-reject-busy]
//! ```
//!
//! The model is `candle_transformers::models::clip::vision_model::ClipVisionTransformer`
//! (embeddings, pre-LayerNorm, pre-LN encoder layers, post-LayerNorm of the class token),
//! built from config.json under the prefix `vision_model`, followed by a bias-free
//! `candle_nn::Linear` from `visual_projection.weight`: image_embeds = projection(pooled),
//! as transformers computes it. candle's CLIP only implements `quick_gelu` and a LayerNorm
//! eps of 1e-5, so other configs are refused rather than run with the wrong math.
//!
//! Weights are read with `candle_core::safetensors::load` (a plain file read, no memory
//! map) into a `VarBuilder::from_tensors`.
//!
//! Threads: candle's CPU matmul is gemm with `Parallelism::Rayon(n)`, n from
//! `RAYON_NUM_THREADS`; its elementwise ops run on its own barrier pool sized from
//! `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`); its conv2d uses rayon's global pool.
//! Both variables default to the number of physical cores, so this worker sets both to
//! `--threads` before candle reads them, and builds rayon's global pool with that many threads.
//!
//! A timed call during which other processes used more than `0.03 s + 10 %` of its wall time
//! in CPU (from `/proc/stat`, minus this process's own time) is dropped and re-run once the
//! machine is quiet, as the other workers do.
#![forbid(unsafe_code)]

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use std::collections::HashMap;
use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

/// candle-core's version, from Cargo.lock (see build.rs).
const CANDLE_VERSION: &str = env!("CANDLE_VERSION");

/// Clock ticks per second of `/proc/stat` and `/proc/self/stat` (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

type Res<T> = Result<T, Box<dyn Error>>;

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

/// candle's `ClipVisionConfig` from a transformers config.json (top level, or its
/// `vision_config`), with transformers' `CLIPVisionConfig` defaults for absent keys
/// (`save_pretrained` leaves out values equal to the defaults).
fn vision_config(dir: &Path) -> Res<ClipVisionConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let root: serde_json::Value = serde_json::from_str(&text)?;
    let cfg = root.get("vision_config").unwrap_or(&root);
    let int = |key: &str, default: usize| -> Res<usize> {
        match cfg.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => Ok(v
                .as_u64()
                .ok_or_else(|| format!("config.json: {key} is not a whole number"))?
                as usize),
        }
    };
    // projection_dim may sit at the top level of a full CLIPModel config.
    let projection_dim = match cfg
        .get("projection_dim")
        .or_else(|| root.get("projection_dim"))
    {
        Some(v) => {
            v.as_u64()
                .ok_or("config.json: projection_dim is not a whole number")? as usize
        }
        None => 512,
    };
    let act = cfg
        .get("hidden_act")
        .and_then(|v| v.as_str())
        .unwrap_or("quick_gelu");
    if act != "quick_gelu" {
        return Err(format!(
            "hidden_act {act:?}: candle-transformers' CLIP implements only quick_gelu"
        )
        .into());
    }
    let eps = cfg
        .get("layer_norm_eps")
        .and_then(|v| v.as_f64())
        .unwrap_or(1e-5);
    if eps != 1e-5 {
        return Err(
            format!("layer_norm_eps {eps}: candle-transformers' CLIP hard-codes 1e-5").into(),
        );
    }
    Ok(ClipVisionConfig {
        embed_dim: int("hidden_size", 768)?,
        activation: Activation::QuickGelu,
        intermediate_size: int("intermediate_size", 3072)?,
        num_hidden_layers: int("num_hidden_layers", 12)?,
        num_attention_heads: int("num_attention_heads", 12)?,
        projection_dim,
        num_channels: int("num_channels", 3)?,
        image_size: int("image_size", 224)?,
        patch_size: int("patch_size", 32)?,
    })
}

/// The vision tower and the visual projection of a `CLIPVisionModelWithProjection`.
struct CandleClip {
    vision: ClipVisionTransformer,
    projection: Linear,
}

impl CandleClip {
    fn load(dir: &Path, device: &Device) -> Res<Self> {
        let cfg = vision_config(dir)?;
        let file = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&file, device)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &cfg)?;
        let projection = candle_nn::linear_no_bias(
            cfg.embed_dim,
            cfg.projection_dim,
            vb.pp("visual_projection"),
        )?;
        Ok(Self { vision, projection })
    }

    /// image_embeds [B, projection_dim] of pixel_values [B, C, S, S].
    fn image_embeds(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        self.projection.forward(&self.vision.forward(pixels)?)
    }
}

fn main() -> Res<()> {
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
    let threads = (num("threads", "2") as usize).max(1);
    // candle reads these lazily (gemm's thread count on every matmul, its barrier pool's
    // size once): set them before any tensor work, while this is the only thread.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;

    let device = Device::Cpu;
    let rss_start = proc_kib("VmRSS");
    let pixels = Tensor::read_npy(get("input", ""))?;
    if pixels.dtype() != DType::F32 || pixels.rank() != 4 {
        return Err(format!(
            "--input: want f32 [B, C, S, S], got {:?} {:?}",
            pixels.dtype(),
            pixels.dims()
        )
        .into());
    }
    let rss_libs = proc_kib("VmRSS");
    let model = CandleClip::load(Path::new(&get("model", "")), &device)?;
    let call = || {
        model
            .image_embeds(&pixels)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = call();
    let rss_loaded = proc_kib("VmRSS");
    out.write_npy(get("output", "out.npy"))?;

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
    let gemm_backend = if cfg!(feature = "avx512") {
        "candle-cpu (gemm 0.19, x86-v4)"
    } else {
        "candle-cpu (gemm 0.19)"
    };
    println!(
        "{{\"times_s\": {}, \"rss_start_kib\": {}, \"rss_after_import_kib\": {}, \"rss_after_load_kib\": {}, \"vmhwm_kib\": {}, \"ru_maxrss_kib\": {}, \"dropped_calls_s\": {}, \"waited_for_quiet_s\": {waited:.3}, \"hit_max_wall\": {}, \"candle_version\": \"{CANDLE_VERSION}\", \"gemm_backend\": \"{gemm_backend}\", \"candle_avx\": {}, \"candle_mkl\": {}, \"candle_gemm_threads\": {}, \"rayon_threads\": {}}}",
        list(&times),
        json(rss_start),
        json(rss_libs),
        json(rss_loaded),
        json(proc_kib("VmHWM")),
        json(proc_kib("VmHWM")),
        list(&dropped),
        times.len() < iters,
        candle_core::utils::with_avx(),
        candle_core::utils::has_mkl(),
        candle_core::utils::get_num_threads(),
        rayon::current_num_threads()
    );
    Ok(())
}
