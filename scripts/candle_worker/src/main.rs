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
//! Timing (warm-up, disturbed calls dropped and re-run once the machine is quiet) is the
//! clip-vision worker's own, `benches/src/peer.rs`, compiled into this binary.
#![forbid(unsafe_code)]

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use std::error::Error;
use std::path::Path;

/// The timing harness of the clip-vision peer worker, compiled here from its source (this
/// project stays outside the workspace, so it does not depend on `vit-benches`).
#[path = "../../../benches/src/peer.rs"]
mod peer;
use peer::{proc_kib, time_calls, Options};

/// candle-core's version, from Cargo.lock (see build.rs).
const CANDLE_VERSION: &str = env!("CANDLE_VERSION");

type Res<T> = Result<T, Box<dyn Error>>;

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
    let opts = Options::from_args();
    let threads = (opts.num("threads", "2") as usize).max(1);
    // candle reads these lazily (gemm's thread count on every matmul, its barrier pool's
    // size once): set them before any tensor work, while this is the only thread.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;

    let device = Device::Cpu;
    let rss_start = proc_kib("VmRSS");
    let pixels = Tensor::read_npy(opts.get("input", ""))?;
    if pixels.dtype() != DType::F32 || pixels.rank() != 4 {
        return Err(format!(
            "--input: want f32 [B, C, S, S], got {:?} {:?}",
            pixels.dtype(),
            pixels.dims()
        )
        .into());
    }
    let rss_libs = proc_kib("VmRSS");
    let model = CandleClip::load(Path::new(&opts.get("model", "")), &device)?;
    let call = || {
        model
            .image_embeds(&pixels)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = call();
    let rss_loaded = proc_kib("VmRSS");
    out.write_npy(opts.get("output", "out.npy"))?;

    let timing = time_calls(&opts, call);
    let gemm_backend = if cfg!(feature = "avx512") {
        "candle-cpu (gemm 0.19, x86-v4)"
    } else {
        "candle-cpu (gemm 0.19)"
    };
    println!(
        "{{{}, \"candle_version\": \"{CANDLE_VERSION}\", \"gemm_backend\": \"{gemm_backend}\", \"candle_avx\": {}, \"candle_mkl\": {}, \"candle_gemm_threads\": {}, \"rayon_threads\": {}}}",
        timing.json_fields(rss_start, rss_libs, rss_loaded),
        candle_core::utils::with_avx(),
        candle_core::utils::has_mkl(),
        candle_core::utils::get_num_threads(),
        rayon::current_num_threads()
    );
    Ok(())
}
