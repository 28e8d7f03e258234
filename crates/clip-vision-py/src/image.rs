//! `clip_vision.ImageEmbedder`: `clip_vision::ImageEmbedder` with NumPy arrays out.

use crate::{convert, guard, job, ClipVisionError};
use clip_vision::text::ClipTextEncoder;
use clip_vision::{Activation, ImageEmbedder, LoadOptions, Precision, VisionResult};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray4, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A CLIP vision tower with its checkpoint's preprocessing: images in, L2-normalised
/// `image_embeds` out, as a `(n, dim)` float32 array.
#[pyclass(name = "ImageEmbedder", module = "clip_vision", frozen)]
pub(crate) struct PyImageEmbedder {
    inner: ImageEmbedder,
    /// `(process that started the pool, threads)` for an embedder with its own pool.
    own_pool: Option<(u32, usize)>,
    /// The `activation` given to `from_pretrained`, as given: `embed_partition` records
    /// it, as `clip-vision embed --activation` does.
    activation: Option<String>,
    /// The checkpoint's text tower, loaded by the first `embed_partition(embed_captions=True)`.
    text: OnceLock<ClipTextEncoder>,
}

impl PyImageEmbedder {
    /// Checks that the pool this embedder runs on exists in this process.
    fn check_pool(&self) -> PyResult<()> {
        match self.own_pool {
            Some((owner, threads)) => guard::own_pool(owner, threads),
            None => guard::global_pool(),
        }
    }

    /// Runs `f` (an `embed_*` of the library) without the GIL.
    fn compute<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&ImageEmbedder) -> T + Send,
    ) -> PyResult<T> {
        self.check_pool()?;
        let inner = &self.inner;
        Ok(py.detach(|| f(inner)))
    }

    /// `rows` as a `(rows, dim)` array.
    fn array<'py>(&self, py: Python<'py>, rows: Vec<Vec<f32>>) -> PyResult<Bound<'py, PyAny>> {
        let n = rows.len();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Ok(PyArray1::from_vec(py, flat)
            .reshape([n, self.inner.dim()])?
            .into_any())
    }

    /// One result per input to an array, raising on the first failure or, in skip mode,
    /// warning once per failure and returning `(array, kept_indices)`.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        results: Vec<VisionResult<Vec<f32>>>,
        skip: bool,
        name: impl Fn(usize) -> String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut rows = Vec::with_capacity(results.len());
        let mut kept = Vec::with_capacity(results.len());
        let warning = py.get_type::<PyUserWarning>();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(row) => {
                    rows.push(row);
                    kept.push(i as i64);
                }
                Err(e) => {
                    let text = format!("{}: {}", name(i), convert::message(&e));
                    if !skip {
                        return Err(ClipVisionError::new_err(text));
                    }
                    let text = CString::new(format!("skipped {text}").replace('\0', "\\0"))
                        .map_err(|e| PyValueError::new_err(e.to_string()))?;
                    PyErr::warn(py, &warning, &text, 2)?;
                }
            }
        }
        let array = self.array(py, rows)?;
        if !skip {
            return Ok(array);
        }
        let kept = PyArray1::from_vec(py, kept).into_any();
        Ok((array, kept).into_pyobject(py)?.into_any())
    }
}

impl PyImageEmbedder {
    /// The checkpoint's text tower, loaded (without the GIL) on first use.
    fn text_tower(&self, py: Python<'_>) -> PyResult<&ClipTextEncoder> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let Some(model) = self.inner.model_path() else {
            return Err(ClipVisionError::new_err(
                "embed_captions: the embedder was not loaded from a checkpoint",
            ));
        };
        let loaded = py
            .detach(|| ClipTextEncoder::from_pretrained(model))
            .map_err(|e| {
                ClipVisionError::new_err(format!(
                    "embed_captions: cannot load the text tower of {}: {}",
                    model.display(),
                    convert::message(&e)
                ))
            })?;
        // Two threads may race here; either's tower is the same.
        Ok(self.text.get_or_init(|| loaded))
    }
}

/// `on_error`: `"raise"` → false, `"skip"` → true.
fn skip_mode(on_error: &str) -> PyResult<bool> {
    match on_error {
        "raise" => Ok(false),
        "skip" => Ok(true),
        other => Err(PyValueError::new_err(format!(
            "on_error must be \"raise\" or \"skip\", got {other:?}"
        ))),
    }
}

#[pymethods]
impl PyImageEmbedder {
    /// Loads a checkpoint (a directory, a `.safetensors` file, or a hub id in the local
    /// HF cache) with its `preprocessor_config.json`; `fast_decode` and `exif_transpose`
    /// as `clip-vision embed --fast-decode / --exif-transpose` (files and bytes only).
    #[staticmethod]
    #[pyo3(signature = (
        model, activation=None, precision="f32", threads=None, batch_size=32,
        fast_decode=false, exif_transpose=false
    ))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn from_pretrained(
        py: Python<'_>,
        model: PathBuf,
        activation: Option<&str>,
        precision: &str,
        threads: Option<usize>,
        batch_size: usize,
        fast_decode: bool,
        exif_transpose: bool,
    ) -> PyResult<Self> {
        let precision: Precision = precision.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "unknown precision {precision:?} (supported: \"f32\", \"int8\", \"bf16\")"
            ))
        })?;
        let activation_name = activation.map(str::to_owned);
        let activation = match activation {
            None => None,
            Some(name) => Some(Activation::from_hf_name(name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "unknown activation {name:?} (supported: quick_gelu, gelu, gelu_new, \
                     gelu_pytorch_tanh, gelu_fast)"
                ))
            })?),
        };
        for (name, value) in [("threads", threads), ("batch_size", Some(batch_size))] {
            if value == Some(0) {
                return Err(PyValueError::new_err(format!(
                    "{name} must be at least 1, got 0"
                )));
            }
        }
        let mut builder = ImageEmbedder::builder(&model)
            .load_options(LoadOptions {
                activation,
                num_attention_heads: None,
                precision,
            })
            .batch_size(batch_size)
            .fast_decode(fast_decode)
            .exif_transpose(exif_transpose);
        if let Some(threads) = threads {
            builder = builder.threads(threads);
        }
        let inner = py
            .detach(|| builder.build())
            .map_err(|e| convert::error(&e))?;
        Ok(Self {
            inner,
            own_pool: threads.map(|t| (std::process::id(), t)),
            activation: activation_name,
            text: OnceLock::new(),
        })
    }

    /// Length `d` of each embedding.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The checkpoint loaded, canonical (a hub id resolved to its snapshot).
    #[getter]
    fn model_path(&self) -> Option<PathBuf> {
        self.inner.model_path().map(PathBuf::from)
    }

    /// Images per encoder call.
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }

    /// Whether JPEG files are decoded downscaled (`fast_decode`).
    #[getter]
    fn fast_decode(&self) -> bool {
        self.inner.processor().fast_decode()
    }

    /// Whether files' EXIF orientation is applied (`exif_transpose`).
    #[getter]
    fn exif_transpose(&self) -> bool {
        self.inner.processor().exif_transpose()
    }

    /// `(height, width)` of the images the encoder takes (`S, S` of `embed_pixels`).
    #[getter]
    fn image_size(&self) -> (usize, usize) {
        self.inner.encoder().input_size()
    }

    /// Embeds image files: a `(n, d)` float32 array, row `i` for `paths[i]`.
    #[pyo3(signature = (paths, on_error="raise"))]
    fn embed_paths<'py>(
        &self,
        py: Python<'py>,
        paths: &Bound<'py, PyAny>,
        on_error: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let skip = skip_mode(on_error)?;
        let paths = convert::items(paths, "paths")?
            .iter()
            .map(|p| p.extract::<PathBuf>())
            .collect::<PyResult<Vec<_>>>()?;
        let results = self.compute(py, |e| e.embed_paths(&paths))?;
        // The library's messages name the file; the index says which input it was.
        self.finish(py, results, skip, |i| format!("paths[{i}]"))
    }

    /// Embeds encoded images held in memory (the bytes of JPEG, PNG, … files).
    #[pyo3(signature = (images, on_error="raise"))]
    fn embed_bytes<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        on_error: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let skip = skip_mode(on_error)?;
        let blobs = convert::items(images, "bytes")?
            .iter()
            .enumerate()
            .map(|(i, b)| convert::encoded(b, i))
            .collect::<PyResult<Vec<_>>>()?;
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let results = self.compute(py, |e| e.embed_bytes(&refs))?;
        self.finish(py, results, skip, |i| format!("image {i}"))
    }

    /// Embeds decoded images: PIL images or uint8 arrays `(H, W)`, `(H, W, 1|3|4)`.
    #[pyo3(signature = (images, on_error="raise"))]
    fn embed_images<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        on_error: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let skip = skip_mode(on_error)?;
        let decoded = convert::items(images, "images")?
            .iter()
            .enumerate()
            .map(|(i, im)| convert::image(im, i))
            .collect::<PyResult<Vec<_>>>()?;
        let results = self.compute(py, |e| e.embed_images(&decoded))?;
        self.finish(py, results, skip, |i| format!("image {i}"))
    }

    /// Embeds preprocessed images, transformers' `pixel_values`: a float32 array
    /// `(n, 3, S, S)`. Returns the same L2-normalised `image_embeds` as the other methods.
    fn embed_pixels<'py>(
        &self,
        py: Python<'py>,
        pixel_values: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (h, w) = self.inner.encoder().input_size();
        let Ok(untyped) = pixel_values.cast::<PyUntypedArray>() else {
            return Err(PyValueError::new_err(format!(
                "pixel_values: expected a float32 numpy array (n, 3, {h}, {w}), got {}",
                pixel_values.get_type().name()?
            )));
        };
        let Ok(array) = untyped.extract::<PyReadonlyArray4<'py, f32>>() else {
            return Err(PyValueError::new_err(format!(
                "pixel_values: expected a float32 array of shape (n, 3, {h}, {w}), got {} \
                 of shape {:?}",
                untyped.dtype(),
                untyped.shape()
            )));
        };
        let shape = array.shape().to_vec();
        if shape[1..] != [3, h, w] {
            return Err(PyValueError::new_err(format!(
                "pixel_values: expected shape (n, 3, {h}, {w}), got {shape:?}"
            )));
        }
        let n = shape[0];
        // Copied in logical order, so strided views work and the GIL can be released.
        let pixels: Vec<f32> = array.as_array().iter().copied().collect();
        let len = 3 * h * w;
        let batch = self.inner.batch_size();
        let rows = self.compute(py, |e| {
            let mut rows = Vec::with_capacity(n);
            for chunk in pixels.chunks(batch * len) {
                rows.extend(e.embed_pixels(chunk, chunk.len() / len)?);
            }
            VisionResult::Ok(rows)
        })?;
        let rows = rows.map_err(|e| convert::error(&e))?;
        self.array(py, rows)
    }

    /// Embeds partition `shard` of a job into clip-retrieval's layout under `output_dir`
    /// (`img_emb/img_emb_{i}.npy`, `metadata/metadata_{i}.parquet`, `text_emb/` with
    /// captions, `partitions/partition_{i}.done.json`), as `clip-vision embed --output-dir
    /// DIR --shard i/n` does: resumes its journal, returns at once if it is done.
    #[pyo3(signature = (
        inputs, output_dir, shard=None, files_per_unit=clip_vision_job::DEFAULT_FILES_PER_UNIT,
        dtype="float16", embed_captions=false
    ))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn embed_partition<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        output_dir: PathBuf,
        shard: Option<&Bound<'py, PyAny>>,
        files_per_unit: usize,
        dtype: &str,
        embed_captions: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let job = job::job(
            inputs,
            output_dir,
            shard,
            files_per_unit,
            dtype,
            embed_captions,
            self.activation.clone(),
        )?;
        self.check_pool()?;
        let text = if embed_captions {
            // The text tower runs on rayon's global pool.
            guard::global_pool()?;
            Some(self.text_tower(py)?)
        } else {
            None
        };
        job::run(py, &job, &self.inner, text)
    }

    fn __repr__(&self) -> String {
        let model = self
            .inner
            .model_path()
            .map_or_else(|| "<parts>".into(), |p| p.display().to_string());
        format!(
            "ImageEmbedder(model={model:?}, dim={}, batch_size={})",
            self.inner.dim(),
            self.inner.batch_size()
        )
    }
}
