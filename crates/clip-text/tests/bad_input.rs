//! Bad tokenizer files and texts get errors that name the file and the problem.

mod support;

use clip_text::{ClipTokenizer, TextError, MAX_TEXT_BYTES};
use support::{fixtures_dir, model_dir};

fn demo_json() -> Vec<u8> {
    std::fs::read(model_dir("demo").join("tokenizer.json")).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_truncated_or_non_json_tokenizer_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let json = demo_json();
    for (name, bytes) in [
        ("truncated.json", &json[..json.len() / 2]),
        ("notjson.json", &b"\x00\x01 not json"[..]),
        ("empty.json", &b""[..]),
    ] {
        let path = write(&dir, name, bytes);
        let err = ClipTokenizer::from_tokenizer_json(&path).unwrap_err();
        assert!(matches!(err, TextError::Tokenizer { .. }), "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: not a usable tokenizer file", path.display())),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_tokenizer_model_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&demo_json()).unwrap();
    v["model"]["type"] = "NotAModel".into();
    let path = write(&dir, "tokenizer.json", &serde_json::to_vec(&v).unwrap());
    let err = ClipTokenizer::from_pretrained(dir.path()).unwrap_err();
    assert!(matches!(err, TextError::Tokenizer { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_tokenizer_without_clip_special_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let json = br#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1},
        "unk_token": "[UNK]"}}"#;
    let path = write(&dir, "tokenizer.json", json);
    let err = ClipTokenizer::from_tokenizer_json(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the tokenizer has no \"<|startoftext|>\" token",
            path.display()
        )
    );
}

#[test]
fn half_a_vocab_merges_pair_says_which_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir("demo").join("vocab.json"),
        dir.path().join("vocab.json"),
    )
    .unwrap();
    let err = ClipTokenizer::from_pretrained(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(vocab.json is there, merges.txt is missing)"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let err = ClipTokenizer::from_pretrained(empty.path()).unwrap_err();
    assert!(matches!(err, TextError::MissingTokenizer { .. }), "{err}");
}

#[test]
fn a_bad_merges_line_and_a_bad_gz_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir("demo").join("vocab.json"),
        dir.path().join("vocab.json"),
    )
    .unwrap();
    let merges = write(&dir, "merges.txt", b"#version: 0.2\ni n\nnospace\n");
    let err = ClipTokenizer::from_pretrained(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a usable tokenizer file: line 3: not a merge \"a b\"",
            merges.display()
        )
    );
    let gz = write(&dir, "bpe_simple_vocab_16e6.txt.gz", b"not gzip at all");
    let err = ClipTokenizer::from_bpe_gz(&gz).unwrap_err();
    assert!(
        err.to_string().contains("not a gzip of UTF-8 text"),
        "{err}"
    );
    let vocab = write(&dir, "vocab.json", b"[1, 2, 3]");
    let err = ClipTokenizer::from_vocab_merges(&vocab, &merges).unwrap_err();
    assert!(err.to_string().contains("not a token → id map"), "{err}");
}

#[test]
fn texts_are_bounded_and_long_texts_truncate_keeping_the_end_token() {
    let tok =
        ClipTokenizer::from_bpe_gz(fixtures_dir().join("tokenizer/bpe_simple_vocab_16e6.txt.gz"))
            .unwrap();
    let huge = "word ".repeat(2_000_000);
    let err = tok.encode(&huge).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("text 0 is 10000000 bytes long; at most {MAX_TEXT_BYTES} are accepted")
    );
    let long = tok.encode(&"word ".repeat(MAX_TEXT_BYTES / 5)).unwrap();
    assert_eq!(long.len(), 77);
    assert_eq!((long[0], long[76]), (49406, 49407));
    assert_eq!(tok.encode("").unwrap(), [49406, 49407]);
    let err = tok.encode_batch(&["fine", &huge]).unwrap_err();
    assert!(
        err.to_string().starts_with("text 1 is 10000000 bytes"),
        "{err}"
    );
}

#[test]
fn a_tokenizer_json_padding_and_truncation_do_not_leak_into_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&demo_json()).unwrap();
    v["padding"] = serde_json::json!({"strategy": {"Fixed": 77}, "direction": "Right",
        "pad_to_multiple_of": null, "pad_id": 49407, "pad_type_id": 0, "pad_token": "<|endoftext|>"});
    v["truncation"] = serde_json::json!({"direction": "Right", "max_length": 4,
        "strategy": "LongestFirst", "stride": 0});
    let path = write(&dir, "tokenizer.json", &serde_json::to_vec(&v).unwrap());
    let tok = ClipTokenizer::from_tokenizer_json(&path).unwrap();
    // transformers' CLIPTokenizer(text, truncation=True, max_length=77) on the demo files.
    assert_eq!(
        tok.encode("a dog on the beach at night").unwrap(),
        [49406, 320, 1929, 525, 518, 2117, 536, 930, 49407]
    );
}

#[test]
fn a_tokenizer_json_that_panics_the_pipeline_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&demo_json()).unwrap();
    v["normalizer"] =
        serde_json::json!({"type": "Replace", "pattern": {"Regex": ""}, "content": "x"});
    let path = write(&dir, "tokenizer.json", &serde_json::to_vec(&v).unwrap());
    let err = ClipTokenizer::from_tokenizer_json(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not a usable tokenizer file", path.display())),
        "{err}"
    );
}

#[test]
fn a_short_bpe_gz_is_refused() {
    use std::io::Write;
    let full =
        std::fs::read(fixtures_dir().join("tokenizer/bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&full[..]), &mut text).unwrap();
    let short: String = text.split('\n').take(1000).collect::<Vec<_>>().join("\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(short.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "bpe_simple_vocab_16e6.txt.gz", &gz.finish().unwrap());
    let err = ClipTokenizer::from_bpe_gz(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a usable tokenizer file: holds 999 merges; CLIP's vocabulary is built from 48894",
            path.display()
        )
    );
}

#[test]
fn the_largest_id_not_the_count_is_checked_against_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(model_dir("demo").join("vocab.json")).unwrap())
            .unwrap();
    vocab.insert("<|startoftext|>".into(), 60001.into());
    vocab.insert("<|endoftext|>".into(), 60000.into());
    let v = write(&dir, "vocab.json", &serde_json::to_vec(&vocab).unwrap());
    std::fs::copy(
        model_dir("demo").join("merges.txt"),
        dir.path().join("merges.txt"),
    )
    .unwrap();
    let tok = ClipTokenizer::from_vocab_merges(&v, dir.path().join("merges.txt")).unwrap();
    assert_eq!(tok.max_id(), 60001);
    let tower =
        clip_text::ClipTextTower::from_pretrained(model_dir("demo"), &Default::default()).unwrap();
    let err = clip_text::ClipTextEncoder::from_parts(tower, tok).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "vocab.json: the tokenizer's ids go up to 60001 but the text tower's embedding table has 49408 rows"
        ),
        "{err}"
    );
}

#[test]
fn open_clip_text_settings_this_tower_lacks_are_refused() {
    for (key, value) in [
        ("no_causal_mask", serde_json::json!(true)),
        ("pool_type", serde_json::json!("last")),
        ("ls_init_value", serde_json::json!(0.5)),
        ("norm_kwargs", serde_json::json!({"eps": 0.1})),
        ("hf_model_name", serde_json::json!("roberta-base")),
        ("heads", serde_json::json!("two")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for f in ["open_clip_model.safetensors", "open_clip_config.json"] {
            std::fs::copy(model_dir("open-clip").join(f), dir.path().join(f)).unwrap();
        }
        let cfg_path = dir.path().join("open_clip_config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        cfg["model_cfg"]["text_cfg"][key] = value.clone();
        std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let err =
            clip_text::ClipTextTower::from_pretrained(dir.path(), &Default::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&cfg_path.display().to_string()),
            "{key}: {msg}"
        );
        assert!(msg.contains(key), "{key}: {msg}");
    }
}
