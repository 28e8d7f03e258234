//! Conventions of the workspace, checked under `cargo test` so CI needs nothing extra.
//!
//! - `unsafe` code exists only in vit-tensor's kernel modules (`src/gemm.rs`, the sgemm
//!   wrapper; `src/kernels/`, the packed-weight f32 and int8 micro-kernels); every other crate root
//!   forbids it. Each `unsafe` block there carries `// SAFETY:` lines, each `unsafe fn` a
//!   `# Safety` section.
//! - Dependencies between workspace crates follow [`EDGES`] only (vit-tensor ← vit-layers ←
//!   vit-encoder ← clip-vision ← clip-vision-job ← CLI / Python binding; clip-checkpoint ←
//!   clip-preprocess; both ← clip-vision, clip-preprocess behind its `image` feature;
//!   clip-text behind `text`), for whichever of those crates exist; dev-dependencies may
//!   reach any crate below along those edges.
//! - Nothing pulls in a network client; clip-text no image codec, clip-preprocess or
//!   clip-vision; clip-vision and clip-vision-job no CLI crate.
//! - The vit-* crates pull in no serde, image codec, tokenizer or CLI crate; clip-checkpoint
//!   no image codec and no vit-* crate; clip-preprocess no vit-* crate (even transitively).
//! - Every Rust source file opens with a `//!` doc comment.
//! - Every ignored test says why (`#[ignore = "why"]`); CI runs those it can, and `.ci/run`
//!   runs the same commands as `cargo xtask ci`.

#![cfg(test)]

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace crates under the dependency rule, with every dependency each may have on
/// another of them: `(from, to, feature)`, where `Some(feature)` means the dependency is
/// optional and enabled by that feature of `from`. Crates of this list that do not exist
/// (yet) are skipped; a crate not listed here (benches, xtask) may depend on any of them,
/// none of them on it.
const EDGES: &[(&str, &str, Option<&str>)] = &[
    ("vit-layers", "vit-tensor", None),
    ("vit-encoder", "vit-tensor", None),
    ("vit-encoder", "vit-layers", None),
    ("clip-preprocess", "clip-checkpoint", None),
    ("clip-text", "vit-tensor", None),
    ("clip-text", "vit-layers", None),
    ("clip-text", "vit-encoder", None),
    ("clip-text", "clip-checkpoint", None),
    ("clip-vision", "vit-tensor", None),
    ("clip-vision", "vit-layers", None),
    ("clip-vision", "vit-encoder", None),
    ("clip-vision", "clip-checkpoint", None),
    ("clip-vision", "clip-preprocess", Some("image")),
    ("clip-vision", "clip-text", Some("text")),
    ("clip-vision-job", "clip-vision", None),
    ("clip-vision-cli", "clip-vision", None),
    ("clip-vision-cli", "clip-vision-job", None),
    ("clip-vision-py", "clip-vision", None),
    ("clip-vision-py", "clip-vision-job", None),
];

/// Every crate the rule knows, whether or not it exists yet.
const RULED: [&str; 10] = [
    "vit-tensor",
    "vit-layers",
    "vit-encoder",
    "clip-checkpoint",
    "clip-preprocess",
    "clip-text",
    "clip-vision",
    "clip-vision-job",
    "clip-vision-cli",
    "clip-vision-py",
];

/// Packages a crate must not pull in, even transitively: `(crates, banned)`.
const IMAGE_CODECS: &[&str] = &[
    "image",
    "mozjpeg",
    "mozjpeg-sys",
    "png",
    "jpeg-decoder",
    "zune-jpeg",
    "gif",
    "tiff",
    "image-webp",
];
const VIT_CRATES: &[&str] = &["vit-tensor", "vit-layers", "vit-encoder"];
const SERDE: &[&str] = &["serde", "serde_json", "safetensors"];
const TOKENIZERS: &[&str] = &["tokenizers", "tiktoken-rs", "clip-text"];
const CLI: &[&str] = &["clap", "indicatif", "clip-vision-cli"];
/// Network clients: nothing in the workspace downloads (the `tokenizers` crate's `http`
/// feature would bring `hf-hub` and an HTTP stack).
const DOWNLOAD: &[&str] = &["hf-hub", "reqwest", "ureq", "hyper"];

/// The sgemm wrapper: one `unsafe` call per GEMM backend.
const UNSAFE_HOME: &str = "crates/vit-tensor/src/gemm.rs";
/// The micro-kernels: safe wrappers (`mod.rs`, `int8.rs`) around `unsafe fn`s (`x86.rs`,
/// `x86_int8.rs`).
const KERNEL_HOME: &str = "crates/vit-tensor/src/kernels/";

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
fn unsafe_code_lives_only_in_the_kernel_modules() {
    let keyword = ["un", "safe"].concat();
    let mut offenders = Vec::new();
    for (path, text) in workspace_sources() {
        if path == UNSAFE_HOME || path.starts_with(KERNEL_HOME) {
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
        "unsafe outside {UNSAFE_HOME} and {KERNEL_HOME}:\n{}",
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
fn kernel_unsafe_is_documented() {
    let keyword = ["un", "safe"].concat();
    let mut kernel_files = 0;
    for (path, text) in workspace_sources() {
        if !path.starts_with(KERNEL_HOME) {
            continue;
        }
        kernel_files += 1;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = code_of(line);
            // The comment lines right above this one.
            let above = || {
                lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let t = l.trim_start();
                        t.starts_with("//") || t.starts_with("#[")
                    })
                    .map(|l| l.trim_start())
            };
            if code.contains(&format!("{keyword} {{")) {
                let safety = above().filter(|l| l.starts_with("// SAFETY:")).count();
                assert!(
                    safety >= 2,
                    "{path}:{}: an {keyword} block needs a // SAFETY: line per obligation (CPU feature, bounds), found {safety}",
                    i + 1
                );
            }
            if code.contains(&format!("{keyword} fn ")) {
                let documented = above().any(|l| l == "/// # Safety");
                assert!(
                    documented,
                    "{path}:{}: an {keyword} fn needs a `# Safety` section",
                    i + 1
                );
            }
        }
    }
    assert!(kernel_files >= 2, "no kernel module under {KERNEL_HOME}");
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

/// Whether a line's `#[ignore …]` attribute gives a reason: `None` when the line holds no
/// such attribute in code, `Some(false)` for a bare `#[ignore]` or an empty reason.
fn ignore_has_reason(line: &str) -> Option<bool> {
    let attr = ["#[", "ignore"].concat();
    let end = line
        .match_indices(&attr)
        .map(|(at, _)| at + attr.len())
        .find(|&end| code_of(&line[..end]).ends_with(&attr))?;
    let rest = line[end..].trim_start();
    let Some(reason) = rest.strip_prefix('=') else {
        return Some(false);
    };
    let reason = reason.trim_start();
    let quoted = reason
        .strip_prefix('"')
        .and_then(|r| r.find('"').map(|end| &r[..end]));
    Some(quoted.is_some_and(|r| !r.trim().is_empty()))
}

#[test]
fn every_ignored_test_says_why() {
    let mut bare = Vec::new();
    for (path, text) in workspace_sources() {
        for (i, line) in text.lines().enumerate() {
            if ignore_has_reason(line) == Some(false) {
                bare.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "ignored tests without a reason (write #[ignore = \"why\"]):\n{}",
        bare.join("\n")
    );
}

/// The triple of the machine the tests run on, from `rustc -vV`.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("{rustc} -vV: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| panic!("{rustc} -vV prints no host line:\n{text}"))
}

/// `cargo metadata` of the workspace, resolved for the host only: metadata of every
/// platform would need the sources of every platform's crates (Windows API bindings and
/// the like), which a fresh machine has not downloaded and `cargo test` never builds.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host_triple();
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(crate::root())
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata --filter-platform {host} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("cargo metadata JSON: {e}"))
}

/// The workspace members' package entries, by name.
fn members(meta: &Value) -> HashMap<String, &Value> {
    let ids: HashSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_str().is_some_and(|id| ids.contains(id)))
        .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p)))
        .collect()
}

/// The crates `name` may reach through [`EDGES`], itself excluded.
fn below(name: &str) -> HashSet<&'static str> {
    let mut seen = HashSet::new();
    let mut stack = vec![name];
    while let Some(n) = stack.pop() {
        for &(from, to, _) in EDGES {
            if from == n && seen.insert(to) {
                stack.push(to);
            }
        }
    }
    seen
}

/// Every breach of the dependency rule in `meta`, one line each.
fn edge_breaches(meta: &Value) -> Vec<String> {
    let members = members(meta);
    let mut breaches = Vec::new();
    for (name, pkg) in &members {
        if !RULED.contains(&name.as_str()) {
            continue;
        }
        let below = below(name);
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !members.contains_key(dep_name) {
                continue;
            }
            if dep["kind"].as_str() == Some("dev") {
                if !below.contains(dep_name) {
                    breaches.push(format!("{name} dev-depends on {dep_name}, not below it"));
                }
                continue;
            }
            let edge = EDGES
                .iter()
                .find(|(from, to, _)| from == name && *to == dep_name);
            let Some(&(_, _, gate)) = edge else {
                breaches.push(format!("{name} depends on {dep_name}: not an allowed edge"));
                continue;
            };
            let optional = dep["optional"].as_bool() == Some(true);
            match gate {
                None if optional => {
                    breaches.push(format!("{name} → {dep_name} should not be optional"));
                }
                None => {}
                Some(feature) => {
                    let enables = pkg["features"][feature]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .any(|f| f == dep_name || f == format!("dep:{dep_name}"));
                    if !optional || !enables {
                        breaches.push(format!(
                            "{name} → {dep_name} must be optional and enabled by feature \
                             {feature:?} (optional: {optional}, {feature}: {})",
                            pkg["features"][feature]
                        ));
                    }
                }
            }
        }
    }
    breaches.sort();
    breaches
}

#[test]
fn dependencies_point_one_way() {
    let meta = metadata();
    let members = members(&meta);
    for krate in ["vit-tensor", "vit-layers", "vit-encoder", "clip-vision"] {
        assert!(members.contains_key(krate), "no workspace crate {krate}");
    }
    let breaches = edge_breaches(&meta);
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// A made-up `cargo metadata` of three members: `deps` as `(from, to, kind, optional)`,
/// `features` as `(package, feature, enables)`.
fn fake_metadata(deps: &[(&str, &str, &str, bool)], features: &[(&str, &str, &str)]) -> Value {
    let names: HashSet<&str> = deps.iter().flat_map(|d| [d.0, d.1]).collect();
    let packages: Vec<Value> = names
        .iter()
        .map(|n| {
            let dependencies: Vec<Value> = deps
                .iter()
                .filter(|d| d.0 == *n)
                .map(|d| {
                    let kind = if d.2 == "normal" {
                        Value::Null
                    } else {
                        d.2.into()
                    };
                    serde_json::json!({"name": d.1, "kind": kind, "optional": d.3})
                })
                .collect();
            let mut feats = serde_json::Map::new();
            for f in features.iter().filter(|f| f.0 == *n) {
                feats.insert(f.1.into(), serde_json::json!([f.2]));
            }
            serde_json::json!({"id": n, "name": n, "dependencies": dependencies, "features": feats})
        })
        .collect();
    serde_json::json!({"packages": packages, "workspace_members": names.iter().collect::<Vec<_>>()})
}

#[test]
fn the_edge_rule_refuses_what_it_should() {
    let ok = fake_metadata(
        &[
            ("clip-vision", "clip-preprocess", "normal", true),
            ("clip-vision", "clip-checkpoint", "normal", false),
            ("clip-preprocess", "clip-checkpoint", "normal", false),
            ("clip-vision-cli", "clip-checkpoint", "dev", false),
        ],
        &[("clip-vision", "image", "dep:clip-preprocess")],
    );
    assert_eq!(edge_breaches(&ok), Vec::<String>::new());
    let bad = fake_metadata(
        &[
            ("clip-checkpoint", "vit-tensor", "normal", false),
            ("clip-vision", "clip-preprocess", "normal", false),
            ("vit-tensor", "vit-layers", "dev", false),
            ("clip-vision-cli", "clip-preprocess", "normal", false),
        ],
        &[],
    );
    let breaches = edge_breaches(&bad);
    assert_eq!(breaches.len(), 4, "{breaches:#?}");
    assert!(breaches[0].starts_with("clip-checkpoint depends on vit-tensor"));
    assert!(breaches[1].starts_with("clip-vision → clip-preprocess must be optional"));
    assert!(breaches[2].starts_with("clip-vision-cli depends on clip-preprocess"));
    assert!(breaches[3].starts_with("vit-tensor dev-depends on vit-layers"));
}

/// Names of every package `name` pulls in through normal (non-dev, non-build) dependencies,
/// with the workspace's features, as the lockfile resolves them for the host.
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
    let start = members(meta)
        .get(name)
        .and_then(|p| p["id"].as_str())
        .map(str::to_owned);
    let mut seen = HashSet::new();
    let mut stack: Vec<String> = start.into_iter().collect();
    while let Some(id) = stack.pop() {
        let Some(node) = nodes.get(id.as_str()) else {
            continue;
        };
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
                stack.push(dep_id.to_owned());
            }
        }
    }
    seen
}

#[test]
fn crates_pull_in_only_what_their_layer_needs() {
    let meta = metadata();
    let members = members(&meta);
    let rules: [(&[&str], &[&[&str]]); 5] = [
        (
            VIT_CRATES,
            &[SERDE, IMAGE_CODECS, TOKENIZERS, CLI, DOWNLOAD],
        ),
        (
            &["clip-checkpoint"],
            &[IMAGE_CODECS, VIT_CRATES, CLI, DOWNLOAD],
        ),
        (&["clip-preprocess"], &[VIT_CRATES, CLI, DOWNLOAD]),
        (
            &["clip-text"],
            &[
                IMAGE_CODECS,
                CLI,
                DOWNLOAD,
                &["clip-vision", "clip-preprocess"],
            ],
        ),
        (&["clip-vision", "clip-vision-job"], &[CLI, DOWNLOAD]),
    ];
    let mut checked = 0;
    for (crates, banned) in rules {
        for krate in crates.iter().filter(|k| members.contains_key(**k)) {
            let deps = normal_closure(&meta, krate);
            checked += 1;
            for banned in banned.iter().copied().flatten() {
                assert!(
                    !deps.contains(*banned),
                    "{krate} pulls in {banned} (through {deps:?})"
                );
            }
        }
    }
    assert!(checked >= 6, "only {checked} crates checked");
    // The closure walk sees what it should: clip-vision reaches the vit crates and serde.
    let core = normal_closure(&meta, "clip-vision");
    for needed in ["vit-tensor", "vit-encoder", "serde_json", "rayon"] {
        assert!(
            core.contains(needed),
            "clip-vision's closure lacks {needed}"
        );
    }
}

#[test]
fn the_ignore_scan_wants_a_reason() {
    let attr = ["#[", "ignore"].concat();
    assert_eq!(ignore_has_reason(&format!("    {attr}]")), Some(false));
    assert_eq!(ignore_has_reason(&format!("{attr} = \"\"]")), Some(false));
    assert_eq!(
        ignore_has_reason(&format!("{attr} = \"needs a checkpoint\"]")),
        Some(true)
    );
    assert_eq!(ignore_has_reason(&format!("// {attr}]")), None);
    assert_eq!(ignore_has_reason("fn ignore_this() {}"), None);
    assert_eq!(
        ignore_has_reason(&format!("let s = \"{attr}]\"; {attr}]")),
        Some(false)
    );
}

#[test]
fn the_keyword_scan_sees_code_not_comments_or_strings() {
    assert_eq!(code_of("let s = \"unsafe\"; // unsafe"), "let s = ; ");
    assert!(code_of("unsafe { f() }").contains("unsafe"));
}

#[test]
fn ci_script_and_xtask_ci_run_the_same_commands() {
    let path = crate::root().join(".ci/run");
    let script = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let commands: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("set ") && !l.starts_with("cd ") && !l.starts_with("trap "))
        .collect();
    let steps: Vec<String> = crate::CI_STEPS
        .iter()
        .map(|s| format!("cargo {s}"))
        .collect();
    assert_eq!(commands, steps, ".ci/run and xtask's CI_STEPS differ");
    assert!(
        steps.iter().any(|s| s.contains("-- --ignored")),
        "CI runs no ignored test"
    );
}

#[test]
fn publishable_crates_pack_without_the_workspaces_fixtures() {
    let meta = metadata();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut packed = 0;
    for (name, package) in members(&meta) {
        // `publish = false` reads as an empty list of registries.
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let out = Command::new(&cargo)
            .args(["package", "--list", "--allow-dirty", "-p", &name])
            .current_dir(crate::root())
            .output()
            .unwrap_or_else(|e| panic!("cargo package: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} does not pack: {stderr}");
        let files = String::from_utf8_lossy(&out.stdout);
        assert!(
            files.lines().any(|f| f == "Cargo.toml"),
            "{name} packs no Cargo.toml"
        );
        assert!(
            files.lines().any(|f| f.starts_with("src/")),
            "{name} packs no sources"
        );
        let stray: Vec<&str> = files
            .lines()
            .filter(|f| f.contains("fixtures/") || f.ends_with(".safetensors"))
            .collect();
        assert!(stray.is_empty(), "{name} packs fixture files: {stray:?}");
        assert!(
            !stderr.contains("warning"),
            "{name}: cargo package warns: {stderr}"
        );
        packed += 1;
    }
    assert!(packed >= 7, "only {packed} publishable crates packed");
}
