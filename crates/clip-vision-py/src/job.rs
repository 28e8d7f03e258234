//! `ImageEmbedder.embed_partition` and `count_units`: one partition of a
//! `clip_vision_job::Job` (clip-retrieval's layout) run from Python, the GIL released, with
//! Ctrl-C checked between batches.

use crate::{convert, ClipVisionError};
use clip_vision::text::ClipTextEncoder;
use clip_vision::ImageEmbedder;
use clip_vision_job::{Dtype, Event, Inputs, Job, JobError, Report, Shard};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::ops::ControlFlow;
use std::path::PathBuf;

/// `shard`: `None` (the whole job, `0/1`), a `(i, n)` tuple or an `"i/n"` string.
///
/// # Errors
/// `ValueError` naming the spec and what is wrong with it.
pub(crate) fn shard(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Shard> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Shard::WHOLE);
    };
    let bad = |e: JobError| PyValueError::new_err(convert::message(&e));
    if obj.is_instance_of::<PyString>() {
        return obj.extract::<String>()?.parse().map_err(bad);
    }
    if let Ok(pair) = obj.cast::<PyTuple>() {
        if pair.len() == 2 {
            let (i, n) = (pair.get_item(0)?, pair.get_item(1)?);
            let spec = format!("{}/{}", i.repr()?, n.repr()?);
            let number = |x: &Bound<'_, PyAny>, what: &str| {
                x.extract::<usize>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "shard {spec}: the {what} {} is not a whole number ≥ 0",
                        x.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                    ))
                })
            };
            return Shard::new(number(&i, "index")?, number(&n, "count")?).map_err(bad);
        }
    }
    Err(PyValueError::new_err(format!(
        "shard: expected None, a tuple (i, n) or a string \"i/n\", got {}",
        obj.repr()?
    )))
}

/// `dtype`: `"float16"` or `"float32"`.
fn dtype(name: &str) -> PyResult<Dtype> {
    match name {
        "float16" => Ok(Dtype::F16),
        "float32" => Ok(Dtype::F32),
        other => Err(PyValueError::new_err(format!(
            "dtype must be \"float16\" or \"float32\", got {other:?}"
        ))),
    }
}

/// `inputs`: a list of `str` / `os.PathLike` (files, folders, `.tar` shards, brace patterns).
pub(crate) fn inputs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    convert::items(obj, "paths")?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.extract::<PathBuf>().map_err(|_| {
                PyValueError::new_err(format!(
                    "inputs[{i}]: expected str or os.PathLike, got {}",
                    p.get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                ))
            })
        })
        .collect()
}

/// `files_per_unit`, at least 1.
pub(crate) fn files_per_unit(n: usize) -> PyResult<usize> {
    if n == 0 {
        return Err(PyValueError::new_err(
            "files_per_unit must be at least 1, got 0",
        ));
    }
    Ok(n)
}

/// The number of units `inputs` make: one per `.tar` shard (brace patterns expanded), or
/// one per `files_per_unit` image files (folders walked) — the largest useful shard count.
#[pyfunction]
#[pyo3(signature = (inputs, files_per_unit=clip_vision_job::DEFAULT_FILES_PER_UNIT))]
pub(crate) fn count_units(
    py: Python<'_>,
    inputs: &Bound<'_, PyAny>,
    files_per_unit: usize,
) -> PyResult<usize> {
    let paths = self::inputs(inputs)?;
    let per_unit = self::files_per_unit(files_per_unit)?;
    let resolved = py
        .detach(|| Inputs::resolve(&paths))
        .map_err(|e| convert::error(&e))?;
    Ok(resolved.0.units(per_unit).len())
}

/// The job of one `embed_partition` call, its arguments checked; `activation` is the one
/// the embedder was loaded with (recorded, so the CLI and Python write the same files).
pub(crate) fn job(
    inputs: &Bound<'_, PyAny>,
    output_dir: PathBuf,
    shard: Option<&Bound<'_, PyAny>>,
    files_per_unit: usize,
    dtype: &str,
    embed_captions: bool,
    activation: Option<String>,
) -> PyResult<Job> {
    Ok(Job {
        shard: self::shard(shard)?,
        files_per_unit: self::files_per_unit(files_per_unit)?,
        dtype: self::dtype(dtype)?,
        embed_captions,
        activation,
        ..Job::new(self::inputs(inputs)?, output_dir)
    })
}

/// Runs `job` without the GIL. Between batches it takes the GIL for a moment to check for
/// signals: a `KeyboardInterrupt` (or whatever a signal handler raises) stops the run —
/// the journal keeps every committed row, so the next call resumes — and is raised.
///
/// # Errors
/// The signal handler's exception; [`ClipVisionError`] with the job's message.
pub(crate) fn run<'py>(
    py: Python<'py>,
    job: &Job,
    embedder: &ImageEmbedder,
    text: Option<&ClipTextEncoder>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut skipped_items: Vec<(String, String)> = Vec::new();
    let mut interrupted: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut on_event = |event: Event<'_>| match event {
            Event::Skipped { name, why } => {
                skipped_items.push((name.to_owned(), why.to_owned()));
                ControlFlow::Continue(())
            }
            Event::Batch { .. } => match Python::attach(|py| py.check_signals()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    interrupted = Some(e);
                    ControlFlow::Break(())
                }
            },
            Event::Planned { .. } | Event::Resumed { .. } => ControlFlow::Continue(()),
        };
        job.run(embedder, text, &mut on_event)
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    let report = result.map_err(|e| {
        ClipVisionError::new_err(format!(
            "partition {} of {}: {}",
            job.shard,
            job.output_dir.display(),
            convert::message(&e)
        ))
    })?;
    report_dict(py, &report, skipped_items)
}

/// The report as a dict: `shard` (`"i/n"`), `rows`, `skipped`, `resumed_rows`,
/// `already_done`, `units` and `skipped_items` (`(name, why)` pairs of this call).
fn report_dict<'py>(
    py: Python<'py>,
    report: &Report,
    skipped_items: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("shard", report.shard.to_string())?;
    dict.set_item("rows", report.rows)?;
    dict.set_item("skipped", report.skipped)?;
    dict.set_item("resumed_rows", report.resumed_rows)?;
    dict.set_item("already_done", report.already_done)?;
    dict.set_item("units", report.units.clone())?;
    dict.set_item("skipped_items", skipped_items)?;
    Ok(dict)
}
