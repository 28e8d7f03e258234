//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! ```text
//! cargo xtask ci                 what .ci/run does: fmt check, clippy, tests, benches in test mode
//! cargo xtask bench [--quick] [--gemm] [--peers | --peers-only] [--filter F]
//!                                criterion benches + summary table (target/bench/summary.json)
//! cargo xtask fixtures           rerun the Python scripts that make the reference fixtures
//! cargo xtask py-test            build the Python package in a fresh virtualenv, run pytest
//! cargo xtask compat-test        the CLI's clip-retrieval layout read by embedding-reader and
//!                                autofaiss in their own pinned virtualenv (tests/compat)
//! ```
//!
//! Conventions are enforced by the `tidy` tests in this crate, which run under `cargo test`.

mod bench;
mod compat;
mod py;
mod tidy;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const HELP: &str = "\
cargo xtask <command>

commands:
  ci                     cargo fmt --check, clippy -D warnings, cargo test --workspace,
                         the ignored tests CI can run, the benches in test mode
                         (what .ci/run does)
  bench [--quick] [--gemm] [--filter F] [--peers|--peers-only [--presets P,..] [--rounds N]]
                         run the criterion benches in benches/ and print a summary table
                         (--quick: ViT-B/32 only, short; --gemm: the shipped build, gemm + packed;
                         --peers: then time transformers and ONNX Runtime beside clip-vision
                         in three builds with scripts/bench_peers.py (vision presets
                         vit_b32, vit_b16, vit_l14) and scripts/bench_text_peers.py (text
                         preset text_b32), default vit_b32,text_b32, and update the sections
                         of those presets in docs/benchmarks.md; --peers-only: the peers
                         without criterion, keeping the file's criterion table)
  fixtures [ARGS]        rerun scripts/make_fixtures.py (given ARGS), make_image_fixtures.py
                         and make_text_fixtures.py
                         (python: $PYTHON, else .venv/bin/python, else python3)
  py-test                make a fresh virtualenv in <target>/py-venv ($PYTHON, else
                         python3), install crates/clip-vision-py/requirements-test.txt,
                         pip install crates/clip-vision-py (built from source) and run its
                         pytest suite
  compat-test            make (or reuse, if made from the same interpreter and requirements)
                         a virtualenv in <target>/compat-venv ($PYTHON, else python3) with
                         tests/compat/requirements.txt and run pytest on tests/compat with
                         CLIP_VISION_BIN (default <target>/debug/clip-vision, built if absent):
                         the CLI's clip-retrieval layout read by embedding-reader and autofaiss
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("fixtures") => fixtures(&args[1..]),
        Some("py-test") => py::run_tests(),
        Some("compat-test") => compat::run_tests(),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `target/` in the root.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Runs a command in the workspace root, echoing it, failing on a non-zero exit.
pub fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The steps of CI, in order, as `cargo` arguments: the same commands as `.ci/run`, one a
/// line there (a tidy test holds the two to each other).
pub const CI_STEPS: &[&str] = &[
    "fmt --all -- --check",
    "clippy --workspace --all-targets -- -D warnings",
    "test --workspace",
    // `--workspace` unifies the CLI's `gemm` and `packed` features into every crate: test the
    // library crates once more on their default backend, matrixmultiply.
    "test -p vit-tensor -p vit-layers -p vit-encoder -p clip-vision",
    // And `gemm` alone (linear layers on `Wᵀ` and the `gemm` crate), a library user's choice.
    "test -p vit-tensor -p clip-vision --features clip-vision/gemm",
    // Ignored tests that a CI machine can run: the CLI's full-disk check (mounts a tiny tmpfs).
    "test --workspace --tests -- --ignored full_disk",
    // Docs build without a broken link (the workspace's rustdoc lints deny them).
    "doc --workspace --no-deps",
    // The Python package built from source in a fresh virtualenv, and its pytest suite.
    "xtask py-test",
    // The CLI's clip-retrieval layout read by embedding-reader and autofaiss (their pinned venv).
    "xtask compat-test",
    // The criterion benches in test mode (each case run once; reuses the test build).
    "test --workspace --benches",
];

fn ci() -> Result<()> {
    let cargo = cargo();
    for step in CI_STEPS {
        let args: Vec<&str> = step.split_whitespace().collect();
        match args.as_slice() {
            // In this process: `cargo xtask` is an alias that a bare `cargo` may not know.
            ["xtask", "bench", rest @ ..] => {
                let rest: Vec<String> = rest.iter().map(|a| (*a).to_owned()).collect();
                bench::run(&rest)?;
            }
            ["xtask", "py-test"] => py::run_tests()?,
            ["xtask", "compat-test"] => compat::run_tests()?,
            _ => run(&cargo, &args, &[])?,
        }
    }
    Ok(())
}

/// The Python interpreter for the fixture scripts.
pub fn python() -> String {
    if let Ok(p) = std::env::var("PYTHON") {
        return p;
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".into()
}

fn fixtures(args: &[String]) -> Result<()> {
    let py = python();
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    // make_text_fixtures.py checks the demo's tokenizer files, which make_fixtures.py writes.
    for script in [
        "scripts/make_fixtures.py",
        "scripts/make_image_fixtures.py",
        "scripts/make_text_fixtures.py",
    ] {
        if root().join(script).exists() {
            let mut a = vec![script];
            if script == "scripts/make_fixtures.py" {
                a.extend(&extra);
            }
            run(&py, &a, &[])?;
        }
    }
    Ok(())
}
