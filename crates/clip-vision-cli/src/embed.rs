//! `clip-vision embed`: a thin client of [`clip_vision::ImageEmbedder`] — walk the inputs, open the
//! output (resuming it), stream the images through the pipeline, append each batch as soon
//! as it is embedded, report each skipped file once.

use crate::output::{self, FileOutput, Meta, Output};
use crate::{build_embedder, DtypeArg, EmbedArgs, EXIT_SKIPPED};
use anyhow::{Context, Result};
use clip_vision_job::walk;
use clip_vision_job::{Dtype, Event, Job, Shard};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An error's message with its causes (`a: b: c`), without the `path: ` it starts with (the
/// CLI names the file itself, once).
pub(crate) fn reason(error: &dyn std::error::Error, path: &Path) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(&message).to_owned()
}

/// The paths `--files-from` names, one per line (`-` reads standard input); blank lines are
/// skipped, nothing else is trimmed (a file name may start or end with spaces).
fn files_from(list: &Path) -> Result<Vec<PathBuf>> {
    let read = |r: &mut dyn BufRead| -> std::io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for line in r.lines() {
            let line = line?;
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if !line.is_empty() {
                paths.push(PathBuf::from(line));
            }
        }
        Ok(paths)
    };
    if list == Path::new("-") {
        read(&mut std::io::stdin().lock()).context("cannot read the paths on standard input")
    } else {
        let file = std::fs::File::open(list)
            .with_context(|| format!("cannot open the path list {}", list.display()))?;
        read(&mut std::io::BufReader::new(file))
            .with_context(|| format!("cannot read the path list {}", list.display()))
    }
}

pub(crate) fn run(args: EmbedArgs) -> Result<u8> {
    if let Some(dir) = &args.output_dir {
        return run_layout(&args, dir);
    }
    let embedder = build_embedder(
        &args.model,
        args.kind.map(Into::into),
        !args.no_normalize,
        args.batch_size as usize,
        args.threads.map(|t| t as usize),
        args.decode,
    )?;
    let meta = Meta::for_embedder(&embedder, args.model.activation.as_deref())?;

    let mut roots = args.paths.clone();
    if let Some(list) = &args.files_from {
        roots.extend(files_from(list)?);
    }
    let (paths, walk_problems) = walk::collect(&roots)?;
    // Opened before any work: an unwritable output fails now, not after hours of embedding.
    let (mut out, done) = match &args.output {
        Some(path) => {
            let (f, done) = FileOutput::open(path, &meta, args.resume)?;
            (Output::File(f), done)
        }
        None => (Output::Stdout(std::io::stdout()), Default::default()),
    };
    let mut skipped = walk_problems.len();
    for (p, why) in &walk_problems {
        eprintln!("skipped {}: {why}", p.display());
    }
    let todo: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| !done.contains(&p.to_string_lossy().into_owned()))
        .collect();
    if let Some(path) = &args.output {
        let mean_path =
            todo.iter().map(|p| p.as_os_str().len() as u64).sum::<u64>() / todo.len().max(1) as u64;
        let need = output::estimate_bytes(
            output::Format::of(path)?,
            todo.len() as u64,
            embedder.dim(),
            mean_path,
        );
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
    let mut embedded = 0usize;
    embedder.stream_paths(todo.iter(), |batch| -> Result<()> {
        let n = batch.len() as u64;
        let mut rows = Vec::with_capacity(batch.len());
        for (path, result) in batch {
            match result {
                Ok(row) => rows.push((path.to_string_lossy().into_owned(), row)),
                Err(e) => {
                    let why = reason(&e, path);
                    progress.suspend(|| eprintln!("skipped {}: {why}", path.display()));
                    skipped += 1;
                }
            }
        }
        if !rows.is_empty() {
            out.append(&rows)?;
        }
        embedded += rows.len();
        progress.inc(n);
        Ok(())
    })?;
    progress.finish_and_clear();
    out.finish()?;

    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "embedded {embedded} images in {secs:.1} s ({:.1} images/s){}; skipped {skipped}",
        embedded as f64 / secs.max(1e-9),
        if done.is_empty() {
            String::new()
        } else {
            format!(", {} from an earlier run", done.len())
        },
    );
    Ok(if skipped == 0 { 0 } else { EXIT_SKIPPED })
}

/// `embed --output-dir`: one partition of clip-retrieval's layout ([`clip_vision_job::Job`]).
fn run_layout(args: &EmbedArgs, dir: &Path) -> Result<u8> {
    let embedder = build_embedder(
        &args.model,
        args.kind.map(Into::into),
        true,
        args.batch_size as usize,
        args.threads.map(|t| t as usize),
        args.decode,
    )?;
    let text = if args.embed_captions {
        let model = embedder
            .model_path()
            .context("the model was not loaded from a checkpoint")?;
        Some(
            clip_vision::text::ClipTextEncoder::from_pretrained(model).with_context(|| {
                format!(
                    "--embed-captions: cannot load the text tower of {}",
                    model.display()
                )
            })?,
        )
    } else {
        None
    };
    let mut inputs = args.paths.clone();
    if let Some(list) = &args.files_from {
        inputs.extend(files_from(list)?);
    }
    let job = Job {
        shard: args.shard.unwrap_or(Shard::WHOLE),
        files_per_unit: usize::try_from(args.files_per_unit).unwrap_or(usize::MAX),
        dtype: match args.dtype {
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::F32 => Dtype::F32,
        },
        embed_captions: args.embed_captions,
        activation: args.model.activation.clone(),
        ..Job::new(inputs, dir)
    };
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut on_event = |event: Event<'_>| {
        match event {
            Event::Planned { files, units } => {
                if let Some(n) = files {
                    progress.set_length(n as u64);
                } else {
                    progress.set_style(
                        ProgressStyle::with_template("{spinner} {pos} samples  {per_sec}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                }
                progress.suspend(|| {
                    eprintln!("partition {}: {} units", job.shard, units.len());
                });
            }
            Event::Resumed { items, rows } => {
                progress.inc(items);
                progress.suspend(|| {
                    eprintln!("resuming: {rows} rows ({items} inputs) already embedded");
                });
            }
            Event::Skipped { name, why } => {
                progress.suspend(|| eprintln!("skipped {name}: {why}"));
            }
            Event::Batch { items, .. } => progress.inc(items),
        }
        ControlFlow::Continue(())
    };
    let report = job
        .run(&embedder, text.as_ref(), &mut on_event)
        .with_context(|| format!("partition {} of {}", job.shard, dir.display()))?;
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let skipped = report.skipped as usize + report.walk_problems.len();
    if report.already_done {
        eprintln!(
            "partition {} already done: {} rows, skipped {} (nothing to do)",
            job.shard, report.rows, report.skipped
        );
    } else {
        let new = report.rows - report.resumed_rows;
        eprintln!(
            "partition {}: embedded {new} images in {secs:.1} s ({:.1} images/s){}; {} rows; skipped {skipped}",
            job.shard,
            new as f64 / secs.max(1e-9),
            if report.resumed_rows > 0 {
                format!(", {} from an earlier run", report.resumed_rows)
            } else {
                String::new()
            },
            report.rows,
        );
    }
    Ok(if skipped == 0 { 0 } else { EXIT_SKIPPED })
}
