//! Conventions of the workspace, checked under `cargo test` so CI needs nothing extra.
//!
//! - `unsafe` code exists only in `crates/vit-tensor/src/gemm.rs`; every other crate root
//!   forbids it.
//! - Dependencies point one way: vit-tensor ← vit-layers ← vit-encoder ← clip-vision ← CLI.
//! - The layer crates pull in no serde, image codec or CLI crate, even transitively.
//! - Every Rust source file opens with a `//!` doc comment.
//! - No test is marked ignore: slow checks live in benches or behind an environment variable.

#![cfg(test)]

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates in dependency order: each may depend only on those before it.
const LAYERS: [&str; 5] = [
    "vit-tensor",
    "vit-layers",
    "vit-encoder",
    "clip-vision",
    "clip-vision-cli",
];

/// The only file allowed to hold `unsafe` code.
const UNSAFE_HOME: &str = "crates/vit-tensor/src/gemm.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target"
                && name != "fuzz_target_corpus"
                && !name.to_string_lossy().starts_with('.')
            {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_sources() -> Vec<(String, String)> {
    let root = crate::root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, text)
        })
        .collect()
}

/// Code of a line with `//` comments and string literals blanked (good enough for a keyword
/// scan: no raw strings hold the keyword in this workspace).
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            break;
        }
        out.push(c);
    }
    out
}

#[test]
fn unsafe_code_lives_only_in_the_sgemm_wrapper() {
    let keyword = ["un", "safe"].concat();
    let mut offenders = Vec::new();
    for (path, text) in workspace_sources() {
        if path == UNSAFE_HOME {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            let hit = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == keyword);
            if hit {
                offenders.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe outside {UNSAFE_HOME}:\n{}",
        offenders.join("\n")
    );
    let home = std::fs::read_to_string(crate::root().join(UNSAFE_HOME)).unwrap_or_default();
    let blocks = home
        .lines()
        .filter(|l| code_of(l).contains(&format!("{keyword} {{")))
        .count();
    let safety = home
        .lines()
        .filter(|l| l.trim_start().starts_with("// SAFETY:"))
        .count();
    // One call per GEMM backend (matrixmultiply, or the `gemm` crate behind its feature).
    assert!(
        (1..=2).contains(&blocks),
        "{UNSAFE_HOME} should hold one {keyword} block per backend, found {blocks}"
    );
    assert!(
        safety >= 5 * blocks,
        "each {keyword} block needs a // SAFETY: line per obligation"
    );
}

#[test]
fn crate_roots_forbid_unsafe_code() {
    for (path, text) in workspace_sources() {
        let is_root = path.ends_with("src/lib.rs") || path.ends_with("src/main.rs");
        if is_root && !path.starts_with("crates/vit-tensor/") && !path.starts_with("xtask/") {
            assert!(
                text.contains("#![forbid(unsafe_code)]"),
                "{path} lacks #![forbid(unsafe_code)]"
            );
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(missing.is_empty(), "files without a //! doc: {missing:?}");
}

#[test]
fn no_test_is_ignored() {
    let needle = ["#[", "ignore"].concat();
    for (path, text) in workspace_sources() {
        assert!(!text.contains(&needle), "{path} ignores a test");
    }
}

/// `cargo metadata` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(crate::root())
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("cargo metadata JSON: {e}"))
}

#[test]
fn dependencies_point_one_way() {
    let meta = metadata();
    let rank: HashMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some(&r) = rank.get(name) else { continue };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(&d) = rank.get(dep_name) {
                assert!(d < r, "{name} depends on {dep_name}, which sits above it");
            }
        }
    }
}

/// Names of every package `name` pulls in through normal (non-dev, non-build) dependencies,
/// with its default features, as the lockfile resolves them.
fn normal_closure(meta: &Value, name: &str) -> HashSet<String> {
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let start = packages
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id);
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = start.into_iter().collect();
    while let Some(id) = stack.pop() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            if normal && seen.insert(packages.get(dep_id).copied().unwrap_or(dep_id).to_owned()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn layer_crates_pull_in_no_serde_codec_or_cli() {
    let meta = metadata();
    for krate in ["vit-tensor", "vit-layers", "vit-encoder"] {
        let deps = normal_closure(&meta, krate);
        for banned in [
            "serde",
            "serde_json",
            "image",
            "mozjpeg",
            "clap",
            "indicatif",
            "safetensors",
        ] {
            assert!(
                !deps.contains(banned),
                "{krate} pulls in {banned} (through {deps:?})"
            );
        }
    }
    let core = normal_closure(&meta, "clip-vision");
    for banned in ["clap", "indicatif"] {
        assert!(!core.contains(banned), "clip-vision pulls in {banned}");
    }
}

#[test]
fn the_keyword_scan_sees_code_not_comments_or_strings() {
    assert_eq!(code_of("let s = \"unsafe\"; // unsafe"), "let s = ; ");
    assert!(code_of("unsafe { f() }").contains("unsafe"));
}
