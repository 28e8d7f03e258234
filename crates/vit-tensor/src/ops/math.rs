//! Scalar `exp`, `erf` and `tanh` written to vectorise, and a pairwise-ish sum.
//!
//! These are branch-free so that a loop over a slice compiles to SIMD even on the baseline
//! x86-64 target (SSE2), where `f32::exp` would be a libm call per element.
//! Accuracy (checked against `f64` in the tests): `exp` within 2 ulp, `erf` within 1.5e-7
//! absolute, `tanh` within 3e-7 absolute.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part with few mantissa bits (so `n · LN2_HI` is exact) and the rest.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2²³: adding and subtracting it rounds an `f32` of magnitude < 2²² to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// 2²³: for an integer `0 ≤ v < 2²³`, the mantissa bits of `2²³ + v` are `v`.
const ROUND_MAGIC_23: f32 = 8_388_608.0;

/// `eˣ` for `f32`.
///
/// Overflows to `+∞` above ln(f32::MAX) ≈ 88.72 and flushes to `0` below
/// ln(f32::MIN_POSITIVE) ≈ −87.34, where the true value would be subnormal; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const HI: f32 = 88.722_83;
    const LO: f32 = -87.336_55;
    let xc = x.clamp(LO, HI);
    // x = n·ln2 + r with n an integer in [-126, 128] and |r| ≤ ln2 / 2.
    let n = (xc * LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Taylor polynomial of degree 7 for eʳ: the remainder is below 1e-8 relative.
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2ⁿ as 2ⁿ¹ · 2ⁿ² built from exponent bits, each factor in range even at n = 128 or
    // n = −126. The integers are read off the mantissa of `2²³ + v` rather than with an
    // `as i32` cast, which is saturating and would not vectorise (NaN stays NaN through p).
    let n1 = (0.5 * n + ROUND_MAGIC) - ROUND_MAGIC;
    let n2 = n - n1;
    let exponent_bits =
        |e: f32| ((e + 127.0 + ROUND_MAGIC_23).to_bits() - ROUND_MAGIC_23.to_bits()) << 23;
    let s1 = f32::from_bits(exponent_bits(n1));
    let s2 = f32::from_bits(exponent_bits(n2));
    let y = p * s1 * s2;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else {
        y
    }
}

/// `eˣ` for the arguments a softmax takes, `x ≤ 0` (`x − max`): [`exp`]'s polynomial with
/// one exponent scaling instead of two and no overflow branch, about a third fewer
/// instructions. Within 2 ulp like [`exp`] for `−87.34 ≤ x ≤ 0`; `0` below (and for `−∞`);
/// NaN stays NaN. Also exact to 2 ulp for `0 < x ≤ 88`, where `2ⁿ` is still a normal
/// number; not for larger `x`.
///
/// Written with `mul_add`: call it from code compiled with FMA (a `pulp` dispatch, as the
/// softmax loops are), where each is one instruction; without FMA each is a libm call.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LO: f32 = -87.336_55;
    // `x < LO` is false for NaN, which then flows through to the result.
    let xc = if x < LO { LO } else { x };
    let n = (xc * LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p: f32 = 1.0 / 5040.0;
    p = p.mul_add(r, 1.0 / 720.0);
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    // n ∈ [−126, 127]: n + 127 ∈ [1, 254] is the biased exponent of 2ⁿ.
    let bits = ((n + 127.0 + ROUND_MAGIC_23).to_bits() - ROUND_MAGIC_23.to_bits()) << 23;
    let y = p * f32::from_bits(bits);
    if x < LO {
        0.0
    } else {
        y
    }
}

/// The error function `erf(x) = 2/√π ∫₀ˣ e^(−t²) dt`, within 1.5e-7 absolute (≈ 2 ulp).
///
/// Two branches, both evaluated so the loop stays branch-free:
/// - `|x| < 0.75`: the Maclaurin series `x · Σ cₙ x²ⁿ` to n = 8 (remainder < 1e-9);
/// - otherwise `1 − erfc(|x|)` with `erfc(z) = t · exp(−z² + P(t))`, `t = 1/(1 + z/2)` and
///   `P` a degree-9 least-squares fit of `ln(erfc(z)/t) + z²` over `z ∈ [0, 10]` (fitted for
///   this crate in `f64`; relative error of `erfc` below 1e-6 where it matters here).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    // 2/√π · (−1)ⁿ / (n! (2n + 1))
    const SERIES: [f32; 9] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        -0.376_126_38,
        0.112_837_92,
        -0.026_866_172,
        0.005_223_978,
        -0.000_854_832_7,
        0.000_120_553_33,
        -1.492_565e-5,
        1.646_211_4e-6,
    ];
    const ERFC_FIT: [f32; 10] = [
        -1.265_481_6,
        0.999_402_5,
        0.379_230_26,
        0.074_052_684,
        -0.127_043_62,
        0.184_986_62,
        -1.046_089_6,
        1.441_580_5,
        -0.811_22,
        0.170_582_49,
    ];
    let ax = x.abs();
    let x2 = ax * ax;
    let mut s = SERIES[8];
    for &c in SERIES[..8].iter().rev() {
        s = s * x2 + c;
    }
    let small = ax * s;
    let t = 1.0 / (1.0 + 0.5 * ax);
    let mut p = ERFC_FIT[9];
    for &c in ERFC_FIT[..9].iter().rev() {
        p = p * t + c;
    }
    let large = 1.0 - t * exp(p - x2);
    let y = if ax < 0.75 { small } else { large };
    y.copysign(x)
}

/// `tanh(x) = 1 − 2 / (e^(2x) + 1)`; saturates to ±1 without overflow.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// The logistic sigmoid `σ(x) = 1 / (1 + e^(−x))`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Sum of a slice with 16 independent accumulators: vectorises, and its rounding error grows
/// like that of 16 short sums rather than one long one.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    // Fold the lanes pairwise.
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0] + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Maclaurin series (|x| ≤ 3) or continued fraction for erfc.
    fn erf64(x: f64) -> f64 {
        let ax = x.abs();
        let v = if ax <= 3.0 {
            let mut term = ax;
            let mut total = ax;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -ax * ax / n;
                let add = term / (2.0 * n + 1.0);
                total += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // Lentz-free backward evaluation of erfc's continued fraction.
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (ax + f);
            }
            1.0 - (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f)
        };
        v.copysign(x)
    }

    fn grid() -> impl Iterator<Item = f32> {
        (-40_000..=40_000).map(|i| i as f32 * 2.2e-3)
    }

    #[test]
    fn exp_nonpositive_is_within_two_ulp() {
        for x in (-873_360..=880_000).step_by(7).map(|i| i as f32 * 1e-4) {
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            if x < -87.336_55 {
                assert_eq!(got, 0.0, "exp_nonpositive({x})");
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (got - want).abs() <= 2.0 * ulp,
                "exp_nonpositive({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1000.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for x in grid().chain((-873..=887).map(|i| i as f32 * 0.1)) {
            if x < -87.336_55 {
                assert_eq!(exp(x), 0.0);
                continue;
            }
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (got - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(1000.0), f32::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        for x in [88.72f32, -87.3] {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                (got - want).abs() <= 2.0 * f64::from(f32::EPSILON) * want,
                "exp({x})"
            );
        }
    }

    #[test]
    fn erf_and_tanh_are_within_their_bounds() {
        for x in grid() {
            let e = (f64::from(erf(x)) - erf64(f64::from(x))).abs();
            assert!(e <= 1.5e-7, "erf({x}) off by {e}");
            let t = (f64::from(tanh(x)) - f64::from(x).tanh()).abs();
            assert!(t <= 3e-7, "tanh({x}) off by {t}");
            let s = (f64::from(sigmoid(x)) - 1.0 / (1.0 + (-f64::from(x)).exp())).abs();
            assert!(s <= 2e-7, "sigmoid({x}) off by {s}");
        }
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }

    #[test]
    fn sum_matches_f64() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.3)
            .collect();
        let want: f64 = x.iter().map(|&v| f64::from(v)).sum();
        assert!((f64::from(sum(&x)) - want).abs() < 1e-4);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[1.5, 2.5]), 4.0);
    }
}
