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
    let mut gemm = false;
    let mut presets = vec!["vit_b32".to_string()];
    let mut rounds = "3".to_string();
    let mut filter: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--peers" => peers = true,
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
    let cargo = super::cargo();
    let mut cargo_args = vec!["bench", "--package", "vit-benches"];
    if gemm {
        cargo_args.extend(["--features", "gemm"]);
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
        let backend = if gemm { "gemm" } else { "matrixmultiply" };
        run_peers(&presets, &rounds, &rows, backend)?;
    }
    Ok(())
}

/// Builds the clip-vision peer workers (one per GEMM backend), runs
/// `scripts/bench_peers.py` for each preset, and writes `docs/benchmarks.md`.
fn run_peers(
    presets: &[String],
    rounds: &str,
    criterion_rows: &[Row],
    backend: &str,
) -> Result<()> {
    let root = super::root();
    let cargo = super::cargo();
    let out_dir = super::target_dir().join("bench");
    let mut workers = Vec::new();
    for (name, features) in [("clip-vision-gemm", Some("gemm")), ("clip-vision-mm", None)] {
        let mut args = vec![
            "build",
            "--release",
            "--package",
            "vit-benches",
            "--example",
            "peer_worker",
        ];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        super::run(&cargo, &args, &[])?;
        let dest = out_dir.join(format!("peer_worker-{name}"));
        std::fs::copy(
            super::target_dir().join("release/examples/peer_worker"),
            &dest,
        )
        .with_context(|| format!("cannot copy the worker to {}", dest.display()))?;
        workers.push(format!("{name}={}", dest.display()));
    }
    // candle is a peer, not a dependency: its worker is a project of its own. A failed build
    // (no registry, say) costs the candle column, not the run.
    let candle_manifest = root.join("scripts/candle_worker/Cargo.toml");
    let candle_manifest = candle_manifest.to_string_lossy().into_owned();
    match super::run(
        &cargo,
        &["build", "--release", "--manifest-path", &candle_manifest],
        &[],
    ) {
        Ok(()) => {
            let bin = root.join("scripts/candle_worker/target/release/candle_worker");
            workers.push(format!("candle={}", bin.display()));
        }
        Err(e) => eprintln!("warning: candle worker not built, no candle column: {e:#}"),
    }
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
        let mut args = vec![
            "scripts/bench_peers.py",
            "--preset",
            preset,
            "--threads",
            "2",
            "--batch-sizes",
            "1",
            "32",
            "--rounds",
            rounds,
            "--workdir",
            &work_s,
            "--json",
            &json_s,
        ];
        if preset != "vit_b32" {
            // Calls of seconds to tens of seconds: fewer of them (still ≥ 5 s timed).
            args.extend(["--warmup", "1", "--iters", "3"]);
        }
        for w in &workers {
            args.extend(["--rust-worker", w.as_str()]);
        }
        super::run(&py, &args, &[])?;
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("cannot read {}", json.display()))?;
        reports.push((preset.clone(), serde_json::from_str::<Value>(&text)?));
    }
    let doc = benchmarks_md(&reports, criterion_rows, backend);
    let path = root.join("docs/benchmarks.md");
    std::fs::write(&path, doc)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The text of `docs/benchmarks.md` from the peers' JSON reports and criterion's results.
fn benchmarks_md(reports: &[(String, Value)], criterion_rows: &[Row], backend: &str) -> String {
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
         thread count, interleaved round by round with clip-vision on both GEMM backends and, when its worker \
         builds, candle (`scripts/candle_worker`, stock candle-transformers CLIP)).\n"
    );
    let _ = writeln!(
        md,
        "- machine: {} ({} cores), Linux\n- threads: 2 for every runtime\n- versions: {rustc}; torch {}, \
         transformers {}, onnxruntime {}, Python {}\n- clip-vision workers: `clip-vision-gemm` (cargo feature \
         `gemm`, what the `clip-vision` command is built with), `clip-vision-mm` (the library default, \
         matrixmultiply)\n",
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
        let _ = writeln!(md, "## {preset}, f32, image_embeds\n");
        let _ = writeln!(md, "| runtime | batch | median s/batch (min–max) | images/s | ms/image | peak RSS | × ORT | × torch | × candle |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        let results = report["results"].as_array().cloned().unwrap_or_default();
        let median = |rt: &str, b: u64| {
            results
                .iter()
                .find(|r| r["runtime"] == rt && r["batch"] == b)
                .and_then(|r| r["median_s"].as_f64())
        };
        let mut sorted = results.clone();
        sorted.sort_by_key(|r| {
            (
                r["batch"].as_u64(),
                r["runtime"].as_str().map(str::to_owned),
            )
        });
        for r in &sorted {
            let (rt, b) = (
                r["runtime"].as_str().unwrap_or("?"),
                r["batch"].as_u64().unwrap_or(0),
            );
            let m = r["median_s"].as_f64().unwrap_or(f64::NAN);
            let ratio = |peer: &str| {
                median(peer, b)
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
    let _ = writeln!(
        md,
        "## Kernels, layers and encoder (criterion, GEMM backend {backend})\n"
    );
    let _ = writeln!(md, "{}", table(criterion_rows));
    let _ = writeln!(
        md,
        "Commands: `cargo xtask bench --peers --gemm --presets vit_b32,vit_b16,vit_l14 --rounds 3,1,1` (this file); \
         the Python side needs `scripts/requirements.txt` plus onnx, onnxruntime and onnxscript."
    );
    md
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
