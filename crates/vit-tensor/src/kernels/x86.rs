//! The x86-64 micro-kernels: AVX-512F and AVX2 + FMA, one monomorphised function per tile
//! shape so that the accumulators stay in registers.

use super::{Tile, PANEL, TILE_STRIDE};
use std::arch::x86_64::{
    __m256, __m512, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

/// Expands to a `match` on `(rows, panels)` calling `$f::<ROWS, PANELS>$args` for each
/// listed pair.
macro_rules! by_shape {
    ($rows:expr, $panels:expr, $f:ident $args:tt; $(($r:literal, $p:literal)),* $(,)?) => {
        match ($rows, $panels) {
            $(($r, $p) => $f::<$r, $p> $args,)*
            (r, p) => unreachable!("no {r} × {p} tile"),
        }
    };
}

/// AVX-512 tile of `rows × panels · 16` (see [`super::tile`] for the contract).
///
/// # Safety
/// The CPU supports AVX-512F; `1 ≤ rows ≤ 12`, `1 ≤ panels ≤ 2`, `kc ≥ 1`;
/// `a.len() ≥ kc · rows`; `b.len() ≥ (panels − 1) · panel_stride + kc · 16`.
pub(super) unsafe fn avx512(
    a: &[f32],
    rows: usize,
    b: &[f32],
    panel_stride: usize,
    panels: usize,
    kc: usize,
    acc: &mut Tile,
) {
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), acc.as_mut_ptr());
    by_shape!(rows, panels, avx512_tile(a, b, panel_stride, kc, out);
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2),
        (5, 1), (5, 2), (6, 1), (6, 2), (7, 1), (7, 2), (8, 1), (8, 2),
        (9, 1), (9, 2), (10, 1), (10, 2), (11, 1), (11, 2), (12, 1), (12, 2))
}

/// AVX2 + FMA tile of `rows × 16` (one panel).
///
/// # Safety
/// The CPU supports AVX2 and FMA; `1 ≤ rows ≤ 6`, `kc ≥ 1`;
/// `a.len() ≥ kc · rows`; `b.len() ≥ kc · 16`.
pub(super) unsafe fn avx2(a: &[f32], rows: usize, b: &[f32], kc: usize, acc: &mut Tile) {
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), acc.as_mut_ptr());
    by_shape!(rows, 1, avx2_tile(a, b, kc, out);
        (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1))
}

/// `R × (P · 16)` on AVX-512: per `k`, `P` panel rows loaded, `R` values of `A` broadcast,
/// `R · P` fused multiply-adds into `zmm` accumulators.
///
/// # Safety
/// As [`avx512`], with `R = rows`, `P = panels`; `out` points at a [`Tile`].
#[target_feature(enable = "avx512f")]
unsafe fn avx512_tile<const R: usize, const P: usize>(
    a: *const f32,
    b: *const f32,
    panel_stride: usize,
    kc: usize,
    out: *mut f32,
) {
    let mut c: [[__m512; P]; R] = [[_mm512_setzero_ps(); P]; R];
    for k in 0..kc {
        let mut bv: [__m512; P] = [_mm512_setzero_ps(); P];
        for (p, v) in bv.iter_mut().enumerate() {
            // In bounds: p < P ≤ panels and k < kc, so p · panel_stride + k · 16 + 15 <
            // (panels − 1) · panel_stride + kc · 16 ≤ b.len().
            *v = _mm512_loadu_ps(b.add(p * panel_stride + k * PANEL));
        }
        for (r, row) in c.iter_mut().enumerate() {
            // In bounds: r < rows and k < kc, so k · rows + r < kc · rows ≤ a.len().
            let av = _mm512_set1_ps(*a.add(k * R + r));
            for (acc, &bp) in row.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(av, bp, *acc);
            }
        }
    }
    for (r, row) in c.iter().enumerate() {
        for (p, &v) in row.iter().enumerate() {
            // In bounds: r < 12 = MAX_ROWS and p · 16 + 15 < 32 = TILE_STRIDE.
            _mm512_storeu_ps(out.add(r * TILE_STRIDE + p * PANEL), v);
        }
    }
}

/// `R × 16` on AVX2: per `k`, two `ymm` of the panel row loaded, `R` values of `A`
/// broadcast, `2R` fused multiply-adds.
///
/// # Safety
/// As [`avx2`], with `R = rows`; `out` points at a [`Tile`].
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const R: usize, const P: usize>(
    a: *const f32,
    b: *const f32,
    kc: usize,
    out: *mut f32,
) {
    let mut c: [[__m256; 2]; R] = [[_mm256_setzero_ps(); 2]; R];
    for k in 0..kc {
        // In bounds: k < kc, so k · 16 + 15 < kc · 16 ≤ b.len().
        let b0 = _mm256_loadu_ps(b.add(k * PANEL));
        let b1 = _mm256_loadu_ps(b.add(k * PANEL + 8));
        for (r, row) in c.iter_mut().enumerate() {
            // In bounds: r < rows and k < kc, so k · rows + r < kc · rows ≤ a.len().
            let av = _mm256_set1_ps(*a.add(k * R + r));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in c.iter().enumerate() {
        // In bounds: r < 6 < MAX_ROWS and 15 < TILE_STRIDE.
        _mm256_storeu_ps(out.add(r * TILE_STRIDE), row[0]);
        _mm256_storeu_ps(out.add(r * TILE_STRIDE + 8), row[1]);
    }
}
