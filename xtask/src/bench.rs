//! `cargo xtask bench`: run the criterion benches and summarise them in one table.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One benchmark's result, read back from criterion's output directory.
#[derive(Debug)]
struct Row {
    group: String,
    name: String,
    /// Median time per iteration, seconds.
    median: f64,
    /// Lower and upper bound of criterion's confidence interval of the median, seconds.
    low: f64,
    high: f64,
    /// Work per iteration in criterion "elements" (FLOP for kernels, images for the encoder
    /// and preprocessing).
    elements: Option<f64>,
}

impl Row {
    fn rate(&self) -> Option<f64> {
        self.elements.map(|e| e / self.median)
    }

    fn rate_text(&self) -> String {
        match (self.group.as_str(), self.rate()) {
            ("encoder", Some(r)) => format!("{r:.2} images/s"),
            ("preprocess", Some(r)) => format!("{r:.1} images/s/thread"),
            ("layers", Some(r)) if self.name.contains("layer_norm") => {
                format!("{:.2} Gelem/s", r / 1e9)
            }
            (_, Some(r)) => format!("{:.1} GFLOP/s", r / 1e9),
            (_, None) => String::new(),
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut peers = false;
    let mut peers_only = false;
    let mut gemm = false;
    let mut presets = vec!["vit_b32".to_string(), "text_b32".to_string()];
    let mut rounds = "3".to_string();
    let mut filter: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--peers" => peers = true,
            // The peers alone: no criterion run; docs/benchmarks.md keeps its criterion table.
            "--peers-only" => (peers, peers_only) = (true, true),
            "--gemm" => gemm = true,
            "--presets" => {
                presets = it
                    .next()
                    .context("--presets needs a list")?
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            // One number for every preset, or one per preset: `--rounds 3,1,1`.
            "--rounds" => rounds = it.next().context("--rounds needs a number")?.clone(),
            "--filter" => filter = Some(it.next().context("--filter needs a value")?.clone()),
            other => bail!("unknown bench option {other:?}"),
        }
    }
    if let Some(p) = presets.iter().find(|p| !PRESETS.contains(&p.as_str())) {
        bail!("unknown preset {p:?}: one of {}", PRESETS.join(", "));
    }
    // `--gemm`: the shipped build (linear layers on packed weights, the rest on the `gemm`
    // crate); without it the library default.
    let backend = if gemm {
        "gemm + packed"
    } else {
        "matrixmultiply"
    };
    let command = format!("cargo xtask bench {}", args.join(" "));
    if peers_only {
        return run_peers(&presets, &rounds, None, backend, &command);
    }
    let cargo = super::cargo();
    let mut cargo_args = vec!["bench", "--package", "vit-benches"];
    if gemm {
        cargo_args.extend(["--features", "gemm,packed"]);
    }
    cargo_args.push("--");
    if let Some(f) = &filter {
        cargo_args.push(f);
    }
    let envs: &[(&str, &str)] = if quick {
        &[("VIT_BENCH_QUICK", "1")]
    } else {
        &[]
    };
    let criterion_dir = super::target_dir().join("criterion");
    // Stale results of benches not run this time must not enter the table.
    if criterion_dir.exists() && filter.is_none() {
        std::fs::remove_dir_all(&criterion_dir)
            .with_context(|| format!("cannot clear {}", criterion_dir.display()))?;
    }
    super::run(&cargo, &cargo_args, envs)?;

    let rows = collect(&criterion_dir)?;
    if rows.is_empty() {
        bail!("no criterion results under {}", criterion_dir.display());
    }
    let table = table(&rows);
    println!("\n{table}");
    let out_dir = super::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let json: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "group": r.group, "name": r.name, "median_s": r.median,
                "low_s": r.low, "high_s": r.high, "elements": r.elements, "rate_per_s": r.rate(),
            })
        })
        .collect();
    let summary = out_dir.join("summary.json");
    std::fs::write(&summary, serde_json::to_string_pretty(&json)?)?;
    eprintln!("summary written to {}", summary.display());

    if peers {
        run_peers(&presets, &rounds, Some(&rows), backend, &command)?;
    }
    Ok(())
}

/// The presets `--presets` takes: vision towers (`scripts/bench_peers.py`, image_embeds) and
/// text towers (`scripts/bench_text_peers.py`, text_embeds from strings).
const PRESETS: &[&str] = &["vit_b32", "vit_b16", "vit_l14", "text_b32"];

/// Whether a preset is a text tower's.
fn is_text(preset: &str) -> bool {
    preset.starts_with("text_")
}

/// Builds `example` of vit-benches in release for each build (the `gemm` crate, matrixmultiply,
/// `gemm` + `packed`) and copies each out of
/// the target dir: `NAME=PATH` arguments for the scripts' `--rust-worker`.
fn build_workers(example: &str) -> Result<Vec<String>> {
    let cargo = super::cargo();
    let out_dir = super::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let mut workers = Vec::new();
    for (name, features) in [
        ("clip-vision-gemm", Some("gemm")),
        ("clip-vision-mm", None),
        // The shipped build: the linear layers on packed weights and vit-tensor's
        // micro-kernels, the rest on the `gemm` crate.
        ("clip-vision-packed", Some("gemm,packed")),
    ] {
        let mut args = vec![
            "build",
            "--release",
            "--package",
            "vit-benches",
            "--example",
            example,
        ];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        super::run(&cargo, &args, &[])?;
        let dest = out_dir.join(format!("{example}-{name}"));
        std::fs::copy(
            super::target_dir().join("release/examples").join(example),
            &dest,
        )
        .with_context(|| format!("cannot copy the worker to {}", dest.display()))?;
        workers.push(format!("{name}={}", dest.display()));
    }
    Ok(workers)
}

/// Builds the clip-vision peer workers (one per GEMM backend, vision and/or text as the
/// presets need), runs `scripts/bench_peers.py` or `scripts/bench_text_peers.py` for each
/// preset, and writes `docs/benchmarks.md`: the sections of the presets run (and the
/// criterion table, when given) replace theirs, every other section of the file is kept.
fn run_peers(
    presets: &[String],
    rounds: &str,
    criterion_rows: Option<&[Row]>,
    backend: &str,
    command: &str,
) -> Result<()> {
    let root = super::root();
    let cargo = super::cargo();
    let out_dir = super::target_dir().join("bench");
    let mut vision_workers = Vec::new();
    if presets.iter().any(|p| !is_text(p)) {
        vision_workers = build_workers("peer_worker")?;
        // The shipped build in reduced precision (`--precision`), beside ONNX Runtime's
        // int8 model (`ort-int8`, in the script's default runtimes).
        let shipped = vision_workers
            .iter()
            .find_map(|w| w.strip_prefix("clip-vision-packed="))
            .map(str::to_owned);
        if let Some(path) = shipped {
            for precision in ["int8", "bf16"] {
                vision_workers.push(format!("clip-vision-packed-{precision}={path}@{precision}"));
            }
        }
        // candle is a peer, not a dependency: its worker is a project of its own. A failed
        // build (no registry, say) costs the candle column, not the run.
        let candle_manifest = root.join("scripts/candle_worker/Cargo.toml");
        let candle_manifest = candle_manifest.to_string_lossy().into_owned();
        match super::run(
            &cargo,
            &["build", "--release", "--manifest-path", &candle_manifest],
            &[],
        ) {
            Ok(()) => {
                let bin = root.join("scripts/candle_worker/target/release/candle_worker");
                vision_workers.push(format!("candle={}", bin.display()));
            }
            Err(e) => eprintln!("warning: candle worker not built, no candle column: {e:#}"),
        }
    }
    let text_workers = if presets.iter().any(|p| is_text(p)) {
        build_workers("text_peer_worker")?
    } else {
        Vec::new()
    };
    let py = super::python();
    let rounds: Vec<&str> = rounds.split(',').collect();
    if rounds.len() != 1 && rounds.len() != presets.len() {
        bail!(
            "--rounds {}: give one number or one per preset ({} presets)",
            rounds.join(","),
            presets.len()
        );
    }
    let mut reports = Vec::new();
    for (i, preset) in presets.iter().enumerate() {
        let rounds = rounds[if rounds.len() == 1 { 0 } else { i }];
        let json = out_dir.join(format!("peers-{preset}.json"));
        let work = out_dir.join(format!("peers-{preset}"));
        let (json_s, work_s) = (
            json.to_string_lossy().into_owned(),
            work.to_string_lossy().into_owned(),
        );
        let (script, batches, workers) = if is_text(preset) {
            ("scripts/bench_text_peers.py", ["1", "256"], &text_workers)
        } else {
            ("scripts/bench_peers.py", ["1", "32"], &vision_workers)
        };
        let mut args = vec![
            script,
            "--preset",
            preset,
            "--threads",
            "2",
            "--batch-sizes",
            batches[0],
            batches[1],
            "--rounds",
            rounds,
            "--workdir",
            &work_s,
            "--json",
            &json_s,
        ];
        if is_text(preset) {
            // Batch 256 calls take seconds: fewer of them (still ≥ 5 s timed); batch 1 times
            // each of the 256 texts at least once whatever --iters says.
            args.extend(["--warmup", "2", "--iters", "5"]);
        } else if preset != "vit_b32" {
            // Calls of seconds to tens of seconds: fewer of them (still ≥ 5 s timed).
            args.extend(["--warmup", "1", "--iters", "3"]);
        }
        for w in workers {
            args.extend(["--rust-worker", w.as_str()]);
        }
        super::run(&py, &args, &[])?;
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("cannot read {}", json.display()))?;
        reports.push((preset.clone(), serde_json::from_str::<Value>(&text)?));
    }
    let new = benchmarks_md(&reports, criterion_rows, backend, command);
    let path = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, merge_sections(&old, &new))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// A markdown file cut at its `## ` headings: (the text before the first, [(key, section)]),
/// where a section runs from its heading to the next and its key is the heading up to the
/// first comma (`## vit_b32, f32, image_embeds` → `## vit_b32`).
fn sections(md: &str) -> (String, Vec<(String, String)>) {
    let mut preamble = String::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in md.split_inclusive('\n') {
        if line.starts_with("## ") {
            let key = line.trim_end().split(',').next().unwrap_or(line).to_owned();
            out.push((key, String::new()));
        }
        match out.last_mut() {
            Some((_, body)) => body.push_str(line),
            None => preamble.push_str(line),
        }
    }
    (preamble, out)
}

/// `old` with the preamble and every section that `new` holds replaced by `new`'s, in
/// `old`'s order; sections only `new` holds go before the criterion table (or at the end).
fn merge_sections(old: &str, new: &str) -> String {
    let (_, old_sections) = sections(old);
    let (preamble, mut new_sections) = sections(new);
    let mut merged: Vec<(String, String)> = Vec::new();
    for (key, body) in old_sections {
        match new_sections.iter().position(|(k, _)| *k == key) {
            Some(i) => merged.push(new_sections.remove(i)),
            None => merged.push((key, body)),
        }
    }
    let at = merged
        .iter()
        .position(|(k, _)| k.starts_with("## Kernels"))
        .unwrap_or(merged.len());
    for (j, s) in new_sections.into_iter().enumerate() {
        merged.insert(at + j, s);
    }
    let mut out = preamble;
    for (_, body) in merged {
        if !out.ends_with("\n\n") && !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&body);
    }
    out
}

/// The text of `docs/benchmarks.md` from the peers' JSON reports and criterion's results:
/// the preamble, one section per preset, the criterion table when there is one.
fn benchmarks_md(
    reports: &[(String, Value)],
    criterion_rows: Option<&[Row]>,
    backend: &str,
    command: &str,
) -> String {
    let mut md = String::new();
    let meta = reports.first().map(|(_, r)| &r["meta"]);
    let v = |k: &str| {
        meta.and_then(|m| m["versions"][k].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Made by `cargo xtask bench --peers` (criterion benches, then `scripts/bench_peers.py` timing \
         transformers and ONNX Runtime on the same random-weight checkpoint and inputs, with the same \
         thread count, interleaved round by round with clip-vision in three builds and, when its worker \
         builds, candle (`scripts/candle_worker`, stock candle-transformers CLIP); `scripts/bench_text_peers.py` \
         does the same for the text tower, from strings). A section is rewritten only by a run of its preset \
         (`--presets`; `--peers-only` skips criterion and keeps its table).\n"
    );
    let _ = writeln!(
        md,
        "- machine: {} ({} cores), Linux\n- threads: 2 for every runtime\n- versions: {rustc}; torch {}, \
         transformers {}, onnxruntime {}, Python {}\n- clip-vision workers: `clip-vision-packed` (features \
         `gemm` and `packed`, what the `clip-vision` command and the Python package are built with: the \
         linear layers on vit-tensor's own micro-kernels), `clip-vision-gemm` (feature `gemm` alone), \
         `clip-vision-mm` (the library default, matrixmultiply)\n",
        meta.and_then(|m| m["cpu"].as_str()).unwrap_or("?"),
        meta.and_then(|m| m["nproc"].as_u64()).unwrap_or(0),
        v("torch"),
        v("transformers"),
        v("onnxruntime"),
        v("python"),
    );
    let _ = writeln!(
        md,
        "Timings on this machine are noisy (±10–20 % from one minute to the next, from outside the VM): \
         compare runtimes by the ratios measured in one run. Each figure is the median over rounds of \
         per-round medians; min–max are over every timed call. What the numbers mean, target by \
         target, with per-round ratios: [performance.md](performance.md).\n"
    );
    for (preset, report) in reports {
        if is_text(preset) {
            text_section(&mut md, preset, report, command);
        } else {
            vision_section(&mut md, preset, report);
        }
    }
    if let Some(rows) = criterion_rows {
        let _ = writeln!(
            md,
            "## Kernels, layers and encoder (criterion, GEMM backend {backend})\n"
        );
        let _ = writeln!(md, "{}", table(rows));
        let _ = writeln!(
            md,
            "Commands: `cargo xtask bench --peers --gemm --presets vit_b32,vit_b16,vit_l14 --rounds 3,1,1` (this file); \
             the Python side needs `scripts/requirements.txt` plus onnx, onnxruntime and onnxscript."
        );
    }
    md
}

/// The median seconds per call of `runtime` at `batch` in a report.
fn median_of(results: &[Value], runtime: &str, batch: u64) -> Option<f64> {
    results
        .iter()
        .find(|r| r["runtime"] == runtime && r["batch"] == batch)
        .and_then(|r| r["median_s"].as_f64())
}

/// A report's results by batch, then runtime.
fn sorted_results(report: &Value) -> Vec<Value> {
    let mut sorted = report["results"].as_array().cloned().unwrap_or_default();
    sorted.sort_by_key(|r| {
        (
            r["batch"].as_u64(),
            r["runtime"].as_str().map(str::to_owned),
        )
    });
    sorted
}

/// The vector extensions a report's `meta.cpu_flags` lists (the peers scripts read them
/// from `/proc/cpuinfo`).
fn cpu_flags(meta: &Value) -> Vec<&str> {
    meta["cpu_flags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn vision_section(md: &mut String, preset: &str, report: &Value) {
    let _ = writeln!(md, "## {preset}, f32, image_embeds\n");
    let meta = &report["meta"];
    let flags = cpu_flags(meta);
    let _ = writeln!(
        md,
        "Measured on {} ({} cores); vector extensions: {}.\n",
        meta["cpu"].as_str().unwrap_or("?"),
        meta["nproc"].as_u64().unwrap_or(0),
        if flags.is_empty() {
            "not reported".to_owned()
        } else {
            flags.join(", ")
        },
    );
    let _ = writeln!(md, "| runtime | batch | median s/batch (min–max) | images/s | ms/image | peak RSS | × ORT | × torch | × candle |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let results = report["results"].as_array().cloned().unwrap_or_default();
    for r in &sorted_results(report) {
        let (rt, b) = (
            r["runtime"].as_str().unwrap_or("?"),
            r["batch"].as_u64().unwrap_or(0),
        );
        let m = r["median_s"].as_f64().unwrap_or(f64::NAN);
        let ratio = |peer: &str| {
            median_of(&results, peer, b)
                .filter(|_| rt.starts_with("clip-vision"))
                .map_or(String::new(), |p| format!("{:.2}", p / m))
        };
        let _ = writeln!(
            md,
            "| {rt} | {b} | {m:.4} ({:.4}–{:.4}) | {:.2} | {:.1} | {:.0} MiB | {} | {} | {} |",
            r["min_s"].as_f64().unwrap_or(f64::NAN),
            r["max_s"].as_f64().unwrap_or(f64::NAN),
            r["images_per_s"].as_f64().unwrap_or(f64::NAN),
            r["ms_per_image"].as_f64().unwrap_or(f64::NAN),
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            ratio("ort"),
            ratio("torch"),
            ratio("candle"),
        );
    }
    let _ = writeln!(md);
    for c in report["vs_torch"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "- {} vs torch, batch {}: max abs diff {:.2e} (relative {:.2e})",
            c["runtime"].as_str().unwrap_or("?"),
            c["batch"],
            c["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            c["max_rel_diff"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let _ = writeln!(md);
}

fn text_section(md: &mut String, preset: &str, report: &Value, command: &str) {
    let meta = &report["meta"];
    let texts = &meta["texts"];
    let flags = cpu_flags(meta);
    let _ = writeln!(
        md,
        "## Text tower: {preset}, f32, text_embeds from strings\n"
    );
    let _ = writeln!(
        md,
        "The text tower of OpenAI ViT-B/32 (random weights, CLIP's real tokenizer). Each call goes from \
         strings to text_embeds: tokenizing (transformers' fast `CLIPTokenizer`, padding to the longest \
         of the batch, for torch and ORT; clip-text's own `ClipTokenizer` for clip-vision) and the tower. \
         Batch 1 cycles through {} seeded captions of {}–{} words (mean {:.1}), one per call, each timed at \
         least once; batch 256 embeds them all in one padded batch. \"tokenizer alone\" is the same calls \
         with the tokenizer only.\n",
        texts["n"].as_u64().unwrap_or(0),
        texts["words_min"].as_u64().unwrap_or(0),
        texts["words_max"].as_u64().unwrap_or(0),
        texts["words_mean"].as_f64().unwrap_or(f64::NAN),
    );
    let _ = writeln!(
        md,
        "- machine: {} ({} cores); vector extensions: {}\n- {} rounds, 2 threads; torch {}, transformers {}, \
         onnxruntime {}\n- made by `{command}`\n",
        meta["cpu"].as_str().unwrap_or("?"),
        meta["nproc"].as_u64().unwrap_or(0),
        if flags.is_empty() {
            "?".to_owned()
        } else {
            flags.join(" ")
        },
        meta["rounds"].as_u64().unwrap_or(0),
        meta["versions"]["torch"].as_str().unwrap_or("?"),
        meta["versions"]["transformers"].as_str().unwrap_or("?"),
        meta["versions"]["onnxruntime"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(md, "| runtime | batch | median s/call (min–max) | texts/s | ms/text | tokenizer alone ms/call (share) | peak RSS | × ORT | × torch |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let results = report["results"].as_array().cloned().unwrap_or_default();
    for r in &sorted_results(report) {
        let (rt, b) = (
            r["runtime"].as_str().unwrap_or("?"),
            r["batch"].as_u64().unwrap_or(0),
        );
        let m = r["median_s"].as_f64().unwrap_or(f64::NAN);
        let tok = r["tokenize_median_s"].as_f64().unwrap_or(f64::NAN);
        let ratio = |peer: &str| {
            median_of(&results, peer, b)
                .filter(|_| rt.starts_with("clip-vision"))
                .map_or(String::new(), |p| format!("{:.2}", p / m))
        };
        let _ = writeln!(
            md,
            "| {rt} | {b} | {m:.4} ({:.4}–{:.4}) | {:.1} | {:.2} | {:.3} ({:.1} %) | {:.0} MiB | {} | {} |",
            r["min_s"].as_f64().unwrap_or(f64::NAN),
            r["max_s"].as_f64().unwrap_or(f64::NAN),
            r["texts_per_s"].as_f64().unwrap_or(f64::NAN),
            r["ms_per_text"].as_f64().unwrap_or(f64::NAN),
            tok * 1e3,
            100.0 * tok / m,
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            ratio("ort"),
            ratio("torch"),
        );
    }
    let _ = writeln!(md);
    let reference = report["meta"]["batch_reference"].as_u64().unwrap_or(1);
    for c in report["vs_torch"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "- {} text_embeds (batch {}) vs torch's (batch {reference}), all {} texts: max abs diff {:.2e} \
             ({:.2e} of max |torch|)",
            c["runtime"].as_str().unwrap_or("?"),
            c["batch"],
            c["shape"][0],
            c["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            c["max_rel_diff"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let _ = writeln!(md);
}

/// Reads every `<group>/<bench>/new/{estimates,benchmark}.json` criterion wrote.
fn collect(dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if !dir.exists() {
        return Ok(rows);
    }
    for group in std::fs::read_dir(dir)? {
        let group = group?.path();
        if !group.is_dir() || group.file_name().is_some_and(|n| n == "report") {
            continue;
        }
        for bench in std::fs::read_dir(&group)? {
            let new = bench?.path().join("new");
            let (Ok(est), Ok(meta)) = (
                std::fs::read_to_string(new.join("estimates.json")),
                std::fs::read_to_string(new.join("benchmark.json")),
            ) else {
                continue;
            };
            let est: Value = serde_json::from_str(&est)?;
            let meta: Value = serde_json::from_str(&meta)?;
            let ns = |path: &[&str]| {
                path.iter()
                    .try_fold(&est, |v, k| v.get(k))
                    .and_then(Value::as_f64)
                    .map(|x| x * 1e-9)
            };
            let median =
                ns(&["median", "point_estimate"]).context("estimates.json without a median")?;
            rows.push(Row {
                group: meta["group_id"].as_str().unwrap_or_default().to_owned(),
                name: meta["value_str"]
                    .as_str()
                    .or(meta["function_id"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                median,
                low: ns(&["median", "confidence_interval", "lower_bound"]).unwrap_or(median),
                high: ns(&["median", "confidence_interval", "upper_bound"]).unwrap_or(median),
                elements: meta["throughput"]["Elements"].as_f64(),
            });
        }
    }
    rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Ok(rows)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| group | benchmark | median | 95% CI of median | throughput |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} – {} | {} |",
            r.group,
            r.name,
            fmt_time(r.median),
            fmt_time(r.low),
            fmt_time(r.high),
            r.rate_text()
        );
    }
    out
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::merge_sections;

    #[test]
    fn a_run_replaces_its_sections_and_keeps_the_others() {
        let old = "# B\n\nold intro\n\n## vit_b32, f32, image_embeds\n\nvision 1\n\n\
                   ## Kernels, layers and encoder (criterion, GEMM backend gemm)\n\nkernels 1\n";
        let new = "# B\n\nnew intro\n\n## Text tower: text_b32, f32, text_embeds from strings\n\ntext 2\n";
        assert_eq!(
            merge_sections(old, new),
            "# B\n\nnew intro\n\n## vit_b32, f32, image_embeds\n\nvision 1\n\n\
             ## Text tower: text_b32, f32, text_embeds from strings\n\ntext 2\n\n\
             ## Kernels, layers and encoder (criterion, GEMM backend gemm)\n\nkernels 1\n"
        );
        // A second text run replaces the text section in place; a new criterion table (of
        // another backend) replaces the old one.
        let newer = "# B\n\nintro 3\n\n## Text tower: text_b32, f32, text_embeds from strings\n\ntext 3\n\n\
                     ## Kernels, layers and encoder (criterion, GEMM backend matrixmultiply)\n\nkernels 3\n";
        let merged = merge_sections(&merge_sections(old, new), newer);
        assert_eq!(
            merged,
            "# B\n\nintro 3\n\n## vit_b32, f32, image_embeds\n\nvision 1\n\n\
             ## Text tower: text_b32, f32, text_embeds from strings\n\ntext 3\n\n\
             ## Kernels, layers and encoder (criterion, GEMM backend matrixmultiply)\n\nkernels 3\n"
        );
        // No old file: the new text as it is.
        assert_eq!(merge_sections("", newer), newer);
    }
}
