//! [`Job`]: embed one partition of a job into clip-retrieval's layout — resolve the inputs,
//! take this shard's units, resume the partition's journal, stream the samples through the
//! [`ImageEmbedder`] (and the captions through the text tower), finish the files.

use crate::npy::Dtype;
use crate::partition::{done_markers, Journal, JournalHeader, Line, PartitionFiles};
use crate::record::{inputs_hash, DoneMarker, Record};
use crate::units::{select, Inputs, Shard, Unit, DEFAULT_FILES_PER_UNIT};
use crate::webdataset::{Limits, ShardReader, IMAGE_EXTENSIONS};
use crate::JobError;
use clip_vision::text::ClipTextEncoder;
use clip_vision::ImageEmbedder;
use serde_json::{Map, Value};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// One partition of an embedding job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Image files, folders, `.tar` shards or brace patterns of shards.
    pub inputs: Vec<PathBuf>,
    /// The output directory (clip-retrieval's layout).
    pub output_dir: PathBuf,
    /// This process's share (`--shard i/n`; [`Shard::WHOLE`] for all of it).
    pub shard: Shard,
    /// Files per unit for image-file inputs ([`DEFAULT_FILES_PER_UNIT`]).
    pub files_per_unit: usize,
    /// The dtype of the `.npy` files (float16, as clip-retrieval writes).
    pub dtype: Dtype,
    /// Also write `text_emb/` from the captions (a sample without one is skipped).
    pub embed_captions: bool,
    /// Member size limits for shards; also the largest image file read.
    pub limits: Limits,
    /// The `--activation` given to load the model, if any (recorded).
    pub activation: Option<String>,
}

impl Job {
    /// The whole of `inputs` into `output_dir` with the defaults.
    pub fn new(inputs: Vec<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        Self {
            inputs,
            output_dir: output_dir.into(),
            shard: Shard::WHOLE,
            files_per_unit: DEFAULT_FILES_PER_UNIT,
            dtype: Dtype::F16,
            embed_captions: false,
            limits: Limits::default(),
            activation: None,
        }
    }
}

/// What a run tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The partition's inputs: its units and, for image files, the files they hold.
    Planned {
        /// Unit numbers taken.
        units: &'a [usize],
        /// Image files in them (`None` for shards: unknown until read).
        files: Option<usize>,
    },
    /// A journal of an earlier run was resumed.
    Resumed {
        /// Items already done.
        items: u64,
        /// Of which rows.
        rows: u64,
    },
    /// An input that has no row, and why.
    Skipped {
        /// The file path or sample key.
        name: &'a str,
        /// Why.
        why: &'a str,
    },
    /// A batch was committed.
    Batch {
        /// Items in it.
        items: u64,
        /// Rows in it.
        rows: u64,
    },
}

/// What a partition run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The partition.
    pub shard: Shard,
    /// Rows written (in all, resumed ones included).
    pub rows: u64,
    /// Items without a row.
    pub skipped: u64,
    /// Rows kept from an earlier run.
    pub resumed_rows: u64,
    /// Whether the partition was already done (nothing was run).
    pub already_done: bool,
    /// The unit numbers it took.
    pub units: Vec<usize>,
    /// Inputs that could not be walked (reported by every shard; not in any partition).
    pub walk_problems: Vec<(PathBuf, String)>,
}

/// One input item of the stream.
struct Item {
    key: String,
    caption: Option<String>,
    json: Option<Map<String, Value>>,
    /// Why the item has no image to embed.
    problem: Option<String>,
}

/// An error's message with its causes (`a: b: c`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// Reads at most `limit` bytes of a file.
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    if len > limit {
        return Err(format!("{len} bytes, over the limit of {limit}"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

/// The caption beside an image file: `photo.txt` for `photo.jpg`, if it exists.
fn caption_of(path: &Path, limit: u64) -> Result<Option<String>, String> {
    let txt = path.with_extension("txt");
    if !txt.is_file() {
        return Ok(None);
    }
    let bytes = read_capped(&txt, limit).map_err(|e| format!("caption {}: {e}", txt.display()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("caption {}: not UTF-8", txt.display()))
}

impl Job {
    /// Runs this job's partition with `embedder` (and `text` for captions); `on_event`
    /// may stop the run (`ControlFlow::Break`), which keeps every committed row.
    ///
    /// # Errors
    /// Input resolution errors, [`JobError::MadeOtherwise`] for an output directory (or a
    /// journal) made with other settings or inputs, I/O errors naming the file,
    /// [`JobError::Stopped`]. A bad image, sample or shard is not an error: it is skipped
    /// (an [`Event::Skipped`], counted in the report and the done marker).
    pub fn run(
        &self,
        embedder: &ImageEmbedder,
        text: Option<&ClipTextEncoder>,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Report, JobError> {
        if self.embed_captions && text.is_none() {
            return Err(JobError::Options(
                "--embed-captions needs the model's text tower".into(),
            ));
        }
        if let Some(t) = text.filter(|_| self.embed_captions) {
            let width = t.text_embeds(&["a photo"])?.pop().map_or(0, |v| v.len());
            if width != embedder.dim() {
                return Err(JobError::Options(format!(
                    "--embed-captions: the text tower's embeddings have {width} values, the image rows {}",
                    embedder.dim()
                )));
            }
        }
        let (inputs, walk_problems) = Inputs::resolve(&self.inputs)?;
        for (p, why) in &walk_problems {
            let name = p.display().to_string();
            let _ = on_event(Event::Skipped { name: &name, why });
        }
        let record = Record::new(
            embedder,
            self.activation.as_deref(),
            self.dtype,
            self.embed_captions,
            self.shard,
            inputs.are_shards(),
            self.files_per_unit,
        )?;
        let units = select(inputs.units(self.files_per_unit), self.shard);
        let numbers: Vec<usize> = units.iter().map(|(n, _)| *n).collect();
        let hash = inputs_hash(&units);
        let files = PartitionFiles::new(&self.output_dir, self.shard);
        let mut report = Report {
            shard: self.shard,
            rows: 0,
            skipped: 0,
            resumed_rows: 0,
            already_done: false,
            units: numbers.clone(),
            walk_problems,
        };

        // Every partition already in the directory must have been made the same way.
        for (path, marker) in done_markers(&self.output_dir)? {
            let mut differences = marker.record.differences(&record);
            let same_partition = marker.partition == self.shard.index && path == files.done();
            if same_partition && differences.is_empty() && marker.inputs_hash != hash {
                differences.push(format!(
                    "inputs_hash: {} (output) vs {hash} (this run): the partition's inputs changed",
                    marker.inputs_hash
                ));
            }
            if !differences.is_empty() {
                return Err(JobError::MadeOtherwise { path, differences });
            }
            if same_partition {
                report.rows = marker.rows;
                report.skipped = marker.skipped;
                report.already_done = true;
            }
        }
        if report.already_done {
            return Ok(report);
        }

        let _ = on_event(Event::Planned {
            units: &numbers,
            files: match &inputs {
                Inputs::Files(_) => Some(
                    units
                        .iter()
                        .map(|(_, u)| match u {
                            Unit::Files(f) => f.len(),
                            Unit::Shard(_) => 0,
                        })
                        .sum(),
                ),
                Inputs::Shards(_) => None,
            },
        });
        let header = JournalHeader {
            record: record.clone(),
            partition: self.shard.index,
            inputs_hash: hash.clone(),
        };
        let mut journal = Journal::open(&files, &header, self.embed_captions)?;
        report.resumed_rows = journal.rows;
        if journal.items > 0 {
            let _ = on_event(Event::Resumed {
                items: journal.items,
                rows: journal.rows,
            });
        }
        let mut to_skip = journal.items;
        for (_, unit) in &units {
            self.run_unit(unit, embedder, text, &mut journal, &mut to_skip, on_event)?;
        }
        let marker = journal.finish(DoneMarker {
            record,
            partition: self.shard.index,
            rows: 0,
            width: embedder.dim(),
            dtype: self.dtype,
            skipped: 0,
            units: numbers,
            inputs_hash: hash,
        })?;
        report.rows = marker.rows;
        report.skipped = marker.skipped;
        Ok(report)
    }

    /// Streams one unit's items (after the first `to_skip` of the partition, already in the
    /// journal) through the embedder into the journal.
    fn run_unit(
        &self,
        unit: &Unit,
        embedder: &ImageEmbedder,
        text: Option<&ClipTextEncoder>,
        journal: &mut Journal,
        to_skip: &mut u64,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<(), JobError> {
        let mut skip = |_: &(Item, Vec<u8>)| {
            if *to_skip > 0 {
                *to_skip -= 1;
                false
            } else {
                true
            }
        };
        let mut sink = |batch| self.commit(batch, text, journal, on_event);
        match unit {
            Unit::Files(paths) => {
                let limit = self.limits.image_bytes;
                let items = paths.iter().map(|p| {
                    let key = p.to_string_lossy().into_owned();
                    let (caption, problem) = match caption_of(p, self.limits.text_bytes) {
                        Ok(c) => (c, None),
                        Err(why) => (None, Some(why)),
                    };
                    let (bytes, problem) = match problem {
                        Some(why) => (Vec::new(), Some(why)),
                        None => match read_capped(p, limit) {
                            Ok(b) => (b, None),
                            Err(why) => (Vec::new(), Some(why)),
                        },
                    };
                    let item = Item {
                        key,
                        caption,
                        json: None,
                        problem,
                    };
                    (item, bytes)
                });
                embedder.stream_bytes(items.filter(|i| skip(i)), &mut sink)
            }
            Unit::Shard(path) => {
                let mut reader = match ShardReader::open(path) {
                    Ok(r) => r.with_limits(self.limits),
                    Err(e) => {
                        let item = Item {
                            key: path.display().to_string(),
                            caption: None,
                            json: None,
                            problem: Some(chain(&e)),
                        };
                        let items = std::iter::once((item, Vec::new()));
                        return embedder.stream_bytes(items.filter(|i| skip(i)), &mut sink);
                    }
                };
                let items = reader.samples().map(|sample| match sample {
                    Ok(s) => {
                        let problem = s.image.is_none().then(|| {
                            format!(
                                "{}: sample {:?} has no image member (.{})",
                                path.display(),
                                s.key,
                                IMAGE_EXTENSIONS.join(", .")
                            )
                        });
                        let bytes = s.image.map(|(_, b)| b).unwrap_or_default();
                        let item = Item {
                            key: s.key,
                            caption: s.caption,
                            json: s.json,
                            problem,
                        };
                        (item, bytes)
                    }
                    Err(e) => {
                        let key = match &e {
                            JobError::Sample { key, .. } => key.clone(),
                            JobError::Member { member, .. } => member.clone(),
                            _ => path.display().to_string(),
                        };
                        let item = Item {
                            key,
                            caption: None,
                            json: None,
                            problem: Some(chain(&e)),
                        };
                        (item, Vec::new())
                    }
                });
                embedder.stream_bytes(items.filter(|i| skip(i)), &mut sink)
            }
        }
    }

    /// Turns an embedded batch into journal lines and vectors, and commits it.
    fn commit(
        &self,
        batch: Vec<clip_vision::pipeline::Embedded<(Item, Vec<u8>)>>,
        text: Option<&ClipTextEncoder>,
        journal: &mut Journal,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<(), JobError> {
        let mut lines = Vec::with_capacity(batch.len());
        let mut img = Vec::new();
        let mut captions = Vec::new();
        for ((item, _), result) in batch {
            let why = match (item.problem, result) {
                (Some(why), _) => Some(why),
                (None, Err(e)) => Some(chain(&e)),
                (None, Ok(_)) if self.embed_captions && item.caption.is_none() => {
                    Some("no caption to embed (--embed-captions)".to_owned())
                }
                (None, Ok(row)) => {
                    img.extend_from_slice(&row);
                    if self.embed_captions {
                        captions.push((lines.len(), item.caption.clone().unwrap_or_default()));
                    }
                    lines.push(Line::Row {
                        key: item.key.clone(),
                        caption: item.caption,
                        json: item.json,
                    });
                    None
                }
            };
            if let Some(why) = why {
                lines.push(Line::Skip { key: item.key, why });
            }
        }
        let text_rows = match text.filter(|_| self.embed_captions) {
            Some(t) if !captions.is_empty() => {
                self.caption_rows(t, &mut lines, &mut img, captions)?
            }
            _ => Vec::new(),
        };
        journal.append(&lines, &img, &text_rows)?;
        for line in &lines {
            if let Line::Skip { key, why } = line {
                let _ = on_event(Event::Skipped { name: key, why });
            }
        }
        let rows = lines
            .iter()
            .filter(|l| matches!(l, Line::Row { .. }))
            .count() as u64;
        let flow = on_event(Event::Batch {
            items: lines.len() as u64,
            rows,
        });
        if flow.is_break() {
            return Err(JobError::Stopped {
                partition: self.shard.to_string(),
                rows: journal.rows,
            });
        }
        Ok(())
    }

    /// The captions' `text_embeds`, L2-normalised, one per row; a caption the tokenizer
    /// refuses turns its row into a skip (its image vector is dropped from `img`).
    fn caption_rows(
        &self,
        text: &ClipTextEncoder,
        lines: &mut [Line],
        img: &mut Vec<f32>,
        captions: Vec<(usize, String)>,
    ) -> Result<Vec<f32>, JobError> {
        let refs: Vec<&str> = captions.iter().map(|(_, c)| c.as_str()).collect();
        let embedded: Vec<Result<Vec<f32>, String>> = match text.text_embeds(&refs) {
            Ok(all) => all.into_iter().map(Ok).collect(),
            // Find the caption that fails; the others embed as they would have.
            Err(_) => refs
                .iter()
                .map(|c| {
                    text.text_embeds(&[c])
                        .map(|mut v| v.pop().unwrap_or_default())
                        .map_err(|e| chain(&e))
                })
                .collect(),
        };
        let dim = img.len() / captions.len().max(1);
        let mut kept_img = Vec::with_capacity(img.len());
        let mut out = Vec::new();
        for (((line_at, _), result), image) in captions.iter().zip(embedded).zip(img.chunks(dim)) {
            match result {
                Ok(mut v) => {
                    clip_vision::encoder::l2_normalize(&mut v);
                    out.extend(v);
                    kept_img.extend_from_slice(image);
                }
                Err(why) => {
                    if let Line::Row { key, .. } = &lines[*line_at] {
                        lines[*line_at] = Line::Skip {
                            key: key.clone(),
                            why: format!("caption: {why}"),
                        };
                    }
                }
            }
        }
        *img = kept_img;
        Ok(out)
    }
}
