//! The text tower under a forced process-wide setting, the tiled attention path, in a test
//! binary of its own so that the setting cannot change other tests' numbers mid-test.

mod support;

use support::{check_tower, model_dir, tower};

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
