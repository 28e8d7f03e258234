//! `ImageEmbedder`: the one way a program embeds images — files, encoded bytes or decoded
//! images in, one L2-normalised CLIP embedding (or an error) per input out.
//!
//! It owns the encoder, the image processor of the same checkpoint and, optionally, a
//! worker pool of its own. Inputs go through in batches: while the encoder runs batch `k`,
//! the workers decode and preprocess batch `k + 1`; at most [`BATCHES_AHEAD`] decoded
//! batches wait, which bounds memory whatever the number of inputs. A file that cannot be
//! decoded costs its own entry, never its batch.
//!
//! ```no_run
//! use clip_vision::ImageEmbedder;
//! let embedder = ImageEmbedder::from_pretrained("openai/clip-vit-base-patch32")?;
//! for (path, row) in ["cat.jpg", "dog.png"].iter().zip(embedder.embed_paths(&["cat.jpg", "dog.png"])) {
//!     match row {
//!         Ok(embedding) => println!("{path}: {} values", embedding.len()),
//!         Err(e) => eprintln!("skipped: {e}"),
//!     }
//! }
//! # Ok::<(), clip_vision::VisionError>(())
//! ```

use crate::encoder::{l2_normalize, ClipVisionEncoder};
use crate::error::{VisionError, VisionResult};
use crate::loader::{self, LoadOptions};
use clip_preprocess::image::DynamicImage;
use clip_preprocess::{ImageProcessor, PreprocessResult, ResizeTarget};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

/// Batches that may be ahead of the encoder: enough to keep it fed, few enough to bound
/// memory (`(BATCHES_AHEAD + 1) × batch_size` preprocessed images at most: those ahead and
/// the one being encoded).
pub const BATCHES_AHEAD: usize = 2;

/// Images per encoder call unless the builder says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Which vector each image gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbedKind {
    /// The projected embedding (transformers' `image_embeds`), for CLIP similarity.
    ImageEmbeds,
    /// The final-LayerNormed class token (transformers' `pooler_output`).
    Pooled,
}

impl EmbedKind {
    /// `"image-embeds"` or `"pooled"`, as the CLI and the output records spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ImageEmbeds => "image-embeds",
            Self::Pooled => "pooled",
        }
    }

    /// The kind [`EmbedKind::name`] spells, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "image-embeds" => Some(Self::ImageEmbeds),
            "pooled" => Some(Self::Pooled),
            _ => None,
        }
    }
}

/// One input's outcome in a streamed batch: the input given, and its vector or the reason
/// it has none.
pub type Embedded<T> = (T, VisionResult<Vec<f32>>);

/// Where an [`ImageEmbedder`] comes from.
#[derive(Debug)]
enum Source {
    Checkpoint(PathBuf),
    Parts(Box<(ClipVisionEncoder, ImageProcessor)>),
}

/// Options of an [`ImageEmbedder`], then [`ImageEmbedderBuilder::build`].
#[derive(Debug)]
#[must_use]
pub struct ImageEmbedderBuilder {
    source: Source,
    options: LoadOptions,
    batch_size: usize,
    threads: Option<usize>,
    kind: Option<EmbedKind>,
    normalize: bool,
    max_pixels: Option<u64>,
    fast_decode: Option<bool>,
    exif_transpose: Option<bool>,
}

impl ImageEmbedderBuilder {
    /// What the checkpoint may not say itself (activation, head count).
    pub fn load_options(mut self, options: LoadOptions) -> Self {
        self.options = options;
        self
    }

    /// Images per encoder call (default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// A worker pool of this many threads for decoding and the encoder. Without one,
    /// decoding runs on rayon's global pool (one thread per core) and the encoder on the
    /// pool of the calling thread (the global one, unless called inside another pool).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Which vector to return (default: image embeds, or the pooled output for a tower
    /// without projection).
    pub fn kind(mut self, kind: EmbedKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Whether vectors are scaled to unit L2 norm (default `true`).
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// The decompression-bomb limit, in pixels (default the processor's,
    /// [`clip_preprocess::DEFAULT_MAX_PIXELS`]).
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = Some(max_pixels);
        self
    }

    /// Decode JPEGs downscaled in the DCT domain, as PIL's `Image.draft` (default: the
    /// processor's, off). Faster on large photos; vectors are no longer transformers' (see
    /// [`ImageProcessor::with_fast_decode`]).
    pub fn fast_decode(mut self, fast_decode: bool) -> Self {
        self.fast_decode = Some(fast_decode);
        self
    }

    /// Apply image files' EXIF orientation, as PIL's `ImageOps.exif_transpose` (default: the
    /// processor's, off, as transformers; see [`ImageProcessor::with_exif_transpose`]).
    pub fn exif_transpose(mut self, exif_transpose: bool) -> Self {
        self.exif_transpose = Some(exif_transpose);
        self
    }

    /// Loads the model and its preprocessing and checks that they agree.
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::from_pretrained`] and
    /// [`ImageProcessor::from_pretrained`]; [`VisionError::ProcessorMismatch`] when the
    /// preprocessing does not make images of the size the model takes;
    /// [`VisionError::NoProjection`] for [`EmbedKind::ImageEmbeds`] on a tower without
    /// projection; [`VisionError::InvalidConfig`] (`batch_size`, `threads`) for 0;
    /// [`VisionError::ThreadPool`] when the workers cannot start.
    pub fn build(self) -> VisionResult<ImageEmbedder> {
        for (field, value) in [
            ("batch_size", Some(self.batch_size)),
            ("threads", self.threads),
        ] {
            if value == Some(0) {
                return Err(VisionError::InvalidConfig {
                    path: None,
                    field,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        let (encoder, processor, processor_source, model_path, fingerprint) = match self.source {
            Source::Checkpoint(path) => {
                let resolved = loader::resolve(&path)?;
                let resolved = std::fs::canonicalize(&resolved).unwrap_or(resolved);
                let store = clip_checkpoint::open_weights(&resolved)?;
                let dir = resolved.is_dir().then_some(resolved.as_path());
                let encoder = loader::load_store(&store, dir, &self.options)?;
                let (processor, source) = match dir {
                    Some(dir) => {
                        let file = dir.join("preprocessor_config.json");
                        let source = if file.is_file() {
                            file
                        } else {
                            dir.join("config.json")
                        };
                        (ImageProcessor::from_pretrained(dir)?, source)
                    }
                    None => (ImageProcessor::default(), PathBuf::from("<defaults>")),
                };
                (
                    encoder,
                    processor,
                    source,
                    Some(resolved),
                    Some(store.fingerprint()),
                )
            }
            Source::Parts(parts) => {
                let (encoder, processor) = *parts;
                (encoder, processor, PathBuf::from("<processor>"), None, None)
            }
        };
        check_sizes(&encoder, &processor, &processor_source)?;
        let processor = match self.max_pixels {
            Some(limit) => processor.with_max_pixels(limit),
            None => processor,
        };
        let processor = match self.fast_decode {
            Some(on) => processor.with_fast_decode(on),
            None => processor,
        };
        let processor = match self.exif_transpose {
            Some(on) => processor.with_exif_transpose(on),
            None => processor,
        };
        let kind = self.kind.unwrap_or(if encoder.projection.is_some() {
            EmbedKind::ImageEmbeds
        } else {
            EmbedKind::Pooled
        });
        if kind == EmbedKind::ImageEmbeds && encoder.projection.is_none() {
            return Err(VisionError::NoProjection);
        }
        let pool = match self.threads {
            None => None,
            Some(threads) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("clip-vision-{i}"))
                    .build()
                    .map_err(|e| VisionError::ThreadPool {
                        threads,
                        reason: e.to_string(),
                    })?,
            )),
        };
        Ok(ImageEmbedder {
            encoder,
            processor,
            kind,
            normalize: self.normalize,
            batch_size: self.batch_size,
            pool,
            model_path,
            fingerprint,
            options: self.options,
        })
    }
}

/// Refuses a processor whose output is not the `H × W` the encoder takes.
fn check_sizes(
    encoder: &ClipVisionEncoder,
    processor: &ImageProcessor,
    source: &Path,
) -> VisionResult<()> {
    let cfg = processor.config();
    let out = match (cfg.do_center_crop, cfg.do_resize, cfg.size) {
        (true, _, _) => Some((cfg.crop_size.height, cfg.crop_size.width)),
        (false, true, ResizeTarget::Exact { height, width }) => Some((height, width)),
        _ => None,
    };
    let (mh, mw) = encoder.input_size();
    match out {
        Some(size) if size == (mh, mw) => Ok(()),
        other => Err(VisionError::ProcessorMismatch {
            processor: source.to_path_buf(),
            expected: format!("{mh}×{mw}"),
            got: other.map_or_else(
                || "images of varying size (no crop, no fixed resize)".to_owned(),
                |(h, w)| format!("{h}×{w}"),
            ),
        }),
    }
}

/// A CLIP vision tower with its preprocessing: images in, embeddings out.
///
/// Built by [`ImageEmbedder::from_pretrained`] or [`ImageEmbedder::builder`]. Every
/// `embed_*` method returns one result per input, in input order; the vector is what
/// [`ImageEmbedder::kind`] says, L2-normalised unless the builder turned that off, exactly
/// what `clip-vision embed` writes.
#[derive(Debug)]
pub struct ImageEmbedder {
    encoder: ClipVisionEncoder,
    processor: ImageProcessor,
    kind: EmbedKind,
    normalize: bool,
    batch_size: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    model_path: Option<PathBuf>,
    fingerprint: Option<String>,
    options: LoadOptions,
}

impl ImageEmbedder {
    /// Loads a checkpoint and its `preprocessor_config.json` (CLIP's defaults when absent)
    /// with the default options: `model` is a directory, a `.safetensors` file, or a hub id
    /// found in the local HF cache.
    ///
    /// # Errors
    /// As [`ImageEmbedderBuilder::build`].
    pub fn from_pretrained(model: impl AsRef<Path>) -> VisionResult<Self> {
        Self::builder(model).build()
    }

    /// A builder for a checkpoint, to set options before loading.
    pub fn builder(model: impl AsRef<Path>) -> ImageEmbedderBuilder {
        Self::builder_from(Source::Checkpoint(model.as_ref().to_path_buf()))
    }

    /// A builder for an encoder and a processor already at hand.
    pub fn from_parts(
        encoder: ClipVisionEncoder,
        processor: ImageProcessor,
    ) -> ImageEmbedderBuilder {
        Self::builder_from(Source::Parts(Box::new((encoder, processor))))
    }

    fn builder_from(source: Source) -> ImageEmbedderBuilder {
        ImageEmbedderBuilder {
            source,
            options: LoadOptions::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            threads: None,
            kind: None,
            normalize: true,
            max_pixels: None,
            fast_decode: None,
            exif_transpose: None,
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &ClipVisionEncoder {
        &self.encoder
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// Which vector each image gets.
    pub fn kind(&self) -> EmbedKind {
        self.kind
    }

    /// Whether vectors are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Images per encoder call.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        match self.kind {
            EmbedKind::ImageEmbeds => self.encoder.config.projection_dim,
            EmbedKind::Pooled => self.encoder.config.hidden_size,
        }
    }

    /// The checkpoint loaded, canonical (a hub id resolved to its snapshot); `None` when
    /// built from parts.
    pub fn model_path(&self) -> Option<&Path> {
        self.model_path.as_deref()
    }

    /// The weights' [`clip_checkpoint::TensorStore::fingerprint`]; `None` when built from
    /// parts.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The load options the model was built with.
    pub fn load_options(&self) -> &LoadOptions {
        &self.options
    }

    /// Runs `f` on the embedder's own pool, or the caller's (rayon's global) without one.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// The vectors of `n` preprocessed images.
    ///
    /// # Shapes
    /// - `pixels`: `[n, C, H, W]` → `n` vectors of `[dim]`
    ///
    /// # Errors
    /// As [`ClipVisionEncoder::image_embeds`].
    pub fn embed_pixels(&self, pixels: &[f32], n: usize) -> VisionResult<Vec<Vec<f32>>> {
        self.run(|| {
            let mut rows = match self.kind {
                EmbedKind::ImageEmbeds => self.encoder.image_embeds(pixels, n)?,
                EmbedKind::Pooled => self.encoder.forward_batch(pixels, n)?,
            };
            if self.normalize {
                rows.iter_mut().for_each(|r| l2_normalize(r));
            }
            Ok(rows)
        })
    }

    /// Encodes one batch of preprocessed inputs; a batch the encoder refuses is retried
    /// image by image, so one bad input costs only itself.
    fn encode<T>(&self, prepared: Vec<Embedded<T>>) -> Vec<Embedded<T>> {
        let (inputs, mut results): (Vec<T>, Vec<VisionResult<Vec<f32>>>) =
            prepared.into_iter().unzip();
        let len = self.encoder.image_len();
        // Each image's pixels move into the batch buffer (no second copy is held).
        let mut pixels = Vec::new();
        let mut n = 0;
        for px in results.iter_mut().filter_map(|r| r.as_mut().ok()) {
            pixels.append(px);
            n += 1;
        }
        if n == 0 {
            return inputs.into_iter().zip(results).collect();
        }
        match self.embed_pixels(&pixels, n) {
            Ok(rows) if rows.len() == n => {
                let slots = results.iter_mut().filter(|r| r.is_ok());
                for (slot, row) in slots.zip(rows) {
                    *slot = Ok(row);
                }
            }
            _ => {
                // Retried one by one, from the batch buffer, so one bad input costs only itself.
                let slots = results.iter_mut().filter(|r| r.is_ok());
                for (slot, px) in slots.zip(pixels.chunks(len.max(1))) {
                    *slot = self.embed_pixels(px, 1).and_then(|rows| {
                        rows.into_iter()
                            .next()
                            .ok_or(VisionError::DimensionMismatch {
                                expected: len,
                                got: px.len(),
                            })
                    });
                }
            }
        }
        inputs.into_iter().zip(results).collect()
    }

    /// Preprocesses one batch on the workers.
    fn prepare_batch<T: Send + Sync>(
        &self,
        chunk: Vec<T>,
        prepare: &(impl Fn(&T) -> PreprocessResult<Vec<f32>> + Sync),
    ) -> Vec<Embedded<T>> {
        self.run(|| {
            chunk
                .into_par_iter()
                .map(|input| {
                    let pixels = prepare(&input).map_err(VisionError::from);
                    (input, pixels)
                })
                .collect()
        })
    }

    /// The pipeline: `inputs` cut into batches, each preprocessed on the workers (by
    /// `prepare`, on a thread of its own) while the caller's thread encodes the previous one,
    /// each handed to `on_batch` in order. At most [`BATCHES_AHEAD`] batches are ahead of
    /// the encoder. Called from a rayon worker thread, or when no thread can be started, it
    /// runs the steps one after the other instead: a worker blocked on a channel could starve
    /// the pool it waits on.
    fn stream<T, I, E>(
        &self,
        inputs: I,
        prepare: impl Fn(&T) -> PreprocessResult<Vec<f32>> + Sync,
        mut on_batch: impl FnMut(Vec<Embedded<T>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        T: Send + Sync,
        I: IntoIterator<Item = T>,
    {
        let mut inputs = inputs.into_iter();
        let batch_size = self.batch_size;
        let mut next_chunk = move || -> Option<Vec<T>> {
            let chunk: Vec<T> = inputs.by_ref().take(batch_size).collect();
            (!chunk.is_empty()).then_some(chunk)
        };
        let prepare = &prepare;
        let in_worker = rayon::current_thread_index().is_some();
        std::thread::scope(|scope| {
            let (raw_tx, raw_rx) = sync_channel::<Vec<T>>(BATCHES_AHEAD);
            let (done_tx, done_rx) = sync_channel::<Vec<Embedded<T>>>(BATCHES_AHEAD);
            let decoder = (!in_worker)
                .then(|| {
                    std::thread::Builder::new()
                        .name("clip-vision-decode".into())
                        .spawn_scoped(scope, move || {
                            for chunk in raw_rx {
                                if done_tx.send(self.prepare_batch(chunk, prepare)).is_err() {
                                    return; // the consumer stopped
                                }
                            }
                        })
                        .ok()
                })
                .flatten();
            if decoder.is_none() {
                while let Some(chunk) = next_chunk() {
                    on_batch(self.encode(self.prepare_batch(chunk, prepare)))?;
                }
                return Ok(());
            }
            // Both channels hold BATCHES_AHEAD: with at most that many batches sent and not
            // yet received, neither side ever waits on a full channel.
            let mut in_flight = 0;
            loop {
                while in_flight < BATCHES_AHEAD {
                    let Some(chunk) = next_chunk() else { break };
                    if raw_tx.send(chunk).is_err() {
                        break;
                    }
                    in_flight += 1;
                }
                if in_flight == 0 {
                    return Ok(());
                }
                // On an early return both channels are dropped, which stops the decoder.
                let Ok(prepared) = done_rx.recv() else {
                    return Ok(());
                };
                in_flight -= 1;
                on_batch(self.encode(prepared))?;
            }
        })
    }

    /// Streams image files through the pipeline: `on_batch` receives each batch of
    /// `(path, result)` in input order as soon as it is embedded, so memory stays bounded
    /// by the batches in flight however many paths there are. An error returned by
    /// `on_batch` stops the stream and is returned.
    ///
    /// # Errors
    /// Only what `on_batch` returns; each input's own failure is in its entry.
    pub fn stream_paths<P, I, E>(
        &self,
        paths: I,
        on_batch: impl FnMut(Vec<Embedded<P>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        P: AsRef<Path> + Send + Sync,
        I: IntoIterator<Item = P>,
    {
        self.stream(
            paths,
            |p| self.processor.preprocess_path(p.as_ref()),
            on_batch,
        )
    }

    /// Streams encoded images held in memory (archive members, HTTP bodies), as
    /// [`ImageEmbedder::stream_paths`]; each item is `(key, bytes)` and comes back with its
    /// key.
    ///
    /// # Errors
    /// Only what `on_batch` returns.
    pub fn stream_bytes<K, B, I, E>(
        &self,
        items: I,
        on_batch: impl FnMut(Vec<Embedded<(K, B)>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        K: Send + Sync,
        B: AsRef<[u8]> + Send + Sync,
        I: IntoIterator<Item = (K, B)>,
    {
        self.stream(
            items,
            |(_, b)| self.processor.preprocess_bytes(b.as_ref()),
            on_batch,
        )
    }

    /// Collects a stream into one result per input, in order.
    fn collect<T>(
        &self,
        run: impl FnOnce(&mut dyn FnMut(Vec<Embedded<T>>) -> Result<(), std::convert::Infallible>),
    ) -> Vec<VisionResult<Vec<f32>>> {
        let mut out = Vec::new();
        run(&mut |batch| {
            out.extend(batch.into_iter().map(|(_, r)| r));
            Ok(())
        });
        out
    }

    /// One result per path, in order: the vector, or why the file has none.
    pub fn embed_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Vec<VisionResult<Vec<f32>>> {
        let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
        self.collect(|sink| {
            let _ = self.stream_paths(paths, sink);
        })
    }

    /// One result per encoded image (the bytes of a JPEG, PNG, … file), in order.
    pub fn embed_bytes(&self, images: &[&[u8]]) -> Vec<VisionResult<Vec<f32>>> {
        self.collect(|sink| {
            let _ = self.stream_bytes(images.iter().map(|b| ((), *b)), sink);
        })
    }

    /// One result per decoded image, in order.
    pub fn embed_images(&self, images: &[DynamicImage]) -> Vec<VisionResult<Vec<f32>>> {
        self.collect(|sink| {
            let _ = self.stream(images.iter(), |img| self.processor.preprocess(img), sink);
        })
    }
}
