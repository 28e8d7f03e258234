//! `clip-vision embed`: decode and preprocess on worker threads while the encoder runs,
//! write each batch as soon as it is embedded.

use crate::output::{self, FileOutput, Meta, Output};
use crate::{load_model, walk, EmbedArgs, Kind, EXIT_SKIPPED};
use anyhow::{Context, Result};
use clip_vision::preprocess::ImageProcessor;
use clip_vision::ClipVisionEncoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

/// Batches decoded ahead of the encoder: enough to keep it fed, few enough to bound memory.
const BATCHES_AHEAD: usize = 2;

/// The vectors `kind` asks for, L2-normalised if `normalize`.
pub(crate) fn vectors(
    model: &ClipVisionEncoder,
    pixels: &[f32],
    n: usize,
    kind: Kind,
    normalize: bool,
) -> Result<Vec<Vec<f32>>> {
    let mut rows = match kind {
        Kind::ImageEmbeds => model.image_embeds(pixels, n)?,
        Kind::Pooled => model.forward_batch(pixels, n)?,
    };
    if normalize {
        rows.iter_mut()
            .for_each(|r| clip_vision::encoder::l2_normalize(r));
    }
    Ok(rows)
}

/// A library error's message without the `path: ` it starts with (the CLI names the file).
fn without_path(message: &str, path: &std::path::Path) -> String {
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(message).to_owned()
}

/// A preprocessed batch: each path with its pixels or the reason it was skipped.
type Prepared = Vec<(PathBuf, Result<Vec<f32>, String>)>;

pub(crate) fn run(args: EmbedArgs) -> Result<u8> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("cannot start the worker threads")?;
    }
    let (model, processor) = load_model(&args.model)?;
    let kind = args.kind.unwrap_or(if model.projection.is_some() {
        Kind::ImageEmbeds
    } else {
        Kind::Pooled
    });
    if kind == Kind::ImageEmbeds && model.projection.is_none() {
        anyhow::bail!(
            "{}: the model has no visual projection: use --kind pooled",
            args.model.model
        );
    }
    let dim = match kind {
        Kind::ImageEmbeds => model.config.projection_dim,
        Kind::Pooled => model.config.hidden_size,
    };
    let meta = Meta::for_model(
        &args.model.model,
        args.model.activation.as_deref(),
        kind.name(),
        !args.no_normalize,
        dim,
    )?;

    let (paths, walk_problems) = walk::collect(&args.paths)?;
    // Opened before any work: an unwritable output fails now, not after hours of embedding.
    let (mut out, done) = match &args.output {
        Some(path) => {
            let (f, done) = FileOutput::open(path, &meta, args.resume)?;
            (Output::File(f), done)
        }
        None => (Output::Stdout(std::io::stdout()), Default::default()),
    };
    let mut skipped: Vec<(PathBuf, String)> = walk_problems;
    for (p, why) in &skipped {
        eprintln!("skipped {}: {why}", p.display());
    }
    let todo: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| !done.contains(&p.to_string_lossy().into_owned()))
        .collect();
    if let Some(path) = &args.output {
        let mean_path =
            todo.iter().map(|p| p.as_os_str().len() as u64).sum::<u64>() / todo.len().max(1) as u64;
        let need =
            output::estimate_bytes(output::Format::of(path)?, todo.len() as u64, dim, mean_path);
        output::check_free_space(path, need)?;
    }
    if !done.is_empty() {
        eprintln!(
            "resuming: {} images already embedded, {} to go",
            done.len(),
            todo.len()
        );
    }

    let progress =
        ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let batch_size = args.batch_size as usize;
    let (tx, rx) = sync_channel::<Prepared>(BATCHES_AHEAD);
    let mut embedded = 0usize;
    std::thread::scope(|scope| -> Result<()> {
        let processor: &ImageProcessor = &processor;
        let todo = &todo;
        scope.spawn(move || {
            for chunk in todo.chunks(batch_size) {
                let prepared: Prepared = chunk
                    .par_iter()
                    .map(|p| {
                        (
                            p.clone(),
                            processor
                                .preprocess_path(p)
                                .map_err(|e| without_path(&e.to_string(), p)),
                        )
                    })
                    .collect();
                if tx.send(prepared).is_err() {
                    return; // the encoder stopped on an error
                }
            }
        });
        for prepared in rx {
            let mut names = Vec::with_capacity(prepared.len());
            let mut pixels = Vec::new();
            for (path, result) in prepared {
                match result {
                    Ok(px) => {
                        names.push(path.to_string_lossy().into_owned());
                        pixels.extend_from_slice(&px);
                    }
                    Err(why) => {
                        progress.suspend(|| eprintln!("skipped {}: {why}", path.display()));
                        skipped.push((path, why));
                        progress.inc(1);
                    }
                }
            }
            if names.is_empty() {
                continue;
            }
            let rows = vectors(&model, &pixels, names.len(), kind, !args.no_normalize)?;
            out.append(&names.iter().cloned().zip(rows).collect::<Vec<_>>())?;
            embedded += names.len();
            progress.inc(names.len() as u64);
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    out.finish()?;

    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "embedded {embedded} images in {secs:.1} s ({:.1} images/s){}; skipped {}",
        embedded as f64 / secs.max(1e-9),
        if done.is_empty() {
            String::new()
        } else {
            format!(", {} from an earlier run", done.len())
        },
        skipped.len()
    );
    Ok(if skipped.is_empty() { 0 } else { EXIT_SKIPPED })
}
