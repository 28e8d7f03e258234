//! Dense products on row-major buffers: `matmul` (`A·B`) and `linear` (`x·Wᵀ + b`).

use crate::error::{check_len, checked_mul, TensorResult};
use crate::gemm::{gemm, MatMut, MatRef};
use crate::ops::activation::Activation;
use rayon::prelude::*;

/// `A · B` for row-major `a: [m, k]`, `b: [k, n]`.
///
/// # Shapes
/// - `a`: `[m, k]`, `b`: `[k, n]` → `[m, n]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] when a buffer does not hold its shape.
///
/// # Example
/// ```
/// let c = vit_tensor::matmul(&[1.0, 2.0], &[3.0, 4.0], 1, 2, 1)?;
/// assert_eq!(c, [11.0]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> TensorResult<Vec<f32>> {
    let mut c = vec![0.0; checked_mul("matmul", "output [m, n]", m, n)?];
    gemm(
        1.0,
        MatRef::row_major(a, m, k)?,
        MatRef::row_major(b, k, n)?,
        0.0,
        MatMut::row_major(&mut c, m, n)?,
    )?;
    Ok(c)
}

/// How a linear layer's weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out_features, in_features]`, as PyTorch stores `nn.Linear.weight`.
    OutIn,
    /// `[in_features, out_features]` (that is `Wᵀ`), which the GEMM reads as a plain
    /// row-major right-hand side: the layout `vit-layers` keeps weights in.
    InOut,
}

/// `Wᵀ` as the `[in_features, out_features]` right-hand side of `x · Wᵀ`.
fn weight_view(
    weight: &[f32],
    layout: WeightLayout,
    in_features: usize,
    out_features: usize,
) -> TensorResult<MatRef<'_>> {
    let view = match layout {
        WeightLayout::OutIn => MatRef::row_major(weight, out_features, in_features).map(MatRef::t),
        WeightLayout::InOut => MatRef::row_major(weight, in_features, out_features),
    };
    view.map_err(|_| crate::TensorError::LengthMismatch {
        op: "linear",
        what: match layout {
            WeightLayout::OutIn => "weight [out_features, in_features]",
            WeightLayout::InOut => "weight [in_features, out_features]",
        },
        expected: out_features.saturating_mul(in_features),
        got: weight.len(),
    })
}

/// `y = x · Wᵀ + b` into `out`, with `W` stored `[out_features, in_features]` as PyTorch
/// stores `nn.Linear.weight`.
///
/// The bias is written first and the product accumulated onto it (`β = 1`), so adding it
/// costs no extra pass. Large products are split across the rayon threads (see
/// [`linear_with`]).
///
/// # Shapes
/// - `x`: `[rows, in_features]`
/// - `weight`: `[out_features, in_features]`
/// - `bias`: `[out_features]`
/// - `out`: `[rows, out_features]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] naming the buffer whose length is wrong.
pub fn linear_into(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    let dims = [rows, in_features, out_features];
    let epilogue = Epilogue {
        bias,
        ..Epilogue::default()
    };
    linear_with(x, weight, WeightLayout::OutIn, dims, out, epilogue)
}

/// `out ← out + x · Wᵀ + b`: the product accumulated onto what `out` holds (a residual
/// stream, say), bias included, with no temporary; `W` stored `[out_features, in_features]`.
///
/// # Shapes
/// - `x`: `[rows, in_features]`, `weight`: `[out_features, in_features]`,
///   `bias`: `[out_features]`, `out`: `[rows, out_features]`
///
/// # Errors
/// As [`linear_into`].
///
/// # Example
/// ```
/// let mut out = [1.0, 1.0];
/// vit_tensor::linear_add_into(&[2.0], &[3.0, 4.0], Some(&[0.5, 0.5]), 1, 1, 2, &mut out)?;
/// assert_eq!(out, [7.5, 9.5]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn linear_add_into(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    let dims = [rows, in_features, out_features];
    let epilogue = Epilogue {
        bias,
        activation: None,
        accumulate: true,
    };
    linear_with(x, weight, WeightLayout::OutIn, dims, out, epilogue)
}

/// Products smaller than this many floating-point operations run on one thread.
const PARALLEL_MIN_FLOPS: usize = 4_000_000;
/// Row blocks below this many rows pack the weights for too little work: split columns.
const MIN_ROWS_PER_TASK: usize = 96;

/// What happens to a linear layer's product before it lands in `out`, fused into the pass
/// that writes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to every row, `[out_features]`.
    pub bias: Option<&'a [f32]>,
    /// Applied last, elementwise (not together with `accumulate`).
    pub activation: Option<Activation>,
    /// Add onto what `out` holds (a residual stream) instead of overwriting it.
    pub accumulate: bool,
}

impl Epilogue<'_> {
    /// Checks the bias against `out_features` and that no activation follows an
    /// accumulation.
    pub(crate) fn check(&self, out_features: usize) -> TensorResult<()> {
        if let Some(b) = self.bias {
            check_len("linear", "bias [out_features]", out_features, b.len())?;
        }
        if self.accumulate && self.activation.is_some() {
            return Err(crate::TensorError::InvalidArgument {
                op: "linear",
                what: "epilogue",
                value: format!("{self:?}"),
                reason: "an activation cannot follow an accumulation",
            });
        }
        Ok(())
    }
}

/// The general linear layer: `out ← act(x · Wᵀ + b)`, or `out ← out + x · Wᵀ + b` when
/// accumulating, with the weight in either [`WeightLayout`].
///
/// Work is split across the rayon threads when it is large enough: by blocks of rows when
/// every thread gets at least 96 of them (each thread packs the whole weight once), by
/// blocks of output columns otherwise (each thread packs only its share of the weight —
/// what a batch of one image needs) into a per-thread buffer that is then written out.
/// Either way each thread applies the epilogue to its own block while it is still in cache.
///
/// # Shapes
/// - `x`: `[rows, in_features]`; `weight`: per `layout`; `epilogue.bias`: `[out_features]`;
///   `out`: `[rows, out_features]`; `dims = [rows, in_features, out_features]`
///
/// # Errors
/// [`crate::TensorError::LengthMismatch`] naming the buffer whose length is wrong;
/// [`crate::TensorError::InvalidArgument`] for an activation with `accumulate`.
pub fn linear_with(
    x: &[f32],
    weight: &[f32],
    layout: WeightLayout,
    dims: [usize; 3],
    out: &mut [f32],
    epilogue: Epilogue<'_>,
) -> TensorResult<()> {
    let [rows, in_features, out_features] = dims;
    let w = weight_view(weight, layout, in_features, out_features)?;
    let x_view = MatRef::row_major(x, rows, in_features).map_err(|_| {
        crate::TensorError::LengthMismatch {
            op: "linear",
            what: "input [rows, in_features]",
            expected: rows.saturating_mul(in_features),
            got: x.len(),
        }
    })?;
    let expected = checked_mul("linear", "output [rows, out_features]", rows, out_features)?;
    check_len("linear", "output [rows, out_features]", expected, out.len())?;
    epilogue.check(out_features)?;
    if rows == 0 || out_features == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let flops = 2usize
        .saturating_mul(rows)
        .saturating_mul(in_features)
        .saturating_mul(out_features);
    let by_rows = |x_rows: &[f32], o: &mut [f32]| -> TensorResult<()> {
        let r = o.len() / out_features;
        let beta = match (epilogue.bias, epilogue.accumulate) {
            (Some(b), acc) => {
                for row in o.chunks_exact_mut(out_features) {
                    if acc {
                        row.iter_mut().zip(b).for_each(|(o, &v)| *o += v);
                    } else {
                        row.copy_from_slice(b);
                    }
                }
                1.0
            }
            (None, true) => 1.0,
            (None, false) => 0.0,
        };
        gemm(
            1.0,
            MatRef::row_major(x_rows, r, in_features)?,
            w,
            beta,
            MatMut::row_major(o, r, out_features)?,
        )?;
        if let Some(act) = epilogue.activation {
            act.apply_chunk(o);
        }
        Ok(())
    };
    if threads <= 1 || flops < PARALLEL_MIN_FLOPS {
        return by_rows(x, out);
    }
    if rows >= threads * MIN_ROWS_PER_TASK {
        let chunk = rows.div_ceil(threads);
        return out
            .par_chunks_mut(chunk * out_features)
            .zip(x.par_chunks(chunk * in_features))
            .try_for_each(|(o, xi)| by_rows(xi, o));
    }
    let block = out_features.div_ceil(threads);
    let parts = (0..threads)
        .into_par_iter()
        .map(|t| {
            let (j0, j1) = (t * block, ((t + 1) * block).min(out_features));
            if j0 >= j1 {
                return Ok(None);
            }
            let width = j1 - j0;
            let mut part = vec![0.0f32; rows * width]; // [rows, width]
            gemm(
                1.0,
                x_view,
                w.columns(j0..j1)?,
                0.0,
                MatMut::row_major(&mut part, rows, width)?,
            )?;
            if let Some(b) = epilogue.bias {
                for row in part.chunks_exact_mut(width) {
                    row.iter_mut().zip(&b[j0..j1]).for_each(|(p, &v)| *p += v);
                }
            }
            if let Some(act) = epilogue.activation {
                act.apply_chunk(&mut part);
            }
            Ok(Some((j0, part)))
        })
        .collect::<TensorResult<Vec<_>>>()?;
    for (j0, part) in parts.into_iter().flatten() {
        let width = part.len() / rows;
        for (p, o) in part
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(out_features))
        {
            let o = &mut o[j0..j0 + width];
            if epilogue.accumulate {
                o.iter_mut().zip(p).for_each(|(o, &v)| *o += v);
            } else {
                o.copy_from_slice(p);
            }
        }
    }
    Ok(())
}

/// `y = x·Wᵀ + b`, allocating the output.
///
/// # Shapes
/// - `x`: `[rows, in_features]`, `weight`: `[out_features, in_features]`,
///   `bias`: `[out_features]` → `[rows, out_features]`
///
/// # Errors
/// As [`linear_into`].
///
/// # Example
/// ```
/// // One row, W = [[1, 0], [0, 2], [1, 1]], b = [0, 0, 10].
/// let y = vit_tensor::linear(&[3.0, 4.0], &[1.0, 0.0, 0.0, 2.0, 1.0, 1.0], Some(&[0.0, 0.0, 10.0]), 1, 2, 3)?;
/// assert_eq!(y, [3.0, 8.0, 17.0]);
/// # Ok::<(), vit_tensor::TensorError>(())
/// ```
pub fn linear(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> TensorResult<Vec<f32>> {
    let mut out =
        vec![0.0; checked_mul("linear", "output [rows, out_features]", rows, out_features)?];
    linear_into(x, weight, bias, rows, in_features, out_features, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{naive_matmul, transpose};
    use crate::{LcgRng, TensorError};
    use proptest::prelude::*;

    #[test]
    fn linear_reports_the_wrong_buffer() {
        let err = linear(&[1.0; 5], &[1.0; 6], None, 2, 3, 2).unwrap_err();
        assert_eq!(
            err,
            TensorError::LengthMismatch {
                op: "linear",
                what: "input [rows, in_features]",
                expected: 6,
                got: 5
            }
        );
        let err = linear(&[1.0; 6], &[1.0; 6], Some(&[0.0; 3]), 2, 3, 2).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                what: "bias [out_features]",
                expected: 2,
                got: 3,
                ..
            }
        ));
        let err = linear(&[1.0; 6], &[1.0; 5], None, 2, 3, 2).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                what: "weight [out_features, in_features]",
                ..
            }
        ));
    }

    #[test]
    fn add_into_accumulates_onto_the_output() {
        let mut rng = LcgRng::new(2);
        let (rows, inf, outf) = (3, 5, 4);
        let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
        let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
        let b = rng.uniform_vec(outf, -1.0, 1.0);
        let base = rng.uniform_vec(rows * outf, -1.0, 1.0);
        let mut acc = base.clone();
        linear_add_into(&x, &w, Some(&b), rows, inf, outf, &mut acc).unwrap();
        let y = linear(&x, &w, Some(&b), rows, inf, outf).unwrap();
        for i in 0..rows * outf {
            assert!((acc[i] - (base[i] + y[i])).abs() < 1e-5);
        }
        assert!(linear_add_into(&x, &w, None, rows, inf, outf, &mut acc[1..]).is_err());
    }

    #[test]
    fn matmul_checks_lengths() {
        assert!(matmul(&[1.0; 4], &[1.0; 4], 2, 2, 2).is_ok());
        assert!(matches!(
            matmul(&[1.0; 3], &[1.0; 4], 2, 2, 2),
            Err(TensorError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn parallel_splits_agree_with_one_call() {
        // Shapes that take each path: one call, row blocks, column blocks; both layouts.
        for (rows, inf, outf) in [(3, 8, 5), (400, 64, 96), (20, 300, 700), (7, 512, 1030)] {
            let mut rng = LcgRng::new(rows as u64);
            let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
            let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
            let b = rng.uniform_vec(outf, -1.0, 1.0);
            let base = rng.uniform_vec(rows * outf, -1.0, 1.0);
            let want = naive_matmul(&x, &transpose(&w, outf, inf), rows, inf, outf);
            let wt = transpose(&w, outf, inf);
            for (weight, layout) in [(&w, WeightLayout::OutIn), (&wt, WeightLayout::InOut)] {
                let cases = [(false, None), (true, None), (false, Some(Activation::Gelu))];
                for (accumulate, activation) in cases {
                    let mut out = base.clone();
                    let epilogue = Epilogue {
                        bias: Some(&b),
                        activation,
                        accumulate,
                    };
                    linear_with(&x, weight, layout, [rows, inf, outf], &mut out, epilogue).unwrap();
                    for i in 0..rows * outf {
                        let prior = if accumulate { base[i] } else { 0.0 };
                        let mut expect = want[i] + b[i % outf] + prior;
                        if let Some(act) = activation {
                            expect = act.apply(expect);
                        }
                        assert!(
                            (out[i] - expect).abs() < 1e-3,
                            "{rows}x{inf}x{outf} {layout:?} at {i}: {} vs {expect}",
                            out[i]
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn linear_matches_naive(rows in 0usize..7, inf in 0usize..9, outf in 0usize..9, with_bias: bool, seed: u64) {
            let mut rng = LcgRng::new(seed);
            let x = rng.uniform_vec(rows * inf, -1.0, 1.0);
            let w = rng.uniform_vec(outf * inf, -1.0, 1.0);
            let b = rng.uniform_vec(outf, -1.0, 1.0);
            let y = linear(&x, &w, with_bias.then_some(&b[..]), rows, inf, outf).unwrap();
            let want = naive_matmul(&x, &transpose(&w, outf, inf), rows, inf, outf);
            prop_assert_eq!(y.len(), rows * outf);
            for r in 0..rows {
                for o in 0..outf {
                    let bias = if with_bias { b[o] } else { 0.0 };
                    prop_assert!((y[r * outf + o] - want[r * outf + o] - bias).abs() < 1e-5);
                }
            }
        }
    }
}
