//! `.npy` files of embeddings: clip-retrieval's `img_emb/img_emb_{i}.npy`, a `[rows, dim]`
//! float16 or float32 matrix in C order, as `numpy.save` writes it and embedding-reader,
//! autofaiss and clip-back read it.
//!
//! [`write_npy`] writes format 1.0 with the header byte for byte as numpy (>= 1.24) writes
//! it, growth-axis spaces included; float16 values are rounded as `astype(np.float16)`
//! rounds them (to nearest, ties to even). [`read_npy`] reads formats 1.0, 2.0 and 3.0 of
//! 2-D little-endian `<f2` / `<f4` arrays and refuses anything else with a
//! [`JobError::Npy`] naming the file and the problem ([`NpyProblem`]).

use crate::JobError;
use half::f16;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;
use thiserror::Error;

/// The magic string that opens every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy's `ARRAY_ALIGN`: magic, version, header length and header fill a multiple of it.
const ARRAY_ALIGN: usize = 64;
/// numpy's `GROWTH_AXIS_MAX_DIGITS`: the header leaves room for this many digits of the
/// first axis, so the row count can be rewritten in place.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// The longest header read (numpy's `_MAX_HEADER_SIZE` for untrusted files).
pub const MAX_HEADER_LEN: usize = 10_000;
/// Values converted per write / read call (a bounded buffer, not the whole matrix).
const CHUNK_VALUES: usize = 1 << 16;

/// The element type of an embedding matrix on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dtype {
    /// IEEE half precision, numpy `float16` (`<f2`): clip-retrieval's default.
    #[serde(rename = "float16")]
    F16,
    /// IEEE single precision, numpy `float32` (`<f4`).
    #[serde(rename = "float32")]
    F32,
}

impl Dtype {
    /// numpy's name for it: `"float16"` or `"float32"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "float16",
            Self::F32 => "float32",
        }
    }

    /// Bytes per element: 2 or 4.
    pub fn bytes(self) -> usize {
        match self {
            Self::F16 => 2,
            Self::F32 => 4,
        }
    }

    /// The `.npy` header's `descr`: `'<f2'` or `'<f4'`.
    fn descr(self) -> &'static str {
        match self {
            Self::F16 => "<f2",
            Self::F32 => "<f4",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype name that is none of `f16`, `float16`, `f32`, `float32`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown dtype {0:?}: expected f16, float16, f32 or float32")]
pub struct ParseDtypeError(pub String);

impl FromStr for Dtype {
    type Err = ParseDtypeError;

    /// `f16` / `float16` or `f32` / `float32` (exactly, lower case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f16" | "float16" => Ok(Self::F16),
            "f32" | "float32" => Ok(Self::F32),
            _ => Err(ParseDtypeError(s.to_string())),
        }
    }
}

/// A `[rows, dim]` matrix read from a `.npy` file, widened to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyMatrix {
    /// Number of rows (the first axis).
    pub rows: usize,
    /// Values per row (the second axis).
    pub dim: usize,
    /// The element type on disk.
    pub dtype: Dtype,
    /// `[rows, dim]` values in row-major order (`rows * dim` of them).
    pub data: Vec<f32>,
}

/// What is wrong with a `.npy` file (or with rows handed to [`write_npy`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NpyProblem {
    /// Fewer bytes than the part being read needs.
    #[error("truncated: the file is {len} bytes, the {part} needs {needed}")]
    Truncated {
        /// What was being read (`"magic and version"`, `"header"`).
        part: &'static str,
        /// Bytes the file would need up to the end of that part.
        needed: u64,
        /// Bytes it has.
        len: u64,
    },
    /// The first six bytes are not `\x93NUMPY`.
    #[error("not a .npy file: starts with {found:02x?}, not \\x93NUMPY")]
    NotNpy {
        /// The first six bytes.
        found: [u8; 6],
    },
    /// A format version other than 1.0, 2.0 and 3.0.
    #[error("unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)")]
    Version {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// A header longer than [`MAX_HEADER_LEN`].
    #[error("header of {len} bytes, over the limit of {max}")]
    HeaderTooLong {
        /// The length the file claims.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A header that is not the Python dict literal numpy writes.
    #[error("bad header {header:?}: {problem}")]
    Header {
        /// The header text (cut to 200 characters).
        header: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A dtype other than little-endian float16 / float32.
    #[error("dtype {descr:?}: only '<f2' (float16) and '<f4' (float32) embeddings are read")]
    Dtype {
        /// The header's `descr`.
        descr: String,
    },
    /// `fortran_order: True` (column-major data).
    #[error("Fortran (column-major) order: only C-order matrices are read")]
    FortranOrder,
    /// A shape that is not 2-D.
    #[error("shape {shape:?} is {}-D, not a 2-D [rows, dim] matrix", shape.len())]
    NotTwoD {
        /// The header's shape.
        shape: Vec<u64>,
    },
    /// Data whose length does not match the shape.
    #[error(
        "shape ({rows}, {dim}) of {dtype} needs {expected} bytes of data, the file holds {found}"
    )]
    DataLength {
        /// Rows in the header.
        rows: u64,
        /// Dim in the header.
        dim: u64,
        /// The dtype.
        dtype: Dtype,
        /// `rows * dim * dtype.bytes()` (saturated).
        expected: u128,
        /// Bytes after the header.
        found: u64,
    },
    /// Rows handed to [`write_npy`] that do not fill `[rows, dim]`.
    #[error("{len} values cannot be [rows, {dim}] rows (dim must be > 0 and divide the length)")]
    Ragged {
        /// Values given.
        len: usize,
        /// The dim asked for.
        dim: usize,
    },
}

/// The header numpy writes for a C-order `[rows, dim]` array of `dtype`, format 1.0:
/// magic, version, length and the padded dict, a multiple of 64 bytes.
fn header_bytes(rows: usize, dim: usize, dtype: Dtype) -> Vec<u8> {
    // `_write_array_header`: the dict with sorted keys and `repr` values, then spare
    // spaces for the growth axis (the first one in C order).
    let rows_repr = rows.to_string();
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({rows_repr}, {dim}), }}",
        dtype.descr()
    );
    dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(rows_repr.len())));
    // `_wrap_header`: pad with spaces and a final '\n' so that magic (6) + version (2) +
    // length (2) + header is a multiple of ARRAY_ALIGN. When it already is, numpy still
    // adds a full ARRAY_ALIGN of padding (padlen is never 0); so do we.
    let hlen = dict.len() + 1;
    let padlen = padding(MAGIC.len() + 2 + 2 + hlen);
    let total = hlen + padlen;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A 2-D shape's dict is ~100 bytes: always within format 1.0's u16 length.
    out.extend_from_slice(&(total as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + padlen, b' ');
    out.push(b'\n');
    out
}

/// `_wrap_header`'s padding for `unpadded` bytes (magic to the header's final '\n'):
/// 1 to 64 spaces, a full 64 when `unpadded` is already aligned.
fn padding(unpadded: usize) -> usize {
    ARRAY_ALIGN - unpadded % ARRAY_ALIGN
}

/// Writes `rows`, a `[rows.len() / dim, dim]` matrix in row-major order, to `w` as a
/// `.npy` file of `dtype` (format 1.0, C order, numpy's header byte for byte).
///
/// float16 values are `f16::from_f32` of the inputs: round to nearest, ties to even,
/// `±65520` and beyond to `±inf`, as numpy's `astype(np.float16)`.
///
/// Errors: an [`io::ErrorKind::InvalidInput`] error carrying [`NpyProblem::Ragged`] when
/// `dim` is 0 or does not divide `rows.len()` (nothing written); otherwise what `w` fails
/// with. The caller names the file (`JobError::Io`).
pub fn write_npy(w: &mut impl Write, rows: &[f32], dim: usize, dtype: Dtype) -> io::Result<()> {
    if dim == 0 || !rows.len().is_multiple_of(dim) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NpyProblem::Ragged {
                len: rows.len(),
                dim,
            },
        ));
    }
    w.write_all(&header_bytes(rows.len() / dim, dim, dtype))?;
    let mut buf = Vec::with_capacity(CHUNK_VALUES.min(rows.len()) * dtype.bytes());
    for chunk in rows.chunks(CHUNK_VALUES) {
        buf.clear();
        match dtype {
            Dtype::F16 => {
                for &v in chunk {
                    buf.extend_from_slice(&f16::from_f32(v).to_le_bytes());
                }
            }
            Dtype::F32 => {
                for &v in chunk {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Reads a `.npy` file holding a 2-D C-order `<f2` or `<f4` matrix (format 1.0, 2.0 or
/// 3.0) into a `[rows, dim]` [`NpyMatrix`] of `f32`.
///
/// Errors: [`JobError::Io`] when the file cannot be opened or read, [`JobError::Npy`]
/// when it is not such a matrix (truncated, other dtype or rank, Fortran order, data
/// longer or shorter than the shape). The data length is checked against the file's size
/// before anything is allocated for it.
pub fn read_npy(path: &Path) -> Result<NpyMatrix, JobError> {
    let io_err = |source| JobError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    read_from(&mut file, len).map_err(|failure| match failure {
        Failure::Problem(problem) => JobError::Npy {
            path: path.to_path_buf(),
            problem,
        },
        Failure::Io(source) => io_err(source),
    })
}

/// Why [`read_from`] failed: the bytes, or the reading.
#[derive(Debug)]
enum Failure {
    Problem(NpyProblem),
    Io(io::Error),
}

impl From<NpyProblem> for Failure {
    fn from(p: NpyProblem) -> Self {
        Self::Problem(p)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads a `.npy` matrix from `r`, which holds `len` bytes.
fn read_from(r: &mut impl Read, len: u64) -> Result<NpyMatrix, Failure> {
    let truncated = |part, needed| NpyProblem::Truncated { part, needed, len };
    if len < 8 {
        return Err(truncated("magic and version", 8).into());
    }
    let mut start = [0u8; 8];
    r.read_exact(&mut start)?;
    let mut found = [0u8; 6];
    found.copy_from_slice(&start[..6]);
    if &found != MAGIC {
        return Err(NpyProblem::NotNpy { found }.into());
    }
    let (major, minor) = (start[6], start[7]);
    let (len_bytes, utf8) = match (major, minor) {
        (1, 0) => (2usize, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(NpyProblem::Version { major, minor }.into()),
    };
    let prefix = 8 + len_bytes as u64;
    if len < prefix {
        return Err(truncated("header length", prefix).into());
    }
    let mut hlen_buf = [0u8; 4];
    r.read_exact(&mut hlen_buf[..len_bytes])?;
    let hlen = u64::from(u32::from_le_bytes(hlen_buf));
    if hlen > MAX_HEADER_LEN as u64 {
        return Err(NpyProblem::HeaderTooLong {
            len: hlen,
            max: MAX_HEADER_LEN,
        }
        .into());
    }
    let data_start = prefix + hlen;
    if len < data_start {
        return Err(truncated("header", data_start).into());
    }
    let mut raw = vec![0u8; hlen as usize];
    r.read_exact(&mut raw)?;
    let text = if utf8 {
        String::from_utf8(raw).map_err(|e| NpyProblem::Header {
            header: cut(&String::from_utf8_lossy(e.as_bytes())),
            problem: "not UTF-8 (format 3.0)".into(),
        })?
    } else {
        // Formats 1.0 and 2.0 are latin-1: each byte is the code point.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&text).map_err(|problem| NpyProblem::Header {
        header: cut(&text),
        problem,
    })?;
    let dtype = match header.descr.as_str() {
        "<f2" => Dtype::F16,
        "<f4" => Dtype::F32,
        _ => {
            return Err(NpyProblem::Dtype {
                descr: header.descr,
            }
            .into())
        }
    };
    if header.fortran_order {
        return Err(NpyProblem::FortranOrder.into());
    }
    let &[rows, dim] = header.shape.as_slice() else {
        return Err(NpyProblem::NotTwoD {
            shape: header.shape,
        }
        .into());
    };
    let found = len - data_start;
    let expected = u128::from(rows)
        .saturating_mul(u128::from(dim))
        .saturating_mul(dtype.bytes() as u128);
    if expected != u128::from(found) {
        return Err(NpyProblem::DataLength {
            rows,
            dim,
            dtype,
            expected,
            found,
        }
        .into());
    }
    // `found` bytes are on disk, so `rows * dim` fits memory's address space.
    let (Ok(rows_usize), Ok(dim_usize), Ok(count)) = (
        usize::try_from(rows),
        usize::try_from(dim),
        usize::try_from(found / dtype.bytes() as u64),
    ) else {
        return Err(NpyProblem::DataLength {
            rows,
            dim,
            dtype,
            expected,
            found,
        }
        .into());
    };
    let mut data = Vec::with_capacity(count);
    let mut buf = vec![0u8; CHUNK_VALUES.min(count) * dtype.bytes()];
    while data.len() < count {
        let n = CHUNK_VALUES.min(count - data.len());
        let bytes = &mut buf[..n * dtype.bytes()];
        r.read_exact(bytes)?;
        match dtype {
            Dtype::F16 => data.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            Dtype::F32 => data.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
    }
    Ok(NpyMatrix {
        rows: rows_usize,
        dim: dim_usize,
        dtype,
        data,
    })
}

/// The header text cut to 200 characters for an error message.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The three keys of a `.npy` header.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// One value of the header dict.
#[derive(Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the subset of Python literals a `.npy` header of a simple dtype is: a dict of
/// string keys `descr` (a string), `fortran_order` (`True` / `False`) and `shape` (a
/// tuple of non-negative ints, Python 2's `3L` accepted), then only whitespace.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    p.expect(b'{')?;
    let mut entries: HashMap<String, Literal> = HashMap::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.literal()? {
            Literal::Str(k) => k,
            other => return Err(format!("key {other:?} is not a string")),
        };
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let value = p.literal()?;
        if entries.insert(key.clone(), value).is_some() {
            return Err(format!("key {key:?} twice"));
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("text after the dict at byte {}", p.i));
    }
    let mut keys: Vec<&String> = entries.keys().collect();
    keys.sort();
    if keys != ["descr", "fortran_order", "shape"] {
        return Err(format!(
            "keys {keys:?}, expected 'descr', 'fortran_order' and 'shape'"
        ));
    }
    let descr = match entries.remove("descr") {
        Some(Literal::Str(s)) => s,
        other => return Err(format!("descr {other:?} is not a dtype string")),
    };
    let fortran_order = match entries.remove("fortran_order") {
        Some(Literal::Bool(b)) => b,
        other => return Err(format!("fortran_order {other:?} is not True or False")),
    };
    let shape = match entries.remove("shape") {
        Some(Literal::Tuple(t)) => t,
        other => return Err(format!("shape {other:?} is not a tuple of ints")),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

/// A cursor over header bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {}, found {}",
                char::from(c),
                self.i,
                self.peek()
                    .map_or("the end".to_string(), |b| format!("{:?}", char::from(b)))
            ))
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == q {
                        let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                        self.i += 1;
                        return Ok(Literal::Str(s));
                    }
                    if c == b'\\' {
                        return Err(format!("escape in a string at byte {}", self.i));
                    }
                    self.i += 1;
                }
                Err("unterminated string".into())
            }
            Some(b'(') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.eat(b')') {
                        break;
                    }
                    items.push(self.int()?);
                    self.skip_ws();
                    if !self.eat(b',') {
                        self.skip_ws();
                        self.expect(b')')?;
                        // `(3)` is an int in Python, not a tuple.
                        if items.len() == 1 {
                            return Err("shape `(n)` is an int, not a tuple".into());
                        }
                        break;
                    }
                }
                Ok(Literal::Tuple(items))
            }
            _ if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Literal::Bool(true))
            }
            _ if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Literal::Bool(false))
            }
            other => Err(format!(
                "unsupported value at byte {} (starts with {})",
                self.i,
                other.map_or("the end".to_string(), |b| format!("{:?}", char::from(b)))
            )),
        }
    }

    fn int(&mut self) -> Result<u64, String> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        let n = digits
            .parse::<u64>()
            .map_err(|e| format!("shape entry {digits:?} at byte {start}: {e}"))?;
        // Python 2 wrote longs as `3L`.
        let _ = self.eat(b'L');
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn to_npy(rows: &[f32], dim: usize, dtype: Dtype) -> Vec<u8> {
        let mut out = Vec::new();
        write_npy(&mut out, rows, dim, dtype).unwrap();
        out
    }

    fn parse(bytes: &[u8]) -> Result<NpyMatrix, NpyProblem> {
        match read_from(&mut Cursor::new(bytes), bytes.len() as u64) {
            Ok(m) => Ok(m),
            Err(Failure::Problem(p)) => Err(p),
            Err(Failure::Io(e)) => panic!("io error from a Cursor: {e}"),
        }
    }

    /// A format-1.0 file with the given header text (padded like numpy) and data.
    fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// `(i as f32) * 0.1 - 0.5` for `i` in `0..n`, as numpy computes
    /// `np.arange(n, dtype=np.float32) * 0.1 - 0.5` (float32 throughout).
    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.1 - 0.5).collect()
    }

    /// Made with numpy 2.4.6:
    /// `a = (np.arange(12, dtype=np.float32).reshape(3, 4) * 0.1 - 0.5).astype(np.float16)`,
    /// `np.save(b := io.BytesIO(), a)`, then `b.getvalue()` printed (header as `repr`,
    /// data as hex).
    #[test]
    fn f16_3x4_is_byte_identical_to_numpy() {
        let mut expected = b"\x93NUMPY\x01\x00v\x00{'descr': '<f2', 'fortran_order': False, \
            'shape': (3, 4), }"
            .to_vec();
        expected.extend_from_slice(&[b' '; 58]);
        expected.push(b'\n');
        assert_eq!(expected.len(), 128);
        let data_hex = "00b866b6cdb466b266ae0000662e6632cd3466360038cd38";
        expected.extend(
            (0..data_hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&data_hex[i..i + 2], 16).unwrap()),
        );
        let got = to_npy(&ramp(12), 4, Dtype::F16);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 152);
    }

    /// Made with numpy 2.4.6: `np.save(b, np.zeros((0, 512), dtype=np.float32))`.
    #[test]
    fn empty_f32_0x512_header_is_numpy_s() {
        let mut expected = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, \
            'shape': (0, 512), }"
            .to_vec();
        expected.extend_from_slice(&[b' '; 56]);
        expected.push(b'\n');
        let got = to_npy(&[], 512, Dtype::F32);
        assert_eq!(got, expected);
        let m = parse(&got).unwrap();
        assert_eq!(
            (m.rows, m.dim, m.dtype, m.data.len()),
            (0, 512, Dtype::F32, 0)
        );
    }

    /// The growth-axis spaces absorb the row count's digits, so a 2-D header is 128 bytes
    /// for every shape a `usize` can hold: 10 + (57 + rows' digits + dim's digits) + (21 -
    /// rows' digits) + 1 = 89 + dim's digits, padded to 128.
    #[test]
    fn header_is_128_bytes_for_every_2d_shape() {
        for (rows, dim) in [(0, 1), (1, 1), (123_456_789, 768), (usize::MAX, usize::MAX)] {
            let h = header_bytes(rows, dim, Dtype::F16);
            assert_eq!(h.len(), 128, "({rows}, {dim})");
            assert_eq!(u16::from_le_bytes([h[8], h[9]]), 118);
            assert_eq!(h[127], b'\n');
            let dict_end = h.iter().rposition(|&b| b == b'}').unwrap();
            let spaces = 127 - (dict_end + 1);
            let growth = GROWTH_AXIS_MAX_DIGITS - rows.to_string().len();
            assert_eq!(spaces - growth, padding(dict_end + 1 + growth + 1));
        }
        // numpy's padlen is never 0: an aligned header still gets 64 spaces.
        assert_eq!((padding(127), padding(128), padding(129)), (1, 64, 63));
    }

    /// Against numpy 2.4.6's `np.array(v, dtype=np.float32).astype(np.float16)`, printed as
    /// uint16 bits.
    #[test]
    fn f16_rounding_matches_numpy() {
        let cases: [(f32, u16); 13] = [
            (1.0 + 2f32.powi(-11), 0x3c00), // tie between 1 and 1+2^-10: even (1)
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02), // tie: even (1+2^-9)
            (65504.0, 0x7bff),
            (65519.996, 0x7bff),
            (65520.0, 0x7c00), // tie between 65504 and 65536: even, which is inf
            (-65520.0, 0xfc00),
            (2f32.powi(-24), 0x0001), // the smallest subnormal
            (2f32.powi(-25), 0x0000), // tie between 0 and 2^-24: even (0)
            (3.0 * 2f32.powi(-26), 0x0001),
            (6.1e-5, 0x03ff), // largest subnormal
            (0.1, 0x2e66),
            (-0.0, 0x8000),
            (1e-8, 0x0000),
        ];
        for (v, bits) in cases {
            let out = to_npy(&[v], 1, Dtype::F16);
            let got = u16::from_le_bytes([out[128], out[129]]);
            assert_eq!(got, bits, "{v:e}: {got:#06x} != numpy's {bits:#06x}");
        }
        let out = to_npy(&[f32::NAN], 1, Dtype::F16);
        assert!(f16::from_le_bytes([out[128], out[129]]).is_nan());
    }

    #[test]
    fn roundtrip_both_dtypes() {
        let rows = ramp(6 * 5);
        let f32_file = to_npy(&rows, 5, Dtype::F32);
        let m = parse(&f32_file).unwrap();
        assert_eq!((m.rows, m.dim, m.dtype), (6, 5, Dtype::F32));
        assert_eq!(m.data, rows);

        let f16_file = to_npy(&rows, 5, Dtype::F16);
        assert_eq!(f16_file.len(), 128 + 30 * 2);
        let m = parse(&f16_file).unwrap();
        assert_eq!((m.rows, m.dim, m.dtype), (6, 5, Dtype::F16));
        let expected: Vec<f32> = rows.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        assert_eq!(m.data, expected);
        // f16 keeps 11 significant bits.
        for (a, b) in m.data.iter().zip(&rows) {
            assert!(
                (a - b).abs() <= b.abs() * 2f32.powi(-11) + 1e-7,
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn read_npy_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img_emb_0.npy");
        let rows = ramp(2 * 3);
        std::fs::write(&path, to_npy(&rows, 3, Dtype::F32)).unwrap();
        let m = read_npy(&path).unwrap();
        assert_eq!((m.rows, m.dim, m.data), (2, 3, rows));

        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let err = read_npy(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("img_emb_0.npy"), "{msg}");
        assert!(
            msg.contains("needs 24 bytes of data, the file holds 23"),
            "{msg}"
        );

        let missing = dir.path().join("nope.npy");
        let err = read_npy(&missing).unwrap_err();
        assert!(matches!(err, JobError::Io { ref path, .. } if path == &missing));
    }

    #[test]
    fn reads_versions_2_and_3_and_any_key_order() {
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for version in [2u8, 3] {
            let h = "{'shape': (1, 2), 'fortran_order': False, 'descr': '<f4'}\n";
            let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
            bytes.extend_from_slice(&(h.len() as u32).to_le_bytes());
            bytes.extend_from_slice(h.as_bytes());
            bytes.extend_from_slice(&data);
            let m = parse(&bytes).unwrap();
            assert_eq!((m.rows, m.dim, m.data), (1, 2, vec![1.5, -2.0]));
        }
        // Python 2's longs and no trailing comma.
        let m = parse(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L)}",
            &data,
        ))
        .unwrap();
        assert_eq!((m.rows, m.dim), (1, 2));
    }

    #[test]
    fn bad_files_get_the_problem() {
        let f4 =
            |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let eight = [0u8; 8];
        let cases: Vec<(Vec<u8>, NpyProblem)> = vec![
            (
                b"\x93NUM".to_vec(),
                NpyProblem::Truncated {
                    part: "magic and version",
                    needed: 8,
                    len: 4,
                },
            ),
            (
                b"PK\x03\x04\x14\x00\x00\x00".to_vec(),
                NpyProblem::NotNpy {
                    found: *b"PK\x03\x04\x14\x00",
                },
            ),
            (
                b"\x93NUMPY\x04\x00\x00\x00".to_vec(),
                NpyProblem::Version { major: 4, minor: 0 },
            ),
            (
                b"\x93NUMPY\x01\x00\x40\x00{'descr'".to_vec(),
                NpyProblem::Truncated {
                    part: "header",
                    needed: 74,
                    len: 18,
                },
            ),
            (
                b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec(),
                NpyProblem::HeaderTooLong {
                    len: u64::from(u32::MAX),
                    max: MAX_HEADER_LEN,
                },
            ),
            (
                with_header(
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
                    &eight,
                ),
                NpyProblem::Dtype {
                    descr: "<f8".into(),
                },
            ),
            (
                with_header(
                    "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 1), }",
                    &eight,
                ),
                NpyProblem::Dtype {
                    descr: ">f4".into(),
                },
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }",
                    &eight,
                ),
                NpyProblem::FortranOrder,
            ),
            (
                with_header(&f4("(2,)"), &eight),
                NpyProblem::NotTwoD { shape: vec![2] },
            ),
            (
                with_header(&f4("(1, 1, 2)"), &eight),
                NpyProblem::NotTwoD {
                    shape: vec![1, 1, 2],
                },
            ),
            (
                with_header(&f4("()"), &eight),
                NpyProblem::NotTwoD { shape: vec![] },
            ),
            (
                with_header(&f4("(3, 1)"), &eight),
                NpyProblem::DataLength {
                    rows: 3,
                    dim: 1,
                    dtype: Dtype::F32,
                    expected: 12,
                    found: 8,
                },
            ),
            (
                with_header(&f4("(18446744073709551615, 18446744073709551615)"), &eight),
                NpyProblem::DataLength {
                    rows: u64::MAX,
                    dim: u64::MAX,
                    dtype: Dtype::F32,
                    expected: u128::MAX,
                    found: 8,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse(&bytes).unwrap_err(), expected);
        }
        for (dict, problem) in [
            ("{'descr': '<f4', 'fortran_order': False}", "keys"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}",
                "unsupported value",
            ),
            ("{'descr': '<f4', 'descr': '<f4', 'shape': (1, 2)}", "twice"),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 2)}",
                "unsupported value",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1, 2)}",
                "unsupported value",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1)}",
                "is an int",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2)}",
                "shape entry",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 99999999999999999999)}",
                "shape entry",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)} x",
                "text after",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)",
                "expected '}'",
            ),
            ("{'descr: '<f4'}", "expected ':'"),
            (
                "{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (1, 2)}",
                "escape",
            ),
        ] {
            match parse(&with_header(dict, &eight)) {
                Err(NpyProblem::Header { problem: p, .. }) => {
                    assert!(p.contains(problem), "{dict}: {p}")
                }
                other => panic!("{dict}: {other:?}"),
            }
        }
    }

    #[test]
    fn ragged_rows_are_refused() {
        let mut out = Vec::new();
        let err = write_npy(&mut out, &[1.0; 10], 4, Dtype::F16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.into_inner().unwrap().downcast_ref::<NpyProblem>(),
            Some(&NpyProblem::Ragged { len: 10, dim: 4 })
        );
        assert!(write_npy(&mut out, &[], 0, Dtype::F32).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn dtype_names() {
        for (s, d) in [
            ("f16", Dtype::F16),
            ("float16", Dtype::F16),
            ("f32", Dtype::F32),
            ("float32", Dtype::F32),
        ] {
            assert_eq!(s.parse::<Dtype>().unwrap(), d);
        }
        assert_eq!(
            "fp16".parse::<Dtype>().unwrap_err(),
            ParseDtypeError("fp16".into())
        );
        assert_eq!(
            (Dtype::F16.to_string(), Dtype::F16.bytes()),
            ("float16".to_string(), 2)
        );
        assert_eq!((Dtype::F32.name(), Dtype::F32.bytes()), ("float32", 4));
        assert_eq!(serde_json::to_string(&Dtype::F16).unwrap(), "\"float16\"");
        assert_eq!(
            serde_json::from_str::<Dtype>("\"float32\"").unwrap(),
            Dtype::F32
        );
    }

    proptest! {
        /// Any bytes, or a valid file with a few bytes changed or cut: an answer, never a
        /// panic, and a matrix only when the data fits the shape.
        #[test]
        fn hostile_input_never_panics(
            junk in proptest::collection::vec(any::<u8>(), 0..300),
            edits in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
            cut_at in 0usize..200,
        ) {
            let _ = parse(&junk);
            let mut prefixed = b"\x93NUMPY\x01\x00".to_vec();
            prefixed.extend_from_slice(&junk);
            let _ = parse(&prefixed);
            let mut file = to_npy(&ramp(8), 2, Dtype::F16);
            for (at, b) in edits {
                let at = at % file.len();
                file[at] = b;
            }
            if let Ok(m) = parse(&file) {
                prop_assert_eq!(m.data.len(), m.rows * m.dim);
            }
            file.truncate(cut_at.min(file.len()));
            if let Ok(m) = parse(&file) {
                prop_assert_eq!(m.data.len(), m.rows * m.dim);
            }
        }
    }
}
