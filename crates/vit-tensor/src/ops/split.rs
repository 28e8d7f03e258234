//! Sharing a product's output columns out among the rayon threads: what the packed f32 and
//! the int8 products do when there are too few rows for every thread to take its own.

use crate::kernels::PANEL;
use crate::ops::matmul::Epilogue;
use rayon::prelude::*;

/// Runs `part(p0..p1, buf, width, epilogue)` for one group of whole panel groups
/// (`step` panels each, of 16 columns) per thread, each into a buffer of its own
/// (`[rows, width]`, the columns `16·p0 .. min(16·p1, n)`, with `epilogue` but never
/// accumulating), then copies or adds each buffer into `out` (`[rows, n]`) as `epilogue`
/// says. Each thread reads only its share of the weight, which is what a single image
/// needs.
pub(crate) fn by_column_groups<F>(
    panels: usize,
    step: usize,
    n: usize,
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
    part: F,
) where
    F: Fn(std::ops::Range<usize>, &mut [f32], usize, Epilogue<'_>) + Sync,
{
    let threads = rayon::current_num_threads();
    let groups = panels.div_ceil(step);
    let per = groups.div_ceil(threads);
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..threads)
        .into_par_iter()
        .filter_map(|t| {
            let p0 = (t * per * step).min(panels);
            let p1 = ((t + 1) * per * step).min(panels);
            if p0 >= p1 {
                return None;
            }
            let (j0, j1) = (p0 * PANEL, (p1 * PANEL).min(n));
            let mut buf = vec![0.0f32; rows * (j1 - j0)];
            let part_epilogue = Epilogue {
                accumulate: false,
                ..epilogue
            };
            part(p0..p1, &mut buf, j1 - j0, part_epilogue);
            Some((j0, j1, buf))
        })
        .collect();
    for (j0, j1, buf) in parts {
        for (p, o) in buf.chunks_exact(j1 - j0).zip(out.chunks_exact_mut(n)) {
            let o = &mut o[j0..j1];
            if epilogue.accumulate {
                o.iter_mut().zip(p).for_each(|(o, &v)| *o += v);
            } else {
                o.copy_from_slice(p);
            }
        }
    }
}
