//! The clip-text side of `scripts/bench_text_peers.py`: loads a `save_pretrained` text
//! checkpoint (with its tokenizer files) with `ClipTextEncoder::from_pretrained`, times
//! strings → `text_embeds` (its own tokenizer included) the way the script's Python workers
//! time theirs, and prints one JSON line.
//!
//! ```text
//! text_peer_worker --model DIR --input texts.json --output out.npy --threads 2 \
//!                  [--warmup 3] [--iters 10] [--min-time 5] [--max-iters 1000]
//!                  [--max-wall 900] [--no-reject-busy] [--text-batch N]
//! ```
//!
//! `texts.json` is `{"batch": B, "texts": [...]}`: each timed call embeds the next `B` texts
//! (cycling), as one padded batch unless `--text-batch` says otherwise (`0`: the library's
//! default, [`clip_text::DEFAULT_TEXT_BATCH`] texts per length-sorted batch). `out.npy` holds
//! the text_embeds of every text, `[n, E]`, computed in calls of `B`. The tokenizer alone is
//! timed too, on the same calls (`tokenize_median_s`).
//!
//! Timing (warm-up, disturbed calls dropped) is `vit_benches::peer`.
#![forbid(unsafe_code)]

use clip_text::ClipTextEncoder;
use vit_benches::npy::write_f32_rows;
use vit_benches::peer::{proc_kib, time_calls, Options};

/// The texts and the batch size of `texts.json`.
fn read_texts(path: &str) -> Result<(Vec<String>, usize), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let spec: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
    let texts: Vec<String> = spec["texts"]
        .as_array()
        .ok_or_else(|| format!("{path}: no \"texts\" list"))?
        .iter()
        .map(|t| t.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{path}: \"texts\" holds a non-string"))?;
    let batch = spec["batch"]
        .as_u64()
        .filter(|&b| b >= 1)
        .ok_or_else(|| format!("{path}: \"batch\" is not a positive integer"))?
        as usize;
    if texts.is_empty() {
        return Err(format!("{path}: no texts"));
    }
    Ok((texts, batch))
}

fn main() -> Result<(), String> {
    let mut opts = Options::from_args();
    let threads = opts.num("threads", "2") as usize;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| e.to_string())?;

    let rss_start = proc_kib("VmRSS");
    let input = opts.get("input", "");
    let (texts, batch) = read_texts(&input)?;
    let rss_libs = proc_kib("VmRSS");
    let text_batch = match opts.num("text-batch", &batch.to_string()) as usize {
        0 => clip_text::DEFAULT_TEXT_BATCH,
        n => n,
    };
    let model_dir = opts.get("model", "");
    let model = ClipTextEncoder::from_pretrained(&model_dir)
        .map_err(|e| format!("{model_dir}: {e}"))?
        .with_batch_size(text_batch);
    let chunks: Vec<Vec<&str>> = texts
        .chunks(batch)
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let mut out = Vec::with_capacity(texts.len());
    for c in &chunks {
        out.extend(model.text_embeds(c).map_err(|e| e.to_string())?);
    }
    let rss_loaded = proc_kib("VmRSS");
    write_f32_rows(&opts.get("output", "out.npy"), &out)?;

    // Every chunk went through once above, so the timed calls (on the same chunks) succeed:
    // their results are only kept from being optimised away.
    let mut next = 0;
    let timing = time_calls(&opts, || {
        next += 1;
        model.text_embeds(&chunks[(next - 1) % chunks.len()])
    });
    // The tokenizer alone, as `text_embeds` runs it (text by text), for a fifth of the time.
    let min_time = opts.num("min-time", "5") / 5.0;
    opts.set("min-time", min_time);
    let mut next = 0;
    let tokenize = time_calls(&opts, || {
        next += 1;
        let chunk = &chunks[(next - 1) % chunks.len()];
        chunk
            .iter()
            .map(|t| model.tokenizer.encode(t))
            .collect::<Vec<_>>()
    });
    let mut tok_times = tokenize.times.clone();
    tok_times.sort_by(f64::total_cmp);
    let tok_median = match tok_times.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => tok_times[n / 2],
        n => 0.5 * (tok_times[n / 2 - 1] + tok_times[n / 2]),
    };
    println!(
        "{{{}, \"tokenize_median_s\": {tok_median:.9}, \"gemm_backend\": \"{}\", \"rayon_threads\": {}, \"text_batch\": {text_batch}, \"tokenizer\": \"clip-text ClipTokenizer ({})\"}}",
        timing.json_fields(rss_start, rss_libs, rss_loaded),
        vit_tensor::gemm::BACKEND,
        rayon::current_num_threads(),
        model
            .tokenizer
            .source()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
    );
    Ok(())
}
