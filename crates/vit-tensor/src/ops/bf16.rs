//! Bfloat16 linear layers: [`Bf16Weight`] (the weight rounded to bf16, half the memory of
//! f32) and [`linear_bf16`] (f32 activations and sums).
//!
//! The product widens the weight back to f32 per call, in parallel, into a reused
//! per-thread buffer, and runs the f32 product ([`crate::linear_with`]) on it: exact
//! products of the rounded weights. It saves memory, not time: at one image the widening
//! costs about as much as the product reads (docs/performance.md); a kernel reading bf16
//! panels directly (`vdpbf16ps` on AVX512_BF16) is not built yet.

use crate::error::{check_len, checked_mul, TensorResult};
use crate::ops::matmul::{linear_with, Epilogue, WeightLayout};
use half::bf16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::cell::Cell;

/// A linear layer's weight in bfloat16, `Wᵀ` `[in_features, out_features]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Bf16Weight {
    in_features: usize,
    out_features: usize,
    data: Vec<bf16>,
}

impl Bf16Weight {
    /// Rounds `weight` (`[out_features, in_features]` for [`WeightLayout::OutIn`],
    /// `[in_features, out_features]` for [`WeightLayout::InOut`]) to bf16, to nearest even.
    ///
    /// # Errors
    /// [`crate::TensorError::LengthMismatch`] when `weight` does not hold `in · out` values.
    pub fn round(
        weight: &[f32],
        layout: WeightLayout,
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        let n = checked_mul("Bf16Weight", "weight", in_features, out_features)?;
        check_len("Bf16Weight", "weight", n, weight.len())?;
        let data = match layout {
            WeightLayout::InOut => weight.iter().map(|&v| bf16::from_f32(v)).collect(),
            WeightLayout::OutIn => (0..n)
                .map(|i| {
                    bf16::from_f32(weight[(i % out_features) * in_features + i / out_features])
                })
                .collect(),
        };
        Ok(Self::from_bf16(data, in_features, out_features))
    }

    /// A weight already in bf16, `Wᵀ` `[in_features, out_features]` (a bf16 checkpoint's
    /// values, transposed, with no f32 copy).
    fn from_bf16(data: Vec<bf16>, in_features: usize, out_features: usize) -> Self {
        Self {
            in_features,
            out_features,
            data,
        }
    }

    /// A weight stored as bf16 in PyTorch's layout `[out_features, in_features]` (a bf16
    /// checkpoint's values), transposed without widening.
    ///
    /// # Errors
    /// [`crate::TensorError::LengthMismatch`] when `weight` does not hold `in · out` values.
    pub fn from_out_in(
        weight: &[bf16],
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        let n = checked_mul(
            "Bf16Weight",
            "weight [out_features, in_features]",
            in_features,
            out_features,
        )?;
        check_len(
            "Bf16Weight",
            "weight [out_features, in_features]",
            n,
            weight.len(),
        )?;
        let data = (0..n)
            .map(|i| weight[(i % out_features) * in_features + i / out_features])
            .collect();
        Ok(Self::from_bf16(data, in_features, out_features))
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// `Wᵀ` widened to f32, `[in_features, out_features]` (a copy).
    pub fn to_in_out(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.data.len()];
        self.data.convert_to_f32_slice(&mut w);
        w
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }
}

thread_local! {
    /// The calling thread's widened weight, reused across calls (taken out during a call).
    static WIDE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `out ← act(x · Wᵀ + b)`, or `out ← out + x · Wᵀ + b` when accumulating, with `W` in bf16.
///
/// # Shapes
/// - `x`: `[rows, in_features]`; `epilogue.bias`: `[out_features]`;
///   `out`: `[rows, out_features]`
///
/// # Errors
/// As [`crate::linear_with`].
pub fn linear_bf16(
    x: &[f32],
    weight: &Bf16Weight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) -> TensorResult<()> {
    let (k, n) = (weight.in_features, weight.out_features);
    let mut wide = WIDE.take();
    wide.resize(weight.data.len(), 0.0);
    const CHUNK: usize = 1 << 14;
    wide.par_chunks_mut(CHUNK)
        .zip(weight.data.par_chunks(CHUNK))
        .for_each(|(w, b)| b.convert_to_f32_slice(w));
    let result = linear_with(x, &wide, WeightLayout::InOut, [rows, k, n], out, epilogue);
    WIDE.set(wide);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LcgRng;

    #[test]
    fn the_product_is_exact_on_the_rounded_weight() {
        let (rows, k, n) = (5, 33, 21);
        let mut rng = LcgRng::new(9);
        let x = rng.normal_vec(rows * k, 0.0, 1.0);
        let w = rng.normal_vec(n * k, 0.0, 0.1);
        let b = rng.normal_vec(n, 0.0, 0.1);
        let q = Bf16Weight::round(&w, WeightLayout::OutIn, k, n).unwrap();
        assert_eq!(q.bytes(), 2 * k * n);
        let wt = q.to_in_out();
        for j in 0..n {
            for kk in 0..k {
                let (a, e) = (wt[kk * n + j], w[j * k + kk]);
                assert_eq!(a, bf16::from_f32(e).to_f32());
                assert!((a - e).abs() <= e.abs() / 256.0);
            }
        }
        let half: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(Bf16Weight::from_out_in(&half, k, n).unwrap(), q);
        let epilogue = Epilogue {
            bias: Some(&b),
            ..Epilogue::default()
        };
        let mut out = vec![0.0; rows * n];
        linear_bf16(&x, &q, rows, &mut out, epilogue).unwrap();
        let mut want = vec![0.0; rows * n];
        linear_with(
            &x,
            &wt,
            WeightLayout::InOut,
            [rows, k, n],
            &mut want,
            epilogue,
        )
        .unwrap();
        assert_eq!(out, want);
        assert!(linear_bf16(&x[1..], &q, rows, &mut out, epilogue).is_err());
        assert!(Bf16Weight::round(&w[1..], WeightLayout::OutIn, k, n).is_err());
    }
}
