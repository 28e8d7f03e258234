//! Python inputs to the library's types: PIL images and `uint8` HWC arrays to
//! `DynamicImage`, lists of bytes, and the library's errors to Python exceptions.

use crate::ClipVisionError;
use clip_vision::preprocess::image::{DynamicImage, GrayImage, RgbImage, RgbaImage};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

/// A library error as a [`ClipVisionError`] carrying its message (with its causes).
pub(crate) fn error(e: &dyn std::error::Error) -> PyErr {
    ClipVisionError::new_err(message(e))
}

/// `e`'s message followed by those of its sources, `": "`-separated.
pub(crate) fn message(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The items of a Python list (or other iterable that is not a string or bytes), refusing a
/// lone `str` / `bytes`, which would otherwise iterate as characters.
pub(crate) fn items<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyValueError::new_err(format!(
            "expected a list of {what}, got a single {}",
            obj.get_type().name()?
        )));
    }
    obj.try_iter()
        .map_err(|_| {
            PyValueError::new_err(format!(
                "expected a list of {what}, got {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?
        .collect()
}

/// The bytes of an encoded image: `bytes`, `bytearray` or `memoryview` (copied, so the GIL
/// can be released while they are decoded).
pub(crate) fn encoded(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if let Ok(view) = obj.py().import("builtins")?.getattr("memoryview") {
        if obj.is_instance(&view)? {
            return obj.call_method0("tobytes")?.extract();
        }
    }
    Err(PyValueError::new_err(format!(
        "image {index}: expected bytes (an encoded image file), got {}",
        obj.get_type().name()?
    )))
}

/// A decoded image: a PIL image or a `uint8` array of shape `(H, W)`, `(H, W, 1)`,
/// `(H, W, 3)` or `(H, W, 4)`.
///
/// PIL images become arrays as transformers' `convert_to_rgb` sees them: `RGB`, `L` and
/// `RGBA` as they are, any other mode through `convert("RGBA")`. Greyscale is replicated and
/// RGBA composited onto white by the library, as `CLIPImageProcessor` does for PIL images.
pub(crate) fn image(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<DynamicImage> {
    let py = obj.py();
    let array = if let Ok(array) = obj.cast::<PyUntypedArray>() {
        array.clone()
    } else if obj.hasattr("mode")? && obj.hasattr("convert")? {
        let mode: String = obj.getattr("mode")?.extract()?;
        let pil = if matches!(mode.as_str(), "RGB" | "L" | "RGBA") {
            obj.clone()
        } else {
            obj.call_method1("convert", ("RGBA",))?
        };
        py.import("numpy")?
            .call_method1("asarray", (pil,))?
            .cast_into::<PyUntypedArray>()
            .map_err(|e| PyValueError::new_err(format!("image {index}: {e}")))?
    } else {
        return Err(PyValueError::new_err(format!(
            "image {index}: expected a PIL image or a uint8 numpy array (H, W, C), got {}",
            obj.get_type().name()?
        )));
    };
    let Ok(typed) = array.cast::<PyArrayDyn<u8>>() else {
        return Err(PyValueError::new_err(format!(
            "image {index}: expected a uint8 array, got dtype {}",
            array.dtype()
        )));
    };
    let shape = typed.shape().to_vec();
    let (h, w, c) = match shape.as_slice() {
        [h, w] => (*h, *w, 1),
        [h, w, c] if matches!(*c, 1 | 3 | 4) => (*h, *w, *c),
        _ => {
            return Err(PyValueError::new_err(format!(
                "image {index}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {shape:?}"
            )))
        }
    };
    // Logical (C) order whatever the strides: the library's buffers are row-major HWC.
    let pixels: Vec<u8> = typed.readonly().as_array().iter().copied().collect();
    let too_large = || {
        PyValueError::new_err(format!(
            "image {index}: {w}×{h} is too large for an image buffer"
        ))
    };
    let (w, h) = (
        u32::try_from(w).map_err(|_| too_large())?,
        u32::try_from(h).map_err(|_| too_large())?,
    );
    let image = match c {
        1 => GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        3 => RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8),
    };
    image.ok_or_else(too_large)
}
