//! The native module `clip_vision._clip_vision` of the Python package `clip_vision`:
//! `ImageEmbedder` and `TextEmbedder` over `clip_vision::ImageEmbedder` and
//! `clip_vision::text::ClipTextEncoder`, NumPy arrays out, and
//! `ImageEmbedder.embed_partition`, one partition of a `clip_vision_job::Job` (the layout
//! `clip-vision embed --output-dir` writes). The package's Python part (`python/`)
//! re-exports them and adds `clip_vision.ray`, one Ray task per partition.
//!
//! The design decision that shapes it: the binding only converts types — Python lists,
//! PIL images and NumPy arrays in, `(n, d)` float32 arrays and [`ClipVisionError`] out —
//! and holds no logic the library lacks; every call releases the GIL while it computes.
//!
//! **Threads and `fork`.** Nothing starts a thread at import. `ImageEmbedder.from_pretrained`
//! with `threads=N` starts that embedder's N rayon workers at once (the library builds its
//! pool in `ImageEmbedderBuilder::build`); without `threads`, and for `TextEmbedder`,
//! rayon's global pool starts at the first `embed_*` call. Threads do not survive `fork`,
//! so a forked child that used a pool started by its parent would wait forever: the `guard`
//! module refuses that with a [`ClipVisionError`] instead (create the embedder, or make the first
//! call, in the child).
#![forbid(unsafe_code)]

mod convert;
mod guard;
mod image;
mod job;
mod text;

use pyo3::prelude::*;

pyo3::create_exception!(
    clip_vision,
    ClipVisionError,
    pyo3::exceptions::PyException,
    "An image, text or checkpoint that clip_vision cannot use; the message names the file \
     (or the input's position) and the problem."
);

/// The native module `clip_vision._clip_vision`, re-exported by `clip_vision`
/// (`python/clip_vision/__init__.py`).
#[pymodule]
fn _clip_vision(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ClipVisionError", m.py().get_type::<ClipVisionError>())?;
    m.add_class::<image::PyImageEmbedder>()?;
    m.add_class::<text::PyTextEmbedder>()?;
    m.add_function(wrap_pyfunction!(job::count_units, m)?)?;
    Ok(())
}
