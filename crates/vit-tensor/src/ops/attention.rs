//! Scaled dot-product attention of one head, tiled: `softmax(q·kᵀ · scale + mask) · v`
//! without the `[queries, keys]` score matrix.
//!
//! The head's keys and values are packed once into the micro-kernels' tiles
//! ([`crate::kernels`]). The queries then go in tiles of 32 (AVX-512) or 16 and the keys in
//! blocks of about [`KEY_BLOCK`]. For each pair the transposed scores `sᵀ = k · qᵀ`
//! `[keys, queries]` are computed in registers into a tile that stays in L1, so that each
//! query is a column and the softmax runs down the columns in full vectors. The softmax is
//! the online one (Milakov & Gimelshein 2018, as FlashAttention uses it): each query keeps
//! its running maximum `m` and sum `l`, and when a key block raises `m` the query's partial
//! output and sum are rescaled by `e^(m_old − m_new)`. The exponentials then multiply the
//! values straight onto the partial output (transposed, `[dv, queries]`), which is divided
//! by `l` once at the end. At 577 tokens a head keeps 264 · 32 scores live instead of 577².
//!
//! Masks: a [`KeyMask`] drops keys exactly (their scores become `−∞`, their weights exactly
//! 0), and under the causal rule the key blocks entirely after a query tile are not
//! computed at all. A query that sees no key gets a zero output row.
//!
//! The kernel path is [`kernels::kernel_path`], so [`kernels::force_kernel_path`] and
//! `VIT_TENSOR_KERNEL` choose it here as for the packed linear layers.
//!
//! What this module does not do: the projections around attention, the split into heads
//! (callers pass strided views of a fused `[tokens, 3·D]` buffer) and threading (callers run
//! heads or sequences in parallel).

use super::math::exp_nonpositive as exp;
use crate::error::{check_len, TensorError, TensorResult};
use crate::gemm::{MatMut, MatRef};
use crate::kernels::{self, KernelPath, TileOut, MAX_ROWS, PANEL};

/// Keys per block, rounded up to a whole number of the kernel's key tiles (12 or 6).
pub const KEY_BLOCK: usize = 256;

/// Which keys each query of one sequence may see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyMask<'a> {
    /// Query `i` sees only keys `j ≤ i` (positions counted from 0 in both).
    pub causal: bool,
    /// `[keys]`: `false` for a padding key, which no query sees.
    pub keep: Option<&'a [bool]>,
}

impl KeyMask<'_> {
    /// Every query sees every key.
    pub const NONE: KeyMask<'static> = KeyMask {
        causal: false,
        keep: None,
    };
}

/// The buffers [`attention_into`] works in. Grown on first use and reused across calls;
/// one per thread.
#[derive(Debug, Clone, Default)]
pub struct AttentionTiles {
    /// Tiles of `R` keys (`R` = the kernel's rows), `[d, R]` each: key `t·R + r`, element
    /// `e` at `t·R·d + e·rows_t + r`.
    k_tiles: Vec<f32>,
    /// Groups of `R` value columns, `[keys, R]` each: value `(j, g·R + r)` at
    /// `g·keys·R + j·rows_g + r`.
    v_groups: Vec<f32>,
    /// The query tile times `scale`: panels of `[d, 16]`.
    q_panels: Vec<f32>,
    /// Scores, then weights, of one key block: panels of `[block, 16]`, one per 16 queries.
    scores: Vec<f32>,
    /// The partial output, transposed: `[dv, query tile]`.
    acc: Vec<f32>,
    /// Running maximum and sum per query of the tile.
    max: Vec<f32>,
    sum: Vec<f32>,
    /// One output row `[dv]`.
    row: Vec<f32>,
}

/// `out ← softmax(q · kᵀ · scale + mask) · v` for one head, on [`kernels::kernel_path`] in
/// key blocks of about [`KEY_BLOCK`].
///
/// # Shapes
/// - `q`: `[queries, d]`, `k`: `[keys, d]`, `v`: `[keys, dv]` (any strides)
/// - `out`: `[queries, dv]`; `mask.keep`: `[keys]`
///
/// # Errors
/// [`TensorError::DimMismatch`] when the shapes do not chain;
/// [`TensorError::LengthMismatch`] when `mask.keep` is not one flag per key.
///
/// # Example
/// ```
/// use vit_tensor::ops::attention::{attention_into, AttentionTiles, KeyMask};
/// use vit_tensor::{MatMut, MatRef};
/// let q = [1.0, 0.0]; // one query [1, 2]
/// let k = [1.0, 0.0, 0.0, 1.0]; // two keys [2, 2]
/// let v = [10.0, 20.0]; // [2, 1]
/// let mut out = [0.0];
/// attention_into(MatRef::row_major(&q, 1, 2)?, MatRef::row_major(&k, 2, 2)?,
///     MatRef::row_major(&v, 2, 1)?, 1.0, KeyMask::NONE,
///     MatMut::row_major(&mut out, 1, 1)?, &mut AttentionTiles::default())?;
/// let w = 1.0 / (1.0 + (-1.0f32).exp()); // softmax([1, 0])[0]
/// assert!((out[0] - (10.0 * w + 20.0 * (1.0 - w))).abs() < 1e-4);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn attention_into(
    q: MatRef<'_>,
    k: MatRef<'_>,
    v: MatRef<'_>,
    scale: f32,
    mask: KeyMask<'_>,
    out: MatMut<'_>,
    tiles: &mut AttentionTiles,
) -> TensorResult<()> {
    attention_with(
        kernels::kernel_path(),
        KEY_BLOCK,
        q,
        k,
        v,
        scale,
        mask,
        out,
        tiles,
    )
}

/// [`attention_into`] on a given kernel path with a given key block: the tests run every
/// path and many key blocks on short sequences, the benches compare block sizes.
///
/// # Errors
/// As [`attention_into`]; [`TensorError::InvalidArgument`] when `key_block` is 0 or `path`
/// is not supported by this CPU.
#[allow(clippy::too_many_arguments)]
pub fn attention_with(
    path: KernelPath,
    key_block: usize,
    q: MatRef<'_>,
    k: MatRef<'_>,
    v: MatRef<'_>,
    scale: f32,
    mask: KeyMask<'_>,
    mut out: MatMut<'_>,
    tiles: &mut AttentionTiles,
) -> TensorResult<()> {
    let (queries, keys, d, dv) = (q.rows(), k.rows(), q.cols(), v.cols());
    check_dims("q columns and k columns", d, k.cols())?;
    check_dims("k rows and v rows", keys, v.rows())?;
    check_dims("out rows and q rows", out.rows(), queries)?;
    check_dims("out columns and v columns", out.cols(), dv)?;
    if let Some(keep) = mask.keep {
        check_len("attention", "key mask [keys]", keys, keep.len())?;
    }
    if key_block == 0 {
        return Err(TensorError::InvalidArgument {
            op: "attention",
            what: "key_block",
            value: key_block.to_string(),
            reason: "must be at least 1",
        });
    }
    if !path.is_supported() {
        return Err(TensorError::InvalidArgument {
            op: "attention",
            what: "kernel path",
            value: path.to_string(),
            reason: "is not supported by this CPU",
        });
    }
    if queries == 0 || dv == 0 {
        return Ok(());
    }
    let AttentionTiles {
        k_tiles,
        v_groups,
        q_panels,
        scores,
        acc,
        max,
        sum: running_sum,
        row,
    } = tiles;
    row.clear();
    row.resize(dv, 0.0);
    if keys == 0 {
        for i in 0..queries {
            out.write_row(i, row);
        }
        return Ok(());
    }
    let r_max = path.max_rows();
    let q_tile = PANEL * path.max_panels();
    // A d of 0 is packed as one zero element per key: every score is 0.
    let kc = d.max(1);
    pack_k(k, r_max, kc, k_tiles);
    pack_v(v, r_max, v_groups);
    let block = key_block.div_ceil(r_max) * r_max;
    let block = block.min(keys.next_multiple_of(r_max));
    q_panels.resize(kc * q_tile, 0.0);
    scores.resize(block * q_tile, 0.0);
    acc.resize(dv * q_tile, 0.0);
    max.resize(q_tile, 0.0);
    running_sum.resize(q_tile, 0.0);
    for i0 in (0..queries).step_by(q_tile) {
        let rows = q_tile.min(queries - i0);
        let panels = rows.div_ceil(PANEL);
        pack_q(q, i0, rows, scale, kc, q_panels);
        acc.fill(0.0);
        max.fill(f32::NEG_INFINITY);
        running_sum.fill(0.0);
        // Under the causal rule the tile's last query sees keys up to i0 + rows − 1.
        let key_end = if mask.causal {
            keys.min(i0 + rows)
        } else {
            keys
        };
        for j0 in (0..key_end).step_by(block) {
            let cols = block.min(key_end - j0);
            // sᵀ [cols, 16] per query panel: k tile · q panels, one key tile at a time, each
            // panel of the tile into its own block.
            for t0 in (j0..j0 + cols).step_by(r_max) {
                let kr = r_max.min(keys - t0);
                kernels::tile(
                    path,
                    &k_tiles[t0 * kc..],
                    kr,
                    q_panels,
                    kc * PANEL,
                    panels,
                    kc,
                    TileOut {
                        out: &mut scores[(t0 - j0) * PANEL..],
                        ldo: PANEL,
                        panel_step: block * PANEL,
                        cols: panels * PANEL,
                        bias: None,
                        add: false,
                    },
                );
            }
            // A key tile may run past `cols` (causal end): those rows are never read.
            for p in 0..panels {
                pulp::Arch::new().dispatch(Softmax {
                    scores: &mut scores[p * block * PANEL..(p * block + cols) * PANEL],
                    first_query: i0 + p * PANEL,
                    first_key: j0,
                    mask,
                    max: &mut max[p * PANEL..(p + 1) * PANEL],
                    sum: &mut running_sum[p * PANEL..(p + 1) * PANEL],
                    acc: &mut acc[..],
                    acc_stride: q_tile,
                    acc_offset: p * PANEL,
                });
            }
            // accᵀ [dv, queries] += v groupᵀ · weights, one group of value columns at a time.
            for e0 in (0..dv).step_by(r_max) {
                let vr = r_max.min(dv - e0);
                kernels::tile(
                    path,
                    &v_groups[e0 * keys + j0 * vr..],
                    vr,
                    &scores[..],
                    block * PANEL,
                    panels,
                    cols,
                    TileOut {
                        out: &mut acc[e0 * q_tile..],
                        ldo: q_tile,
                        panel_step: PANEL,
                        cols: panels * PANEL,
                        bias: None,
                        add: true,
                    },
                );
            }
        }
        let acc: &[f32] = acc;
        for (r, &l) in running_sum[..rows].iter().enumerate() {
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            for (o, &a) in row.iter_mut().zip(acc[r..].iter().step_by(q_tile)) {
                *o = a * inv;
            }
            out.write_row(i0 + r, row);
        }
    }
    Ok(())
}

/// The rows `first .. first + N` (at most; fewer at the end) of a view whose columns are
/// contiguous, each `cols` long: the packing loops below index them without bounds checks
/// in the inner loop.
fn rows_of<const N: usize>(
    data: &[f32],
    row_stride: usize,
    first: usize,
    count: usize,
    start_col: usize,
    cols: usize,
) -> [&[f32]; N] {
    std::array::from_fn(|r| {
        if r < count {
            let start = (first + r) * row_stride + start_col;
            &data[start..start + cols]
        } else {
            &[]
        }
    })
}

/// `k` `[keys, d]` into tiles of `r_max` keys, `[kc, rows_t]` each at `t · r_max · kc`.
fn pack_k(k: MatRef<'_>, r_max: usize, kc: usize, dst: &mut Vec<f32>) {
    let (keys, d) = (k.rows(), k.cols());
    let (data, rs, cs) = k.parts();
    if d == 0 {
        dst.clear();
    }
    dst.resize(keys * kc, 0.0);
    for t0 in (0..keys).step_by(r_max) {
        let rows = r_max.min(keys - t0);
        let tile = &mut dst[t0 * kc..(t0 + rows) * kc];
        if cs == 1 && d > 0 {
            let src: [&[f32]; MAX_ROWS] = rows_of(data, rs, t0, rows, 0, d);
            for (e, col) in tile.chunks_exact_mut(rows).enumerate() {
                for (x, row) in col.iter_mut().zip(&src) {
                    *x = row[e];
                }
            }
        } else {
            for r in 0..rows {
                let start = (t0 + r) * rs;
                for (e, col) in tile.chunks_exact_mut(rows).take(d).enumerate() {
                    col[r] = data[start + e * cs];
                }
            }
        }
    }
}

/// `v` `[keys, dv]` into groups of `r_max` columns, `[keys, rows_g]` each at `g·r_max·keys`.
fn pack_v(v: MatRef<'_>, r_max: usize, dst: &mut Vec<f32>) {
    let (keys, dv) = (v.rows(), v.cols());
    let (data, rs, cs) = v.parts();
    dst.resize(keys * dv, 0.0);
    for e0 in (0..dv).step_by(r_max) {
        let rows = r_max.min(dv - e0);
        let group = &mut dst[e0 * keys..(e0 + rows) * keys];
        for (j, g) in group.chunks_exact_mut(rows).enumerate() {
            let start = j * rs + e0 * cs;
            if cs == 1 {
                g.copy_from_slice(&data[start..start + rows]);
            } else {
                for (r, x) in g.iter_mut().enumerate() {
                    *x = data[start + r * cs];
                }
            }
        }
    }
}

/// Queries `i0 .. i0 + rows` of `q` times `scale` into panels of 16, `[kc, 16]` each, zero
/// past the last query.
fn pack_q(q: MatRef<'_>, i0: usize, rows: usize, scale: f32, kc: usize, dst: &mut [f32]) {
    let (data, rs, cs) = q.parts();
    let d = q.cols();
    if !rows.is_multiple_of(PANEL) || d == 0 {
        dst.fill(0.0);
    }
    for p in 0..rows.div_ceil(PANEL) {
        let panel = &mut dst[p * kc * PANEL..(p + 1) * kc * PANEL];
        let n = PANEL.min(rows - p * PANEL);
        if cs == 1 && d > 0 {
            let src: [&[f32]; PANEL] = rows_of(data, rs, i0 + p * PANEL, n, 0, d);
            for (e, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (x, s) in row.iter_mut().zip(&src[..n]) {
                    *x = s[e] * scale;
                }
            }
        } else {
            for c in 0..n {
                let start = (i0 + p * PANEL + c) * rs;
                for (e, row) in panel.chunks_exact_mut(PANEL).take(d).enumerate() {
                    row[c] = data[start + e * cs] * scale;
                }
            }
        }
    }
}

fn check_dims(what: &'static str, left: usize, right: usize) -> TensorResult<()> {
    if left == right {
        Ok(())
    } else {
        Err(TensorError::DimMismatch {
            op: "attention",
            what,
            left,
            right,
        })
    }
}

/// One key block of one query panel through the mask and the online softmax: the scores
/// `[keys, 16]` become the weights `e^(s − m_new)` (masked ones exactly 0), and each
/// query's running sum and partial output are rescaled to its new maximum. Every step runs
/// across the 16 queries of a row, in full vectors.
struct Softmax<'a> {
    /// `[keys, 16]`, in place
    scores: &'a mut [f32],
    first_query: usize,
    first_key: usize,
    mask: KeyMask<'a>,
    /// `[16]`
    max: &'a mut [f32],
    /// `[16]`
    sum: &'a mut [f32],
    /// `[dv, acc_stride]`; this panel's queries at columns `acc_offset ..+ 16`
    acc: &'a mut [f32],
    acc_stride: usize,
    acc_offset: usize,
}

impl pulp::WithSimd for Softmax<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Softmax {
            scores,
            first_query,
            first_key,
            mask,
            max,
            sum: running_sum,
            acc,
            acc_stride,
            acc_offset,
        } = self;
        if mask.causal || mask.keep.is_some() {
            for (j, row) in scores.chunks_exact_mut(PANEL).enumerate() {
                let key = first_key + j;
                if mask.keep.is_some_and(|keep| !keep[key]) {
                    row.fill(f32::NEG_INFINITY);
                } else if mask.causal {
                    // Queries before this key do not see it.
                    let hidden = key.saturating_sub(first_query).min(PANEL);
                    row[..hidden].fill(f32::NEG_INFINITY);
                }
            }
        }
        // Four rows at a time into four maxima, so the max chain does not serialise.
        let mut maxima = [[f32::NEG_INFINITY; PANEL]; 4];
        let mut quads = scores.chunks_exact(4 * PANEL);
        for quad in &mut quads {
            for (m, row) in maxima.iter_mut().zip(quad.chunks_exact(PANEL)) {
                for (m, &s) in m.iter_mut().zip(row) {
                    *m = if s > *m { s } else { *m };
                }
            }
        }
        for row in quads.remainder().chunks_exact(PANEL) {
            for (m, &s) in maxima[0].iter_mut().zip(row) {
                *m = if s > *m { s } else { *m };
            }
        }
        let mut block_max = maxima[0];
        for m in &maxima[1..] {
            for (b, &x) in block_max.iter_mut().zip(m) {
                *b = if x > *b { x } else { *b };
            }
        }
        // Branch-free over the 16 queries, so it runs as a few vector operations.
        let mut shift = [0.0f32; PANEL];
        let mut rescale = [1.0f32; PANEL];
        let mut raised = 0u32;
        for c in 0..PANEL {
            let old = max[c];
            let new_max = if block_max[c] > old {
                block_max[c]
            } else {
                old
            };
            // A query that has seen no key yet keeps max −∞: its weights are e^(−∞) = 0.
            shift[c] = if new_max == f32::NEG_INFINITY {
                0.0
            } else {
                new_max
            };
            // e^(−∞) = 0 when the query saw nothing before (its acc and sum are 0); e^0 = 1
            // when the maximum stays (also when it stays −∞).
            let diff = if new_max == old { 0.0 } else { old - new_max };
            rescale[c] = exp(diff);
            raised += u32::from(new_max != old);
            max[c] = new_max;
        }
        let any_rescale = raised > 0;
        let mut sums = [[0.0f32; PANEL]; 2];
        let mut pairs = scores.chunks_exact_mut(2 * PANEL);
        for pair in &mut pairs {
            for (sum, row) in sums.iter_mut().zip(pair.chunks_exact_mut(PANEL)) {
                for ((s, &sh), b) in row.iter_mut().zip(&shift).zip(sum.iter_mut()) {
                    *s = exp(*s - sh);
                    *b += *s;
                }
            }
        }
        for row in pairs.into_remainder().chunks_exact_mut(PANEL) {
            for ((s, &sh), b) in row.iter_mut().zip(&shift).zip(sums[0].iter_mut()) {
                *s = exp(*s - sh);
                *b += *s;
            }
        }
        let mut block_sum = sums[0];
        for (b, &x) in block_sum.iter_mut().zip(&sums[1]) {
            *b += x;
        }
        for c in 0..PANEL {
            running_sum[c] = running_sum[c] * rescale[c] + block_sum[c];
        }
        if any_rescale {
            for acc_row in acc.chunks_exact_mut(acc_stride) {
                let part = &mut acc_row[acc_offset..acc_offset + PANEL];
                for (a, &r) in part.iter_mut().zip(&rescale) {
                    *a *= r;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LcgRng;
    use proptest::prelude::*;

    /// Attention in f64, the two-pass softmax over the whole row.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        [n_q, n_k, d, dv]: [usize; 4],
        scale: f32,
        causal: bool,
        keep: Option<&[bool]>,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; n_q * dv];
        for i in 0..n_q {
            let sees = |j: usize| !(causal && j > i) && keep.is_none_or(|m| m[j]);
            let s: Vec<f64> = (0..n_k)
                .map(|j| {
                    if !sees(j) {
                        return f64::NEG_INFINITY;
                    }
                    (0..d)
                        .map(|e| f64::from(q[i * d + e]) * f64::from(k[j * d + e]))
                        .sum::<f64>()
                        * f64::from(scale)
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if m == f64::NEG_INFINITY {
                continue;
            }
            let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = w.iter().sum();
            for e in 0..dv {
                out[i * dv + e] = (0..n_k)
                    .map(|j| w[j] / z * f64::from(v[j * dv + e]))
                    .sum::<f64>();
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        [n_q, n_k, d, dv]: [usize; 4],
        scale: f32,
        mask: KeyMask<'_>,
        (path, key_block): (KernelPath, usize),
        tiles: &mut AttentionTiles,
    ) -> Vec<f32> {
        let mut out = vec![f32::NAN; n_q * dv];
        attention_with(
            path,
            key_block,
            MatRef::row_major(q, n_q, d).unwrap(),
            MatRef::row_major(k, n_k, d).unwrap(),
            MatRef::row_major(v, n_k, dv).unwrap(),
            scale,
            mask,
            MatMut::row_major(&mut out, n_q, dv).unwrap(),
            tiles,
        )
        .unwrap();
        out
    }

    proptest! {
        /// Every kernel path this CPU has and every key block, from one key tile (the
        /// online rescaling at every block) to blocks longer than the sequence, matches the
        /// two-pass softmax in f64, with and without each mask rule, with query tiles cut
        /// short. Scores are spread wide (scale up to 2) so that later blocks do raise the
        /// running maximum.
        #[test]
        fn matches_two_pass_softmax(
            n in 1usize..80,
            d in 1usize..20,
            dv in 1usize..40,
            path in 0usize..3,
            key_block in 1usize..70,
            scale in 0.05f32..2.0,
            causal in any::<bool>(),
            padded in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = LcgRng::new(seed);
            let q = rng.normal_vec(n * d, 0.0, 1.5);
            let k = rng.normal_vec(n * d, 0.0, 1.5);
            let v = rng.normal_vec(n * dv, 0.0, 1.0);
            let keep: Vec<bool> = (0..n).map(|j| j % 3 != 1).collect();
            let keep = padded.then_some(keep.as_slice());
            let paths = KernelPath::supported();
            let path = paths[path % paths.len()];
            let got = run(&q, &k, &v, [n, n, d, dv], scale, KeyMask { causal, keep },
                (path, key_block), &mut AttentionTiles::default());
            let want = naive(&q, &k, &v, [n, n, d, dv], scale, causal, keep);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((f64::from(*g) - w).abs() < 2e-5 * (1.0 + w.abs()),
                    "element {i}: {g} vs {w}");
            }
        }
    }

    /// More queries than keys and the other way round, through strided views of a fused
    /// `[tokens, 3·d]` buffer as the attention layer passes them, into a strided output
    /// whose other columns stay untouched; the tiles are reused across calls of different
    /// shapes.
    #[test]
    fn strided_views_and_reused_tiles() {
        let mut rng = LcgRng::new(7);
        let mut tiles = AttentionTiles::default();
        for (n_q, n_k, d) in [(5, 9, 4), (9, 5, 4), (70, 300, 8), (3, 3, 2)] {
            let qkv: Vec<f32> = rng.normal_vec(n_q.max(n_k) * 3 * d, 0.0, 1.0);
            let view = |off: usize, rows: usize| MatRef::new(&qkv[off..], rows, d, 3 * d, 1);
            let mut out = vec![-7.0f32; n_q * 2 * d];
            attention_into(
                view(0, n_q).unwrap(),
                view(d, n_k).unwrap(),
                view(2 * d, n_k).unwrap(),
                0.5,
                KeyMask::NONE,
                MatMut::new(&mut out[d..], n_q, d, 2 * d, 1).unwrap(),
                &mut tiles,
            )
            .unwrap();
            let pick = |off: usize, rows: usize| -> Vec<f32> {
                (0..rows)
                    .flat_map(|t| qkv[t * 3 * d + off..t * 3 * d + off + d].to_vec())
                    .collect()
            };
            let want = naive(
                &pick(0, n_q),
                &pick(d, n_k),
                &pick(2 * d, n_k),
                [n_q, n_k, d, d],
                0.5,
                false,
                None,
            );
            for t in 0..n_q {
                assert!(out[t * 2 * d..t * 2 * d + d].iter().all(|&x| x == -7.0));
                for e in 0..d {
                    let (g, w) = (out[t * 2 * d + d + e], want[t * d + e]);
                    assert!(
                        (f64::from(g) - w).abs() < 1e-5,
                        "({n_q},{n_k}) {t},{e}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// A query that sees no key (padding before every real key, under the causal rule)
    /// gets zeros, not NaN; huge scores do not overflow the running sum.
    #[test]
    fn empty_rows_are_zero_and_large_scores_are_stable() {
        let q = [1.0, 2.0, 3.0, 4.0];
        let k = q;
        let v = [1.0, 2.0, 3.0, 4.0];
        let keep = [false, true, true, true];
        let mask = KeyMask {
            causal: true,
            keep: Some(&keep),
        };
        let got = run(
            &q,
            &k,
            &v,
            [4, 4, 1, 1],
            1.0,
            mask,
            (KernelPath::Generic, 16),
            &mut AttentionTiles::default(),
        );
        assert_eq!(got[0], 0.0);
        let want = naive(&q, &k, &v, [4, 4, 1, 1], 1.0, true, Some(&keep));
        for (g, w) in got.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-6);
        }
        // The second key block raises the maximum by 1000: the first block's share is
        // rescaled by e^-1000 = 0 rather than overflowing.
        let got = run(
            &[1.0],
            &[0.0, 1000.0],
            &[1.0, 3.0],
            [1, 2, 1, 1],
            1.0,
            KeyMask::NONE,
            (kernels::kernel_path(), 16),
            &mut AttentionTiles::default(),
        );
        assert_eq!(got, [3.0]);
    }

    #[test]
    fn errors_name_the_wrong_dimension() {
        let a = [0.0f32; 12];
        let mut out = [0.0f32; 6];
        let r = |rows, cols| MatRef::row_major(&a[..rows * cols], rows, cols).unwrap();
        let call = |q, k, v, out: MatMut<'_>, mask| {
            attention_into(q, k, v, 1.0, mask, out, &mut AttentionTiles::default())
        };
        let e = call(
            r(3, 2),
            r(3, 3),
            r(3, 2),
            MatMut::row_major(&mut out, 3, 2).unwrap(),
            KeyMask::NONE,
        )
        .unwrap_err();
        assert!(e.to_string().contains("q columns and k columns"), "{e}");
        let e = call(
            r(3, 2),
            r(3, 2),
            r(2, 2),
            MatMut::row_major(&mut out[..6], 3, 2).unwrap(),
            KeyMask::NONE,
        )
        .unwrap_err();
        assert!(e.to_string().contains("k rows and v rows"), "{e}");
        let keep = [true; 2];
        let e = call(
            r(3, 2),
            r(3, 2),
            r(3, 2),
            MatMut::row_major(&mut out, 3, 2).unwrap(),
            KeyMask {
                causal: false,
                keep: Some(&keep),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("key mask"), "{e}");
        let e = attention_with(
            KernelPath::Generic,
            0,
            r(3, 2),
            r(3, 2),
            r(3, 2),
            1.0,
            KeyMask::NONE,
            MatMut::row_major(&mut out, 3, 2).unwrap(),
            &mut AttentionTiles::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("key_block"), "{e}");
    }
}
