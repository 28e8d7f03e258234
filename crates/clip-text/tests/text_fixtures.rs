//! The text tower against transformers (and open_clip) on the committed random-weight
//! fixtures of scripts/make_text_fixtures.py: `text_embeds`, `pooler_output` and
//! `last_hidden_state` of each id sequence, run alone and as one padded batch.

mod support;

use clip_text::{ClipTextEncoder, ClipTextTower, Pooling, TextError, TextLoadOptions};
use support::{check_tower, model_dir, tower};

#[test]
fn text_model_with_projection_exact_gelu_matches() {
    let t = tower("text-gelu");
    assert_eq!(t.pooling, Pooling::FirstEos(499));
    check_tower(&model_dir("text-gelu"), &t, "reference");
}

#[test]
fn legacy_eos_token_id_pools_at_the_argmax() {
    let t = tower("text-legacy-eos");
    assert_eq!(t.pooling, Pooling::Argmax);
    check_tower(&model_dir("text-legacy-eos"), &t, "reference");
}

#[test]
fn text_model_without_projection_matches() {
    let t = tower("text-model-noproj");
    assert!(t.projection.is_none());
    check_tower(&model_dir("text-model-noproj"), &t, "reference");
}

#[test]
fn whole_clip_model_text_tower_matches() {
    check_tower(
        &model_dir("clip-text-full"),
        &tower("clip-text-full"),
        "reference",
    );
}

#[test]
fn openai_naming_without_config_matches() {
    let dir = model_dir("openai-text");
    let t =
        ClipTextTower::from_pretrained(dir.join("model.safetensors"), &TextLoadOptions::default())
            .unwrap();
    assert_eq!(t.pooling, Pooling::Argmax);
    assert_eq!(t.config.num_attention_heads, 2, "OpenAI's rule: width / 64");
    check_tower(&dir, &t, "reference");
}

#[test]
fn open_clip_directory_text_tower_matches_open_clip() {
    let dir = model_dir("open-clip");
    check_tower(&dir, &tower("open-clip"), "text_reference");
}

#[test]
fn a_checkpoint_without_tokenizer_files_says_which_are_missing() {
    let err = ClipTextEncoder::from_pretrained(model_dir("text-gelu")).unwrap_err();
    assert!(matches!(err, TextError::MissingTokenizer { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer.json, vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz"),
        "{msg}"
    );
}

#[test]
fn a_vision_only_checkpoint_has_no_text_tower() {
    let err = ClipTextTower::from_pretrained(model_dir("tiny-gelu"), &TextLoadOptions::default())
        .unwrap_err();
    assert!(matches!(err, TextError::NoTextTower { .. }), "{err}");
    assert!(err.to_string().contains("CLIPModel"), "{err}");
}

#[test]
fn ids_past_the_embedding_table_are_refused() {
    let t = tower("text-gelu");
    let err = t.forward_ids(&[vec![498, 500, 499]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sequence 0: token id 500 is not below the vocabulary size 500"
    );
    let err = t.forward_ids(&[vec![1; 21]]).unwrap_err();
    assert!(
        matches!(
            err,
            TextError::SequenceLength {
                len: 21,
                max: 20,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_tokenizer_larger_than_the_embedding_table_is_refused() {
    let tokenizer = clip_text::ClipTokenizer::from_pretrained(model_dir("demo")).unwrap();
    let err = ClipTextEncoder::from_parts(tower("text-gelu"), tokenizer).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "tokenizer.json: the tokenizer's ids go up to 49407 but the text tower's embedding table has 500 rows"
        ),
        "{err}"
    );
}
