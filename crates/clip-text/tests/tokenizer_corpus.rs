//! The tokenizer against transformers' fast `CLIPTokenizer` on the committed corpus
//! (fixtures/tokenizer/corpus.json, made by scripts/make_text_fixtures.py), loaded each of
//! the three ways; and open_clip's tokenizer in [`TextCleaning::OpenClip`] mode.

mod support;

use clip_text::{ClipTokenizer, TextCleaning};
use support::{fixtures_dir, json, model_dir};

struct Case {
    category: String,
    text: String,
    ids: Vec<u32>,
    open_clip_ids: Vec<u32>,
    /// open_clip's ids with ftfy's mojibake repair (`fix_encoding`) turned off.
    open_clip_ids_no_mojibake_repair: Vec<u32>,
}

fn corpus() -> Vec<Case> {
    let v = json(&fixtures_dir().join("tokenizer/corpus.json"));
    let cases: Vec<Case> = v
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| Case {
            category: c["category"].as_str().unwrap().to_owned(),
            text: c["text"].as_str().unwrap().to_owned(),
            ids: serde_json::from_value(c["ids"].clone()).unwrap(),
            open_clip_ids: serde_json::from_value(c["open_clip_ids"].clone()).unwrap(),
            open_clip_ids_no_mojibake_repair: serde_json::from_value(
                c["open_clip_ids_no_mojibake_repair"].clone(),
            )
            .unwrap(),
        })
        .collect();
    assert!(
        cases.len() >= 500,
        "the corpus holds {} strings",
        cases.len()
    );
    cases
}

/// Every corpus string's ids, or the first few that differ.
fn check(tok: &ClipTokenizer, what: &str) {
    let cases = corpus();
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = tok.encode(&c.text).unwrap();
            (got != c.ids).then(|| format!("{:?} ({}): {got:?} vs {:?}", c.text, c.category, c.ids))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} strings differ from transformers, e.g.\n{}",
        wrong.len(),
        cases.len(),
        wrong.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "{what}: {} strings, all identical to transformers",
        cases.len()
    );
}

#[test]
fn tokenizer_json_matches_transformers_on_the_corpus() {
    check(
        &ClipTokenizer::from_tokenizer_json(model_dir("demo").join("tokenizer.json")).unwrap(),
        "tokenizer.json",
    );
}

#[test]
fn vocab_and_merges_match_transformers_on_the_corpus() {
    let dir = model_dir("demo");
    check(
        &ClipTokenizer::from_vocab_merges(dir.join("vocab.json"), dir.join("merges.txt")).unwrap(),
        "vocab.json + merges.txt",
    );
}

#[test]
fn openai_bpe_gz_matches_transformers_on_the_corpus() {
    let gz = fixtures_dir().join("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    let tok = ClipTokenizer::from_bpe_gz(&gz).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    assert_eq!(tok.special_ids(), (49406, 49407));
    check(&tok, "bpe_simple_vocab_16e6.txt.gz");
}

#[test]
fn a_batch_pads_with_the_end_token_and_masks_it() {
    let tok = ClipTokenizer::from_pretrained(model_dir("demo")).unwrap();
    let batch = tok.encode_batch(&["a photo of a cat", "a dog"]).unwrap();
    assert_eq!(batch.seq_len, 7);
    assert_eq!(batch.sequence(0), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert_eq!(batch.sequence(1), [49406, 320, 1929, 49407]);
    assert_eq!(
        &batch.ids[7..],
        [49406, 320, 1929, 49407, 49407, 49407, 49407]
    );
    assert_eq!(batch.attention_mask.iter().filter(|&&m| m).count(), 11);
}

/// open_clip's tokenizer, reproduced: every corpus string gets the ids open_clip gives
/// with ftfy's mojibake repair off (the one fixer [`clip_text::clean`] leaves out); the
/// agreement with open_clip itself is printed.
#[test]
fn open_clip_mode_matches_open_clip_but_for_mojibake_repair() {
    let gz = fixtures_dir().join("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    let tok = ClipTokenizer::from_bpe_gz(gz)
        .unwrap()
        .with_cleaning(TextCleaning::OpenClip);
    let cases = corpus();
    let mut same = 0;
    let mut wrong = Vec::new();
    for c in &cases {
        let got = tok.encode(&c.text).unwrap();
        same += usize::from(got == c.open_clip_ids);
        if got != c.open_clip_ids_no_mojibake_repair {
            wrong.push(format!("{:?} ({})", c.text, c.category));
        }
    }
    eprintln!(
        "open_clip mode: {same} of {} strings get open_clip's ids; the others are mojibake",
        cases.len()
    );
    assert!(
        wrong.is_empty(),
        "differ from open_clip without mojibake repair: {wrong:?}"
    );
    // The agreement the docs list (the 31 others hold mojibake that ftfy repairs).
    assert_eq!(same, 690, "strings with open_clip's own ids");
}
