//! The bundled demo model end to end from strings: the real CLIP tokenizer and the demo's
//! text tower against transformers' `get_text_features`.

mod support;

use clip_checkpoint::TensorStore;
use clip_text::ClipTextEncoder;
use support::{assert_close, json, model_dir, tensor};

#[test]
fn demo_text_embeds_match_transformers_from_strings() {
    let dir = model_dir("demo");
    let meta = json(&dir.join("reference.json"));
    let reference = TensorStore::open_file(dir.join("reference.safetensors")).unwrap();
    let text = ClipTextEncoder::from_pretrained(&dir).unwrap();
    for case in meta["text_ids"].as_array().unwrap() {
        let s = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(text.tokenizer.encode(s).unwrap(), want, "{s:?}");
    }
    for (key, field) in [
        ("labels", "text_embeds.labels"),
        ("queries", "text_embeds.queries"),
    ] {
        let texts: Vec<&str> = meta[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Batch sizes 1 and 64: one text at a time and one padded batch agree.
        for batch in [1, 64] {
            let got: Vec<f32> = text
                .clone()
                .with_batch_size(batch)
                .text_embeds(&texts)
                .unwrap()
                .concat();
            assert_close(
                &format!("demo {field} (batch {batch})"),
                &got,
                &tensor(&reference, field),
            );
        }
    }
}
