//! The clip-vision side of `scripts/bench_peers.py`: loads a `save_pretrained` checkpoint
//! with `ClipVisionEncoder::from_pretrained`, times `image_embeds` on the script's pixels the
//! way its Python workers time theirs, and prints one JSON line.
//!
//! ```text
//! peer_worker --model DIR --input pixels.npy --output out.npy --threads 2 \
//!             [--warmup 3] [--iters 10] [--min-time 5] [--max-iters 1000] [--max-wall 900]
//!             [--no-reject-busy] [--precision f32|int8|bf16]
//! ```
//!
//! Timing (warm-up, disturbed calls dropped) is `vit_benches::peer`, shared with the candle
//! worker.
#![forbid(unsafe_code)]

use clip_vision::{ClipVisionEncoder, LoadOptions, Precision};
use vit_benches::npy::{read_f32, write_f32_rows};
use vit_benches::peer::{proc_kib, time_calls, Options};

fn main() {
    let opts = Options::from_args();
    vit_benches::global_pool(&opts);

    let rss_start = proc_kib("VmRSS");
    let (shape, pixels) = read_f32(&opts.get("input", "")).unwrap_or_else(|e| panic!("{e}"));
    let batch = shape[0];
    let rss_libs = proc_kib("VmRSS");
    let precision: Precision = opts
        .get("precision", "f32")
        .parse()
        .unwrap_or_else(|e| panic!("--precision: {e}"));
    let options = LoadOptions {
        precision,
        ..LoadOptions::default()
    };
    let model = ClipVisionEncoder::from_pretrained_with(opts.get("model", ""), &options)
        .unwrap_or_else(|e| panic!("{e}"));
    let call = || {
        model
            .image_embeds(&pixels, batch)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = call();
    let rss_loaded = proc_kib("VmRSS");
    write_f32_rows(&opts.get("output", "out.npy"), &out).unwrap_or_else(|e| panic!("{e}"));

    let timing = time_calls(&opts, call);
    println!(
        "{{{}, \"gemm_backend\": \"{}\", \"precision\": \"{}\", \"int8_kernel\": \"{}\", \"rayon_threads\": {}}}",
        timing.json_fields(rss_start, rss_libs, rss_loaded),
        vit_tensor::gemm::BACKEND,
        precision,
        vit_tensor::kernels::int8::Int8Kernel::current(),
        rayon::current_num_threads()
    );
}
