//! The text commands: `classify` (zero-shot labels), `search` (an index by words) and
//! `embed-text`, thin clients of `clip_vision::ClipModel`'s pieces (feature `text`).

use crate::embed::reason;
use crate::output::{self, Meta};
use crate::{build_embedder, load_options, npy, DecodeArgs, ModelArgs, EXIT_SKIPPED};
use anyhow::{bail, Context, Result};
use clip_vision::model::{label_embeddings, logit_scale_of, logits, normalized, softmax};
use clip_vision::text::{
    ClipTextEncoder, ClipTextTower, ClipTokenizer, TextError, TextLoadOptions,
};
use clip_vision::EmbedKind;
use clip_vision_job::walk;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The labels, comma-separated (`"a dog,a cat"`); each is embedded as given (after
    /// trimming spaces), or in each --template.
    #[arg(long, required_unless_present = "labels_file")]
    labels: Option<String>,
    /// More labels, one per line (blank lines skipped).
    #[arg(long, value_name = "FILE")]
    labels_file: Option<PathBuf>,
    /// A prompt template with `{}` for the label; repeat it for CLIP's prompt ensemble (the
    /// mean of the normalised embeddings, renormalised). None: labels as given.
    #[arg(long)]
    template: Vec<String>,
    /// Print only the K most probable labels, most probable first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    top_k: Option<u64>,
    /// Images per encoder batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch_size: u32,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Image files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// An output of `embed` (.npy or .jsonl, with its .meta.json beside it), made with a
    /// model that has a text tower.
    #[arg(long)]
    index: PathBuf,
    /// The words to search for.
    query: String,
    /// How many results.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    k: u64,
}

#[derive(clap::Args)]
pub(crate) struct EmbedTextArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file: .npy (with a FILE.texts.txt sidecar, one JSON string per row) or
    /// .jsonl; JSON lines on stdout when absent.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write `text_embeds` as computed, not L2-normalised.
    #[arg(long)]
    no_normalize: bool,
    /// Also embed the texts of FILE, one per line (blank lines skipped).
    #[arg(long, value_name = "FILE")]
    texts_file: Option<PathBuf>,
    /// The texts.
    #[arg(required_unless_present = "texts_file")]
    texts: Vec<String>,
}

/// The text tower of `--model`, with a message that says what to use instead when the
/// checkpoint has none.
fn text_encoder(args: &ModelArgs) -> Result<ClipTextEncoder> {
    let options = TextLoadOptions {
        activation: load_options(args).activation,
        num_attention_heads: None,
    };
    ClipTextEncoder::load(Path::new(&args.model), &options).map_err(|e| match e {
        TextError::NoTextTower { path } => anyhow::anyhow!(
            "{}: the checkpoint has no text tower: text needs a CLIPModel checkpoint (both \
             towers) or a CLIPTextModelWithProjection, with its tokenizer files",
            path.display()
        ),
        e => {
            anyhow::Error::new(e).context(format!("cannot load the text tower of {:?}", args.model))
        }
    })
}

/// Lines of a text file with their numbers (from 1), blank ones skipped; invalid UTF-8 is an
/// error naming the line.
fn read_lines(file: &Path) -> Result<Vec<(usize, String)>> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut lines = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|e| {
            anyhow::anyhow!(
                "{}: line {} is not valid UTF-8 ({e})",
                file.display(),
                n + 1
            )
        })?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            lines.push((n + 1, line.to_owned()));
        }
    }
    Ok(lines)
}

/// The labels of `--labels` and `--labels-file`, trimmed, none empty, none twice.
fn labels(args: &ClassifyArgs) -> Result<Vec<String>> {
    let mut labels: Vec<String> = Vec::new();
    if let Some(list) = &args.labels {
        labels.extend(list.split(',').map(|l| l.trim().to_owned()));
    }
    if let Some(file) = &args.labels_file {
        labels.extend(
            read_lines(file)?
                .into_iter()
                .map(|(_, l)| l.trim().to_owned()),
        );
    }
    if let Some(pos) = labels.iter().position(String::is_empty) {
        bail!("label {} is empty (check the commas of --labels)", pos + 1);
    }
    let mut seen = HashSet::new();
    if let Some(dup) = labels.iter().find(|l| !seen.insert(l.as_str())) {
        bail!("the label {dup:?} is given twice");
    }
    if labels.is_empty() {
        bail!("no labels: give --labels or --labels-file");
    }
    Ok(labels)
}

pub(crate) fn classify(args: ClassifyArgs) -> Result<u8> {
    let labels = labels(&args)?;
    for t in &args.template {
        if !t.contains("{}") {
            bail!("--template {t:?} has no {{}} for the label");
        }
    }
    let embedder = build_embedder(
        &args.model,
        Some(EmbedKind::ImageEmbeds),
        true,
        args.batch_size as usize,
        args.threads.map(|t| t as usize),
        DecodeArgs::default(),
    )?;
    let text = text_encoder(&args.model)?;
    let scale = logit_scale_of(Path::new(&args.model.model))
        .with_context(|| format!("cannot read the logit_scale of {:?}", args.model.model))?
        .exp();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let templates: Vec<&str> = args.template.iter().map(String::as_str).collect();
    let classes = label_embeddings(&text, &label_refs, &templates)?;
    if classes.first().map(Vec::len) != Some(embedder.dim()) {
        bail!(
            "{}: the text embeddings have {} values, the image embeddings {}",
            args.model.model,
            classes.first().map_or(0, Vec::len),
            embedder.dim()
        );
    }
    let (paths, problems) = walk::collect(&args.paths)?;
    let mut skipped = problems.len();
    for (p, why) in &problems {
        eprintln!("skipped {}: {why}", p.display());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    embedder.stream_paths(paths.iter(), |batch| -> Result<()> {
        for (path, result) in batch {
            match result {
                Ok(image) => {
                    let mut probs = logits(scale, &[image], &classes)?.remove(0);
                    softmax(&mut probs);
                    writeln!(out, "{}", score_line(path, &labels, &probs, args.top_k)?)?;
                }
                Err(e) => {
                    eprintln!("skipped {}: {}", path.display(), reason(&e, path));
                    skipped += 1;
                }
            }
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(if skipped == 0 { 0 } else { EXIT_SKIPPED })
}

/// `{"path": …, "scores": {"<label>": p, …}}`: labels in the order given, or the `top_k`
/// most probable first.
fn score_line(path: &Path, labels: &[String], probs: &[f32], top_k: Option<u64>) -> Result<String> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    if let Some(k) = top_k {
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        order.truncate(usize::try_from(k).unwrap_or(usize::MAX));
    }
    let scores: Vec<String> = order
        .iter()
        .map(|&i| {
            Ok(format!(
                "{}: {}",
                serde_json::to_string(&labels[i])?,
                probs[i]
            ))
        })
        .collect::<Result<_>>()?;
    Ok(format!(
        "{{\"path\": {}, \"scores\": {{{}}}}}",
        serde_json::to_string(&path.to_string_lossy())?,
        scores.join(", ")
    ))
}

pub(crate) fn search(args: &SearchArgs) -> Result<u8> {
    let (meta, rows) = output::read_index(&args.index)?;
    let meta_file = output::meta_path(&args.index);
    if meta.kind != EmbedKind::ImageEmbeds.name() {
        bail!(
            "{}: the index holds {} vectors; searching by text needs image-embeds (the \
             projected embeddings): embed the images again without --kind pooled",
            meta_file.display(),
            meta.kind
        );
    }
    let model_args = ModelArgs {
        model: meta.model.clone(),
        activation: meta.activation.clone(),
        num_attention_heads: meta.num_attention_heads,
        precision: meta.precision.clone(),
    };
    let inspection = clip_vision::loader::inspect(Path::new(&meta.model)).map_err(|e| {
        anyhow::anyhow!(
            "{}: the index's model {}: {e}",
            meta_file.display(),
            meta.model
        )
    })?;
    meta.check_weights(&meta_file, Some(&inspection.fingerprint))?;
    let text = text_encoder(&model_args).map_err(|e| {
        e.context(format!(
            "{}: the index was made with {}, which cannot embed text",
            meta_file.display(),
            meta.model
        ))
    })?;
    let query = text
        .text_embeds(&[&args.query])?
        .pop()
        .context("no embedding for the query")?;
    if query.len() != meta.dim {
        bail!(
            "{}: the index rows have {} values, the text embedding {}",
            meta_file.display(),
            meta.dim,
            query.len()
        );
    }
    crate::print_ranked(&query, &rows, args.k);
    Ok(0)
}

pub(crate) fn embed_text(args: EmbedTextArgs) -> Result<u8> {
    // Each text with where it came from, for messages.
    let mut texts = args.texts.clone();
    let mut origins: Vec<String> = (1..=texts.len())
        .map(|i| format!("text argument {i}"))
        .collect();
    if let Some(file) = &args.texts_file {
        for (line, t) in read_lines(file)? {
            texts.push(t);
            origins.push(format!("{}: line {line}", file.display()));
        }
    }
    if texts.is_empty() {
        bail!("no texts to embed (the texts file holds only blank lines)");
    }
    let text = text_encoder(&args.model)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut rows = text.text_embeds(&refs).map_err(|e| match e {
        TextError::TextTooLong {
            index,
            bytes,
            limit,
        } => anyhow::anyhow!(
            "{} is {bytes} bytes long; at most {limit} are accepted",
            origins[index]
        ),
        TextError::Encode { index, reason } => {
            anyhow::anyhow!("{}: the tokenizer failed: {reason}", origins[index])
        }
        e => anyhow::Error::new(e),
    })?;
    if !args.no_normalize {
        rows.iter_mut().for_each(|r| *r = normalized(r));
    }
    let dim = rows.first().map_or(0, Vec::len);
    match &args.output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (t, r) in texts.iter().zip(&rows) {
                writeln!(out, "{}", serde_json::json!({"text": t, "embedding": r}))?;
            }
            out.flush()?;
        }
        Some(path) => {
            let mut body = Vec::new();
            match output::Format::of(path)? {
                output::Format::Jsonl => {
                    for (t, r) in texts.iter().zip(&rows) {
                        writeln!(body, "{}", serde_json::json!({"text": t, "embedding": r}))?;
                    }
                }
                output::Format::Npy => {
                    body.extend(npy::header(rows.len() as u64, dim as u64));
                    body.extend(npy::row_bytes(&rows));
                    let mut side = Vec::new();
                    for t in &texts {
                        writeln!(side, "{}", serde_json::to_string(t)?)?;
                    }
                    write_atomically(&texts_sidecar(path), &side)?;
                }
            }
            let inspection = clip_vision::loader::inspect(Path::new(&args.model.model))?;
            let meta = Meta {
                format_version: output::FORMAT_VERSION,
                model: std::fs::canonicalize(&inspection.resolved)
                    .unwrap_or(inspection.resolved)
                    .to_string_lossy()
                    .into_owned(),
                activation: args.model.activation.clone(),
                num_attention_heads: None,
                // The text tower always runs in f32.
                precision: "f32".into(),
                fingerprint: Some(inspection.fingerprint),
                kind: "text-embeds".into(),
                normalized: !args.no_normalize,
                dim,
                // Texts: no image is decoded.
                fast_decode: false,
                exif_transpose: false,
            };
            write_atomically(
                &output::meta_path(path),
                serde_json::to_string_pretty(&meta)?.as_bytes(),
            )?;
            write_atomically(path, &body)?;
        }
    }
    eprintln!("embedded {} texts", rows.len());
    Ok(0)
}

/// `FILE.texts.txt`.
fn texts_sidecar(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".texts.txt");
    PathBuf::from(name)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `info`'s lines about the text tower and its tokenizer, if the checkpoint has one.
pub(crate) fn describe_text_tower(args: &ModelArgs) {
    let options = TextLoadOptions {
        activation: load_options(args).activation,
        num_attention_heads: None,
    };
    let path = Path::new(&args.model);
    match ClipTextTower::from_pretrained(path, &options) {
        Err(TextError::NoTextTower { .. }) => println!("text tower      none"),
        Err(e) => println!("text tower      cannot be loaded: {e}"),
        Ok(t) => {
            let c = &t.config;
            println!(
                "text tower      width {}, {} layers, {} heads, MLP {} ({}), vocabulary {}, context {}, pooling {:?}",
                c.hidden_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.intermediate_size,
                c.hidden_act,
                c.vocab_size,
                c.max_position_embeddings,
                t.pooling
            );
            match t.projection_dim() {
                Some(e) => println!("text projection {} → {e}", c.hidden_size),
                None => println!("text projection none"),
            }
            let dir = clip_vision::checkpoint::resolve(path).map(|p| {
                if p.is_dir() {
                    p
                } else {
                    p.parent().map(Path::to_path_buf).unwrap_or(p)
                }
            });
            match dir
                .map_err(TextError::from)
                .and_then(ClipTokenizer::from_pretrained)
            {
                Ok(tok) => println!(
                    "tokenizer       {} ({} tokens)",
                    tok.source().display(),
                    tok.vocab_size()
                ),
                Err(e) => println!("tokenizer       none: {e}"),
            }
        }
    }
}
