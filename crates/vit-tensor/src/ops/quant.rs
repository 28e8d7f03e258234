//! Int8 linear layers: [`QuantizedWeight`] (symmetric int8, one scale per output channel,
//! packed once) and [`linear_int8`] (activations quantized per row at run time, exact i32
//! sums on [`crate::kernels::int8`]'s micro-kernels, one rescale per output).
//!
//! The scheme, for `y = x · Wᵀ + b`:
//! - weight channel `j` (a row of PyTorch's `W`): `s_j = max_k |W[j, k]| / 127`, `q[j, k] =
//!   round(W[j, k] / s_j)` in `[−127, 127]`;
//! - activation row `r`, per call: `t_r = max_k |x[r, k]| / 127`, `p[r, k] = round(x[r, k] /
//!   t_r)` (one scale per token, so a token's large channels do not cost another token its
//!   resolution);
//! - `y[r, j] = t_r · s_j · Σ_k p[r, k] · q[j, k] + b_j`, the sum in i32 (no saturation: the
//!   inner dimension is limited to [`MAX_INNER`]).
//!
//! Rounding is to nearest, ties to even (as ONNX Runtime's and PyTorch's quantizers). A row
//! holding an infinity or NaN gives NaN outputs, as the f32 product would.
//!
//! **Outlier channels** (LLM.int8()'s decomposition, with the channels fixed at load): a
//! weight may be quantized with a set of input channels kept apart
//! ([`QuantizedWeight::quantize_with_outliers`]). Those columns of `x` are left out of the
//! per-row scale and the int8 product, and multiplied in f32 by the f32 weights of those
//! channels, `y += x[:, O] · W[:, O]ᵀ`. CLIP towers carry a few residual channels hundreds of
//! times larger than the rest, and MLP neurons that fire on every token: as int8 they set
//! every token's scale and lose the others their resolution.
//!
//! This module does not choose which layers to quantize nor which channels are outliers:
//! that is the model's business (`clip-vision` calibrates them; docs/performance.md).

use crate::error::{check_len, checked_mul, TensorError, TensorResult};
use crate::kernels::int8::{
    tile_i8, ActivationFormat, Int8Kernel, Int8Rows, ACC_LEN, ACC_STRIDE, GROUP, GROUP_BYTES,
};
use crate::kernels::PANEL;
use crate::ops::matmul::{Epilogue, WeightLayout};
use rayon::prelude::*;
use std::cell::Cell;

/// Longest inner dimension an int8 product takes: `255 · 127 · MAX_INNER` (the largest
/// offset-u8 sum) stays below 2³¹.
pub const MAX_INNER: usize = 1 << 16;
/// Below this many rows per thread, threads split output columns instead of rows.
const MIN_ROWS_PER_TASK: usize = 96;
/// Products smaller than this (in multiply-adds) run on the calling thread.
const PARALLEL_MIN_MACS: usize = 2_000_000;
/// Bytes of a column block of weight panels kept in L2 while the row tiles pass over it.
const PANEL_BLOCK_BYTES: usize = 1 << 19;

/// `1.5 · 2²³`: adding and subtracting it rounds an `f32` of magnitude below 2²² to the
/// nearest integer, ties to even, in two vectorisable operations.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// A linear layer's weight in symmetric int8, one scale per output channel, packed in the
/// int8 micro-kernels' panel layout (see [`crate::kernels::int8`]). No f32 copy is kept.
#[derive(Debug)]
pub struct QuantizedWeight {
    in_features: usize,
    out_features: usize,
    /// Panels of `[groups, 16, 4]` bytes, from `data[offset]` on (64-byte aligned).
    data: Vec<i8>,
    offset: usize,
    /// `s_j`, `[out_features]`.
    scales: Vec<f32>,
    /// `128 · Σ_k q[j, k]`, `[out_features]`: the offset of the u8 activation format.
    offsets: Vec<i32>,
    /// The input channels kept in f32, ascending.
    outliers: Vec<usize>,
    /// Their weights, `[outliers, out_features]` (`W[:, O]ᵀ`).
    outlier_weights: Vec<f32>,
}

impl QuantizedWeight {
    /// Quantizes `weight` (`[out_features, in_features]` for [`WeightLayout::OutIn`],
    /// `[in_features, out_features]` for [`WeightLayout::InOut`]) channel by channel.
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `weight` does not hold `in · out` values;
    /// [`TensorError::InvalidArgument`] when it holds a value that is not finite, or
    /// `in_features` exceeds [`MAX_INNER`].
    pub fn quantize(
        weight: &[f32],
        layout: WeightLayout,
        in_features: usize,
        out_features: usize,
    ) -> TensorResult<Self> {
        Self::quantize_with_outliers(weight, layout, in_features, out_features, &[])
    }

    /// As [`QuantizedWeight::quantize`], with the input channels `outliers` kept in f32 (see
    /// the module docs): their weights are left out of the int8 values and the scales.
    ///
    /// # Errors
    /// As [`QuantizedWeight::quantize`]; [`TensorError::InvalidArgument`] for an outlier
    /// channel not below `in_features`.
    pub fn quantize_with_outliers(
        weight: &[f32],
        layout: WeightLayout,
        in_features: usize,
        out_features: usize,
        outliers: &[usize],
    ) -> TensorResult<Self> {
        let what = match layout {
            WeightLayout::OutIn => "weight [out_features, in_features]",
            WeightLayout::InOut => "weight [in_features, out_features]",
        };
        let n = checked_mul("QuantizedWeight", what, in_features, out_features)?;
        check_len("QuantizedWeight", what, n, weight.len())?;
        if in_features > MAX_INNER {
            return Err(TensorError::InvalidArgument {
                op: "QuantizedWeight",
                what: "in_features",
                value: in_features.to_string(),
                reason: "an int8 product's i32 sums hold at most 65536 inner terms",
            });
        }
        if let Some(i) = weight.iter().position(|v| !v.is_finite()) {
            return Err(TensorError::InvalidArgument {
                op: "QuantizedWeight",
                what: "weight value",
                value: format!("{} at index {i}", weight[i]),
                reason: "only finite weights can be quantized",
            });
        }
        if let Some(&o) = outliers.iter().find(|&&o| o >= in_features) {
            return Err(TensorError::InvalidArgument {
                op: "QuantizedWeight",
                what: "outlier channel",
                value: o.to_string(),
                reason: "outlier channels are input channels, below in_features",
            });
        }
        let mut outliers = outliers.to_vec();
        outliers.sort_unstable();
        outliers.dedup();
        let mut apart = vec![false; in_features];
        outliers.iter().for_each(|&o| apart[o] = true);
        let (k, groups) = (in_features, in_features.div_ceil(GROUP));
        let panel_stride = groups * GROUP_BYTES;
        let panels = out_features.div_ceil(PANEL);
        let len = panels * panel_stride;
        let (data, offset) = aligned_zeros(len);
        let mut this = Self {
            in_features,
            out_features,
            data,
            offset,
            scales: vec![0.0; out_features],
            offsets: vec![0; out_features],
            outlier_weights: Vec::with_capacity(outliers.len() * out_features),
            outliers,
        };
        let w_all = |kk: usize, j: usize| match layout {
            WeightLayout::OutIn => weight[j * k + kk],
            WeightLayout::InOut => weight[kk * out_features + j],
        };
        for &o in &this.outliers {
            this.outlier_weights
                .extend((0..out_features).map(|j| w_all(o, j)));
        }
        let wt = |kk: usize, j: usize| if apart[kk] { 0.0 } else { w_all(kk, j) };
        let packed = &mut this.data[offset..offset + len];
        for j in 0..out_features {
            let max = (0..k).fold(0.0f32, |m, kk| m.max(wt(kk, j).abs()));
            let (scale, inv) = if max > 0.0 {
                (max / 127.0, 127.0 / max)
            } else {
                (0.0, 0.0)
            };
            this.scales[j] = scale;
            let base = (j / PANEL) * panel_stride + (j % PANEL) * GROUP;
            let mut sum = 0i32;
            for kk in 0..k {
                let q = round_to_i8(wt(kk, j) * inv);
                packed[base + (kk / GROUP) * GROUP_BYTES + kk % GROUP] = q;
                sum += i32::from(q);
            }
            this.offsets[j] = 128 * sum;
        }
        Ok(this)
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The per-channel scales `s_j`, `[out_features]`.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The quantized value `q[j, k]` of output channel `j`, inner index `k`.
    ///
    /// # Panics
    /// When `j ≥ out_features` or `k ≥ in_features`.
    pub fn value(&self, j: usize, k: usize) -> i8 {
        assert!(j < self.out_features && k < self.in_features);
        let panel_stride = self.in_features.div_ceil(GROUP) * GROUP_BYTES;
        self.panels()[(j / PANEL) * panel_stride
            + (k / GROUP) * GROUP_BYTES
            + (j % PANEL) * GROUP
            + k % GROUP]
    }

    /// The weight the product uses, `s_j · q[j, k]` (the f32 value for an outlier channel),
    /// as `[out_features, in_features]` (a copy).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.in_features * self.out_features);
        for j in 0..self.out_features {
            let s = self.scales[j];
            w.extend((0..self.in_features).map(|k| s * f32::from(self.value(j, k))));
        }
        for (i, &o) in self.outliers.iter().enumerate() {
            for j in 0..self.out_features {
                w[j * self.in_features + o] = self.outlier_weights[i * self.out_features + j];
            }
        }
        w
    }

    /// The input channels kept in f32, ascending.
    pub fn outliers(&self) -> &[usize] {
        &self.outliers
    }

    /// Bytes held (panels, scales, offsets and the outlier channels' f32 weights).
    pub fn bytes(&self) -> usize {
        self.data.len() + 8 * self.out_features + 4 * self.outlier_weights.len()
    }

    fn panels(&self) -> &[i8] {
        let len =
            self.out_features.div_ceil(PANEL) * self.in_features.div_ceil(GROUP) * GROUP_BYTES;
        &self.data[self.offset..self.offset + len]
    }
}

/// `len` zero bytes from a 64-byte boundary on (a panel group is one cache line): the
/// buffer and the boundary's offset in it.
fn aligned_zeros(len: usize) -> (Vec<i8>, usize) {
    let data = vec![0i8; len + 64];
    let offset = match data.as_ptr().align_offset(64) {
        o if o < 64 => o,
        _ => 0,
    };
    (data, offset)
}

impl PartialEq for QuantizedWeight {
    /// Same shape, values and scales (wherever the buffers are aligned).
    fn eq(&self, other: &Self) -> bool {
        self.in_features == other.in_features
            && self.out_features == other.out_features
            && self.scales == other.scales
            && self.offsets == other.offsets
            && self.outliers == other.outliers
            && self.outlier_weights == other.outlier_weights
            && self.panels() == other.panels()
    }
}

impl Clone for QuantizedWeight {
    /// A copy in a new buffer, aligned anew.
    fn clone(&self) -> Self {
        let panels = self.panels();
        let (mut data, offset) = aligned_zeros(panels.len());
        data[offset..offset + panels.len()].copy_from_slice(panels);
        Self {
            in_features: self.in_features,
            out_features: self.out_features,
            data,
            offset,
            scales: self.scales.clone(),
            offsets: self.offsets.clone(),
            outliers: self.outliers.clone(),
            outlier_weights: self.outlier_weights.clone(),
        }
    }
}

/// The bits of the largest magnitude of `row` and whether every value is finite, in one pass that
/// vectorises: the bits of a non-negative float order as the float does, and every
/// infinity or NaN has bits at or above infinity's.
#[inline(always)]
fn max_abs_bits(row: &[f32]) -> (u32, bool) {
    let bits = row
        .iter()
        .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
    (bits, bits < 0x7f80_0000)
}

/// `v` rounded to the nearest integer (ties to even) and clamped to `[−127, 127]`, for `|v|`
/// below 2²²: after adding [`ROUND_MAGIC`] the integer sits in the low mantissa bits, so
/// the result is read off as integers (a vectorisable sequence, no float-to-int
/// conversion).
#[inline(always)]
fn round_to_i8(v: f32) -> i8 {
    ((v + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32).clamp(-127, 127) as i8
}

thread_local! {
    /// The calling thread's quantized activations and their scales, reused across calls.
    /// Taken out for the duration of a call (a nested call on the same thread, by rayon
    /// work stealing, finds them empty and allocates its own).
    static ROWS_U8: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static ROWS_I16: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
    static ROW_SCALES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static ROWS_APART: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Quantizes each row of `x` (`[rows, k]`) symmetrically: `t_r` into `scales[r]`, `p[r, k]`
/// into `dst[r · lda + k]` through `store` (the format's conversion), zeros (the format's
/// zero) past `k`. The `outliers` columns count as zeros; their values go to
/// `apart[r · max(1, outliers.len()) + i]`.
#[allow(clippy::too_many_arguments)]
fn quantize_rows<T: Copy + Send + Sync>(
    x: &[f32],
    k: usize,
    lda: usize,
    dst: &mut [T],
    scales: &mut [f32],
    outliers: &[usize],
    apart: &mut [f32],
    store: impl Fn(i8) -> T + Sync,
) {
    let rows_per_task = (1 << 14) / lda.max(1) + 1;
    let zero = store(0);
    let n_out = outliers.len();
    let stride = n_out.max(1);
    x.par_chunks(rows_per_task * k)
        .zip(dst.par_chunks_mut(rows_per_task * lda))
        .zip(scales.par_chunks_mut(rows_per_task))
        .zip(apart.par_chunks_mut(rows_per_task * stride))
        .for_each(|(((xs, ds), ss), aps)| {
            pulp::Arch::new().dispatch(QuantizeRows {
                xs,
                ds,
                ss,
                aps,
                k,
                lda,
                outliers,
                stride,
                zero,
                store: &store,
            });
        });
}

/// One task's rows of [`quantize_rows`], as a `pulp` operation: its body is inlined into
/// the function compiled for the CPU's instruction set (a closure given to `dispatch` was
/// compiled for the baseline instead).
struct QuantizeRows<'a, T, F> {
    xs: &'a [f32],
    ds: &'a mut [T],
    ss: &'a mut [f32],
    aps: &'a mut [f32],
    k: usize,
    lda: usize,
    outliers: &'a [usize],
    stride: usize,
    zero: T,
    store: &'a F,
}

impl<T: Copy, F: Fn(i8) -> T> pulp::WithSimd for QuantizeRows<'_, T, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            xs,
            ds,
            ss,
            aps,
            k,
            lda,
            outliers,
            stride,
            zero,
            store,
        } = self;
        for (r, ((row, d), s)) in xs
            .chunks_exact(k)
            .zip(ds.chunks_exact_mut(lda))
            .zip(ss)
            .enumerate()
        {
            // The largest magnitude outside the outlier columns: the max of the
            // stretches between them (no copy of the row).
            let (mut max_bits, mut finite) = (0u32, true);
            let mut start = 0;
            for (i, &o) in outliers.iter().enumerate() {
                aps[r * stride + i] = row[o];
                let (m, f) = max_abs_bits(&row[start..o]);
                (max_bits, finite) = (max_bits.max(m), finite && f && row[o].is_finite());
                start = o + 1;
            }
            let (m, f) = max_abs_bits(&row[start..]);
            (max_bits, finite) = (max_bits.max(m), finite && f);
            let max = f32::from_bits(max_bits);
            let inv = if max > 0.0 && finite {
                127.0 / max
            } else {
                0.0
            };
            *s = if finite { max / 127.0 } else { f32::NAN };
            for (o, &v) in d.iter_mut().zip(row) {
                *o = store(round_to_i8(v * inv));
            }
            for &o in outliers {
                d[o] = zero;
            }
            d[k..].fill(zero);
        }
    }
}

/// `out ← act(x · Wᵀ + b)`, or `out ← out + x · Wᵀ + b` when accumulating, with `W` int8
/// and `x` quantized per row on the way in (see the module docs).
///
/// # Shapes
/// - `x`: `[rows, in_features]`; `epilogue.bias`: `[out_features]`;
///   `out`: `[rows, out_features]`
///
/// # Errors
/// [`TensorError::LengthMismatch`] naming the buffer whose length is wrong;
/// [`TensorError::InvalidArgument`] for an activation with `accumulate`.
pub fn linear_int8(
    x: &[f32],
    weight: &QuantizedWeight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) -> TensorResult<()> {
    linear_int8_with(Int8Kernel::current(), x, weight, rows, out, epilogue)
}

/// [`linear_int8`] on the given kernels (tests and benchmarks compare them; every kernel
/// gives the same bits).
///
/// # Errors
/// As [`linear_int8`].
///
/// # Panics
/// When this CPU does not support `kernel`.
pub fn linear_int8_with(
    kernel: Int8Kernel,
    x: &[f32],
    weight: &QuantizedWeight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) -> TensorResult<()> {
    let (k, n) = (weight.in_features, weight.out_features);
    let expected = checked_mul("linear_int8", "input [rows, in_features]", rows, k)?;
    check_len(
        "linear_int8",
        "input [rows, in_features]",
        expected,
        x.len(),
    )?;
    let expected = checked_mul("linear_int8", "output [rows, out_features]", rows, n)?;
    check_len(
        "linear_int8",
        "output [rows, out_features]",
        expected,
        out.len(),
    )?;
    epilogue.check(n)?;
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let lda = k.div_ceil(GROUP).max(1) * GROUP;
    let outliers = &weight.outliers;
    let mut scales = ROW_SCALES.take();
    scales.resize(rows, 0.0);
    let mut apart = ROWS_APART.take();
    apart.resize(rows * outliers.len().max(1), 0.0);
    match kernel.activations() {
        ActivationFormat::U8Offset => {
            let mut a = ROWS_U8.take();
            a.resize(rows * lda, 0);
            let store = |q: i8| (i16::from(q) + 128) as u8;
            quantize_rows(x, k, lda, &mut a, &mut scales, outliers, &mut apart, store);
            let rows_q = Quantized {
                a: Int8Rows::U8(&a),
                lda,
                scales: &scales,
                offsets: Some(&weight.offsets),
                apart: &apart,
            };
            product(kernel, &rows_q, weight, rows, out, epilogue);
            ROWS_U8.set(a);
        }
        ActivationFormat::I16 => {
            let mut a = ROWS_I16.take();
            a.resize(rows * lda, 0);
            quantize_rows(
                x,
                k,
                lda,
                &mut a,
                &mut scales,
                outliers,
                &mut apart,
                i16::from,
            );
            let rows_q = Quantized {
                a: Int8Rows::I16(&a),
                lda,
                scales: &scales,
                offsets: None,
                apart: &apart,
            };
            product(kernel, &rows_q, weight, rows, out, epilogue);
            ROWS_I16.set(a);
        }
    }
    ROW_SCALES.set(scales);
    ROWS_APART.set(apart);
    Ok(())
}

/// The quantized activations of one call.
struct Quantized<'a> {
    a: Int8Rows<'a>,
    lda: usize,
    /// `t_r`, `[rows]`.
    scales: &'a [f32],
    /// Subtracted from each column's sum (the u8 format's offset), `[out_features]`.
    offsets: Option<&'a [i32]>,
    /// The outlier channels' values, `[rows, max(1, outliers)]`.
    apart: &'a [f32],
}

impl<'a> Quantized<'a> {
    /// Rows `r0..r1`.
    fn rows(&self, r0: usize, r1: usize) -> Quantized<'a> {
        let a = match self.a {
            Int8Rows::U8(a) => Int8Rows::U8(&a[r0 * self.lda..r1 * self.lda]),
            Int8Rows::I16(a) => Int8Rows::I16(&a[r0 * self.lda..r1 * self.lda]),
        };
        let per = self.apart.len() / self.scales.len();
        Quantized {
            a,
            lda: self.lda,
            scales: &self.scales[r0..r1],
            offsets: self.offsets,
            apart: &self.apart[r0 * per..r1 * per],
        }
    }
}

/// The product on checked buffers, split across the rayon threads: by rows when each
/// thread gets at least [`MIN_ROWS_PER_TASK`], else by column blocks (each thread reads only
/// its share of the weight, which is what a single image needs).
fn product(
    kernel: Int8Kernel,
    x: &Quantized<'_>,
    w: &QuantizedWeight,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let (k, n) = (w.in_features, w.out_features);
    let panels = n.div_ceil(PANEL);
    let threads = rayon::current_num_threads();
    let macs = rows.saturating_mul(k).saturating_mul(n);
    if threads <= 1 || macs < PARALLEL_MIN_MACS {
        return block(kernel, x, w, rows, 0..panels, out, n, epilogue);
    }
    if rows >= threads * MIN_ROWS_PER_TASK {
        let chunk = rows.div_ceil(threads).next_multiple_of(kernel.max_rows());
        out.par_chunks_mut(chunk * n)
            .enumerate()
            .for_each(|(i, o)| {
                let r0 = i * chunk;
                let rr = o.len() / n;
                block(
                    kernel,
                    &x.rows(r0, r0 + rr),
                    w,
                    rr,
                    0..panels,
                    o,
                    n,
                    epilogue,
                );
            });
        return;
    }
    let step = kernel.max_panels();
    crate::ops::split::by_column_groups(
        panels,
        step,
        n,
        rows,
        out,
        epilogue,
        |ps, buf, width, e| block(kernel, x, w, rows, ps, buf, width, e),
    );
}

/// Columns `panels · 16` (clipped to `out_features`) of the product with the epilogue,
/// into `out` `[rows, ldo]` whose column 0 is the first column of `panels`.
///
/// Loop order: column blocks of the panels that fit [`PANEL_BLOCK_BYTES`] (kept in L2),
/// row tiles of equal height (a tile's activations stay in L1 across the block), panel
/// groups; each tile sums the whole inner dimension in registers and is rescaled once.
#[allow(clippy::too_many_arguments)]
fn block(
    kernel: Int8Kernel,
    x: &Quantized<'_>,
    w: &QuantizedWeight,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: &mut [f32],
    ldo: usize,
    epilogue: Epilogue<'_>,
) {
    pulp::Arch::new().dispatch(Block {
        kernel,
        x,
        w,
        rows,
        panels,
        out,
        ldo,
        epilogue,
    });
}

/// [`block`]'s arguments, as a `pulp` operation: the rescale loops are inlined into the
/// function compiled for the CPU's instruction set, so they vectorise with it (as a
/// closure given to `dispatch` they were compiled for the baseline, SSE2: 13 % of an int8
/// ViT-B/32 at batch 32).
struct Block<'a> {
    kernel: Int8Kernel,
    x: &'a Quantized<'a>,
    w: &'a QuantizedWeight,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: &'a mut [f32],
    ldo: usize,
    epilogue: Epilogue<'a>,
}

impl pulp::WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            kernel,
            x,
            w,
            rows,
            panels,
            out,
            ldo,
            epilogue,
        } = self;
        block_body(kernel, x, w, rows, panels, out, ldo, epilogue);
    }
}

/// The body of [`block`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block_body(
    kernel: Int8Kernel,
    x: &Quantized<'_>,
    w: &QuantizedWeight,
    rows: usize,
    panels: std::ops::Range<usize>,
    out: &mut [f32],
    ldo: usize,
    epilogue: Epilogue<'_>,
) {
    let (k, n) = (w.in_features, w.out_features);
    let kg = k.div_ceil(GROUP);
    let panel_stride = kg * GROUP_BYTES;
    let packed = w.panels();
    let c0 = panels.start * PANEL;
    let step = kernel.max_panels();
    let tile_rows = rows.div_ceil(rows.div_ceil(kernel.max_rows())).max(1);
    let block_panels = (PANEL_BLOCK_BYTES / panel_stride.max(1))
        .max(1)
        .next_multiple_of(step);
    let mut acc = [0i32; ACC_LEN];
    for pb in panels.clone().step_by(block_panels) {
        let pe = (pb + block_panels).min(panels.end);
        for r0 in (0..rows).step_by(tile_rows) {
            let rr = tile_rows.min(rows - r0);
            let tile = x.rows(r0, r0 + rr);
            for p in (pb..pe).step_by(step) {
                let pc = step.min(pe - p);
                if kg == 0 {
                    acc.fill(0);
                } else {
                    let b = &packed[p * panel_stride..];
                    tile_i8(kernel, tile.a, x.lda, rr, b, panel_stride, pc, kg, &mut acc);
                }
                let (j0, j1) = (p * PANEL, ((p + pc) * PANEL).min(n));
                let n_out = w.outliers.len();
                let stride = n_out.max(1);
                for r in 0..rr {
                    let t = tile.scales[r];
                    let o = &mut out[(r0 + r) * ldo + (j0 - c0)..(r0 + r) * ldo + (j1 - c0)];
                    let sums = &acc[r * ACC_STRIDE..r * ACC_STRIDE + (j1 - j0)];
                    let rescaled = Rescale {
                        t,
                        s: &w.scales[j0..j1],
                        offsets: x.offsets.map(|off| &off[j0..j1]),
                        bias: epilogue.bias.map(|b| &b[j0..j1]),
                        apart: &tile.apart[r * stride..r * stride + n_out],
                        apart_weights: &w.outlier_weights,
                        n,
                        j0,
                    };
                    rescaled.write(o, sums, epilogue.accumulate);
                }
            }
        }
        if let Some(act) = epilogue.activation {
            let (j0, j1) = (pb * PANEL - c0, (pe * PANEL).min(n) - c0);
            for r in 0..rows {
                act.apply_chunk(&mut out[r * ldo + j0..r * ldo + j1]);
            }
        }
    }
}

/// One row of a tile's rescale: `o[c] (+)= (sums[c] − offsets[c]) · t · s[c] + bias[c] +
/// Σ_i apart[i] · apart_weights[i · n + j0 + c]`.
struct Rescale<'a> {
    t: f32,
    s: &'a [f32],
    offsets: Option<&'a [i32]>,
    bias: Option<&'a [f32]>,
    /// This row's outlier values.
    apart: &'a [f32],
    /// `[outliers, n]`.
    apart_weights: &'a [f32],
    n: usize,
    j0: usize,
}

impl Rescale<'_> {
    /// One plain loop per term over the row's (at most 32) columns, so each vectorises;
    /// straight into `o` unless adding onto it (a staged copy of a short row is a `memmove`
    /// call, 6 % of an int8 ViT-B/32 at batch 32).
    #[inline(always)]
    fn write(&self, o: &mut [f32], sums: &[i32], add: bool) {
        if add {
            let mut v = [0.0f32; ACC_STRIDE];
            let v = &mut v[..o.len()];
            self.terms(v, sums);
            o.iter_mut().zip(v.iter()).for_each(|(o, &v)| *o += v);
        } else {
            self.terms(o, sums);
        }
    }

    /// `v[c] = (sums[c] − offsets[c]) · t · s[c] + bias[c] + Σ_i apart[i] · W_O[i, j0 + c]`.
    #[inline(always)]
    fn terms(&self, v: &mut [f32], sums: &[i32]) {
        let cols = v.len();
        let sums = &sums[..cols];
        let s = &self.s[..cols];
        match self.offsets {
            Some(off) => {
                for (((v, &sum), &off), &s) in v.iter_mut().zip(sums).zip(&off[..cols]).zip(s) {
                    *v = (sum - off) as f32 * (self.t * s);
                }
            }
            None => {
                for ((v, &sum), &s) in v.iter_mut().zip(sums).zip(s) {
                    *v = sum as f32 * (self.t * s);
                }
            }
        }
        if let Some(b) = self.bias {
            v.iter_mut().zip(&b[..cols]).for_each(|(v, &b)| *v += b);
        }
        for (i, &a) in self.apart.iter().enumerate() {
            let w = &self.apart_weights[i * self.n + self.j0..i * self.n + self.j0 + cols];
            v.iter_mut().zip(w).for_each(|(v, &w)| *v += a * w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::KernelPath;
    use crate::{Activation, LcgRng};
    use proptest::prelude::*;

    /// The product the scheme defines, from the same quantization, in f64.
    fn reference(
        x: &[f32],
        w: &QuantizedWeight,
        bias: Option<&[f32]>,
        base: Option<&[f32]>,
        rows: usize,
    ) -> Vec<f64> {
        let (k, n) = (w.in_features(), w.out_features());
        let mut y = vec![0.0f64; rows * n];
        for r in 0..rows {
            let row = &x[r * k..(r + 1) * k];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
            let t = f64::from(max / 127.0);
            for j in 0..n {
                let sum: i64 = row
                    .iter()
                    .enumerate()
                    .map(|(kk, &v)| {
                        i64::from((v * inv).round_ties_even() as i8) * i64::from(w.value(j, kk))
                    })
                    .sum();
                y[r * n + j] = sum as f64 * t * f64::from(w.scales()[j])
                    + bias.map_or(0.0, |b| f64::from(b[j]))
                    + base.map_or(0.0, |b| f64::from(b[r * n + j]));
            }
        }
        y
    }

    /// Every int8 kernel set this CPU has.
    fn on_every_kernel(mut f: impl FnMut(Int8Kernel)) {
        let mut kernels: Vec<Int8Kernel> = KernelPath::supported()
            .into_iter()
            .map(Int8Kernel::for_path)
            .collect();
        kernels.dedup();
        kernels.into_iter().for_each(&mut f);
    }

    #[test]
    fn weights_quantize_per_channel() {
        // Channel 0 spans ±2, channel 1 ±0.5: each gets its own scale.
        let w = [2.0, -1.0, 0.5, 0.0, -0.5, 0.25];
        let q = QuantizedWeight::quantize(&w, WeightLayout::OutIn, 3, 2).unwrap();
        assert_eq!(q.scales(), [2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(
            (0..3).map(|k| q.value(0, k)).collect::<Vec<_>>(),
            [127, -64, 32]
        );
        assert_eq!(
            (0..3).map(|k| q.value(1, k)).collect::<Vec<_>>(),
            [0, -127, 64]
        );
        let t = QuantizedWeight::quantize(
            &[2.0, 0.0, -1.0, -0.5, 0.5, 0.25],
            WeightLayout::InOut,
            3,
            2,
        )
        .unwrap();
        assert_eq!(t, q);
        assert_eq!(q.clone(), q);
        assert_eq!(q.clone().panels().as_ptr().align_offset(64), 0);
        let d = q.dequantize();
        for (a, b) in d.iter().zip(w) {
            assert!((a - b).abs() <= 0.5 * 2.0 / 127.0, "{a} vs {b}");
        }
        assert_eq!(q.panels().as_ptr().align_offset(64), 0);
    }

    #[test]
    fn rounding_is_to_nearest_even_and_clamped() {
        for (v, q) in [
            (0.5, 0),
            (1.5, 2),
            (-0.5, 0),
            (-2.5, -2),
            (2.4999, 2),
            (-126.6, -127),
            (200.0, 127),
            (-1e6, -127),
        ] {
            assert_eq!(round_to_i8(v), q, "{v}");
        }
    }

    #[test]
    fn bad_weights_are_refused() {
        let err =
            QuantizedWeight::quantize(&[1.0, f32::NAN], WeightLayout::OutIn, 2, 1).unwrap_err();
        assert!(err.to_string().contains("NaN at index 1"), "{err}");
        let err = QuantizedWeight::quantize(&[1.0; 3], WeightLayout::OutIn, 2, 1).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ));
        let err =
            QuantizedWeight::quantize(&[], WeightLayout::OutIn, MAX_INNER + 1, 0).unwrap_err();
        assert!(err.to_string().contains("65536"), "{err}");
    }

    #[test]
    fn shapes_are_checked() {
        let w = QuantizedWeight::quantize(&[1.0; 6], WeightLayout::OutIn, 3, 2).unwrap();
        let mut out = [0.0; 4];
        let err = linear_int8(&[1.0; 5], &w, 2, &mut out, Epilogue::default()).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            }
        ));
        let err = linear_int8(&[1.0; 6], &w, 2, &mut out[..3], Epilogue::default()).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                expected: 4,
                got: 3,
                ..
            }
        ));
    }

    /// Zero rows give the bias; a row with a NaN gives NaN, the others are untouched.
    #[test]
    fn zero_and_non_finite_rows() {
        let w =
            QuantizedWeight::quantize(&[1.0, 2.0, 3.0, 4.0], WeightLayout::OutIn, 2, 2).unwrap();
        let bias = [0.5, -0.5];
        let x = [0.0, 0.0, f32::NAN, 1.0, 1.0, 1.0];
        let mut out = [9.0; 6];
        let epilogue = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        on_every_kernel(|p| {
            linear_int8_with(p, &x, &w, 3, &mut out, epilogue).unwrap();
            assert_eq!(out[..2], bias, "{p}");
            assert!(out[2].is_nan() && out[3].is_nan(), "{p}");
            assert!(
                (out[4] - 3.5).abs() < 0.05 && (out[5] - 6.5).abs() < 0.05,
                "{p}: {out:?}"
            );
        });
    }

    #[test]
    fn the_int8_product_stays_near_f32() {
        let (rows, k, n) = (7, 200, 37);
        let mut rng = LcgRng::new(3);
        let x = rng.normal_vec(rows * k, 0.0, 1.0);
        let w = rng.normal_vec(n * k, 0.0, 0.05);
        let q = QuantizedWeight::quantize(&w, WeightLayout::OutIn, k, n).unwrap();
        let mut out = vec![0.0; rows * n];
        linear_int8(&x, &q, rows, &mut out, Epilogue::default()).unwrap();
        let exact = crate::testutil::naive_matmul(&x, &transpose(&w, n, k), rows, k, n);
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for (a, b) in out.iter().zip(&exact) {
            err += f64::from(a - b).powi(2);
            norm += f64::from(*b).powi(2);
        }
        // Two 8-bit roundings: relative error about 1 %.
        assert!(
            (err / norm).sqrt() < 0.02,
            "relative error {}",
            (err / norm).sqrt()
        );
    }

    /// The threaded splits: rows shared out (many rows), columns shared out (few rows).
    #[test]
    fn both_threadings_compute_the_scheme() {
        for (rows, k, n) in [(230, 130, 90), (3, 770, 1000)] {
            let mut rng = LcgRng::new(rows as u64);
            let x = rng.normal_vec(rows * k, 0.0, 1.0);
            let w = rng.normal_vec(n * k, 0.0, 0.3);
            let b = rng.normal_vec(n, 0.0, 0.1);
            let q = QuantizedWeight::quantize(&w, WeightLayout::OutIn, k, n).unwrap();
            let want = reference(&x, &q, Some(&b), None, rows);
            let epilogue = Epilogue {
                bias: Some(&b),
                ..Epilogue::default()
            };
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                on_every_kernel(|p| {
                    let mut out = vec![f32::NAN; rows * n];
                    pool.install(|| linear_int8_with(p, &x, &q, rows, &mut out, epilogue))
                        .unwrap();
                    for (i, (&o, &e)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(o) - e).abs() <= 1e-5 * (1.0 + e.abs()),
                            "{p}, {threads} threads, {rows}×{k}×{n} [{i}]: {o} vs {e}"
                        );
                    }
                });
            }
        }
    }

    /// Massive input channels: kept apart they are exact and leave the other channels their
    /// resolution; quantized with them, every token's scale is theirs.
    #[test]
    fn outlier_channels_are_kept_in_f32() {
        let (rows, k, n) = (40, 256, 48);
        let mut rng = LcgRng::new(11);
        let mut x = rng.normal_vec(rows * k, 0.0, 1.0);
        let massive = [3usize, 200];
        for r in 0..rows {
            x[r * k + 3] = 300.0;
            x[r * k + 200] = -150.0 + r as f32;
        }
        let mut w = rng.normal_vec(n * k, 0.0, 0.05);
        // The layer's bias cancels the massive channels' constant part (as CLIP's do), so
        // the output is the ordinary channels' work.
        let exact_w = transpose(&w, n, k);
        let bias: Vec<f32> = (0..n)
            .map(|j| -(300.0 * w[j * k + 3] - 150.0 * w[j * k + 200]))
            .collect();
        let mut exact = crate::testutil::naive_matmul(&x, &exact_w, rows, k, n);
        for (i, v) in exact.iter_mut().enumerate() {
            *v += bias[i % n];
        }
        let epilogue = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        let rel = |got: &[f32]| {
            let (mut e, mut s) = (0.0f64, 0.0f64);
            for (a, b) in got.iter().zip(&exact) {
                e += f64::from(a - b).powi(2);
                s += f64::from(*b).powi(2);
            }
            (e / s).sqrt()
        };
        let plain = QuantizedWeight::quantize(&w, WeightLayout::OutIn, k, n).unwrap();
        let apart =
            QuantizedWeight::quantize_with_outliers(&w, WeightLayout::OutIn, k, n, &[200, 3, 3])
                .unwrap();
        assert_eq!(apart.outliers(), massive);
        // The f32 weights of the outlier channels, the int8 ones of the rest.
        let d = apart.dequantize();
        assert_eq!(d[5 * k + 3], w[5 * k + 3]);
        assert_eq!(apart.value(5, 3), 0);
        let mut first: Option<Vec<f32>> = None;
        on_every_kernel(|p| {
            let mut out = vec![0.0; rows * n];
            linear_int8_with(p, &x, &plain, rows, &mut out, epilogue).unwrap();
            let plain_err = rel(&out);
            linear_int8_with(p, &x, &apart, rows, &mut out, epilogue).unwrap();
            let apart_err = rel(&out);
            assert!(apart_err < 0.02, "{p}: {apart_err}");
            assert!(
                plain_err > 5.0 * apart_err,
                "{p}: {plain_err} vs {apart_err}"
            );
            match &first {
                None => first = Some(out),
                Some(f) => assert_eq!(f, &out, "{p} differs from the first kernel"),
            }
        });
        w[0] = 0.0;
        assert!(
            QuantizedWeight::quantize_with_outliers(&w, WeightLayout::OutIn, k, n, &[k]).is_err()
        );
    }

    fn transpose(w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut t = vec![0.0; k * n];
        for j in 0..n {
            for kk in 0..k {
                t[kk * n + j] = w[j * k + kk];
            }
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every path, both threadings (row blocks at many rows, column blocks at few), with
        /// and without bias, accumulation and an activation: the same bits on every path,
        /// and the scheme's product to within f32 rounding of the rescale.
        #[test]
        fn every_path_computes_the_scheme(
            rows in 1usize..260,
            k in 1usize..70,
            n in 1usize..90,
            seed in 0u64..1000,
            bias in any::<bool>(),
            mode in 0usize..3,
        ) {
            let mut rng = LcgRng::new(seed);
            let x = rng.normal_vec(rows * k, 0.0, 1.0);
            let w = rng.normal_vec(n * k, 0.0, 0.3);
            let b = rng.normal_vec(n, 0.0, 0.1);
            let base = rng.normal_vec(rows * n, 0.0, 1.0);
            let q = QuantizedWeight::quantize(&w, WeightLayout::OutIn, k, n).unwrap();
            let epilogue = Epilogue {
                bias: bias.then_some(b.as_slice()),
                activation: (mode == 2).then_some(Activation::Gelu),
                accumulate: mode == 1,
            };
            let want = reference(&x, &q, epilogue.bias, (mode == 1).then_some(&base), rows);
            let mut want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            if let Some(act) = epilogue.activation {
                act.apply_inplace(&mut want);
            }
            let mut first: Option<Vec<f32>> = None;
            on_every_kernel(|p| {
                let mut out = base.clone();
                linear_int8_with(p, &x, &q, rows, &mut out, epilogue).unwrap();
                for (i, (&o, &e)) in out.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * (1.0 + e.abs());
                    assert!((o - e).abs() <= tol, "{p} [{i}]: {o} vs {e}");
                }
                match &first {
                    None => first = Some(out),
                    Some(f) => assert!(
                        f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{p} differs from the first path"
                    ),
                }
            });
        }
    }
}
