//! `cargo xtask py-test`: the Python package `clip_vision` built from source in a fresh
//! virtualenv and its pytest suite run, as a user's `pip install crates/clip-vision-py`.

use crate::{cargo, root, run, target_dir};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// The package, relative to the workspace root.
const PACKAGE: &str = "crates/clip-vision-py";

/// Creates `<target>/py-venv` afresh, installs the pinned `requirements-test.txt`, builds
/// and installs the package (with the pinned maturin, into the same target directory as
/// cargo, so the crates already built are reused), and runs its tests with
/// `CLIP_VISION_BIN` set to the `clip-vision` binary ([`cli_binary`]), which the Ray test
/// compares its files with.
///
/// The interpreter is `$PYTHON`, else `python3`.
pub fn run_tests() -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let target = target_dir();
    let venv = target.join("py-venv");
    let venv_str = venv.to_string_lossy().into_owned();
    eprintln!("$ {python} -m venv --clear {venv_str}");
    let made = Command::new(&python)
        .args(["-m", "venv", "--clear", &venv_str])
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {python} (set $PYTHON to a Python ≥ 3.9)"))?;
    if !made.success() || !venv.join("bin/pip").exists() {
        bail!(
            "`{python} -m venv` could not make a virtualenv with pip in {venv_str} ({made}); \
             on Debian or Ubuntu install the venv module: apt-get install python3-venv"
        );
    }
    let bin = |name: &str| venv.join("bin").join(name).to_string_lossy().into_owned();
    let requirements = format!("{PACKAGE}/requirements-test.txt");
    run(
        &bin("pip"),
        &[
            "install",
            "--disable-pip-version-check",
            "-r",
            &requirements,
        ],
        &[],
    )?;
    let target_str = absolute(&target).to_string_lossy().into_owned();
    // The build backend runs `maturin` from PATH: the venv's, as an activated venv has it.
    let path = std::env::join_paths(std::iter::once(venv.join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .context("PATH")?;
    let path = path.to_string_lossy().into_owned();
    run(
        &bin("pip"),
        &[
            "install",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--no-deps",
            PACKAGE,
        ],
        &[
            ("CARGO_TARGET_DIR", &target_str),
            ("PATH", &path),
            // The dev profile, not maturin's default release: its dependencies are the ones
            // `cargo test --workspace` already built (the test profile shares them), so CI
            // compiles only this crate's own chain again (minutes, not a second release
            // build of the tree). A user's `pip install` builds release.
            ("MATURIN_PEP517_ARGS", "--profile dev"),
        ],
    )?;
    let cli = cli_binary(&target)?;
    let cli = absolute(&cli).to_string_lossy().into_owned();
    run(
        &bin("python"),
        &["-m", "pytest", "-q", &format!("{PACKAGE}/tests")],
        &[("CLIP_VISION_BIN", &cli)],
    )
}

/// `$CLIP_VISION_BIN` if set, else the newer of `<target>/{debug,release}/clip-vision`,
/// built (`cargo build -p clip-vision-cli`, debug) only when neither exists: CI's
/// `cargo test --workspace` has just built the debug one. A binary older than the sources
/// is used as it is (run `cargo build -p clip-vision-cli` to refresh it).
fn cli_binary(target: &Path) -> Result<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os("CLIP_VISION_BIN").filter(|v| !v.is_empty()) {
        return Ok(bin.into());
    }
    let name = format!("clip-vision{}", std::env::consts::EXE_SUFFIX);
    let built = ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join(&name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max();
    if let Some((_, bin)) = built {
        return Ok(bin);
    }
    run(&cargo(), &["build", "-p", "clip-vision-cli"], &[])?;
    let bin = target.join("debug").join(&name);
    if !bin.is_file() {
        bail!("`cargo build -p clip-vision-cli` made no {}", bin.display());
    }
    Ok(bin)
}

/// `dir` made absolute against the workspace root (pip builds from a copy elsewhere).
fn absolute(dir: &Path) -> std::path::PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        root().join(dir)
    }
}
