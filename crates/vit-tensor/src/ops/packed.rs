//! Weights packed once, at load, for the products that read them on every call:
//! [`PackedWeight`] and [`linear_packed`].
//!
//! With the cargo feature `packed` (what the CLI and the Python package ship on x86-64; see
//! "Measured" below) a weight is held as column panels of 16 — `⌈out / 16⌉` panels of
//! `[in_features, 16]`, zero-padded — and multiplied by this crate's own micro-kernels
//! ([`crate::kernels`], AVX-512 / AVX2 + FMA / portable, chosen at run time). Nothing is
//! repacked per call, and no second copy of the weight is kept. Without it (the default,
//! and with `gemm`) the weight is `Wᵀ` `[in_features, out_features]` row-major and
//! the product is [`crate::linear_with`]'s (`matrixmultiply::sgemm`, or the `gemm` crate).
//!
//! **Measured** (docs/performance.md, ViT-B/32, 2 threads, beside the `gemm` crate on `Wᵀ`):
//! on AMD Zen 3 (AVX2) and Zen 4 (AVX-512) the packed build is 1.2–1.3× faster at batch 1
//! and level at batch 32; on a Sapphire Rapids level at batch 1 and about 5 % slower at
//! batch 32. Shipped for the first two.
//!
//! The blocking: the inner dimension in slices of at most [`KC`], each slice of `x` packed
//! once per call (tile by tile, inner index major, so the micro-kernel reads one stream of
//! it) into a per-thread buffer of `rows · slice` (slice ≤ `KC`), the panels in column
//! blocks whose slice stays in L2 while every row passes over it; tiles of up to 12 rows ×
//! 32 columns. Threads split rows when each gets ≥ 96 of them, else output columns (each
//! thread then reads only its share of the weight, which is what batch 1 needs).

use crate::error::{check_len, checked_mul, TensorResult};
use crate::ops::matmul::{Epilogue, WeightLayout};

#[cfg(feature = "packed")]
use crate::kernels::{self, KernelPath, TileOut, PANEL};
#[cfg(feature = "packed")]
use rayon::prelude::*;

/// Longest inner-dimension slice per pass over a panel group; longer inner dimensions are
/// cut into equal slices. One tile's slice of `x` stays in L1, the panel group's in L2, and
/// the output tile is read back once per slice (shorter slices made that the bottleneck at
/// 1600 rows: `perf` put 11 % of the time in the write-back with 256).
pub const KC: usize = 768;
/// Below this many rows per thread, threads split columns instead of rows.
#[cfg(feature = "packed")]
const MIN_ROWS_PER_TASK: usize = 96;
/// Products smaller than this run on the calling thread.
#[cfg(feature = "packed")]
const PARALLEL_MIN_FLOPS: usize = 4_000_000;

/// Whether linear layers run on packed panels and this crate's micro-kernels (cargo feature
/// `packed`), rather than on `Wᵀ` and the sgemm backend.
pub const PACKED_KERNELS: bool = cfg!(feature = "packed");

/// A linear layer's weight in the layout its product reads (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeight {
    in_features: usize,
    out_features: usize,
    /// The packed values, exactly (see [`PackedWeight::zeroed`]).
    data: Vec<f32>,
}

impl PackedWeight {
    /// Packs `weight` (`[out_features, in_features]` for [`WeightLayout::OutIn`], as
    /// PyTorch stores `nn.Linear.weight`; `[in_features, out_features]` for
    /// [`WeightLayout::InOut`]).
    ///
    /// # Errors
    /// [`crate::TensorError::LengthMismatch`] when `weight` does not hold `in · out` values.
    pub fn pack(
        weight: &[f32],
        layout: WeightLayout,
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        let what = match layout {
            WeightLayout::OutIn => "weight [out_features, in_features]",
            WeightLayout::InOut => "weight [in_features, out_features]",
        };
        let n = checked_mul("PackedWeight", what, in_features, out_features)?;
        check_len("PackedWeight", what, n, weight.len())?;
        // Element (k, j) of Wᵀ.
        let wt = |k: usize, j: usize| match layout {
            WeightLayout::OutIn => weight[j * in_features + k],
            WeightLayout::InOut => weight[k * out_features + j],
        };
        Ok(Self::build(in_features, out_features, wt))
    }

    #[cfg(feature = "packed")]
    fn build(k: usize, n: usize, wt: impl Fn(usize, usize) -> f32) -> Self {
        let panels = n.div_ceil(PANEL);
        let mut this = Self::zeroed(k, n, panels * k * PANEL);
        let dst = this.values_mut();
        for p in 0..panels {
            let panel = &mut dst[p * k * PANEL..(p + 1) * k * PANEL];
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let j = p * PANEL + c;
                    if j < n {
                        *v = wt(kk, j);
                    }
                }
            }
        }
        this
    }

    #[cfg(not(feature = "packed"))]
    fn build(k: usize, n: usize, wt: impl Fn(usize, usize) -> f32) -> Self {
        let mut this = Self::zeroed(k, n, k * n);
        for (i, v) in this.values_mut().iter_mut().enumerate() {
            *v = wt(i / n, i % n);
        }
        this
    }

    /// `len` zeros, in a buffer of exactly `len` floats, in either build.
    ///
    /// Not padded for alignment: a buffer of the checkpoint tensor's own size reuses the
    /// heap hole that tensor leaves when it is dropped after packing. With 16 floats more
    /// (to start on a 64-byte boundary) none of the holes fit, and a ViT-B/32 load peaked
    /// 32 MB higher without `packed`, 70 MB higher with it (glibc malloc; 493 → 423 MiB at
    /// batch 32). The micro-kernels load unaligned; on the AMD Zen 4 of 2026-12-07 the
    /// unaligned panels measured level with the aligned ones (docs/performance.md).
    fn zeroed(in_features: usize, out_features: usize, len: usize) -> Self {
        Self {
            in_features,
            out_features,
            data: vec![0.0f32; len],
        }
    }

    /// The packed values (layout per the module docs).
    pub fn values(&self) -> &[f32] {
        &self.data
    }

    fn values_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// `in_features`.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `out_features`.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Bytes held (padding included).
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// Element `(k, j)` of `Wᵀ`, that is `weight[j][k]`.
    fn at(&self, k: usize, j: usize) -> f32 {
        #[cfg(feature = "packed")]
        let i = (j / PANEL) * self.in_features * PANEL + k * PANEL + j % PANEL;
        #[cfg(not(feature = "packed"))]
        let i = k * self.out_features + j;
        self.values()[i]
    }

    /// `Wᵀ`, `[in_features, out_features]`, unpacked into a new buffer.
    pub fn to_in_out(&self) -> Vec<f32> {
        let (k, n) = (self.in_features, self.out_features);
        (0..k * n).map(|i| self.at(i / n, i % n)).collect()
    }

    /// `W`, `[out_features, in_features]` (PyTorch's layout), unpacked into a new buffer.
    pub fn to_out_in(&self) -> Vec<f32> {
        let (k, n) = (self.in_features, self.out_features);
        (0..k * n).map(|i| self.at(i % k, i / k)).collect()
    }
}

/// `out ← act(x · Wᵀ + b)`, or `out ← out + x · Wᵀ + b` when accumulating, with `W` packed.
///
/// # Shapes
/// - `x`: `[rows, in_features]`; `epilogue.bias`: `[out_features]`;
///   `out`: `[rows, out_features]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] naming the buffer whose length is wrong;
/// [`crate::TensorError::InvalidArgument`] for an activation with `accumulate`.
pub fn linear_packed(
    x: &[f32],
    weight: &PackedWeight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) -> TensorResult<()> {
    let (k, n) = (weight.in_features, weight.out_features);
    #[cfg(not(feature = "packed"))]
    {
        crate::ops::matmul::linear_with(
            x,
            weight.values(),
            WeightLayout::InOut,
            [rows, k, n],
            out,
            epilogue,
        )
    }
    #[cfg(feature = "packed")]
    {
        let expected = checked_mul("linear", "input [rows, in_features]", rows, k)?;
        check_len("linear", "input [rows, in_features]", expected, x.len())?;
        let expected = checked_mul("linear", "output [rows, out_features]", rows, n)?;
        check_len("linear", "output [rows, out_features]", expected, out.len())?;
        epilogue.check(n)?;
        if rows == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            return empty_inner(rows, n, out, epilogue);
        }
        packed_product(kernels::kernel_path(), x, weight, rows, out, epilogue);
        Ok(())
    }
}

/// `x · Wᵀ` with no inner dimension: the epilogue of a zero product.
#[cfg(feature = "packed")]
fn empty_inner(rows: usize, n: usize, out: &mut [f32], epilogue: Epilogue<'_>) -> TensorResult<()> {
    for row in out.chunks_exact_mut(n).take(rows) {
        for (j, o) in row.iter_mut().enumerate() {
            let b = epilogue.bias.map_or(0.0, |b| b[j]);
            *o = if epilogue.accumulate { *o + b } else { b };
        }
        if let Some(act) = epilogue.activation {
            act.apply_chunk(row);
        }
    }
    Ok(())
}

/// The product on `path`, on checked buffers, split across the rayon threads.
#[cfg(feature = "packed")]
fn packed_product(
    path: KernelPath,
    x: &[f32],
    w: &PackedWeight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let (k, n) = (w.in_features, w.out_features);
    let panels = n.div_ceil(PANEL);
    let threads = rayon::current_num_threads();
    let flops = 2usize
        .saturating_mul(rows)
        .saturating_mul(k)
        .saturating_mul(n);
    if threads <= 1 || flops < PARALLEL_MIN_FLOPS {
        return block(path, x, w, rows, 0..panels, out, n, epilogue);
    }
    if rows >= threads * MIN_ROWS_PER_TASK {
        let chunk = rows.div_ceil(threads).next_multiple_of(path.max_rows());
        out.par_chunks_mut(chunk * n)
            .zip(x.par_chunks(chunk * k))
            .for_each(|(o, xi)| block(path, xi, w, o.len() / n, 0..panels, o, n, epilogue));
        return;
    }
    // Columns: panel groups shared out among the threads, each into its own buffer.
    let step = path.max_panels();
    crate::ops::split::by_column_groups(
        panels,
        step,
        n,
        rows,
        out,
        epilogue,
        |ps, buf, width, e| block(path, x, w, rows, ps, buf, width, e),
    );
}

/// Columns `panels · 16` (clipped to `out_features`) of `x · Wᵀ` with the epilogue, into
/// `out` `[rows, ldo]` whose column 0 is the first column of `panels`.
///
/// Loop order: inner slices (each packed from `x` once, tile by tile, into a per-thread
/// buffer of `rows · slice`, slice ≤ [`KC`]); column blocks of the panels whose slice fits
/// [`panel_block_bytes`] (kept in L2 while every row tile passes over it); row tiles (a tile
/// of `x` stays in L1 across the block's panel groups); panel groups. Each weight element is
/// read from memory once per call.
#[cfg(feature = "packed")]
#[allow(clippy::too_many_arguments)]
fn block(
    path: KernelPath,
    x: &[f32],
    w: &PackedWeight,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: &mut [f32],
    ldo: usize,
    epilogue: Epilogue<'_>,
) {
    let (k, n) = (w.in_features, w.out_features);
    let panel_stride = k * PANEL;
    let packed = w.values();
    let c0 = panels.start * PANEL;
    let step = path.max_panels();
    let slice = k.div_ceil(k.div_ceil(KC));
    // Row tiles of equal height (50 rows: 5 × 10, not 4 × 12 + 2): each tile reads the
    // weight slice once, so a short last tile costs a full read for little arithmetic.
    let tile_rows = rows.div_ceil(rows.div_ceil(path.max_rows())).max(1);
    let block_panels = (panel_block_bytes(path) / (slice * PANEL * 4))
        .max(1)
        .next_multiple_of(step);
    let slices = k.div_ceil(slice);
    A_PACKED.with_borrow_mut(|a_buf| {
        // One inner slice of `x` at a time, `[kc, rows]` tiles (so the buffer is `rows · slice`,
        // not `rows · k`). Grown, never cleared: packing writes every element it reads.
        if a_buf.len() < rows * slice {
            a_buf.resize(rows * slice, 0.0);
        }
        for (s, k0) in (0..k).step_by(slice).enumerate() {
            let kc = slice.min(k - k0);
            let (first, last) = (s == 0, s + 1 == slices);
            let a_slice = &mut a_buf[..rows * kc];
            pack_a(x, k, rows, k0..k0 + kc, tile_rows, a_slice);
            let a_slice = &a_slice[..];
            for pb in panels.clone().step_by(block_panels) {
                let pe = (pb + block_panels).min(panels.end);
                for r0 in (0..rows).step_by(tile_rows) {
                    let rr = tile_rows.min(rows - r0);
                    let a = &a_slice[r0 * kc..(r0 + rr) * kc];
                    for p in (pb..pe).step_by(step) {
                        let pc = step.min(pe - p);
                        let b = &packed[p * panel_stride + k0 * PANEL..];
                        let (j0, j1) = (p * PANEL, ((p + pc) * PANEL).min(n));
                        let o0 = r0 * ldo + (j0 - c0);
                        let dst = TileOut {
                            out: &mut out[o0..],
                            ldo,
                            panel_step: PANEL,
                            cols: j1 - j0,
                            bias: if first {
                                epilogue.bias.map(|b| &b[j0..j1])
                            } else {
                                None
                            },
                            add: !first || epilogue.accumulate,
                        };
                        kernels::tile(path, a, rr, b, panel_stride, pc, kc, dst);
                    }
                }
                // The block's columns are final after the last slice: activate them now,
                // while the block's last rows are still in cache (at few rows, all of it).
                if let (true, Some(act)) = (last, epilogue.activation) {
                    let (j0, j1) = (pb * PANEL - c0, (pe * PANEL).min(n) - c0);
                    for r in 0..rows {
                        act.apply_chunk(&mut out[r * ldo + j0..r * ldo + j1]);
                    }
                }
            }
        }
    });
}

/// Bytes of one inner slice of a column block of panels: what stays in L2 while the row
/// tiles pass over it (1 MiB on AVX-512 machines, whose L2 is 1–2 MiB; 512 KiB on AVX2 ones,
/// Zen 3's L2).
#[cfg(feature = "packed")]
fn panel_block_bytes(path: KernelPath) -> usize {
    match path {
        KernelPath::Avx512 => 1 << 20,
        _ => 1 << 19,
    }
}

#[cfg(feature = "packed")]
thread_local! {
    /// This thread's packed `x`, reused across calls (no allocation or page faults per call).
    static A_PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Packs `x[0..rows, cols]` (row stride `k`) into `dst` tile by tile: the tile of rows
/// `r0..r0 + rr` (`rr = min(tile_rows, rows − r0)`) starts at `r0 · cols.len()` and holds
/// `x[r0 + r][cols.start + c]` at `c · rr + r`. Every element of `dst[..rows · cols.len()]`
/// is written.
#[cfg(feature = "packed")]
fn pack_a(
    x: &[f32],
    k: usize,
    rows: usize,
    cols: std::ops::Range<usize>,
    tile_rows: usize,
    dst: &mut [f32],
) {
    let kc = cols.len();
    for r0 in (0..rows).step_by(tile_rows) {
        let rr = tile_rows.min(rows - r0);
        let tile = &mut dst[r0 * kc..(r0 + rr) * kc];
        for r in 0..rr {
            let src = &x[(r0 + r) * k + cols.start..(r0 + r) * k + cols.end];
            for (c, &v) in src.iter().enumerate() {
                tile[c * rr + r] = v;
            }
        }
    }
}

/// Runs `f` on every kernel path this CPU supports, for tests.
#[cfg(all(test, feature = "packed"))]
fn on_every_path(mut f: impl FnMut(KernelPath)) {
    for p in KernelPath::supported() {
        f(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::naive_matmul;
    use crate::{Activation, LcgRng, TensorError};
    use proptest::prelude::*;

    fn reference(
        x: &[f32],
        wt: &[f32],
        bias: Option<&[f32]>,
        base: Option<&[f32]>,
        act: Option<Activation>,
        [m, k, n]: [usize; 3],
    ) -> Vec<f32> {
        let mut y = naive_matmul(x, wt, m, k, n);
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias.map_or(0.0, |b| b[i % n]) + base.map_or(0.0, |b| b[i]);
        }
        if let Some(a) = act {
            a.apply_inplace(&mut y);
        }
        y
    }

    #[test]
    fn packing_round_trips_both_layouts() {
        let (k, n) = (5, 19);
        let wt: Vec<f32> = (0..k * n).map(|i| i as f32).collect();
        let p = PackedWeight::pack(&wt, WeightLayout::InOut, k, n).unwrap();
        assert_eq!(p.to_in_out(), wt);
        let w = p.to_out_in();
        assert_eq!(w[3 * k + 2], wt[2 * n + 3]);
        let q = PackedWeight::pack(&w, WeightLayout::OutIn, k, n).unwrap();
        assert_eq!(q.values(), p.values());
        assert_eq!(q.clone().values(), p.values());
        // Exactly the panels' size (the tensor's without `packed`), so that the
        // checkpoint's buffer it replaces can be reused.
        let panels = if PACKED_KERNELS {
            n.div_ceil(16) * 16
        } else {
            n
        };
        assert_eq!(p.bytes(), k * panels * 4);
        let err = PackedWeight::pack(&wt[1..], WeightLayout::InOut, k, n).unwrap_err();
        assert!(
            matches!(
                err,
                TensorError::LengthMismatch {
                    expected: 95,
                    got: 94,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_buffers_are_named() {
        let p = PackedWeight::pack(&[0.0; 6], WeightLayout::InOut, 2, 3).unwrap();
        let err = linear_packed(&[0.0; 5], &p, 3, &mut [0.0; 9], Epilogue::default()).unwrap_err();
        assert!(
            err.to_string().contains("input [rows, in_features]"),
            "{err}"
        );
        let err = linear_packed(&[0.0; 6], &p, 3, &mut [0.0; 8], Epilogue::default()).unwrap_err();
        assert!(
            err.to_string().contains("output [rows, out_features]"),
            "{err}"
        );
        let bad = Epilogue {
            bias: Some(&[0.0; 2]),
            ..Default::default()
        };
        let err = linear_packed(&[0.0; 6], &p, 3, &mut [0.0; 9], bad).unwrap_err();
        assert!(err.to_string().contains("bias"), "{err}");
    }

    fn case(
        m: usize,
        k: usize,
        n: usize,
        bias: bool,
        accumulate: bool,
        act: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let mut rng = LcgRng::new(seed);
        let x: Vec<f32> = (0..m * k).map(|_| rng.uniform() - 0.5).collect();
        let wt: Vec<f32> = (0..k * n).map(|_| rng.uniform() - 0.5).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.uniform() - 0.5).collect();
        let base: Vec<f32> = (0..m * n).map(|_| rng.uniform() - 0.5).collect();
        let act = (act && !accumulate).then_some(Activation::QuickGelu);
        let epi = Epilogue {
            bias: bias.then_some(&b[..]),
            activation: act,
            accumulate,
        };
        let want = reference(
            &x,
            &wt,
            epi.bias,
            accumulate.then_some(&base[..]),
            act,
            [m, k, n],
        );
        let p = PackedWeight::pack(&wt, WeightLayout::InOut, k, n).unwrap();
        let check = |label: &str| -> Result<(), TestCaseError> {
            let mut out = if accumulate {
                base.clone()
            } else {
                vec![f32::NAN; m * n]
            };
            linear_packed(&x, &p, m, &mut out, epi).unwrap();
            for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                prop_assert!(
                    (g - w).abs() <= 2e-5 * (k as f32).sqrt().max(1.0),
                    "{label} at {i}: {g} vs {w}"
                );
            }
            Ok(())
        };
        #[cfg(feature = "packed")]
        {
            let mut res = Ok(());
            on_every_path(|path| {
                crate::kernels::force_kernel_path(Some(path)).unwrap();
                if res.is_ok() {
                    res = check(path.name());
                }
            });
            crate::kernels::force_kernel_path(None).unwrap();
            res
        }
        #[cfg(not(feature = "packed"))]
        check("matrixmultiply")
    }

    proptest! {
        /// Tails in every dimension (rows past a tile, columns past a panel, the inner
        /// dimension past a KC slice), every epilogue, every kernel path.
        #[test]
        fn packed_linear_matches_naive(m in 1usize..20, k in 1usize..300, n in 1usize..80, bias: bool, accumulate: bool, act: bool, seed: u64) {
            case(m, k, n, bias, accumulate, act, seed)?;
        }
    }

    /// Shapes that take the row split and the column split across threads.
    #[test]
    fn both_thread_splits_match_naive() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            case(7, 520, 200, true, false, true, 1).unwrap(); // columns, KC tail
            case(300, 64, 100, true, true, false, 2).unwrap(); // rows, accumulate
            case(301, 70, 33, false, false, false, 3).unwrap(); // rows, ragged chunks
            case(5, 1700, 40, true, true, false, 4).unwrap(); // three inner slices, accumulate
            case(300, 1700, 40, true, false, true, 6).unwrap(); // rows, 3 slices, activated
        });
    }

    /// One thread: the whole product in one `block`, three inner slices across several
    /// column blocks (63 panels: 28 + 28 + 7 on AVX-512, blocks of 14 on AVX2 and portable),
    /// each activated once, after its last slice.
    #[test]
    fn column_blocks_are_activated_once_after_the_last_slice() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| case(5, 1700, 1000, true, false, true, 7).unwrap());
    }

    #[test]
    fn an_empty_inner_dimension_gives_the_bias() {
        let p = PackedWeight::pack(&[], WeightLayout::InOut, 0, 3).unwrap();
        let mut out = [1.0f32; 6];
        let epi = Epilogue {
            bias: Some(&[1.0, 2.0, 3.0]),
            accumulate: true,
            ..Default::default()
        };
        linear_packed(&[], &p, 2, &mut out, epi).unwrap();
        assert_eq!(out, [2.0, 3.0, 4.0, 2.0, 3.0, 4.0]);
    }
}
