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
    /// Work per iteration in criterion "elements" (FLOP for kernels, images for the encoder).
    elements: Option<f64>,
}

impl Row {
    fn rate(&self) -> Option<f64> {
        self.elements.map(|e| e / self.median)
    }

    fn rate_text(&self) -> String {
        match (self.group.as_str(), self.rate()) {
            ("encoder", Some(r)) => format!("{r:.2} images/s"),
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
    let mut filter: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--peers" => peers = true,
            "--gemm" => gemm = true,
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
    let criterion_dir = super::root().join("target/criterion");
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
    let out_dir = super::root().join("target/bench");
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
        let py = super::python();
        let peers_json = out_dir.join("peers.json");
        let peers_json = peers_json.to_string_lossy();
        super::run(&py, &["scripts/bench_peers.py", "--json", &peers_json], &[])?;
    }
    Ok(())
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
