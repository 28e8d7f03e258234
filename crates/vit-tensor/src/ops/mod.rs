//! Row-major `f32` operations, one module per family.
//!
//! Every op takes flat slices plus the dimensions that give them a shape, checks that the
//! lengths agree, and says which buffer is wrong when they do not.

pub mod activation;
pub mod attention;
pub mod bf16;
pub mod elementwise;
pub mod math;
pub mod matmul;
pub mod norm;
pub mod packed;
pub mod parallel;
pub mod precision;
pub mod quant;
pub mod softmax;
pub(crate) mod split;
