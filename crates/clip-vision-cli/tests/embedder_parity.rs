//! `ImageEmbedder::from_pretrained(dir or hub id)` + `embed_paths` give exactly the rows
//! `clip-vision embed` writes: the command is a thin client of the library pipeline.
//!
//! One test in this binary, so that setting `HF_HUB_CACHE` for the hub-id case races with
//! nothing.

mod support;

use clip_vision::ImageEmbedder;
use std::path::PathBuf;
use support::{bin, demo, images, read_npy, root, run, Row};

/// The rows `clip-vision embed --model model` writes for `inputs`, through a `.npy` output.
fn cli_rows(model: &str, inputs: &[PathBuf], extra: &[&str]) -> Vec<Row> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rows.npy");
    let mut cmd = bin();
    cmd.args(["embed", "--model", model, "--output"])
        .arg(&out)
        .args(extra)
        .args(inputs)
        .env("HF_HUB_CACHE", root().join("fixtures/hub"));
    let output = run(&mut cmd);
    assert!(output.status.success(), "{output:?}");
    read_npy(&out)
}

/// The rows the library gives for the same paths, in the order the command sorts them.
fn library_rows(embedder: &ImageEmbedder, cli: &[Row]) -> Vec<Row> {
    let paths: Vec<PathBuf> = cli.iter().map(|(p, _)| PathBuf::from(p)).collect();
    let rows = embedder.embed_paths(&paths);
    assert_eq!(rows.len(), paths.len());
    cli.iter()
        .zip(rows)
        .map(|((p, _), r)| (p.clone(), r.unwrap_or_else(|e| panic!("{p}: {e}"))))
        .collect()
}

fn assert_equal_rows(lib: &[Row], cli: &[Row], what: &str) {
    assert_eq!(lib.len(), cli.len(), "{what}");
    let mut worst = 0.0f32;
    for ((lp, lv), (cp, cv)) in lib.iter().zip(cli) {
        assert_eq!(lp, cp, "{what}");
        assert_eq!(lv.len(), cv.len(), "{what}: {lp}");
        for (a, b) in lv.iter().zip(cv) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!(
        "{what}: {} rows, max |library − command| = {worst:e}",
        lib.len()
    );
    // Same batches, same kernels: the same floats (1e-6 leaves room for a GEMM backend that
    // picks block sizes by thread count).
    assert!(worst <= 1e-6, "{what}: {worst}");
}

#[test]
fn image_embedder_rows_equal_the_commands_rows() {
    // This binary has one test: nothing else reads the environment while it is set.
    std::env::set_var("HF_HUB_CACHE", root().join("fixtures/hub"));

    // A directory, every sample photo, two batch sizes.
    let dir = demo();
    let inputs = vec![images()];
    let cli = cli_rows(dir.to_str().unwrap(), &inputs, &[]);
    assert!(cli.len() >= 12, "{} rows", cli.len());
    let embedder = ImageEmbedder::from_pretrained(&dir).unwrap();
    assert_eq!(embedder.dim(), 32);
    assert_equal_rows(&library_rows(&embedder, &cli), &cli, "demo dir");
    let cli_b5 = cli_rows(dir.to_str().unwrap(), &inputs, &["--batch-size", "5"]);
    let embedder_b5 = ImageEmbedder::builder(&dir).batch_size(5).build().unwrap();
    assert_equal_rows(
        &library_rows(&embedder_b5, &cli_b5),
        &cli_b5,
        "demo dir, batch 5",
    );
    for (row, unit) in &cli {
        let norm: f64 = unit
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{row}: norm {norm}");
    }

    // A hub id resolved in the local cache (HF_HUB_CACHE), by both.
    let hub_id = "clip-vision/tiny-hub";
    let cli_hub = cli_rows(hub_id, &inputs, &[]);
    let embedder_hub = ImageEmbedder::from_pretrained(hub_id).unwrap();
    assert!(embedder_hub
        .model_path()
        .unwrap()
        .ends_with("snapshots/0123456789abcdef0123456789abcdef01234567"));
    assert_equal_rows(&library_rows(&embedder_hub, &cli_hub), &cli_hub, "hub id");
}
