//! The x86-64 micro-kernels: AVX-512F and AVX2 + FMA, one monomorphised function per tile
//! shape so that the accumulators stay in registers, each writing its tile straight from the
//! registers into the output.

use super::PANEL;
use std::arch::x86_64::{
    __m256, __m256i, __m512, __mmask16, _mm256_add_ps, _mm256_cmpgt_epi32, _mm256_fmadd_ps,
    _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_set1_epi32, _mm256_set1_ps,
    _mm256_setr_epi32, _mm256_setzero_ps, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm_prefetch,
    _MM_HINT_T0,
};

/// The destination of a tile as raw parts (see [`super::TileOut`]).
#[derive(Clone, Copy)]
pub(super) struct Out {
    ptr: *mut f32,
    ldo: usize,
    panel_step: usize,
    cols: usize,
    bias: Option<*const f32>,
    add: bool,
}

impl Out {
    pub(super) fn new(
        out: &mut [f32],
        ldo: usize,
        panel_step: usize,
        cols: usize,
        bias: Option<&[f32]>,
        add: bool,
    ) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            ldo,
            panel_step,
            cols,
            bias: bias.map(<[f32]>::as_ptr),
            add,
        }
    }
}

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

/// Asks for the cache lines of a tile's output rows (`rows` rows of `cols` columns starting
/// at `out.ptr + p · out.panel_step` for each of `panels` panels) to be fetched while the
/// tile runs its `kc` inner steps. Between two inner slices of one product an output tile
/// is long out of cache (every other tile was written in between), and its read-modify-write
/// waited on L3 or memory once per row (B/16 fc2, 6304 × 3072 × 768). With `kc` up to 768
/// the lines may leave L1 again before the write-back; the request still moves the wait off
/// the write-back's critical path (measured level to slightly faster end to end on Zen 4,
/// docs/performance.md).
///
/// # Safety
/// `out` as for [`avx512`] with `rows`, `panels` (the addresses prefetched are the first and
/// last element each row of each panel writes).
#[inline(always)]
unsafe fn prefetch_out(out: &Out, rows: usize, panels: usize) {
    for p in 0..panels {
        // Lanes of panel p that exist: at least 1 (cols > (panels − 1) · 16 ≥ 16p).
        let n = (out.cols - p * PANEL).min(PANEL);
        for r in 0..rows {
            // In bounds: the first and the last lane row r of panel p writes (see the
            // write-back of `avx512_tile` / `avx2_tile`); a prefetch never faults.
            let first = out.ptr.add(r * out.ldo + p * out.panel_step);
            _mm_prefetch::<_MM_HINT_T0>(first.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(first.add(n - 1).cast::<i8>());
        }
    }
}

/// AVX-512 tile of `rows × panels · 16` (see [`super::tile`] for the contract).
///
/// # Safety
/// The CPU supports AVX-512F; `1 ≤ rows ≤ 12`, `1 ≤ panels ≤ 2`, `kc ≥ 1`,
/// `(panels − 1) · 16 < out.cols ≤ panels · 16`; `a.len() ≥ kc · rows`;
/// `b.len() ≥ (panels − 1) · panel_stride + kc · 16`; `out.ptr` valid for reads and writes
/// of `(rows − 1) · out.ldo + (panels − 1) · out.panel_step + out.cols − (panels − 1) · 16`
/// elements and aliased by nothing; `out.bias`, if any, valid for `out.cols` reads.
pub(super) unsafe fn avx512(
    a: &[f32],
    rows: usize,
    b: &[f32],
    panel_stride: usize,
    panels: usize,
    kc: usize,
    out: Out,
) {
    let (a, b) = (a.as_ptr(), b.as_ptr());
    by_shape!(rows, panels, avx512_tile(a, b, panel_stride, kc, out);
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2),
        (5, 1), (5, 2), (6, 1), (6, 2), (7, 1), (7, 2), (8, 1), (8, 2),
        (9, 1), (9, 2), (10, 1), (10, 2), (11, 1), (11, 2), (12, 1), (12, 2))
}

/// AVX2 + FMA tile of `rows × 16` (one panel).
///
/// # Safety
/// The CPU supports AVX2 and FMA; `1 ≤ rows ≤ 6`, `kc ≥ 1`, `1 ≤ out.cols ≤ 16`;
/// `a.len() ≥ kc · rows`; `b.len() ≥ kc · 16`; `out` as for [`avx512`].
pub(super) unsafe fn avx2(a: &[f32], rows: usize, b: &[f32], kc: usize, out: Out) {
    let (a, b) = (a.as_ptr(), b.as_ptr());
    by_shape!(rows, 1, avx2_tile(a, b, kc, out);
        (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1))
}

/// `R × (P · 16)` on AVX-512: per `k`, `P` panel rows loaded, `R` values of `A` broadcast,
/// `R · P` fused multiply-adds into `zmm` accumulators; then each row written under a mask
/// of its existing columns, with the bias and (when `out.add`) what `out` held.
///
/// # Safety
/// As [`avx512`], with `R = rows`, `P = panels`.
#[target_feature(enable = "avx512f")]
unsafe fn avx512_tile<const R: usize, const P: usize>(
    a: *const f32,
    b: *const f32,
    panel_stride: usize,
    kc: usize,
    out: Out,
) {
    // SAFETY: `out` is as `avx512` requires, for R rows and P panels.
    prefetch_out(&out, R, P);
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
    for p in 0..P {
        // Lanes of panel p that exist: cols − 16p ≥ 1 (cols > (P − 1) · 16 ≥ 16p).
        let n = (out.cols - p * PANEL).min(PANEL);
        let mask: __mmask16 = if n == PANEL { 0xffff } else { (1u16 << n) - 1 };
        // Masked-off lanes are neither read nor written (AVX-512 suppresses their faults).
        let bias = match out.bias {
            // In bounds: lanes < n, so p · 16 + lane < cols ≤ the bias's length.
            Some(bp) => _mm512_maskz_loadu_ps(mask, bp.add(p * PANEL)),
            None => _mm512_setzero_ps(),
        };
        for (r, row) in c.iter().enumerate() {
            // In bounds: r < rows, p < panels and the written lanes < n = cols − 16p (at
            // most), so r · ldo + p · panel_step + lane < (rows − 1) · ldo +
            // (panels − 1) · panel_step + cols − (panels − 1) · 16.
            let dst = out.ptr.add(r * out.ldo + p * out.panel_step);
            let mut v = _mm512_add_ps(row[p], bias);
            if out.add {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, dst));
            }
            _mm512_mask_storeu_ps(dst, mask, v);
        }
    }
}

/// `R × 16` on AVX2: per `k`, two `ymm` of the panel row loaded, `R` values of `A`
/// broadcast, `2R` fused multiply-adds; then each row written under a mask of its existing
/// columns, with the bias and (when `out.add`) what `out` held.
///
/// # Safety
/// As [`avx2`], with `R = rows`.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const R: usize, const P: usize>(
    a: *const f32,
    b: *const f32,
    kc: usize,
    out: Out,
) {
    // SAFETY: `out` is as `avx2` requires, for R rows and one panel.
    prefetch_out(&out, R, 1);
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
    // Lane i of half h exists when 8h + i < cols (1 ≤ cols ≤ 16); a half with none is
    // skipped, so every pointer below stays inside its buffer.
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let cols = out.cols as i32;
    let masks: [__m256i; 2] = [
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lanes),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lanes),
    ];
    for h in 0..2 {
        if 8 * h >= out.cols {
            break;
        }
        // Masked-off lanes are neither read nor written (AVX suppresses their faults).
        let bias = match out.bias {
            // In bounds: the read lanes have 8h + i < cols ≤ the bias's length.
            Some(bp) => _mm256_maskload_ps(bp.add(8 * h), masks[h]),
            None => _mm256_setzero_ps(),
        };
        for (r, row) in c.iter().enumerate() {
            // In bounds: r < rows and the written lanes have 8h + i < cols, so
            // r · ldo + 8h + i < (rows − 1) · ldo + cols.
            let dst = out.ptr.add(r * out.ldo + 8 * h);
            let mut v = _mm256_add_ps(row[h], bias);
            if out.add {
                v = _mm256_add_ps(v, _mm256_maskload_ps(dst, masks[h]));
            }
            _mm256_maskstore_ps(dst, masks[h], v);
        }
    }
}
