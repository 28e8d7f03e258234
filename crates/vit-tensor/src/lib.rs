//! Flat row-major `f32` kernels for Vision Transformers.
//!
//! `vit-tensor` is the bottom of the clip-vision workspace: it holds the numerical kernels
//! every layer is built from — weights packed once for its own micro-kernels
//! ([`PackedWeight`], [`linear_packed`]; [`kernels`] picks AVX-512, AVX2 + FMA or portable
//! code at run time), a checked wrapper around [`matrixmultiply::sgemm`]
//! ([`gemm()`](fn@gemm)), [`linear`] (`x·Wᵀ + b`), [`layer_norm`], [`softmax_rows`], the GELU family
//! ([`Activation`]), the residual add — plus [`LcgRng`] for reproducible random weights and
//! the shared error type [`TensorError`].
//!
//! The design decision that shapes it: a tensor is a flat `&[f32]` plus the dimensions the
//! caller passes, row-major always, with PyTorch's `[out_features, in_features]` weight
//! layout. There is no tensor type to learn, and every function checks that the lengths
//! agree with the dimensions before it reads.
//!
//! It does **not** know layers, models, files or JSON: those live in the crates above it
//! (`vit-layers`, `vit-encoder`, `clip-vision`). The `unsafe` call into `sgemm` in
//! [`gemm`](mod@gemm) and the micro-kernels in [`kernels`] are the only `unsafe` code in the
//! workspace.
//!
//! **Which feature is the fast path.** The default build multiplies by matrixmultiply (the
//! design's choice: small, portable). The fast path, what the `clip-vision` command and the
//! Python package ship on x86-64, is the features `gemm` and `packed` together: `packed` puts the
//! linear layers on [`PackedWeight`]'s panels (packed once, at load) and this crate's own
//! micro-kernels, `gemm` every other product on the `gemm` crate's kernels (both AVX-512 /
//! AVX2 chosen at run time); 1.5–2× faster end to end than the default (docs/benchmarks.md,
//! docs/performance.md).
//!
//! ```
//! use vit_tensor::{linear, layer_norm, Activation};
//! // Two tokens of width 2 through LayerNorm, a 2 → 3 linear layer and quick GELU.
//! let x = [1.0, 3.0, -2.0, 2.0];
//! let h = layer_norm(&x, &[1.0, 1.0], &[0.0, 0.0], 2, 1e-5)?;
//! let mut y = linear(&h, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], None, 2, 2, 3)?;
//! Activation::QuickGelu.apply_inplace(&mut y);
//! assert_eq!(y.len(), 6);
//! # Ok::<(), vit_tensor::TensorError>(())
//! ```

pub mod error;
#[allow(unsafe_code)]
pub mod gemm;
#[allow(unsafe_code)]
pub mod kernels;
pub mod ops;
pub mod rng;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{TensorError, TensorResult};
pub use gemm::{gemm, MatMut, MatRef};
pub use ops::activation::{gelu, gelu_tanh, quick_gelu, Activation};
pub use ops::bf16::{linear_bf16, Bf16Weight};
pub use ops::elementwise::{add_inplace, add_row_inplace};
pub use ops::matmul::{
    linear, linear_add_into, linear_into, linear_with, matmul, Epilogue, WeightLayout,
};
pub use ops::norm::{layer_norm, layer_norm_inplace, layer_norm_into};
pub use ops::packed::{linear_packed, PackedWeight, PACKED_KERNELS};
pub use ops::parallel::on_worker;
pub use ops::precision::Precision;
pub use ops::quant::{linear_int8, QuantizedWeight};
pub use ops::softmax::softmax_rows;
pub use rng::LcgRng;
