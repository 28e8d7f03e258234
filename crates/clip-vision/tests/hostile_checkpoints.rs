//! Malformed and malicious checkpoint files end in a typed error that names the file and the
//! problem, before anything proportional to a size the file merely claims is allocated.
//!
//! Each case is built byte by byte (a safetensors file is 8 bytes of header length, the JSON
//! header, then the data), so the tests show exactly what the reader is given.

use clip_vision::checkpoint::store::TensorStore;
use clip_vision::checkpoint::CheckpointError;
use clip_vision::{ClipVisionEncoder, VisionError};
use std::path::{Path, PathBuf};

/// A safetensors file from a header text and a data section.
fn raw_file(dir: &Path, name: &str, header: &[u8], data: &[u8]) -> PathBuf {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error of opening a file and reading every tensor it lists.
fn open_err(path: &Path) -> VisionError {
    let result = TensorStore::open_file(path).and_then(|store| {
        for name in store.names() {
            let shape = store.shape(name)?.to_vec();
            store.tensor(name, &shape)?;
        }
        Ok(())
    });
    VisionError::from(result.expect_err("the file must be refused"))
}

/// Asserts a `Checkpoint` error for `path` whose reason contains `needle`.
fn assert_refused(path: &Path, needle: &str) {
    match open_err(path) {
        VisionError::Checkpoint(CheckpointError::Invalid { path: p, reason }) => {
            assert_eq!(p, path, "the error names the file");
            assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        }
        other => panic!("{}: {other}", path.display()),
    }
}

#[test]
fn header_sizes_that_lie_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    // Header length past the end of the file.
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let past = tmp.path().join("past.safetensors");
    std::fs::write(&past, bytes).unwrap();
    assert_refused(&past, "reaches past the end");
    // A header claiming 2^63 bytes: refused by the cap, nothing allocated.
    let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let huge = tmp.path().join("huge.safetensors");
    std::fs::write(&huge, bytes).unwrap();
    assert_refused(&huge, "exceeds the 100000000-byte limit");
    // Shorter than the 8-byte length itself.
    let tiny = tmp.path().join("tiny.safetensors");
    std::fs::write(&tiny, [1u8, 2, 3]).unwrap();
    assert_refused(&tiny, "too short");
}

#[test]
fn headers_that_are_not_json_objects_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert_refused(
        &raw_file(tmp.path(), "utf8.safetensors", b"{\"a\xff\": 1}", b""),
        "not UTF-8",
    );
    assert_refused(
        &raw_file(tmp.path(), "json.safetensors", b"{not json", b""),
        "JSON",
    );
    assert_refused(
        &raw_file(tmp.path(), "array.safetensors", b"[1, 2]", b""),
        "not a JSON object",
    );
    assert_refused(
        &raw_file(
            tmp.path(),
            "field.safetensors",
            br#"{"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}}"#,
            &[0; 4],
        ),
        "invalid header",
    );
}

#[test]
fn offsets_out_of_range_overlapping_or_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str, begin: usize, end: usize, shape: &str| {
        format!(
            r#""{name}": {{"dtype": "F32", "shape": {shape}, "data_offsets": [{begin}, {end}]}}"#
        )
    };
    // Past the data section.
    let h = format!("{{{}}}", t("w", 0, 4096, "[1024]"));
    assert_refused(
        &raw_file(tmp.path(), "outside.safetensors", h.as_bytes(), &[0; 16]),
        "truncated",
    );
    // Overlapping tensors.
    let h = format!("{{{}, {}}}", t("a", 0, 16, "[4]"), t("b", 8, 24, "[4]"));
    assert_refused(
        &raw_file(tmp.path(), "overlap.safetensors", h.as_bytes(), &[0; 24]),
        "invalid header",
    );
    // A hole between tensors.
    let h = format!("{{{}, {}}}", t("a", 0, 16, "[4]"), t("b", 20, 36, "[4]"));
    assert_refused(
        &raw_file(tmp.path(), "hole.safetensors", h.as_bytes(), &[0; 36]),
        "invalid header",
    );
    // Out of order in the file but contiguous once sorted is what writers produce: accepted.
    let h = format!("{{{}, {}}}", t("b", 16, 32, "[4]"), t("a", 0, 16, "[4]"));
    assert!(TensorStore::open_file(raw_file(
        tmp.path(),
        "order.safetensors",
        h.as_bytes(),
        &[0; 32]
    ))
    .is_ok());
    // begin > end.
    let h = format!("{{{}}}", t("w", 16, 0, "[4]"));
    assert_refused(
        &raw_file(tmp.path(), "reversed.safetensors", h.as_bytes(), &[0; 16]),
        "invalid header",
    );
}

#[test]
fn sizes_that_overflow_or_disagree_with_the_byte_range_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // shape × dtype overflows usize: refused from the header, no allocation.
    let h = br#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4096], "data_offsets": [0, 16]}}"#;
    assert_refused(
        &raw_file(tmp.path(), "overflow.safetensors", h, &[0; 16]),
        "invalid header",
    );
    // Byte range of 16 for a [5] F32 tensor (20 bytes).
    let h = br#"{"w": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}"#;
    assert_refused(
        &raw_file(tmp.path(), "range.safetensors", h, &[0; 16]),
        "invalid header",
    );
    // A claimed 10^12-element tensor with a matching byte range but 16 bytes on disk.
    let h =
        br#"{"w": {"dtype": "F32", "shape": [1000000000000], "data_offsets": [0, 4000000000000]}}"#;
    assert_refused(
        &raw_file(tmp.path(), "claimed.safetensors", h, &[0; 16]),
        "truncated",
    );
    // Trailing garbage after the data.
    let h = br#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#;
    assert_refused(
        &raw_file(tmp.path(), "trailing.safetensors", h, &[0; 12]),
        "trailing bytes",
    );
}

#[test]
fn duplicate_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let h = br#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#;
    assert_refused(
        &raw_file(tmp.path(), "dup.safetensors", h, &[0; 4]),
        "twice",
    );
}

#[test]
fn a_well_formed_file_of_the_wrong_content_is_a_missing_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models/tiny-gelu-tanh/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    raw_file(
        &dir,
        "model.safetensors",
        br#"{"unrelated": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#,
        &[0; 4],
    );
    match ClipVisionEncoder::from_pretrained(&dir).unwrap_err() {
        VisionError::Checkpoint(CheckpointError::MissingTensor { path, name }) => {
            assert!(path.ends_with("model.safetensors"));
            assert!(name.contains("patch_embedding"), "{name}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn absurd_configs_are_refused_before_any_weight_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    // Weights that do not matter: the config is refused first.
    raw_file(&dir, "model.safetensors", br#"{"vision_model.embeddings.patch_embedding.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, &[0; 4]);
    for (config, field) in [
        (r#"{"num_hidden_layers": 1000000000}"#, "num_hidden_layers"),
        (r#"{"hidden_size": 770}"#, "num_attention_heads"),
        (r#"{"image_size": 0}"#, "image_size"),
        (r#"{"image_size": 16, "patch_size": 32}"#, "patch_size"),
        (
            r#"{"hidden_size": 4611686018427387904, "num_attention_heads": 1}"#,
            "hidden_size",
        ),
        (
            r#"{"num_hidden_layers": 500, "hidden_size": 8192, "num_attention_heads": 8, "intermediate_size": 32768}"#,
            "num_hidden_layers",
        ),
        (r#"{"layer_norm_eps": -1e-5}"#, "layer_norm_eps"),
    ] {
        std::fs::write(dir.join("config.json"), config).unwrap();
        match ClipVisionEncoder::from_pretrained(&dir).unwrap_err() {
            VisionError::InvalidConfig { path, field: f, .. } => {
                assert_eq!(f, field, "{config}");
                assert!(
                    path.is_some_and(|p| p.ends_with("config.json")),
                    "{config}: the error names the file"
                );
            }
            other => panic!("{config}: {other}"),
        }
    }
    for config in [
        r#"{"hidden_size": -768}"#,
        r#"{"num_hidden_layers": "twelve"}"#,
        "{",
        "[]",
    ] {
        std::fs::write(dir.join("config.json"), config).unwrap();
        let err = ClipVisionEncoder::from_pretrained(&dir).unwrap_err();
        assert!(
            matches!(&err, VisionError::Json { path, .. } | VisionError::Checkpoint(CheckpointError::Json { path, .. } | CheckpointError::Invalid { path, .. }) if path.ends_with("config.json")),
            "{config}: {err}"
        );
    }
}
