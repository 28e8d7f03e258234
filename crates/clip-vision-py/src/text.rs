//! `clip_vision.TextEmbedder`: `clip_vision::text::ClipTextEncoder` with NumPy arrays out.

use crate::{convert, guard};
use clip_vision::model::normalized;
use clip_vision::text::ClipTextEncoder;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// CLIP's tokenizer and text tower: texts in, L2-normalised `text_embeds` out, as a
/// `(n, dim)` float32 array.
#[pyclass(name = "TextEmbedder", module = "clip_vision", frozen)]
pub(crate) struct PyTextEmbedder {
    inner: ClipTextEncoder,
    dim: usize,
}

#[pymethods]
impl PyTextEmbedder {
    /// Loads the text tower and tokenizer of a checkpoint (a directory, or a hub id in the
    /// local HF cache).
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, model: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| ClipTextEncoder::from_pretrained(&model))
            .map_err(|e| convert::error(&e))?;
        let Some(dim) = inner.projection_dim() else {
            return Err(crate::ClipVisionError::new_err(format!(
                "{}: the text tower has no projection, so no text_embeds",
                model.display()
            )));
        };
        Ok(Self { inner, dim })
    }

    /// Length `e` of each embedding.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds texts: a `(n, e)` float32 array, row `i` for `texts[i]`.
    fn embed_texts<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = convert::items(texts, "str")?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.extract::<String>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "texts[{i}]: expected str, got {}",
                        t.get_type()
                            .name()
                            .map_or_else(|_| "?".into(), |n| n.to_string())
                    ))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        guard::global_pool()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let inner = &self.inner;
        let rows = py
            .detach(|| inner.text_embeds(&refs))
            .map_err(|e| convert::error(&e))?;
        let n = rows.len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| normalized(r)).collect();
        Ok(PyArray1::from_vec(py, flat)
            .reshape([n, self.dim])?
            .into_any())
    }

    fn __repr__(&self) -> String {
        format!("TextEmbedder(dim={})", self.dim)
    }
}
