//! Block and encoder against their definitions, composed from the layers by hand.

use crate::{ViTBlock, ViTEncoder};
use proptest::prelude::*;
use vit_layers::LayerNorm;
use vit_tensor::{add_inplace, Activation, LcgRng, TensorError};

/// A block with non-trivial LayerNorms, so that norm1/norm2 mix-ups show.
fn block(dim: usize, heads: usize, inter: usize, rng: &mut LcgRng) -> ViTBlock {
    let mut b = ViTBlock::random(dim, heads, inter, Activation::QuickGelu, 1e-5, 0.3, rng).unwrap();
    b.layer_norm1 = LayerNorm::new(
        rng.uniform_vec(dim, 0.5, 1.5),
        rng.uniform_vec(dim, -0.2, 0.2),
        1e-5,
    )
    .unwrap();
    b.layer_norm2 = LayerNorm::new(
        rng.uniform_vec(dim, 0.5, 1.5),
        rng.uniform_vec(dim, -0.2, 0.2),
        1e-5,
    )
    .unwrap();
    b
}

#[test]
fn block_is_pre_norm_residual() {
    let mut rng = LcgRng::new(9);
    let (dim, t) = (8, 5);
    let b = block(dim, 2, 12, &mut rng);
    let x = rng.normal_vec(t * dim, 0.0, 1.0);
    let mut want = x.clone();
    let a = b
        .attn
        .forward(&b.layer_norm1.forward(&x).unwrap(), 1, t)
        .unwrap();
    add_inplace(&mut want, &a).unwrap();
    let m = b
        .mlp
        .forward(&b.layer_norm2.forward(&want).unwrap(), t)
        .unwrap();
    add_inplace(&mut want, &m).unwrap();
    let mut got = x;
    b.forward_inplace(&mut got, 1, t).unwrap();
    assert_eq!(got, want);
}

#[test]
fn encoder_layers_compose_and_pool_normalises_token_zero() {
    let mut rng = LcgRng::new(4);
    let (dim, t, batch) = (8, 3, 2);
    let blocks: Vec<_> = (0..3).map(|_| block(dim, 4, 10, &mut rng)).collect();
    let norm = LayerNorm::new(
        rng.uniform_vec(dim, 0.5, 1.5),
        rng.uniform_vec(dim, -0.2, 0.2),
        1e-5,
    )
    .unwrap();
    let enc = ViTEncoder::new(blocks, norm).unwrap();
    let x = rng.normal_vec(batch * t * dim, 0.0, 1.0);

    let mut two = x.clone();
    enc.forward_layers(&mut two, batch, t, 2).unwrap();
    let mut by_hand = x.clone();
    for b in &enc.layers[..2] {
        b.forward_inplace(&mut by_hand, batch, t).unwrap();
    }
    assert_eq!(two, by_hand);

    let mut all = x.clone();
    enc.forward_hidden(&mut all, batch, t).unwrap();
    let pooled = enc.pool_cls(&all, batch, t).unwrap();
    for b in 0..batch {
        let cls = &all[b * t * dim..b * t * dim + dim];
        assert_eq!(
            &pooled[b * dim..(b + 1) * dim],
            &enc.final_norm.forward(cls).unwrap()[..]
        );
    }
    let normed = enc.forward(&x, batch, t).unwrap();
    assert_eq!(normed, enc.final_norm.forward(&all).unwrap());

    assert!(matches!(
        enc.forward_layers(&mut all, batch, t, 4),
        Err(TensorError::InvalidArgument {
            what: "n_layers",
            ..
        })
    ));
    assert!(matches!(
        enc.forward_hidden(&mut all[1..], batch, t),
        Err(TensorError::LengthMismatch { .. })
    ));
}

#[test]
fn widths_must_agree() {
    let mut rng = LcgRng::new(0);
    let b8 = block(8, 2, 4, &mut rng);
    assert!(matches!(
        ViTEncoder::new(vec![b8.clone()], LayerNorm::identity(6, 1e-5).unwrap()),
        Err(TensorError::DimMismatch {
            left: 8,
            right: 6,
            ..
        })
    ));
    let b6 = block(6, 2, 4, &mut rng);
    assert!(ViTBlock::new(
        b8.layer_norm1.clone(),
        b6.attn.clone(),
        b8.layer_norm2.clone(),
        b8.mlp.clone()
    )
    .is_err());
}

proptest! {
    /// Sequences of a batch never see each other, and shapes are kept.
    #[test]
    fn encoder_batch_equals_sequences(dim_per_head in 1usize..5, heads in 1usize..4, depth in 0usize..3, t in 1usize..6, batch in 1usize..4, seed: u64) {
        let mut rng = LcgRng::new(seed);
        let dim = dim_per_head * heads;
        let blocks: Vec<_> = (0..depth).map(|_| block(dim, heads, 2 * dim + 1, &mut rng)).collect();
        let enc = ViTEncoder::new(blocks, LayerNorm::identity(dim, 1e-5).unwrap()).unwrap();
        let x = rng.normal_vec(batch * t * dim, 0.0, 1.0);
        let mut y = x.clone();
        enc.forward_hidden(&mut y, batch, t).unwrap();
        prop_assert_eq!(y.len(), x.len());
        let per = t * dim;
        for b in 0..batch {
            let mut alone = x[b * per..(b + 1) * per].to_vec();
            enc.forward_hidden(&mut alone, 1, t).unwrap();
            // Bit-identical with matrixmultiply; the `gemm` backend may order a row's dot products
            // differently when the number of rows changes.
            for (a, y) in alone.iter().zip(&y[b * per..(b + 1) * per]) {
                prop_assert!((a - y).abs() <= 1e-5 * y.abs().max(1.0), "{} vs {}", a, y);
            }
        }
        prop_assert_eq!(enc.pool_cls(&y, batch, t).unwrap().len(), batch * dim);
    }
}

#[test]
fn a_right_padded_causal_batch_gives_each_sequence_its_unpadded_rows() {
    use vit_layers::AttentionMask;
    let mut rng = LcgRng::new(21);
    let (dim, seq_len) = (12, 6);
    let encoder = ViTEncoder::new(
        (0..2).map(|_| block(dim, 3, 20, &mut rng)).collect(),
        LayerNorm::identity(dim, 1e-5).unwrap(),
    )
    .unwrap();
    let lens = [6usize, 2, 4];
    let mut x = rng.normal_vec(lens.len() * seq_len * dim, 0.0, 1.0);
    let keep: Vec<bool> = lens
        .iter()
        .flat_map(|&n| (0..seq_len).map(move |t| t < n))
        .collect();
    let original = x.clone();
    let mask = AttentionMask::causal().with_padding(&keep);
    encoder
        .forward_layers_masked(&mut x, lens.len(), seq_len, 2, mask)
        .unwrap();
    for (b, &n) in lens.iter().enumerate() {
        let start = b * seq_len * dim;
        let mut alone = original[start..start + n * dim].to_vec();
        encoder
            .forward_layers_masked(&mut alone, 1, n, 2, AttentionMask::causal())
            .unwrap();
        for (a, p) in alone.iter().zip(&x[start..start + n * dim]) {
            assert!(
                (a - p).abs() <= 1e-5 * p.abs().max(1.0),
                "seq {b}: {a} vs {p}"
            );
        }
    }
}
