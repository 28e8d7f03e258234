//! The activations CLIP checkpoints use, applied in place.
//!
//! | `Activation` | formula | HF `hidden_act` |
//! |---|---|---|
//! | `QuickGelu` | `x · σ(1.702 x)` | `quick_gelu` (OpenAI weights) |
//! | `Gelu` | `x · Φ(x) = ½x(1 + erf(x/√2))` | `gelu` (LAION / open_clip) |
//! | `GeluTanh` | `½x(1 + tanh(√(2/π)(x + 0.044715 x³)))` | `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast` |

use super::math;
use rayon::prelude::*;
use std::fmt;

/// A pointwise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x · σ(1.702 x)`, OpenAI CLIP's approximation.
    QuickGelu,
    /// The exact GELU `½x(1 + erf(x/√2))`.
    Gelu,
    /// The tanh approximation of GELU.
    GeluTanh,
}

impl Activation {
    /// The activation an HF `hidden_act` string names, or `None` for one this crate lacks.
    ///
    /// ```
    /// use vit_tensor::Activation;
    /// assert_eq!(Activation::from_hf_name("quick_gelu"), Some(Activation::QuickGelu));
    /// assert_eq!(Activation::from_hf_name("gelu_pytorch_tanh"), Some(Activation::GeluTanh));
    /// assert_eq!(Activation::from_hf_name("swish"), None);
    /// ```
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            _ => None,
        }
    }

    /// The canonical HF name (`gelu_new` for the tanh form).
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::QuickGelu => "quick_gelu",
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_new",
        }
    }

    /// The activation of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::QuickGelu => x * math::sigmoid(1.702 * x),
            Self::Gelu => 0.5 * x * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
            }
        }
    }

    /// Applies the activation to every element of `x` (in parallel chunks on the rayon
    /// threads when `x` is large).
    pub fn apply_inplace(self, x: &mut [f32]) {
        if x.len() >= 2 * PARALLEL_CHUNK {
            x.par_chunks_mut(PARALLEL_CHUNK)
                .for_each(|c| self.apply_chunk(c));
        } else {
            self.apply_chunk(x);
        }
    }

    /// Applies the activation to every element of `x` on this thread, compiled for the
    /// widest vectors the CPU has (AVX-512, AVX2, …: chosen at run time by `pulp`).
    pub fn apply_chunk(self, x: &mut [f32]) {
        pulp::Arch::new().dispatch(ApplyChunk { act: self, x });
    }
}

/// [`Activation::apply_chunk`]'s loop, as a `pulp` kernel: its body is inlined into a
/// function compiled with the dispatched target features, where it auto-vectorises.
struct ApplyChunk<'a> {
    act: Activation,
    x: &'a mut [f32],
}

impl pulp::WithSimd for ApplyChunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        // One loop per variant so each compiles to a branch-free SIMD body.
        match self.act {
            Activation::QuickGelu => self
                .x
                .iter_mut()
                .for_each(|v| *v = Activation::QuickGelu.apply(*v)),
            Activation::Gelu => self
                .x
                .iter_mut()
                .for_each(|v| *v = Activation::Gelu.apply(*v)),
            Activation::GeluTanh => self
                .x
                .iter_mut()
                .for_each(|v| *v = Activation::GeluTanh.apply(*v)),
        }
    }
}

/// Elements per parallel task of an elementwise pass (64 KiB of `f32`: fits in L2).
pub(crate) const PARALLEL_CHUNK: usize = 16_384;

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hf_name())
    }
}

/// `x · σ(1.702 x)` in place.
pub fn quick_gelu(x: &mut [f32]) {
    Activation::QuickGelu.apply_inplace(x);
}

/// Exact (erf) GELU in place.
pub fn gelu(x: &mut [f32]) {
    Activation::Gelu.apply_inplace(x);
}

/// Tanh-approximated GELU in place.
pub fn gelu_tanh(x: &mut [f32]) {
    Activation::GeluTanh.apply_inplace(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // Maclaurin series: fine for the |x| ≤ 6 / √2 used here.
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn activations_match_their_f64_formulas() {
        let xs: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.01).collect();
        for &x in &xs {
            let xd = f64::from(x);
            let quick = xd / (1.0 + (-1.702 * xd).exp());
            let exact = 0.5 * xd * (1.0 + erf64(xd / 2f64.sqrt()));
            let tanh = 0.5
                * xd
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3))).tanh());
            for (act, want) in [
                (Activation::QuickGelu, quick),
                (Activation::Gelu, exact),
                (Activation::GeluTanh, tanh),
            ] {
                let got = f64::from(act.apply(x));
                let tol = 4e-7 * (1.0 + xd.abs());
                assert!((got - want).abs() <= tol, "{act}({x}) = {got}, want {want}");
            }
        }
    }

    #[test]
    fn slices_equal_pointwise_application() {
        let mut v: Vec<f32> = (0..37).map(|i| i as f32 * 0.3 - 5.0).collect();
        let want: Vec<f32> = v.iter().map(|&x| Activation::Gelu.apply(x)).collect();
        gelu(&mut v);
        assert_eq!(v, want);
        let mut w = [-1.0f32, 0.0, 2.0];
        quick_gelu(&mut w);
        assert_eq!(w[1], 0.0);
        assert!((w[2] - 2.0 / (1.0 + (-3.404f32).exp())).abs() < 1e-6);
        let mut t = [3.0f32];
        gelu_tanh(&mut t);
        assert!((t[0] - 2.996_362_6).abs() < 1e-5);
    }

    #[test]
    fn names_round_trip() {
        for act in [
            Activation::QuickGelu,
            Activation::Gelu,
            Activation::GeluTanh,
        ] {
            assert_eq!(Activation::from_hf_name(act.hf_name()), Some(act));
        }
        assert_eq!(
            Activation::from_hf_name("gelu_fast"),
            Some(Activation::GeluTanh)
        );
        assert_eq!(Activation::from_hf_name("relu"), None);
    }
}
