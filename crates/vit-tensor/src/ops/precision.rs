//! [`Precision`]: the number format a linear layer holds its weight in and multiplies by.

use crate::error::{TensorError, TensorResult};

/// The number format of a linear layer's weight (and of its product).
///
/// - [`Precision::F32`]: the checkpoint's values, f32 products (exact; the default).
/// - [`Precision::Int8`]: symmetric int8 weights with one scale per output channel,
///   activations quantized per row at run time, exact i32 sums ([`crate::ops::quant`]).
///   A quarter of the memory.
/// - [`Precision::Bf16`]: weights rounded to bfloat16 (half the memory), activations and
///   sums in f32 ([`crate::ops::bf16`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 8-bit integers, per-channel scales.
    Int8,
    /// bfloat16 weights, f32 arithmetic.
    Bf16,
}

impl Precision {
    /// Every precision, in the order `--precision` lists them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Int8, Precision::Bf16];

    /// The name the CLI, the Python package and the output records use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = TensorError;

    fn from_str(s: &str) -> TensorResult<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "precision",
                what: "name",
                value: s.to_owned(),
                reason: "expected f32, int8 or bf16",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert_eq!(Precision::default(), Precision::F32);
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.to_string().contains("fp16"), "{err}");
    }
}
