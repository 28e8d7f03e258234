//! What defines a partition's rows ([`Record`]) and the done marker that says a partition
//! is finished ([`DoneMarker`]).
//!
//! Every partition of an output directory must come from the same [`Record`]: a run
//! refuses a directory (or a journal) whose record differs, naming each field. The model
//! is identified by its weights' fingerprint; its path is kept for people and for
//! `similar` / `search`, and compared only when a fingerprint is missing (one machine's
//! `/models/clip` is another's hub cache).

use crate::npy::Dtype;
use crate::units::{Shard, Unit};
use crate::JobError;
use clip_vision::ImageEmbedder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The version of the layout this crate writes ([`Record::format_version`]).
pub const LAYOUT_VERSION: u32 = 1;

/// What defines the rows of every partition of one output directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`LAYOUT_VERSION`].
    pub format_version: u32,
    /// The checkpoint, resolved and canonical (informational when both sides have a
    /// fingerprint).
    pub model: String,
    /// `clip_vision::checkpoint::TensorStore::fingerprint` of the weights.
    pub fingerprint: Option<String>,
    /// The activation given for weights that do not say (`--activation`), if any.
    pub activation: Option<String>,
    /// The head count given (`--num-attention-heads`), if any.
    pub num_attention_heads: Option<u32>,
    /// `image-embeds` or `pooled`.
    pub kind: String,
    /// Whether rows are L2-normalised.
    pub normalized: bool,
    /// Row width `d`.
    pub dim: usize,
    /// The dtype of `img_emb` (and `text_emb`) files.
    pub dtype: Dtype,
    /// The precision of the vision tower's linear layers (`f32`, `int8`, `bf16`:
    /// `clip_vision::Precision::name`).
    pub precision: String,
    /// The preprocessing (`CLIPImageProcessor`'s settings) every image went through.
    pub preprocessing: String,
    /// The decoder's pixel limit: larger images are refused (a row not written).
    pub max_pixels: u64,
    /// Whether JPEGs were decoded downscaled (`--fast-decode`, PIL's `Image.draft`); absent
    /// in records written before the option existed, which decoded exactly.
    #[serde(default)]
    pub fast_decode: bool,
    /// Whether EXIF orientation was applied (`--exif-transpose`); absent before the option
    /// existed, which ignored it.
    #[serde(default)]
    pub exif_transpose: bool,
    /// Whether `text_emb` holds the captions' embeddings (`--embed-captions`).
    pub embed_captions: bool,
    /// `n` of `--shard i/n`.
    pub shard_count: usize,
    /// `tar` (a unit per shard) or `files` (groups of [`Record::files_per_unit`]).
    pub inputs: String,
    /// Files per unit (`--files-per-unit`), for image-file inputs.
    pub files_per_unit: Option<usize>,
}

impl Record {
    /// The record of the rows `embedder` makes for a job, `activation` as given.
    ///
    /// # Errors
    /// [`JobError::Options`] for an embedder not loaded from a checkpoint.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        embedder: &ImageEmbedder,
        activation: Option<&str>,
        dtype: Dtype,
        embed_captions: bool,
        shard: Shard,
        shards_input: bool,
        files_per_unit: usize,
    ) -> Result<Self, JobError> {
        let model = embedder.model_path().ok_or_else(|| {
            JobError::Options("the embedder was not loaded from a checkpoint".into())
        })?;
        Ok(Self {
            format_version: LAYOUT_VERSION,
            model: model.to_string_lossy().into_owned(),
            fingerprint: embedder.fingerprint().map(str::to_owned),
            activation: activation.map(str::to_owned),
            num_attention_heads: embedder
                .load_options()
                .num_attention_heads
                .and_then(|h| u32::try_from(h).ok()),
            kind: embedder.kind().name().to_owned(),
            normalized: embedder.normalizes(),
            dim: embedder.dim(),
            dtype,
            precision: embedder.load_options().precision.name().to_owned(),
            preprocessing: format!("{:?}", embedder.processor().config()),
            max_pixels: embedder.processor().max_pixels(),
            fast_decode: embedder.processor().fast_decode(),
            exif_transpose: embedder.processor().exif_transpose(),
            embed_captions,
            shard_count: shard.count,
            inputs: if shards_input { "tar" } else { "files" }.to_owned(),
            files_per_unit: (!shards_input).then_some(files_per_unit),
        })
    }

    /// `field: output vs this run` for every field where `self` (read from the output)
    /// and `now` differ; `model` only counts when a fingerprint is missing.
    pub fn differences(&self, now: &Self) -> Vec<String> {
        let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
            (serde_json::to_value(self), serde_json::to_value(now))
        else {
            return vec!["the records cannot be compared".into()];
        };
        let fingerprinted = self.fingerprint.is_some() && now.fingerprint.is_some();
        old.iter()
            .filter(|(k, _)| !(fingerprinted && k.as_str() == "model"))
            .filter_map(|(k, a)| {
                let b = new.get(k).unwrap_or(&Value::Null);
                (a != b).then(|| format!("{k}: {a} (output) vs {b} (this run)"))
            })
            .collect()
    }
}

/// Written last, as `partitions/partition_{i}.done.json`: the partition is finished and its
/// files are whole. It holds no time or process id, so a rerun writes the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneMarker {
    /// What defines the rows.
    pub record: Record,
    /// `i` of `--shard i/n`.
    pub partition: usize,
    /// Rows in `img_emb_{i}.npy` and `metadata_{i}.parquet` (0: neither file exists).
    pub rows: u64,
    /// Row width.
    pub width: usize,
    /// The files' dtype.
    pub dtype: Dtype,
    /// Samples of the partition that have no row (bad image, damaged shard, …).
    pub skipped: u64,
    /// The unit numbers the partition took.
    pub units: Vec<usize>,
    /// [`inputs_hash`] of those units.
    pub inputs_hash: String,
}

/// Reads a JSON file this crate wrote.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, JobError> {
    let text = std::fs::read(path).map_err(crate::partition::io(path, "cannot read"))?;
    serde_json::from_slice(&text).map_err(|e| JobError::Output {
        path: path.to_owned(),
        problem: format!("not a clip-vision record: {e}"),
    })
}

/// A stable hash of a partition's inputs: FNV-1a 64 over each unit's number and, for each
/// file or shard in it, its path bytes and length (`-1` when it cannot be read), as
/// `fnv1a64:` and 16 hex digits. A renamed, added, removed or resized input changes it.
pub fn inputs_hash(units: &[(usize, Unit)]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut write = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let file = |path: &Path, write: &mut dyn FnMut(&[u8])| {
        let bytes = path.as_os_str().as_encoded_bytes();
        write(&(bytes.len() as u64).to_le_bytes());
        write(bytes);
        let len = std::fs::metadata(path).map_or(-1i64, |m| m.len() as i64);
        write(&len.to_le_bytes());
    };
    for (number, unit) in units {
        write(&(*number as u64).to_le_bytes());
        match unit {
            Unit::Shard(p) => file(p, &mut write),
            Unit::Files(files) => {
                for p in files {
                    file(p, &mut write);
                }
            }
        }
    }
    format!("fnv1a64:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            format_version: LAYOUT_VERSION,
            model: "/m".into(),
            fingerprint: Some("fnv1a64:1".into()),
            activation: None,
            num_attention_heads: None,
            kind: "image-embeds".into(),
            normalized: true,
            dim: 32,
            dtype: Dtype::F16,
            precision: "f32".into(),
            preprocessing: "p".into(),
            max_pixels: 1,
            fast_decode: false,
            exif_transpose: false,
            embed_captions: false,
            shard_count: 3,
            inputs: "tar".into(),
            files_per_unit: None,
        }
    }

    #[test]
    fn differences_name_each_field_and_ignore_a_fingerprinted_model_path() {
        let a = record();
        let mut b = a.clone();
        b.model = "/elsewhere".into();
        assert!(a.differences(&b).is_empty());
        b.shard_count = 4;
        b.dtype = Dtype::F32;
        let d = a.differences(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d
            .iter()
            .any(|s| s.starts_with("shard_count: 3 (output) vs 4")));
        assert!(d.iter().any(|s| s.starts_with("dtype:")));
        b.fingerprint = None;
        assert!(a.differences(&b).iter().any(|s| s.starts_with("model:")));
        let mut c = a.clone();
        c.fast_decode = true;
        c.exif_transpose = true;
        let mut d = a.differences(&c);
        d.sort();
        assert_eq!(
            d,
            [
                "exif_transpose: false (output) vs true (this run)",
                "fast_decode: false (output) vs true (this run)"
            ]
        );
    }

    #[test]
    fn a_record_from_before_the_decoding_options_reads_as_exact_decoding() {
        let mut json = serde_json::to_value(record()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.remove("fast_decode");
        obj.remove("exif_transpose");
        let old: Record = serde_json::from_value(json).unwrap();
        assert_eq!(old, record());
    }

    #[test]
    fn the_inputs_hash_changes_with_names_numbers_and_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.tar");
        std::fs::write(&a, b"12").unwrap();
        let h = |u: &[(usize, Unit)]| inputs_hash(u);
        let one = h(&[(0, Unit::Shard(a.clone()))]);
        assert_eq!(one, h(&[(0, Unit::Shard(a.clone()))]));
        assert_ne!(one, h(&[(1, Unit::Shard(a.clone()))]));
        assert_ne!(one, h(&[(0, Unit::Shard(tmp.path().join("b.tar")))]));
        std::fs::write(&a, b"123").unwrap();
        assert_ne!(one, h(&[(0, Unit::Shard(a))]));
    }
}
