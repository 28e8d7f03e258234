//! PIL's antialiased resampling (`Image.resize` → `ImagingResample`, `Resample.c`) on 8-bit
//! RGB, reproduced value for value.
//!
//! How PIL resizes an 8-bit image, and so how this module does:
//! - **Separable, horizontal pass first.** Each pass is skipped when its size does not change;
//!   when both are skipped the image is copied. The horizontal pass runs only over the input
//!   rows the vertical pass will read.
//! - **Antialiased.** Downscaling by `scale = in / out > 1` widens the filter's support to
//!   `support · scale` and stretches the kernel by the same factor, so every input pixel
//!   contributes; upscaling uses the plain kernel.
//! - **Coefficients in double, then fixed point.** For output index `i`, `center = (i + ½) ·
//!   scale`; the taps run over input `[⌊center − support + ½⌋, ⌊center + support + ½⌋)`
//!   clipped to the image, weight `k(x) = filter((x − center + ½) / filterscale)`, normalised
//!   to sum 1, then rounded half away from zero to `PRECISION_BITS = 22` fractional bits.
//! - **Each pass rounds and clamps to 8 bits**: `acc = 2²¹ + Σ pixel · k` in `i32`, output
//!   `clamp(acc >> 22, 0, 255)`. The intermediate image is 8-bit, like PIL's.
//!
//! Transformers' `resize` calls `PIL.Image.resize(size, resample)` with `reducing_gap=None`,
//! so PIL's `reduce()` (box pre-shrinking) never runs and is not implemented here.
//!
//! Every output pixel depends only on its own row and column coefficients, so
//! `resize_rgb8_region` computes any rectangle of the output — the center crop alone — with
//! exactly the values a full resize would give there.

use std::ops::Range;

/// Fractional bits of PIL's fixed-point coefficients (`32 − 8 − 2`: 8 bits of pixel, 2 of
/// headroom for kernels that overshoot).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// `0.5` in fixed point: the rounding term each accumulator starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A resampling filter, as PIL numbers them (`PIL.Image.Resampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `BILINEAR = 2`: the triangle kernel, support 1.
    Bilinear,
    /// `BICUBIC = 3`: Keys' cubic convolution with `a = −0.5`, support 2. CLIP's filter.
    Bicubic,
}

impl Resample {
    /// The filter of a PIL `resample` code, if implemented (2 and 3).
    pub fn from_pil(code: i64) -> Option<Self> {
        match code {
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            _ => None,
        }
    }

    /// The PIL `resample` code.
    pub fn pil_code(self) -> i64 {
        match self {
            Self::Bilinear => 2,
            Self::Bicubic => 3,
        }
    }

    /// Half-width of the kernel at scale 1, in pixels.
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// The kernel, with PIL's operation order (so its rounding).
    fn kernel(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point taps for a range of output indices along one axis.
///
/// Output index `first + j` reads inputs `start[j] .. start[j] + weights_of(j).len()` with the
/// weights `weights[j · ksize ..][..count[j]]`.
#[derive(Debug, Clone)]
pub(crate) struct Coefficients {
    /// Stride between two outputs' weights (PIL's `ksize = 2·⌈support⌉ + 1`).
    ksize: usize,
    /// First input index of each output.
    start: Vec<usize>,
    /// Number of taps of each output.
    count: Vec<usize>,
    /// `[outputs, ksize]` fixed-point weights, zero past `count`.
    weights: Vec<i32>,
}

impl Coefficients {
    /// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for the output indices `outputs`
    /// of an `in_size → out_size` resize (box = the whole input).
    pub(crate) fn new(
        in_size: usize,
        out_size: usize,
        filter: Resample,
        outputs: Range<usize>,
    ) -> Self {
        // PIL: scale = (double)(in1 - in0) / outSize, with in0 = 0 and in1 = in_size as floats.
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let n = outputs.len();
        let mut start = Vec::with_capacity(n);
        let mut count = Vec::with_capacity(n);
        let mut weights = vec![0i32; n * ksize];
        let mut k = vec![0f64; ksize];
        let ss = 1.0 / filterscale;
        for (j, xx) in outputs.enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let taps = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(taps) {
                let w = filter.kernel(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            let fixed = &mut weights[j * ksize..j * ksize + taps];
            for (dst, &w) in fixed.iter_mut().zip(&k[..taps]) {
                let w = if ww != 0.0 { w / ww } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *dst = if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            start.push(xmin as usize);
            count.push(taps);
        }
        Self {
            ksize,
            start,
            count,
            weights,
        }
    }

    /// First input index and weights of the `j`-th output of the range.
    fn taps(&self, j: usize) -> (usize, &[i32]) {
        let w = &self.weights[j * self.ksize..j * self.ksize + self.count[j]];
        (self.start[j], w)
    }

    /// Input indices read by any output of the range.
    fn input_span(&self) -> Range<usize> {
        let first = self.start.iter().copied().min().unwrap_or(0);
        let end = self
            .start
            .iter()
            .zip(&self.count)
            .map(|(s, c)| s + c)
            .max()
            .unwrap_or(first);
        first..end.max(first)
    }
}

/// PIL's `clip8`: the accumulator back to a level, clamped to `0..=255`.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes the whole of an 8-bit RGB image exactly as PIL's `Image.resize((out_w, out_h),
/// resample)` does.
///
/// # Shapes
/// - `src`: `[in_h, in_w, 3]`
/// - returns: `[out_h, out_w, 3]`
#[cfg(test)]
pub(crate) fn resize_rgb8(
    src: &[u8],
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    filter: Resample,
) -> Vec<u8> {
    resize_rgb8_region(
        src,
        (in_h, in_w),
        (out_h, out_w),
        filter,
        0..out_h,
        0..out_w,
    )
}

/// The rectangle `rows × cols` of [`resize_rgb8`]'s output, computed alone.
///
/// The values are those of the full resize: coefficients are per output index, and the
/// horizontal pass is run over exactly the input rows the requested output rows read.
///
/// # Shapes
/// - `src`: `[in_h, in_w, 3]`, every size positive
/// - returns: `[rows.len(), cols.len(), 3]`
pub(crate) fn resize_rgb8_region(
    src: &[u8],
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    filter: Resample,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Vec<u8> {
    debug_assert_eq!(src.len(), in_h * in_w * 3);
    debug_assert!(rows.end <= out_h && cols.end <= out_w);
    let need_horizontal = out_w != in_w;
    let need_vertical = out_h != in_h;

    let vertical = need_vertical.then(|| Coefficients::new(in_h, out_h, filter, rows.clone()));
    // Input rows the output rows read (themselves when there is no vertical pass).
    let src_rows = vertical
        .as_ref()
        .map_or(rows.clone(), Coefficients::input_span);

    // `[src_rows.len(), cols.len(), 3]`: the horizontally resampled rows (or the plain
    // columns `cols` when the width does not change).
    let temp = if need_horizontal {
        let horizontal = Coefficients::new(in_w, out_w, filter, cols.clone());
        horizontal_pass(src, in_w, src_rows.clone(), &horizontal)
    } else {
        copy_region(src, in_w, src_rows.clone(), cols.clone())
    };

    match vertical {
        Some(v) => vertical_pass(&temp, cols.len() * 3, src_rows.start, &v),
        None => temp,
    }
}

/// Copies `rows × cols` of `[_, in_w, 3]` pixels.
fn copy_region(src: &[u8], in_w: usize, rows: Range<usize>, cols: Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * cols.len() * 3);
    for y in rows {
        let row = &src[(y * in_w + cols.start) * 3..(y * in_w + cols.end) * 3];
        out.extend_from_slice(row);
    }
    out
}

/// PIL's `ImagingResampleHorizontal_8bpc`, three bands, over the input rows `rows`.
///
/// # Shapes
/// - `src`: `[_, in_w, 3]`
/// - returns: `[rows.len(), outputs, 3]`
fn horizontal_pass(src: &[u8], in_w: usize, rows: Range<usize>, coeffs: &Coefficients) -> Vec<u8> {
    let n_out = coeffs.start.len();
    let mut out = vec![0u8; rows.len() * n_out * 3];
    for (y, dst_row) in rows.zip(out.chunks_exact_mut(n_out * 3)) {
        let src_row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (j, dst) in dst_row.chunks_exact_mut(3).enumerate() {
            let (start, k) = coeffs.taps(j);
            let px = &src_row[start * 3..(start + k.len()) * 3];
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (p, &w) in px.chunks_exact(3).zip(k) {
                r += i32::from(p[0]) * w;
                g += i32::from(p[1]) * w;
                b += i32::from(p[2]) * w;
            }
            dst[0] = clip8(r);
            dst[1] = clip8(g);
            dst[2] = clip8(b);
        }
    }
    out
}

/// PIL's `ImagingResampleVertical_8bpc` over interleaved rows of `row_len` bytes; row 0 of
/// `temp` is input row `first_row`.
///
/// # Shapes
/// - `temp`: `[rows, row_len]`
/// - returns: `[outputs, row_len]`
fn vertical_pass(temp: &[u8], row_len: usize, first_row: usize, coeffs: &Coefficients) -> Vec<u8> {
    let n_out = coeffs.start.len();
    let mut out = vec![0u8; n_out * row_len];
    let mut acc = vec![0i32; row_len];
    for (j, dst) in out.chunks_exact_mut(row_len.max(1)).enumerate().take(n_out) {
        let (start, k) = coeffs.taps(j);
        acc.fill(HALF);
        for (t, &w) in k.iter().enumerate() {
            let y = start + t - first_row;
            let src = &temp[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(src) {
                *a += i32::from(p) * w;
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately plain PIL resize: coefficients in `f64` straight from the formulas,
    /// then a full horizontal pass, then a full vertical pass, each rounded like PIL.
    fn naive_resize(
        src: &[u8],
        (in_h, in_w): (usize, usize),
        (out_h, out_w): (usize, usize),
        f: Resample,
    ) -> Vec<u8> {
        fn taps(in_size: usize, out_size: usize, f: Resample, i: usize) -> Vec<(usize, i32)> {
            let scale = in_size as f64 / out_size as f64;
            let fs = if scale < 1.0 { 1.0 } else { scale };
            let support = f.support() * fs;
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (lo..hi)
                .map(|x| f.kernel((x as f64 - center + 0.5) / fs))
                .collect();
            let sum: f64 = raw.iter().sum();
            raw.iter()
                .enumerate()
                .map(|(t, w)| {
                    let v = (w / sum) * 4194304.0;
                    (
                        lo + t,
                        if v < 0.0 {
                            (v - 0.5) as i32
                        } else {
                            (v + 0.5) as i32
                        },
                    )
                })
                .collect()
        }
        let clip = |acc: i64| (acc >> 22).clamp(0, 255) as u8;
        let mut img = src.to_vec();
        let mut w = in_w;
        if out_w != in_w {
            let mut next = vec![0u8; in_h * out_w * 3];
            for y in 0..in_h {
                for x in 0..out_w {
                    for c in 0..3 {
                        let acc: i64 = (1 << 21)
                            + taps(in_w, out_w, f, x)
                                .iter()
                                .map(|&(sx, k)| i64::from(img[(y * w + sx) * 3 + c]) * i64::from(k))
                                .sum::<i64>();
                        next[(y * out_w + x) * 3 + c] = clip(acc);
                    }
                }
            }
            img = next;
            w = out_w;
        }
        if out_h != in_h {
            let mut next = vec![0u8; out_h * w * 3];
            for y in 0..out_h {
                for x in 0..w {
                    for c in 0..3 {
                        let acc: i64 = (1 << 21)
                            + taps(in_h, out_h, f, y)
                                .iter()
                                .map(|&(sy, k)| i64::from(img[(sy * w + x) * 3 + c]) * i64::from(k))
                                .sum::<i64>();
                        next[(y * w + x) * 3 + c] = clip(acc);
                    }
                }
            }
            img = next;
        }
        img
    }

    /// Deterministic noise (hardest case for rounding: every level, sharp edges).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn matches_naive_reference_on_many_shapes() {
        let shapes = [
            ((7, 5), (7, 5)),
            ((9, 13), (4, 6)),
            ((13, 9), (31, 17)),
            ((1, 40), (3, 224)),
            ((40, 1), (224, 3)),
            ((1, 1), (5, 7)),
            ((64, 48), (21, 33)),
            ((5, 300), (5, 7)),
            ((300, 5), (7, 5)),
            ((100, 3), (2, 1)),
        ];
        for (i, &(inp, out)) in shapes.iter().enumerate() {
            let src = noise(inp.0 * inp.1 * 3, i as u64);
            for f in [Resample::Bicubic, Resample::Bilinear] {
                let want = naive_resize(&src, inp, out, f);
                assert_eq!(
                    resize_rgb8(&src, inp, out, f),
                    want,
                    "{inp:?} → {out:?} {f:?}"
                );
            }
        }
    }

    #[test]
    fn regions_equal_the_same_part_of_the_full_resize() {
        let (inp, out) = ((37, 53), (24, 29));
        let src = noise(inp.0 * inp.1 * 3, 9);
        let full = resize_rgb8(&src, inp, out, Resample::Bicubic);
        for (rows, cols) in [
            (0..24, 0..29),
            (3..20, 5..6),
            (23..24, 0..29),
            (0..1, 28..29),
            (10..10, 0..5),
        ] {
            let part = resize_rgb8_region(
                &src,
                inp,
                out,
                Resample::Bicubic,
                rows.clone(),
                cols.clone(),
            );
            let mut want = Vec::new();
            for y in rows.clone() {
                want.extend_from_slice(
                    &full[(y * out.1 + cols.start) * 3..(y * out.1 + cols.end) * 3],
                );
            }
            assert_eq!(part, want, "{rows:?} × {cols:?}");
        }
    }

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let src = noise(6 * 4 * 3, 3);
        assert_eq!(resize_rgb8(&src, (6, 4), (6, 4), Resample::Bicubic), src);
        let flat = vec![77u8; 50 * 30 * 3];
        for out in [(7, 9), (200, 120), (50, 3), (1, 30)] {
            let r = resize_rgb8(&flat, (50, 30), out, Resample::Bicubic);
            assert!(r.iter().all(|&v| v == 77), "{out:?}");
        }
    }

    #[test]
    fn overshoot_is_clamped_to_8_bits() {
        // A hard 0/255 edge upscaled with bicubic rings below 0 and above 255: the clamped
        // result still spans the full range, and matches the naive reference.
        let mut src = vec![0u8; 8 * 3];
        src[12..].fill(255);
        let r = resize_rgb8(&src, (1, 8), (1, 40), Resample::Bicubic);
        assert!(r.contains(&0) && r.contains(&255));
        assert_eq!(r, naive_resize(&src, (1, 8), (1, 40), Resample::Bicubic));
    }

    #[test]
    fn coefficients_follow_pil() {
        // 4 → 2 bicubic: scale 2, support 4; output 0 has center 1, taps over inputs 0..4
        // (⌊1 − 4 + ½⌋ clipped to 0, ⌊1 + 4 + ½⌋ clipped to 4), symmetric about 1.
        let c = Coefficients::new(4, 2, Resample::Bicubic, 0..2);
        assert_eq!(c.ksize, 9);
        let (start, k) = c.taps(0);
        assert_eq!((start, k.len()), (0, 4));
        assert_eq!(k[0], k[1]);
        // Fixed-point weights sum to 2²² within rounding.
        for j in 0..2 {
            let s: i32 = c.taps(j).1.iter().sum();
            assert!((s - (1 << 22)).abs() <= 4, "{s}");
        }
        // Identity scale: one tap of exactly 1.0 at the pixel itself (others are zero).
        let c = Coefficients::new(10, 10, Resample::Bicubic, 0..10);
        for j in 0..10 {
            let (start, k) = c.taps(j);
            for (t, &w) in k.iter().enumerate() {
                assert_eq!(w, if start + t == j { 1 << 22 } else { 0 });
            }
        }
        assert_eq!(Resample::from_pil(3), Some(Resample::Bicubic));
        assert_eq!(Resample::from_pil(1), None);
        assert_eq!(Resample::Bilinear.pil_code(), 2);
    }
}
