//! The `clip-vision` command: CLIP image embeddings for folders of images.
//!
//! ```text
//! clip-vision embed --model DIR_OR_HUB_ID [--batch-size N] [--threads N]
//!                   [--output FILE.npy|FILE.jsonl] [--kind image-embeds|pooled]
//!                   [--no-normalize] [--resume] [--files-from FILE|-]
//!                   [--fast-decode] [--exif-transpose] PATH...
//! clip-vision similar --index FILE --query IMAGE [-k 10]
//! clip-vision classify --model M --labels "a,b,c" [--labels-file F] [--template T]...
//!                      [--top-k K] PATH...
//! clip-vision search --index FILE "words" [-k 10]
//! clip-vision embed-text --model M [--output FILE.npy|FILE.jsonl] [--texts-file F] TEXT...
//! clip-vision info --model DIR_OR_HUB_ID
//! ```
//!
//! Exit status: 0 when every image was embedded; 3 when the run finished but some files
//! were skipped (each reported on stderr with its reason, and counted in the summary);
//! 1 on an error that stopped the run (a model that does not load, an output that cannot
//! be written); 2 for a usage error.
#![forbid(unsafe_code)]

mod embed;
mod npy;
mod output;
mod text;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use clip_vision::preprocess::{ImageProcessor, ResizeTarget};
use clip_vision::{Activation, EmbedKind, ImageEmbedder, LoadOptions, VisionError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of a run that finished with skipped files.
pub(crate) const EXIT_SKIPPED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "clip-vision",
    version,
    about = "CLIP image embeddings on the CPU, exact to HF transformers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed image files and folders (walked recursively), rows in sorted path order.
    Embed(EmbedArgs),
    /// Rank the images of an index by cosine similarity to a query image.
    Similar(SimilarArgs),
    /// Zero-shot labels: each image's probabilities over the labels (one JSON line each).
    Classify(text::ClassifyArgs),
    /// Rank the images of an index by cosine similarity to a text.
    Search(text::SearchArgs),
    /// Embed texts with the model's text tower (`text_embeds`, L2-normalised).
    EmbedText(text::EmbedTextArgs),
    /// Print a model's architecture, parameter count, stored dtype and preprocessing.
    Info(ModelArgs),
}

/// Which vector each image gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// The projected embedding (transformers' `image_embeds`), for CLIP similarity.
    ImageEmbeds,
    /// The final-LayerNormed class token (transformers' `pooler_output`).
    Pooled,
}

impl From<Kind> for EmbedKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::ImageEmbeds => EmbedKind::ImageEmbeds,
            Kind::Pooled => EmbedKind::Pooled,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// A checkpoint directory or .safetensors file, or a hub id found in the local HF cache.
    #[arg(long)]
    pub(crate) model: String,
    /// The MLP activation, for weights that do not say (OpenAI-named weights without config).
    #[arg(long, value_parser = ["quick_gelu", "gelu", "gelu_new"])]
    pub(crate) activation: Option<String>,
    /// Attention heads, for OpenAI-named weights without a config (default: width / 64, as
    /// every OpenAI tower has; a tower with other heads needs this, or gives wrong vectors).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) num_attention_heads: Option<u32>,
    /// The precision of the vision blocks' linear layers: f32 (exact), int8 (per-channel
    /// int8 weights, activations per token; a quarter of the memory) or bf16 (half).
    #[arg(long, default_value = "f32", value_parser = ["f32", "int8", "bf16"])]
    pub(crate) precision: String,
}

/// How image files are decoded: both off by default, as transformers decodes them.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct DecodeArgs {
    /// Decode JPEGs downscaled in the DCT domain by 1/2, 1/4 or 1/8 while the short side
    /// stays at or above the resize target, as PIL's `Image.draft` (several times faster on
    /// large photos; the vectors are no longer transformers' exactly, see
    /// docs/performance.md).
    #[arg(long)]
    pub(crate) fast_decode: bool,
    /// Apply each file's EXIF orientation before resizing, as PIL's
    /// `ImageOps.exif_transpose` (transformers' processor ignores it).
    #[arg(long)]
    pub(crate) exif_transpose: bool,
}

#[derive(clap::Args)]
struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Images per encoder batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch_size: u32,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Output file: .npy (with a FILE.paths.txt sidecar) or .jsonl; JSON lines on stdout
    /// when absent.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Which vector to write (default: image-embeds, or pooled for a model without projection).
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Write the vectors as computed, not L2-normalised.
    #[arg(long)]
    no_normalize: bool,
    /// Continue an interrupted run into the same --output, skipping images already written.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Also embed the paths listed in FILE, one per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    files_from: Option<PathBuf>,
    /// Write clip-retrieval's layout into DIR (`img_emb/`, `metadata/`, done markers):
    /// float16 rows, parquet metadata; a rerun resumes or skips finished partitions.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "resume", "no_normalize"])]
    output_dir: Option<PathBuf>,
    /// Take shard I of N (0 ≤ I < N) of the inputs and write partition I (see
    /// docs/scale-out.md for the contract).
    #[arg(
        long,
        value_name = "I/N",
        requires = "output_dir",
        allow_hyphen_values = true
    )]
    shard: Option<clip_vision_job::Shard>,
    /// Image files per unit of work, for files and folders (tar shards are a unit each).
    #[arg(long, value_name = "N", requires = "output_dir",
          default_value_t = clip_vision_job::DEFAULT_FILES_PER_UNIT as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    files_per_unit: u64,
    /// The dtype of the .npy files of --output-dir.
    #[arg(long, value_enum, default_value = "f16", requires = "output_dir")]
    dtype: DtypeArg,
    /// Also write `text_emb/` from the captions (`.txt` members or files beside the
    /// images); a sample without a caption is skipped.
    #[arg(long, requires = "output_dir")]
    embed_captions: bool,
    /// Image files or directories; with --output-dir also webdataset .tar shards and brace
    /// patterns (`shards/{00000..00099}.tar`).
    #[arg(required_unless_present = "files_from")]
    paths: Vec<PathBuf>,
}

/// `--dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DtypeArg {
    /// float16, as clip-retrieval writes.
    F16,
    /// float32.
    F32,
}

#[derive(clap::Args)]
struct SimilarArgs {
    /// An output of `embed` (.npy or .jsonl, with its .meta.json beside it).
    #[arg(long)]
    index: PathBuf,
    /// The query image.
    #[arg(long)]
    query: PathBuf,
    /// How many results.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    k: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = clip_vision::kernels::env_kernel_path() {
        eprintln!("error: {}: {e}", clip_vision::kernels::KERNEL_ENV);
        return ExitCode::from(2);
    }
    if let Err(e) = clip_vision::attention::env_attention_path() {
        eprintln!("error: {}: {e}", clip_vision::attention::ATTENTION_ENV);
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Similar(args) => similar(&args),
        Command::Classify(args) => text::classify(args),
        Command::Search(args) => text::search(&args),
        Command::EmbedText(args) => text::embed_text(args),
        Command::Info(args) => info(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The load options the command line gives.
pub(crate) fn load_options(args: &ModelArgs) -> LoadOptions {
    LoadOptions {
        activation: args
            .activation
            .as_deref()
            .and_then(Activation::from_hf_name),
        num_attention_heads: args.num_attention_heads.map(|h| h as usize),
        precision: args.precision.parse().unwrap_or_default(),
    }
}

/// The pipeline for `--model`: the encoder and the checkpoint's preprocessing, checked to
/// agree on the image size.
pub(crate) fn build_embedder(
    args: &ModelArgs,
    kind: Option<EmbedKind>,
    normalize: bool,
    batch_size: usize,
    threads: Option<usize>,
    decode: DecodeArgs,
) -> Result<ImageEmbedder> {
    let mut builder = ImageEmbedder::builder(&args.model)
        .load_options(load_options(args))
        .batch_size(batch_size)
        .normalize(normalize)
        .fast_decode(decode.fast_decode)
        .exif_transpose(decode.exif_transpose);
    if let Some(kind) = kind {
        builder = builder.kind(kind);
    }
    if let Some(threads) = threads {
        builder = builder.threads(threads);
    }
    builder.build().map_err(|e| match e {
        VisionError::NoProjection => {
            anyhow::anyhow!(
                "{}: the model has no visual projection: use --kind pooled",
                args.model
            )
        }
        e => anyhow::Error::new(e).context(format!("cannot load the model {:?}", args.model)),
    })
}

/// One line describing the preprocessing.
fn describe(p: &ImageProcessor) -> String {
    let c = p.config();
    let mut steps = Vec::new();
    if c.do_convert_rgb {
        steps.push("RGB (alpha over white)".to_owned());
    }
    if c.do_resize {
        steps.push(match c.size {
            ResizeTarget::ShortestEdge(n) => {
                format!("shortest edge → {n} ({:?}, antialiased as PIL)", c.resample)
            }
            ResizeTarget::Exact { height, width } => {
                format!("resize → {height}×{width} ({:?})", c.resample)
            }
        });
    }
    if c.do_center_crop {
        steps.push(format!(
            "center crop {}×{}",
            c.crop_size.height, c.crop_size.width
        ));
    }
    if c.do_rescale {
        steps.push(format!("× {:.6}", c.rescale_factor));
    }
    if c.do_normalize {
        steps.push(format!(
            "normalise mean {:?} std {:?}",
            c.image_mean, c.image_std
        ));
    }
    steps.join(", ")
}

fn similar(args: &SimilarArgs) -> Result<u8> {
    let (meta, rows) = output::read_index(&args.index)?;
    // The model the rows were made with, as recorded (resolved path, activation, weights).
    let model_args = ModelArgs {
        model: meta.model.clone(),
        activation: meta.activation.clone(),
        num_attention_heads: meta.num_attention_heads,
        precision: meta.precision.clone(),
    };
    let kind = EmbedKind::from_name(&meta.kind);
    // The query is decoded as the index's images were.
    let decode = DecodeArgs {
        fast_decode: meta.fast_decode,
        exif_transpose: meta.exif_transpose,
    };
    let embedder = build_embedder(&model_args, kind, meta.normalized, 1, None, decode)?;
    meta.check_weights(&output::meta_path(&args.index), embedder.fingerprint())?;
    let query = embedder
        .embed_paths(&[&args.query])
        .pop()
        .context("no result for the query")?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the query {}: {}",
                args.query.display(),
                embed::reason(&e, &args.query)
            )
        })?;
    print_ranked(&query, &rows, args.k);
    Ok(0)
}

/// The `k` rows most similar to `query`, best first, as `rank\tcosine\tpath` lines (the
/// output of `similar` and `search`).
pub(crate) fn print_ranked(query: &[f32], rows: &[output::Row], k: u64) {
    let mut scored: Vec<(f64, &str)> = rows
        .iter()
        .map(|(p, r)| (cosine(query, r), p.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    for (rank, (score, path)) in scored.iter().take(k).enumerate() {
        println!("{}\t{score:.6}\t{path}", rank + 1);
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn info(args: &ModelArgs) -> Result<u8> {
    let embedder = build_embedder(
        args,
        Some(EmbedKind::Pooled),
        false,
        1,
        None,
        DecodeArgs::default(),
    )?;
    let (model, processor) = (embedder.encoder(), embedder.processor());
    let inspection = clip_vision::loader::inspect(Path::new(&args.model))?;
    let c = &model.config;
    let dtypes: Vec<String> = inspection
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d} ×{n}"))
        .collect();
    println!(
        "checkpoint      {} ({} naming)",
        inspection.resolved.display(),
        inspection.naming
    );
    println!("stored dtype    {} (computed in f32)", dtypes.join(", "));
    println!(
        "architecture    ViT, width {}, {} layers, {} heads of {}, MLP {} ({}), patch {}",
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.head_dim(),
        c.intermediate_size,
        c.hidden_act,
        c.patch_size
    );
    println!(
        "image size      {}×{} ({} tokens)",
        model.input_size().0,
        model.input_size().1,
        model.seq_len()
    );
    println!(
        "pre-LayerNorm   {}",
        if model.pre_layer_norm.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    match &model.projection {
        Some(p) => println!("projection      {} → {}", p.in_features(), p.out_features()),
        None => println!("projection      none (embed writes the pooled output)"),
    }
    println!("parameters      {}", model.num_params());
    text::describe_text_tower(args);
    println!("fingerprint     {}", inspection.fingerprint);
    println!("preprocessing   {}", describe(processor));
    print_cpu_and_kernels();
    Ok(0)
}

/// The CPU, its vector extensions and the kernels this build runs on it.
fn print_cpu_and_kernels() {
    use clip_vision::kernels::{self, KernelPath};
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cpu             {model} ({threads} threads)");
    println!("cpu features    {}", kernels::cpu_features().join(" "));
    let supported: Vec<&str> = KernelPath::supported().iter().map(|p| p.name()).collect();
    let how = match kernels::env_kernel_path() {
        Ok(Some(_)) => format!("forced by {}", kernels::KERNEL_ENV),
        _ => "fastest supported".into(),
    };
    let linear = if kernels::PACKED_KERNELS {
        format!(
            "packed weights, {} micro-kernels ({how}; this CPU: {})",
            kernels::kernel_path(),
            supported.join(", ")
        )
    } else if cfg!(feature = "gemm") {
        "the gemm crate's kernels on Wᵀ (run-time dispatch inside it)".into()
    } else {
        "matrixmultiply sgemm on Wᵀ (build without the gemm feature)".into()
    };
    println!("kernels         linear layers: {linear}");
    println!(
        "kernels         element-wise (softmax, LayerNorm, activations): {} vectors",
        kernels::elementwise_simd()
    );
    println!(
        "kernels         int8 linear layers (--precision int8): {} micro-kernels",
        kernels::int8::Int8Kernel::current()
    );
    use clip_vision::attention::{self as attn, AttentionPath};
    let attention = match attn::attention_path().resolve() {
        AttentionPath::Tiled => format!(
            "tiled (online softmax, no [N, N] scores), {} micro-kernels",
            kernels::kernel_path()
        ),
        _ => format!(
            "two-pass (scores, softmax, values), products on {}",
            if cfg!(feature = "gemm") {
                "the gemm crate"
            } else {
                "matrixmultiply"
            }
        ),
    };
    let how = match attn::env_attention_path() {
        Ok(Some(_)) => format!("forced by {}", attn::ATTENTION_ENV),
        _ => "auto".into(),
    };
    println!("                attention: {attention} ({how})");
}
