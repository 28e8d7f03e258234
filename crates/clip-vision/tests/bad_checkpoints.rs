//! Every disagreement between a checkpoint and what it must hold is an error that names the
//! tensor and the expected and found shape or dtype — never a silent fallback.

mod common;

use clip_vision::checkpoint::CheckpointError;
use clip_vision::{Activation, ClipVisionEncoder, LoadOptions, VisionError};
use common::model_dir;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Raw tensors of a safetensors file: name → (dtype, shape, bytes).
type Raw = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn read_raw(path: &Path) -> Raw {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            )
        })
        .collect()
}

fn write_raw(path: &Path, raw: &Raw) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
        .iter()
        .map(|(n, (d, s, b))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A copy of a fixture directory (config files and weights, not the reference) in a temp dir.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(model_dir(name)).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name();
        if !file.to_string_lossy().starts_with("reference") {
            std::fs::copy(entry.path(), dst.join(&file)).unwrap();
        }
    }
    (tmp, dst)
}

/// The fixture `tiny-gelu-tanh` (30 wide, 2 layers) with its weights edited.
fn edited(edit: impl FnOnce(&mut Raw)) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = copy_fixture("tiny-gelu-tanh");
    let file = dir.join("model.safetensors");
    let mut raw = read_raw(&file);
    edit(&mut raw);
    write_raw(&file, &raw);
    (tmp, dir)
}

fn edit_config(dir: &Path, file: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(file);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

fn load_err(path: &Path) -> VisionError {
    ClipVisionEncoder::from_pretrained(path).expect_err("the checkpoint must be refused")
}

#[test]
fn a_missing_tensor_is_named() {
    let gone = "vision_model.encoder.layers.1.mlp.fc2.bias";
    let (_tmp, dir) = edited(|raw| {
        raw.remove(gone);
    });
    match load_err(&dir) {
        VisionError::Checkpoint(CheckpointError::MissingTensor { name, .. }) => {
            assert_eq!(name, gone)
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_wrong_shape_names_tensor_and_both_shapes() {
    let name = "vision_model.post_layernorm.weight";
    let (_tmp, dir) = edited(|raw| {
        let t = raw.get_mut(name).unwrap();
        t.1 = vec![29];
        t.2.truncate(29 * 4);
    });
    let err = load_err(&dir);
    assert!(
        err.to_string().contains("[29]") && err.to_string().contains("[30]"),
        "{err}"
    );
    match err {
        VisionError::Checkpoint(CheckpointError::TensorShape {
            name: n,
            expected,
            got,
            ..
        }) => {
            assert_eq!((n.as_str(), expected, got), (name, vec![30], vec![29]))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn an_unsupported_dtype_is_named() {
    for (dtype, width) in [(Dtype::F64, 8), (Dtype::I64, 8), (Dtype::U8, 1)] {
        let name = "vision_model.pre_layrnorm.weight";
        let (_tmp, dir) = edited(|raw| {
            let t = raw.get_mut(name).unwrap();
            t.0 = dtype;
            t.2 = vec![0u8; 30 * width];
        });
        match load_err(&dir) {
            VisionError::Checkpoint(CheckpointError::UnsupportedDtype {
                name: n,
                dtype: d,
                ..
            }) => {
                assert_eq!(n, name);
                assert_eq!(d, format!("{dtype:?}"));
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn an_unknown_activation_is_refused() {
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    edit_config(&dir, "config.json", |v| v["hidden_act"] = "swish".into());
    match load_err(&dir) {
        VisionError::UnknownActivation { name, path } => {
            assert_eq!(name, "swish");
            assert!(
                path.is_some_and(|p| p.ends_with("config.json")),
                "the error names the file"
            );
        }
        other => panic!("{other}"),
    }
    // The caller's activation overrides the config's.
    let opts = LoadOptions {
        activation: Some(Activation::GeluTanh),
        ..LoadOptions::default()
    };
    assert!(ClipVisionEncoder::from_pretrained_with(&dir, &opts).is_ok());
}

#[test]
fn config_and_weights_that_disagree_are_refused() {
    // Wider in the config than in the weights.
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    edit_config(&dir, "config.json", |v| v["hidden_size"] = 32.into());
    match load_err(&dir) {
        VisionError::Checkpoint(CheckpointError::TensorShape {
            name,
            expected,
            got,
            ..
        }) => {
            assert_eq!(name, "vision_model.embeddings.patch_embedding.weight");
            assert_eq!((expected[0], got[0]), (32, 30));
        }
        other => panic!("{other}"),
    }
    // Fewer layers in the config than in the weights.
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    edit_config(&dir, "config.json", |v| v["num_hidden_layers"] = 1.into());
    let err = load_err(&dir);
    assert!(
        matches!(
            err,
            VisionError::Checkpoint(CheckpointError::Invalid { .. })
        ) && err.to_string().contains("layers.1"),
        "{err}"
    );
    // A projection width that is not the tensor's.
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    edit_config(&dir, "config.json", |v| v["projection_dim"] = 17.into());
    match load_err(&dir) {
        VisionError::Checkpoint(CheckpointError::TensorShape { name, .. }) => {
            assert_eq!(name, "visual_projection.weight")
        }
        other => panic!("{other}"),
    }
    // An image size whose position table is not the stored one.
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    edit_config(&dir, "config.json", |v| v["image_size"] = 28.into());
    match load_err(&dir) {
        VisionError::Checkpoint(CheckpointError::TensorShape { name, .. }) => {
            assert_eq!(name, "vision_model.embeddings.position_embedding.weight")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_truncated_weights_file_is_refused() {
    let (_tmp, dir) = copy_fixture("tiny-gelu-tanh");
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_err(&dir);
    assert!(
        matches!(
            err,
            VisionError::Checkpoint(CheckpointError::Invalid { .. })
        ) && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn shards_that_are_missing_or_mislisted_are_refused() {
    let (_tmp, dir) = copy_fixture("sharded");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shard = index["weight_map"]["vision_model.post_layernorm.weight"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(dir.join(&shard)).unwrap();
    match load_err(&dir) {
        VisionError::Checkpoint(CheckpointError::Io { path, .. }) => {
            assert!(path.ends_with(&shard), "{}", path.display())
        }
        other => panic!("{other}"),
    }

    let (_tmp, dir) = copy_fixture("sharded");
    let other_shard = index["weight_map"]["vision_model.embeddings.class_embedding"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(other_shard, shard);
    edit_config(&dir, "model.safetensors.index.json", |v| {
        v["weight_map"]["vision_model.post_layernorm.weight"] = other_shard.clone().into();
    });
    let err = load_err(&dir);
    assert!(err.to_string().contains("does not hold it"), "{err}");

    let (_tmp, dir) = copy_fixture("sharded");
    edit_config(&dir, "model.safetensors.index.json", |v| {
        v["weight_map"]["vision_model.post_layernorm.weight"] = "../model.safetensors".into();
    });
    assert!(load_err(&dir)
        .to_string()
        .contains("not a file name beside the index"));
}

#[test]
fn openai_weights_without_config_need_the_activation_and_heads() {
    let file = model_dir("openai-naming").join("tiny.safetensors");
    match ClipVisionEncoder::from_pretrained(&file).unwrap_err() {
        VisionError::InvalidConfig { field, reason, .. } => {
            assert_eq!(field, "hidden_act");
            assert!(reason.contains("LoadOptions::activation"), "{reason}");
        }
        other => panic!("{other}"),
    }
    // open-clip's tensors are 48 wide: not OpenAI's 64-wide heads.
    let file = model_dir("open-clip").join("open_clip_model.safetensors");
    let opts = LoadOptions {
        activation: Some(Activation::Gelu),
        ..LoadOptions::default()
    };
    match ClipVisionEncoder::from_pretrained_with(&file, &opts).unwrap_err() {
        VisionError::InvalidConfig { field, .. } => assert_eq!(field, "num_attention_heads"),
        other => panic!("{other}"),
    }
    let opts = LoadOptions {
        num_attention_heads: Some(4),
        ..opts
    };
    assert!(ClipVisionEncoder::from_pretrained_with(&file, &opts).is_ok());
}

#[test]
fn open_clip_features_we_lack_are_refused() {
    let (_tmp, dir) = copy_fixture("open-clip");
    edit_config(&dir, "open_clip_config.json", |v| {
        v["model_cfg"]["vision_cfg"]["ls_init_value"] = 0.1.into()
    });
    match load_err(&dir) {
        VisionError::InvalidConfig { field, .. } => assert_eq!(field, "vision_cfg.ls_init_value"),
        other => panic!("{other}"),
    }
}

#[test]
fn directories_without_usable_weights_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(load_err(tmp.path()).to_string().contains("no .safetensors"));
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"pickle").unwrap();
    assert!(load_err(tmp.path()).to_string().contains("pickle"));
    // HF-named weights alone: their config.json is needed.
    let file = model_dir("tiny-gelu-tanh").join("model.safetensors");
    assert!(load_err(&file).to_string().contains("config.json"));
    // A path that is neither a file nor a hub id.
    assert!(matches!(
        load_err(Path::new("/nonexistent/model")),
        VisionError::Checkpoint(CheckpointError::Io { .. })
    ));
}
