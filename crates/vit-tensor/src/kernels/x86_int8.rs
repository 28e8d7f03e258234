//! The x86-64 int8 micro-kernels: AVX-512 VNNI (`vpdpbusd`, u8 × i8) and AVX2 (`vpmaddwd`
//! on sign-extended i8 and i16 activations), one monomorphised function per tile shape so
//! that the i32 accumulators stay in registers. They write raw sums into the caller's
//! accumulator array; scales, bias and the output are the safe wrapper's business.

use super::int8::{ACC_STRIDE, GROUP, GROUP_BYTES};
use std::arch::x86_64::{
    __m256i, __m512i, _mm256_add_epi32, _mm256_cvtepi8_epi16, _mm256_madd_epi16,
    _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_storeu_si256, _mm512_dpbusd_epi32,
    _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_si512, _mm512_storeu_si512,
    _mm_loadu_si128,
};

/// Expands to a `match` on `(rows, panels)` calling `$f::<ROWS, PANELS>$args` for each
/// listed pair.
macro_rules! by_shape {
    ($rows:expr, $panels:expr, $f:ident $args:tt; $(($r:literal, $p:literal)),* $(,)?) => {
        match ($rows, $panels) {
            $(($r, $p) => $f::<$r, $p> $args,)*
            (r, p) => unreachable!("no {r} × {p} int8 tile"),
        }
    };
}

/// VNNI tile: `acc[r · 32 + p · 16 + c] = Σ_{g < kg, i < 4} a[r · lda + 4g + i] ·
/// b[p · panel_stride + g · 64 + 4c + i]` for `r < rows`, `p < panels`, `c < 16`, with `a`
/// unsigned and `b` signed bytes.
///
/// # Safety
/// The CPU supports AVX-512F and AVX-512 VNNI; `1 ≤ rows ≤ 12`, `1 ≤ panels ≤ 2`,
/// `kg ≥ 1`; `a` valid for reads of `(rows − 1) · lda + 4 · kg` bytes; `b` valid for reads
/// of `(panels − 1) · panel_stride + 64 · kg` bytes; `acc` valid for writes of
/// `(rows − 1) · 32 + panels · 16` values.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn vnni(
    a: *const u8,
    lda: usize,
    rows: usize,
    b: *const i8,
    panel_stride: usize,
    panels: usize,
    kg: usize,
    acc: *mut i32,
) {
    by_shape!(rows, panels, vnni_tile(a, lda, b, panel_stride, kg, acc);
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2),
        (5, 1), (5, 2), (6, 1), (6, 2), (7, 1), (7, 2), (8, 1), (8, 2),
        (9, 1), (9, 2), (10, 1), (10, 2), (11, 1), (11, 2), (12, 1), (12, 2))
}

/// `R × (P · 16)` on VNNI: per group of 4 inner indices, `P` panel rows (64 bytes: 16
/// columns × 4 weights) loaded, 4 activation bytes of each row broadcast, `R · P`
/// `vpdpbusd` into i32 accumulators (the sum of four u8 × i8 products per lane, with no
/// saturation; `255 · 127 · 4 · kg` stays below 2³¹ for `kg < 16 000`).
///
/// # Safety
/// As [`vnni`], with `R = rows`, `P = panels`.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni_tile<const R: usize, const P: usize>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    panel_stride: usize,
    kg: usize,
    acc: *mut i32,
) {
    let mut c: [[__m512i; P]; R] = [[_mm512_setzero_si512(); P]; R];
    for g in 0..kg {
        let mut bv: [__m512i; P] = [_mm512_setzero_si512(); P];
        for (p, v) in bv.iter_mut().enumerate() {
            // In bounds: p < panels and g < kg, so p · panel_stride + 64g + 63 <
            // (panels − 1) · panel_stride + 64 · kg.
            *v = _mm512_loadu_si512(b.add(p * panel_stride + g * GROUP_BYTES).cast());
        }
        for (r, row) in c.iter_mut().enumerate() {
            // In bounds: r < rows and g < kg, so r · lda + 4g + 3 < (rows − 1) · lda + 4 · kg.
            let four = a.add(r * lda + g * GROUP).cast::<i32>().read_unaligned();
            let av = _mm512_set1_epi32(four);
            for (sum, &bp) in row.iter_mut().zip(&bv) {
                *sum = _mm512_dpbusd_epi32(*sum, av, bp);
            }
        }
    }
    for (r, row) in c.iter().enumerate() {
        for (p, &sum) in row.iter().enumerate() {
            // In bounds: r < rows and p < panels, so r · 32 + 16p + 15 < (rows − 1) · 32 +
            // panels · 16.
            _mm512_storeu_si512(acc.add(r * ACC_STRIDE + p * 16).cast(), sum);
        }
    }
}

/// AVX2 tile: `acc[r · 32 + 2c + h] = Σ_{g < kg, i ∈ {2h, 2h + 1}} a[r · lda + 4g + i] ·
/// b[g · 64 + 4c + i]` for `r < rows`, `c < 16`, `h < 2` (the sum over a column's inner
/// indices is the sum of its two halves), with `a` i16 and `b` signed bytes.
///
/// # Safety
/// The CPU supports AVX2; `1 ≤ rows ≤ 6`, `kg ≥ 1`; `a` valid for reads of `(rows − 1) ·
/// lda + 4 · kg` values; `b` valid for reads of `64 · kg` bytes; `acc` valid for writes of
/// `rows · 32` values.
pub(super) unsafe fn avx2(
    a: *const i16,
    lda: usize,
    rows: usize,
    b: *const i8,
    kg: usize,
    acc: *mut i32,
) {
    by_shape!(rows, 1, avx2_tile(a, lda, b, kg, acc);
        (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1))
}

/// `R × 16` on AVX2, in two halves of 8 columns: per group of 4 inner indices, the half's
/// 32 weight bytes sign-extended to i16 (two `ymm`, 4 columns × 4 weights each), 4 i16
/// activations of each row broadcast, and `vpmaddwd` (pairs of i16 products summed into
/// i32, exact: `2 · 127²` fits) added onto `2R` accumulators.
///
/// # Safety
/// As [`avx2`], with `R = rows`.
#[target_feature(enable = "avx2")]
unsafe fn avx2_tile<const R: usize, const P: usize>(
    a: *const i16,
    lda: usize,
    b: *const i8,
    kg: usize,
    acc: *mut i32,
) {
    for half in 0..2 {
        let mut c: [[__m256i; 2]; R] = [[_mm256_setzero_si256(); 2]; R];
        for g in 0..kg {
            // In bounds: g < kg and half < 2, so g · 64 + 32 · half + 31 < 64 · kg.
            let w = b.add(g * GROUP_BYTES + half * 32);
            let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
            let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16).cast()));
            for (r, row) in c.iter_mut().enumerate() {
                // In bounds: r < rows and g < kg, so r · lda + 4g + 3 < (rows − 1) · lda + 4 · kg.
                let four = a.add(r * lda + g * GROUP).cast::<i64>().read_unaligned();
                let av = _mm256_set1_epi64x(four);
                row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(av, w0));
                row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(av, w1));
            }
        }
        for (r, row) in c.iter().enumerate() {
            // In bounds: r < rows, so r · 32 + 16 · half + 15 < rows · 32.
            let dst = acc.add(r * ACC_STRIDE + half * 16);
            _mm256_storeu_si256(dst.cast(), row[0]);
            _mm256_storeu_si256(dst.add(8).cast(), row[1]);
        }
    }
}
