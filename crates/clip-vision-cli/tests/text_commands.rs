//! `classify`, `search` and `embed-text` on the bundled demo model against transformers'
//! references (fixtures/models/demo/reference.*, made by scripts/make_fixtures.py).

mod support;

use clip_vision::checkpoint::TensorStore;
use std::path::Path;
use support::{bin, demo, images, run, text};

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(demo().join("reference.json")).unwrap()).unwrap()
}

fn reference(name: &str) -> Vec<f32> {
    let store = TensorStore::open_file(demo().join("reference.safetensors")).unwrap();
    let shape = store.shape(name).unwrap().to_vec();
    store.tensor(name, &shape).unwrap()
}

fn strings(key: &str) -> Vec<String> {
    meta()[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// `path → scores` of classify's JSON lines.
fn classify(extra: &[&str]) -> Vec<(String, serde_json::Map<String, serde_json::Value>)> {
    let labels = strings("labels").join(",");
    let out = run(bin()
        .args(["classify", "--model"])
        .arg(demo())
        .args(["--labels", &labels])
        .args(extra)
        .arg(images()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["path"].as_str().unwrap()).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                v["scores"].as_object().unwrap().clone(),
            )
        })
        .collect()
}

/// Max |classify − transformers| over every image and label.
fn check_probs(lines: &[(String, serde_json::Map<String, serde_json::Value>)], key: &str) -> f32 {
    let (images, labels) = (strings("images"), strings("labels"));
    let want = reference(key);
    assert_eq!(lines.len(), images.len());
    let mut err = 0.0f32;
    for (i, name) in images.iter().enumerate() {
        let (_, scores) = lines.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(scores.len(), labels.len());
        for (j, label) in labels.iter().enumerate() {
            let got = scores[label].as_f64().unwrap() as f32;
            err = err.max((got - want[i * labels.len() + j]).abs());
        }
    }
    err
}

#[test]
fn classify_equals_transformers_probabilities() {
    let err = check_probs(&classify(&[]), "probs.labels");
    eprintln!("classify, labels as given: max abs error {err:.3e}");
    assert!(err <= 1e-4, "{err}");
    let mut args = Vec::new();
    let templates = strings("templates");
    for t in &templates {
        args.extend(["--template", t.as_str()]);
    }
    let err = check_probs(&classify(&args), "probs.ensemble");
    eprintln!("classify, prompt ensemble: max abs error {err:.3e}");
    assert!(err <= 1e-4, "{err}");
}

#[test]
fn classify_top_k_lists_the_most_probable_first() {
    let full = classify(&[]);
    for (name, scores) in classify(&["--top-k", "2"]) {
        let all = &full.iter().find(|(n, _)| *n == name).unwrap().1;
        let mut ranked: Vec<(&String, f64)> =
            all.iter().map(|(k, v)| (k, v.as_f64().unwrap())).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got: Vec<&String> = scores.keys().collect();
        assert_eq!(got.len(), 2);
        // serde_json's map is sorted by key; the order on the line is checked below.
        for (label, _) in &ranked[..2] {
            assert!(
                scores.contains_key(*label),
                "{name}: {label} missing from the top 2"
            );
        }
    }
    let out = run(bin()
        .args(["classify", "--model"])
        .arg(demo())
        .args(["--labels", "a dog,a cat,mountains", "--top-k", "3"])
        .arg(images().join("coffee.jpg")));
    let line = text(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let probs: Vec<f64> = ["a dog", "a cat", "mountains"]
        .iter()
        .map(|l| v["scores"][*l].as_f64().unwrap())
        .collect();
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let positions: Vec<usize> = ["a dog", "a cat", "mountains"]
        .iter()
        .map(|l| line.find(&format!("\"{l}\"")).unwrap())
        .collect();
    assert!(
        positions[order[0]] < positions[order[1]] && positions[order[1]] < positions[order[2]],
        "{line}"
    );
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-6);
}

#[test]
fn search_ranks_the_images_as_numpy_does() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("photos.npy");
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("--output")
        .arg(&index)
        .arg(images()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names = strings("images");
    for case in meta()["search"].as_array().unwrap() {
        let query = case["query"].as_str().unwrap();
        let order: Vec<usize> = serde_json::from_value(case["order"].clone()).unwrap();
        let scores: Vec<f64> = serde_json::from_value(case["scores"].clone()).unwrap();
        let out = run(bin()
            .args(["search", "--index"])
            .arg(&index)
            .arg(query)
            .args(["-k", "100"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines: Vec<(String, f64)> = text(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let name = Path::new(f[2])
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (name, f[1].parse().unwrap())
            })
            .collect();
        assert_eq!(lines.len(), names.len());
        for (rank, ((name, score), (&i, &want))) in
            lines.iter().zip(order.iter().zip(&scores)).enumerate()
        {
            assert!(
                (score - want).abs() < 1e-5,
                "{query:?} rank {rank}: score {score} vs {want}"
            );
            // Ties closer than the scores' precision may swap; every other rank is numpy's.
            let tie = scores
                .iter()
                .enumerate()
                .any(|(r, s)| r != rank && (s - want).abs() < 2e-5);
            if !tie {
                assert_eq!(name, &names[i], "{query:?} rank {rank}");
            }
        }
    }
}

#[test]
fn search_needs_a_model_with_a_text_tower() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("vision.jsonl");
    let tiny = support::root().join("fixtures/models/tiny-gelu");
    let bmp = dir.path().join("a.bmp");
    support::write_bmp(&bmp, 40, 30, 1);
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(&tiny)
        .arg("--output")
        .arg(&index)
        .arg(&bmp));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(bin().args(["search", "--index"]).arg(&index).arg("a dog"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("which cannot embed text") && err.contains("has no text tower"),
        "{err}"
    );
    assert!(err.contains("a CLIPModel checkpoint"), "{err}");
}

#[test]
fn embed_text_writes_normalised_text_embeds() {
    let dir = tempfile::tempdir().unwrap();
    let labels = strings("labels");
    let want = reference("text_embeds.labels");
    let e = want.len() / labels.len();
    for ext in ["npy", "jsonl"] {
        let file = dir.path().join(format!("labels.{ext}"));
        let out = run(bin()
            .args(["embed-text", "--model"])
            .arg(demo())
            .arg("--output")
            .arg(&file)
            .args(&labels));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: Vec<Vec<f32>> = if ext == "npy" {
            let bytes = std::fs::read(&file).unwrap();
            let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10;
            let floats: Vec<f32> = bytes[header..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let side = std::fs::read_to_string(dir.path().join("labels.npy.texts.txt")).unwrap();
            let texts: Vec<String> = side
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(texts, labels);
            floats.chunks(e).map(<[f32]>::to_vec).collect()
        } else {
            std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|v| serde_json::from_value(v["embedding"].clone()).unwrap())
                .collect()
        };
        assert_eq!(rows.len(), labels.len());
        for (row, want) in rows.iter().zip(want.chunks(e)) {
            let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
            for (g, w) in row.iter().zip(want) {
                assert!((g - w / norm).abs() < 1e-5, "{ext}: {g} vs {}", w / norm);
            }
        }
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("labels.{ext}.meta.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["kind"], "text-embeds");
    }
}

#[test]
fn bad_label_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labels.txt");
    std::fs::write(&file, b"a dog\na \xff cat\n").unwrap();
    let out = run(bin()
        .args(["classify", "--model"])
        .arg(demo())
        .arg("--labels-file")
        .arg(&file)
        .arg(images()));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("labels.txt: line 2 is not valid UTF-8"),
        "{err}"
    );
    let out = run(bin()
        .args(["classify", "--model"])
        .arg(demo())
        .args(["--labels", "a,,b"])
        .arg(images()));
    assert!(
        text(&out.stderr).contains("label 2 is empty"),
        "{}",
        text(&out.stderr)
    );
    let out = run(bin()
        .args(["classify", "--model"])
        .arg(demo())
        .args(["--labels", "a,a"])
        .arg(images()));
    assert!(
        text(&out.stderr).contains("given twice"),
        "{}",
        text(&out.stderr)
    );
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "word ".repeat(2_200_000)).unwrap();
    let out = run(bin()
        .args(["embed-text", "--model"])
        .arg(demo())
        .arg("--texts-file")
        .arg(&big));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("big.txt: line 1 is 11000000 bytes long; at most 1048576 are accepted"),
        "{}",
        text(&out.stderr)
    );
}
