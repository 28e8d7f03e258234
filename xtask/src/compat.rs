//! `cargo xtask compat-test`: the CLI's clip-retrieval output layout read by its users' tools
//! (embedding-reader, autofaiss) in a virtualenv of their own pinned dependencies, with the
//! pytest suite of `tests/compat`.

use crate::{cargo, root, run, target_dir};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The suite and its pinned requirements, relative to the workspace root.
const SUITE: &str = "tests/compat";
const REQUIREMENTS: &str = "tests/compat/requirements.txt";
/// Written into the virtualenv once the requirements are installed: the interpreter and the
/// requirements it was made from, so a later run with the same two reuses it.
const STAMP: &str = "compat-requirements.stamp";

/// Makes (or reuses) `<target>/compat-venv` with the pinned requirements, finds the
/// `clip-vision` binary (`$CLIP_VISION_BIN`, else `<target>/debug/clip-vision`, built with
/// `cargo build -p clip-vision-cli` when absent) and runs the suite with `CLIP_VISION_BIN`
/// set to it.
///
/// The interpreter is `$PYTHON`, else `python3`.
pub fn run_tests() -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let venv = target_dir().join("compat-venv");
    let requirements = std::fs::read_to_string(root().join(REQUIREMENTS))
        .with_context(|| format!("cannot read {REQUIREMENTS}"))?;
    let stamp = format!("{python}\n{requirements}");
    let bin = |name: &str| venv.join("bin").join(name).to_string_lossy().into_owned();
    if std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == stamp)
        && venv.join("bin/python").exists()
    {
        eprintln!(
            "reusing {} (same interpreter and {REQUIREMENTS})",
            venv.display()
        );
    } else {
        make_venv(&python, &venv)?;
        run(
            &bin("pip"),
            &["install", "--disable-pip-version-check", "-r", REQUIREMENTS],
            &[],
        )?;
        std::fs::write(venv.join(STAMP), &stamp)
            .with_context(|| format!("cannot write {}", venv.join(STAMP).display()))?;
    }
    let binary = clip_vision_binary()?;
    let binary = binary.to_string_lossy().into_owned();
    run(
        &bin("python"),
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", SUITE],
        &[("CLIP_VISION_BIN", &binary)],
    )
}

/// `python -m venv --clear venv`, failing with a hint when the result has no pip.
fn make_venv(python: &str, venv: &Path) -> Result<()> {
    let venv_str = venv.to_string_lossy().into_owned();
    eprintln!("$ {python} -m venv --clear {venv_str}");
    let made = Command::new(python)
        .args(["-m", "venv", "--clear", &venv_str])
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {python} (set $PYTHON to a Python 3.11)"))?;
    if !made.success() || !venv.join("bin/pip").exists() {
        bail!(
            "`{python} -m venv` could not make a virtualenv with pip in {venv_str} ({made}); \
             on Debian or Ubuntu install the venv module: apt-get install python3-venv"
        );
    }
    Ok(())
}

/// `$CLIP_VISION_BIN` (which must exist), else `<target>/debug/clip-vision`, built when absent
/// (after `cargo test --workspace` it is there, built with the workspace's features).
fn clip_vision_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CLIP_VISION_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("CLIP_VISION_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let bin = target_dir()
        .join("debug")
        .join(format!("clip-vision{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        run(&cargo(), &["build", "-p", "clip-vision-cli"], &[])?;
    }
    if !bin.is_file() {
        bail!("`cargo build -p clip-vision-cli` made no {}", bin.display());
    }
    Ok(bin)
}
