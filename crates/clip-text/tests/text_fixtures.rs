//! The text tower against transformers (and open_clip) on the committed random-weight
//! fixtures of scripts/make_text_fixtures.py: `text_embeds`, `pooler_output` and
//! `last_hidden_state` of each id sequence, run alone and as one padded batch.

mod support;

use clip_checkpoint::TensorStore;
use clip_text::{ClipTextEncoder, ClipTextTower, Pooling, TextError, TextLoadOptions};
use std::path::Path;
use support::{assert_close, id_lists, json, model_dir, tensor};

/// Checks a tower against `reference{suffix}.safetensors` / `.json` in `dir`.
fn check_tower(dir: &Path, tower: &ClipTextTower, suffix: &str) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let meta = json(&dir.join(format!("{suffix}.json")));
    let reference = TensorStore::open_file(dir.join(format!("{suffix}.safetensors"))).unwrap();
    let ids = id_lists(&meta["input_ids"]);
    let d = tower.hidden_size();
    let padded = tower.forward_ids(&ids).unwrap();
    let mut pooled = Vec::new();
    let mut embeds = Vec::new();
    for (i, seq) in ids.iter().enumerate() {
        let alone = tower.forward_ids(std::slice::from_ref(seq)).unwrap();
        let want = tensor(&reference, &format!("last_hidden_state.{i}"));
        assert_close(
            &format!("{name} last_hidden_state.{i}"),
            &alone.last_hidden_state,
            &want,
        );
        let start = i * padded.seq_len * d;
        assert_close(
            &format!("{name} last_hidden_state.{i} in the padded batch"),
            &padded.last_hidden_state[start..start + seq.len() * d],
            &want,
        );
        pooled.extend(alone.pooler_output);
        if let Some(e) = alone.text_embeds {
            embeds.extend(e);
        }
    }
    assert_close(
        &format!("{name} pooler_output"),
        &pooled,
        &tensor(&reference, "pooler_output"),
    );
    assert_close(
        &format!("{name} pooler_output (padded batch)"),
        &padded.pooler_output,
        &tensor(&reference, "pooler_output"),
    );
    if reference.contains("text_embeds") {
        let want = tensor(&reference, "text_embeds");
        assert_close(&format!("{name} text_embeds"), &embeds, &want);
        assert_close(
            &format!("{name} text_embeds (padded batch)"),
            padded.text_embeds.as_deref().unwrap(),
            &want,
        );
    } else {
        assert!(
            tower.projection.is_none(),
            "{name}: a projection the reference lacks"
        );
    }
}

fn tower(name: &str) -> ClipTextTower {
    ClipTextTower::from_pretrained(model_dir(name), &TextLoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn text_model_with_projection_exact_gelu_matches() {
    let t = tower("text-gelu");
    assert_eq!(t.pooling, Pooling::FirstEos(499));
    check_tower(&model_dir("text-gelu"), &t, "reference");
}

/// The tiled attention path under the text tower's causal and padding masks, on every
/// kernel path this CPU has, keeps the transformers tolerance.
#[test]
fn tiled_attention_matches_transformers_under_masks() {
    use vit_layers::attention::{force_attention_path, AttentionPath};
    use vit_tensor::kernels::{force_kernel_path, KernelPath};
    force_attention_path(Some(AttentionPath::Tiled));
    for path in KernelPath::supported() {
        force_kernel_path(Some(path)).unwrap();
        check_tower(&model_dir("text-gelu"), &tower("text-gelu"), "reference");
    }
    force_kernel_path(None).unwrap();
    force_attention_path(None);
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
