//! `ClipTokenizer`: CLIP's byte-level BPE, as transformers' fast `CLIPTokenizer` runs it.
//!
//! The pipeline is the `tokenizers` crate's (the code transformers itself runs), loaded from
//! whichever of the three files a checkpoint ships:
//!
//! ```text
//! tokenizer.json                     HF repos; the pipeline exactly as the file says
//! vocab.json + merges.txt            older HF repos; CLIP's pipeline built around them
//! bpe_simple_vocab_16e6.txt.gz       OpenAI / open_clip; the vocabulary built from the merges
//!                                    as they build it, then CLIP's pipeline
//! ```
//!
//! CLIP's pipeline: NFC, every run of whitespace → one space, lowercase; split on
//! `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`;
//! bytes → GPT-2's printable characters; BPE with `</w>` closing each word. `encode` then puts
//! `<|startoftext|>` before and `<|endoftext|>` after, truncating the text's tokens so that the
//! whole fits the context length (77) with the end token kept.
//!
//! [`TextCleaning::OpenClip`] instead reproduces open_clip's `SimpleTokenizer`: its text
//! cleaning ([`crate::clean`]: ftfy's fixers for text that is not mojibake, HTML unescaped
//! twice, whitespace collapsed, lowercased), its split pattern and special tokens
//! (`<start_of_text>`, `<end_of_text>`), then the same BPE.

use crate::error::{TextError, TextResult};
use clip_checkpoint::CheckpointError;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// CLIP's context length: positions of the text tower, special tokens included.
pub const CONTEXT_LENGTH: usize = 77;
/// Texts longer than this many bytes are refused rather than tokenized (1 MiB: far beyond
/// anything that fits 77 tokens, small enough that tokenizing it takes milliseconds).
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// The start token of transformers' vocabulary.
pub const START_OF_TEXT: &str = "<|startoftext|>";
/// The end token of transformers' vocabulary (also its padding token).
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Merges OpenAI's vocabulary takes from `bpe_simple_vocab_16e6.txt.gz` (49 408 ids =
/// 2 × 256 bytes + merges + 2 special tokens).
const OPENAI_MERGES: usize = 49152 - 256 - 2;
/// The largest tokenizer file read (a real CLIP `tokenizer.json` is 3.6 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// CLIP's split pattern (transformers' `CLIPTokenizer`).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// open_clip's split pattern: its special tokens are spelled differently.
const OPEN_CLIP_PATTERN: &str =
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// open_clip's special tokens, as they appear in its (cleaned, lowercased) text.
const OPEN_CLIP_SPECIALS: [&str; 2] = ["<start_of_text>", "<end_of_text>"];

/// How a text is normalised before the BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextCleaning {
    /// transformers' `CLIPTokenizer` (the fast one): NFC, whitespace, lowercase.
    #[default]
    Transformers,
    /// open_clip's `SimpleTokenizer`: ftfy's fixers, HTML unescaped twice, whitespace,
    /// lowercase; `<start_of_text>` / `<end_of_text>` as its special tokens.
    OpenClip,
}

/// A padded batch of token sequences, as the text tower takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// `[batch, seq_len]`, padded after each sequence's end token with the padding id.
    pub ids: Vec<u32>,
    /// `[batch, seq_len]`: `true` for a real token (transformers' `attention_mask == 1`).
    pub attention_mask: Vec<bool>,
    /// `[batch]`: the real tokens of each sequence.
    pub lengths: Vec<usize>,
    /// The padded length: the longest sequence of the batch.
    pub seq_len: usize,
}

impl TokenBatch {
    /// Pads `sequences` to the longest with `pad_id`.
    pub fn pad(sequences: &[Vec<u32>], pad_id: u32) -> Self {
        let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len() * seq_len);
        let mut attention_mask = Vec::with_capacity(sequences.len() * seq_len);
        for s in sequences {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad_id, seq_len - s.len()));
            attention_mask.extend((0..seq_len).map(|t| t < s.len()));
        }
        Self {
            ids,
            attention_mask,
            lengths: sequences.iter().map(Vec::len).collect(),
            seq_len,
        }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// `true` when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The real tokens of sequence `i`.
    ///
    /// # Panics
    /// When `i ≥ len()`.
    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.ids[i * self.seq_len..i * self.seq_len + self.lengths[i]]
    }
}

/// CLIP's tokenizer: text → token ids, identical to transformers' `CLIPTokenizer`.
///
/// ```no_run
/// use clip_text::ClipTokenizer;
/// let tok = ClipTokenizer::from_pretrained("openai/clip-vit-base-patch32")?;
/// assert_eq!(tok.encode("a photo of a cat")?, [49406, 320, 1125, 539, 320, 2368, 49407]);
/// # Ok::<(), clip_text::TextError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    /// The same BPE behind open_clip's split pattern, no normaliser, no added tokens.
    open_clip: Tokenizer,
    source: PathBuf,
    bos: u32,
    eos: u32,
    pad: u32,
    /// The largest id the vocabulary can produce.
    max_id: u32,
    context_length: usize,
    cleaning: TextCleaning,
}

impl ClipTokenizer {
    /// The tokenizer of a checkpoint directory (or a hub id in the local HF cache), from
    /// the first of `tokenizer.json`, `vocab.json` + `merges.txt`,
    /// `bpe_simple_vocab_16e6.txt.gz` that it holds. A path to one of those files loads it.
    ///
    /// # Errors
    /// [`TextError::MissingTokenizer`] naming the directory (and the missing half of a
    /// vocab/merges pair) when it holds none; [`TextError::Tokenizer`] for a file that does
    /// not parse; [`TextError::Checkpoint`] when the path does not exist.
    pub fn from_pretrained(path: impl AsRef<Path>) -> TextResult<Self> {
        let path = clip_checkpoint::resolve(path.as_ref())?;
        if path.is_file() {
            return Self::from_file(&path);
        }
        let dir = path;
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.is_file() && merges.is_file() {
            return Self::from_vocab_merges(&vocab, &merges);
        }
        let gz = dir.join("bpe_simple_vocab_16e6.txt.gz");
        if gz.is_file() {
            return Self::from_bpe_gz(&gz);
        }
        let missing = match (vocab.is_file(), merges.is_file()) {
            (true, false) => " (vocab.json is there, merges.txt is missing)".to_string(),
            (false, true) => " (merges.txt is there, vocab.json is missing)".to_string(),
            _ => String::new(),
        };
        Err(TextError::MissingTokenizer { dir, missing })
    }

    /// A tokenizer file by its name: `*.json` is a `tokenizer.json`, `*.gz` OpenAI's
    /// vocabulary; a `vocab.json` is read with the `merges.txt` beside it.
    fn from_file(path: &Path) -> TextResult<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "vocab.json" {
            return Self::from_vocab_merges(path, path.with_file_name("merges.txt"));
        }
        if name.ends_with(".gz") {
            return Self::from_bpe_gz(path);
        }
        Self::from_tokenizer_json(path)
    }

    /// A `tokenizer.json` (what HF repos ship), its pipeline exactly as the file says.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] for a file that is not a tokenizer (truncated, not JSON, an
    /// unknown model type); [`TextError::MissingSpecialToken`] for one without CLIP's
    /// special tokens.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> TextResult<Self> {
        let path = path.as_ref();
        let bytes = read_bounded(path)?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| TextError::tokenizer(path, e))?;
        Self::from_tokenizer(inner, path)
    }

    /// `vocab.json` (token → id) and `merges.txt` (one merge per line after an optional
    /// `#version` line), with CLIP's pipeline around them.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] naming the file that does not parse (and the line of a bad
    /// merge), or when the merges name tokens the vocabulary lacks.
    pub fn from_vocab_merges(
        vocab: impl AsRef<Path>,
        merges: impl AsRef<Path>,
    ) -> TextResult<Self> {
        let (vocab_path, merges_path) = (vocab.as_ref(), merges.as_ref());
        let vocab: HashMap<String, u32> = serde_json::from_slice(&read_bounded(vocab_path)?)
            .map_err(|e| TextError::tokenizer(vocab_path, format!("not a token → id map: {e}")))?;
        let text = String::from_utf8(read_bounded(merges_path)?)
            .map_err(|e| TextError::tokenizer(merges_path, e))?;
        let mut merges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if (n == 0 && line.starts_with("#version")) || line.trim().is_empty() {
                continue;
            }
            let (a, b) = line.split_once(' ').ok_or_else(|| {
                TextError::tokenizer(merges_path, format!("line {}: not a merge \"a b\"", n + 1))
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        let inner =
            clip_pipeline(vocab, merges).map_err(|e| TextError::tokenizer(merges_path, e))?;
        Self::from_tokenizer(inner, vocab_path)
    }

    /// OpenAI / open_clip's `bpe_simple_vocab_16e6.txt.gz`: its merges (lines 1 to 48 894),
    /// the vocabulary built from them as OpenAI builds it (the 256 byte characters, each with
    /// `</w>`, each merge joined, then the two special tokens: 49 408 ids), CLIP's pipeline.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] for a file that is not gzip, not UTF-8 or has a bad merge.
    pub fn from_bpe_gz(path: impl AsRef<Path>) -> TextResult<Self> {
        let path = path.as_ref();
        let compressed = read_bounded(path)?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| TextError::tokenizer(path, format!("not a gzip of UTF-8 text: {e}")))?;
        // OpenAI: merges = lines[1 : 49152 - 256 - 2 + 1].
        let mut merges = Vec::new();
        for (n, line) in text.split('\n').enumerate().skip(1).take(OPENAI_MERGES) {
            let (a, b) = line.split_once(' ').ok_or_else(|| {
                TextError::tokenizer(path, format!("line {}: not a merge \"a b\"", n + 1))
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        if merges.len() != OPENAI_MERGES {
            return Err(TextError::tokenizer(
                path,
                format!(
                    "holds {} merges; CLIP's vocabulary is built from {OPENAI_MERGES}",
                    merges.len()
                ),
            ));
        }
        let bytes = bytes_to_unicode();
        let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
        tokens.extend(bytes.iter().map(|c| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.extend([START_OF_TEXT.to_string(), END_OF_TEXT.to_string()]);
        let vocab = tokens.into_iter().zip(0u32..).collect::<HashMap<_, _>>();
        let inner = clip_pipeline(vocab, merges).map_err(|e| TextError::tokenizer(path, e))?;
        Self::from_tokenizer(inner, path)
    }

    /// Wraps a loaded `tokenizers` pipeline, finding CLIP's special tokens in it. The file's
    /// own padding and truncation settings are dropped (transformers overrides both on every
    /// call; `encode` truncates, `encode_batch` pads), and a probe text is encoded so that a
    /// pipeline which panics (say, a normaliser pattern matching the empty string) is refused
    /// here, naming the file.
    fn from_tokenizer(mut inner: Tokenizer, source: &Path) -> TextResult<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::tokenizer(source, e))?;
        let id = |token: &'static str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TextError::MissingSpecialToken {
                    path: source.to_path_buf(),
                    token,
                })
        };
        let (bos, eos) = (id(START_OF_TEXT)?, id(END_OF_TEXT)?);
        let mut open_clip = Tokenizer::new(inner.get_model().clone());
        let pre = clip_pre_tokenizer(OPEN_CLIP_PATTERN, false)
            .map_err(|e| TextError::tokenizer(source, e))?;
        open_clip.with_pre_tokenizer(Some(pre));
        let max_id = inner.get_vocab(true).values().copied().max().unwrap_or(0);
        let tok = Self {
            inner,
            open_clip,
            source: source.to_path_buf(),
            bos,
            eos,
            pad: eos,
            max_id,
            context_length: CONTEXT_LENGTH,
            cleaning: TextCleaning::Transformers,
        };
        for cleaning in [TextCleaning::Transformers, TextCleaning::OpenClip] {
            tok.clone()
                .with_cleaning(cleaning)
                .encode("a photo of a Cat, naïve — 猫 😀 &amp; <|endoftext|>")
                .map_err(|e| TextError::tokenizer(source, e))?;
        }
        Ok(tok)
    }

    /// This tokenizer with another context length (the text tower's positions).
    ///
    /// # Errors
    /// [`TextError::InvalidConfig`] when `context_length < 2` (no room for the special
    /// tokens).
    pub fn with_context_length(mut self, context_length: usize) -> TextResult<Self> {
        if context_length < 2 {
            return Err(TextError::config(
                &self.source,
                format!(
                    "context length {context_length} leaves no room for the start and end tokens"
                ),
            ));
        }
        self.context_length = context_length;
        Ok(self)
    }

    /// This tokenizer with another text cleaning.
    pub fn with_cleaning(mut self, cleaning: TextCleaning) -> Self {
        self.cleaning = cleaning;
        self
    }

    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Tokens in the vocabulary, added tokens included (the highest id + 1 for CLIP's).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id this tokenizer can produce: an embedding table needs more rows.
    pub fn max_id(&self) -> u32 {
        self.max_id
    }

    /// Ids of `<|startoftext|>` and `<|endoftext|>`.
    pub fn special_ids(&self) -> (u32, u32) {
        (self.bos, self.eos)
    }

    /// The padding id of [`ClipTokenizer::encode_batch`] (`<|endoftext|>`, as transformers).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// The context length sequences are truncated to.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The text cleaning in use.
    pub fn cleaning(&self) -> TextCleaning {
        self.cleaning
    }

    /// The underlying `tokenizers` pipeline.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// `<|startoftext|>` + the text's tokens + `<|endoftext|>`, the text's tokens truncated
    /// so the whole fits the context length; no padding. Equal to transformers'
    /// `CLIPTokenizer(text, truncation=True, max_length=77)["input_ids"]`.
    ///
    /// # Errors
    /// [`TextError::TextTooLong`] past [`MAX_TEXT_BYTES`]; [`TextError::Encode`] when the
    /// pipeline fails.
    pub fn encode(&self, text: &str) -> TextResult<Vec<u32>> {
        self.encode_at(text, 0)
    }

    /// [`ClipTokenizer::encode`] of each text, padded into one batch.
    ///
    /// # Errors
    /// As [`ClipTokenizer::encode`], naming the text's position.
    pub fn encode_batch(&self, texts: &[&str]) -> TextResult<TokenBatch> {
        let sequences = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.encode_at(t, i))
            .collect::<TextResult<Vec<_>>>()?;
        Ok(TokenBatch::pad(&sequences, self.pad))
    }

    fn encode_at(&self, text: &str, index: usize) -> TextResult<Vec<u32>> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(TextError::TextTooLong {
                index,
                bytes: text.len(),
                limit: MAX_TEXT_BYTES,
            });
        }
        // A panic inside the `tokenizers` pipeline costs this text, not the process.
        let run = |tok: &Tokenizer, text: &str| -> TextResult<Vec<u32>> {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tok.encode(text, false)))
            {
                Ok(Ok(encoding)) => Ok(encoding.get_ids().to_vec()),
                Ok(Err(e)) => Err(TextError::Encode {
                    index,
                    reason: e.to_string(),
                }),
                Err(_) => Err(TextError::Encode {
                    index,
                    reason: "the tokenizers pipeline panicked".into(),
                }),
            }
        };
        let body = match self.cleaning {
            TextCleaning::Transformers => run(&self.inner, text)?,
            TextCleaning::OpenClip => {
                let cleaned = crate::clean::open_clip_clean(text);
                let mut ids = Vec::new();
                for (piece, special) in split_specials(&cleaned) {
                    match special {
                        Some(0) => ids.push(self.bos),
                        Some(_) => ids.push(self.eos),
                        None => ids.extend(run(&self.open_clip, piece)?),
                    }
                }
                ids
            }
        };
        let keep = body.len().min(self.context_length - 2);
        let mut ids = Vec::with_capacity(keep + 2);
        ids.push(self.bos);
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.eos);
        Ok(ids)
    }
}

/// `text` cut at open_clip's special tokens where its split pattern matches them (a special
/// token that starts inside a punctuation run is not one, as in open_clip):
/// `(piece, None)` for text, `(token, Some(k))` for [`OPEN_CLIP_SPECIALS`]`[k]`.
fn split_specials(text: &str) -> Vec<(&str, Option<usize>)> {
    let mut out: Vec<(&str, Option<usize>)> = Vec::new();
    let mut start = 0; // the text piece not yet pushed begins here
    for m in open_clip_split().find_iter(text) {
        if let Some(k) = OPEN_CLIP_SPECIALS.iter().position(|s| *s == m.as_str()) {
            if m.start() > start {
                out.push((&text[start..m.start()], None));
            }
            out.push((m.as_str(), Some(k)));
            start = m.end();
        }
    }
    if start < text.len() {
        out.push((&text[start..], None));
    }
    out
}

/// open_clip's split pattern, compiled once.
fn open_clip_split() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        // A constant pattern that the tests compile.
        regex::Regex::new(OPEN_CLIP_PATTERN).unwrap_or_else(|e| unreachable!("{e}"))
    })
}

/// CLIP's split + byte-level pre-tokenizer.
fn clip_pre_tokenizer(pattern: &str, use_regex: bool) -> tokenizers::Result<PreTokenizerSequence> {
    let split = Split::new(
        SplitPattern::Regex(pattern.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )?;
    Ok(PreTokenizerSequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, use_regex).into(),
    ]))
}

/// transformers' `CLIPTokenizer` pipeline around a vocabulary and merges (what it writes to
/// `tokenizer.json`).
fn clip_pipeline(
    vocab: HashMap<String, u32>,
    merges: Vec<(String, String)>,
) -> tokenizers::Result<Tokenizer> {
    let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(END_OF_TEXT.into())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix("</w>".into())
        .fuse_unk(false)
        .byte_fallback(false)
        .build()?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_normalizer(Some(NormalizerSequence::new(vec![
        NFC.into(),
        Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )?
        .into(),
        Lowercase.into(),
    ])))?;
    tok.with_pre_tokenizer(Some(clip_pre_tokenizer(CLIP_PATTERN, true)?));
    let (bos, eos) = (id_of(&tok, START_OF_TEXT)?, id_of(&tok, END_OF_TEXT)?);
    tok.with_post_processor(Some(
        RobertaProcessing::new((END_OF_TEXT.into(), eos), (START_OF_TEXT.into(), bos))
            .trim_offsets(false)
            .add_prefix_space(false),
    ));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.add_special_tokens([
        AddedToken::from(START_OF_TEXT, true),
        AddedToken::from(END_OF_TEXT, true),
    ])?;
    Ok(tok)
}

fn id_of(tok: &Tokenizer, token: &str) -> tokenizers::Result<u32> {
    tok.token_to_id(token)
        .ok_or_else(|| format!("the vocabulary has no {token:?} token").into())
}

/// GPT-2's map of the 256 bytes to printable characters, in OpenAI's order (the printable
/// Latin-1 bytes as themselves, then the others from U+0100 on).
fn bytes_to_unicode() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut order: Vec<u32> = (0..256).filter(|&b| printable(b)).collect();
    let mut chars: Vec<u32> = order.clone();
    let mut n = 0;
    for b in 0..256 {
        if !printable(b) {
            order.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    chars.into_iter().filter_map(char::from_u32).collect()
}

/// A tokenizer file, at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> TextResult<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CheckpointError::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TextError::tokenizer(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_unicode_is_gpt2s() {
        let map = bytes_to_unicode();
        assert_eq!(map.len(), 256);
        assert_eq!(map[0], '!');
        assert_eq!(map[93], '~');
        assert_eq!(map[94], '¡');
        // The first non-printable byte, 0x00, maps to U+0100.
        assert_eq!(map[188], 'Ā');
        assert_eq!(map[255], 'Ń');
    }

    #[test]
    fn specials_are_cut_out_where_open_clips_pattern_finds_them() {
        assert_eq!(
            split_specials("a <end_of_text>b <start_of_text>"),
            [
                ("a ", None),
                ("<end_of_text>", Some(1)),
                ("b ", None),
                ("<start_of_text>", Some(0))
            ]
        );
        // Inside a punctuation run open_clip's pattern matches "!<" first: no special token.
        assert_eq!(split_specials("!<end_of_text>"), [("!<end_of_text>", None)]);
        assert_eq!(split_specials(""), []);
        open_clip_split();
    }

    #[test]
    fn both_patterns_compile() {
        for p in [CLIP_PATTERN, OPEN_CLIP_PATTERN] {
            clip_pre_tokenizer(p, true).unwrap();
        }
    }

    #[test]
    fn padding_keeps_each_sequence() {
        let b = TokenBatch::pad(&[vec![1, 2, 3], vec![1, 3]], 3);
        assert_eq!(b.ids, [1, 2, 3, 1, 3, 3]);
        assert_eq!(b.attention_mask, [true, true, true, true, true, false]);
        assert_eq!(b.sequence(1), [1, 3]);
        assert_eq!(b.seq_len, 3);
    }
}
