//! A `.npy` file of `f32` rows `[rows, dim]` that grows batch by batch.
//!
//! The header is written with a fixed size ([`HEADER_LEN`] bytes) so that the row count in
//! its `shape` can be rewritten in place after every append; the data follows it, row-major
//! little-endian `<f4`, as NumPy's format version 1.0 describes.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes before the data: magic, version, header length, padded dict (a multiple of 64).
pub const HEADER_LEN: u64 = 128;
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The fixed-size header for `[rows, dim]` float32 C-order data.
pub fn header(rows: u64, dim: u64) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut out = Vec::with_capacity(HEADER_LEN as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let dict_len = HEADER_LEN as usize - 10;
    out.extend_from_slice(&(dict_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(HEADER_LEN as usize - 1, b' ');
    out.push(b'\n');
    out
}

/// `(rows, dim)` from a header this module wrote (or any v1.0 `<f4` C-order 2-D header).
pub fn parse_header(file: &mut File, path: &Path) -> Result<(u64, u64, u64)> {
    let mut start = [0u8; 10];
    file.read_exact(&mut start)
        .with_context(|| format!("{}: too short for a .npy header", path.display()))?;
    if &start[..6] != MAGIC || start[6] != 1 {
        bail!("{}: not a version-1 .npy file", path.display());
    }
    let dict_len = u64::from(u16::from_le_bytes([start[8], start[9]]));
    if dict_len > 4096 {
        bail!(
            "{}: .npy header of {dict_len} bytes is too long",
            path.display()
        );
    }
    let mut dict = vec![0u8; dict_len as usize];
    file.read_exact(&mut dict)
        .with_context(|| format!("{}: truncated .npy header", path.display()))?;
    let dict = String::from_utf8_lossy(&dict);
    if !dict.contains("'descr': '<f4'") || !dict.contains("'fortran_order': False") {
        bail!(
            "{}: not a little-endian float32 C-order array",
            path.display()
        );
    }
    let shape = dict
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{}: .npy header has no shape", path.display()))?;
    let dims: Vec<u64> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: bad .npy shape ({shape})", path.display()))?;
    match dims.as_slice() {
        [rows, dim] => Ok((*rows, *dim, 10 + dict_len)),
        _ => bail!("{}: .npy array is not 2-D ({shape})", path.display()),
    }
}

/// Rewrites the row count of a file opened for writing.
pub fn write_header(file: &mut File, rows: u64, dim: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header(rows, dim))?;
    file.seek(SeekFrom::End(0))?;
    Ok(())
}

/// Little-endian bytes of rows of floats.
pub fn row_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Reads a whole `.npy` written by this module: `(dim, rows)`.
pub fn read(path: &Path) -> Result<(usize, Vec<Vec<f32>>)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let (rows, dim, data_start) = parse_header(&mut file, path)?;
    let len = file.metadata()?.len();
    let need = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(data_start))
        .with_context(|| format!("{}: shape overflows", path.display()))?;
    if len < need {
        bail!(
            "{}: holds {len} bytes, the header describes {need}",
            path.display()
        );
    }
    let mut data = vec![0u8; (rows * dim * 4) as usize];
    file.read_exact(&mut data)?;
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let dim = dim as usize;
    Ok((
        dim,
        values.chunks(dim.max(1)).map(<[f32]>::to_vec).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_fixed_size_and_parses_back() {
        for (r, d) in [(0, 512), (123_456, 768), (u64::MAX, u64::MAX)] {
            let h = header(r, d);
            assert_eq!(h.len() as u64, HEADER_LEN);
            assert_eq!(h.last(), Some(&b'\n'));
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.npy");
            std::fs::write(&p, &h).unwrap();
            let mut f = File::open(&p).unwrap();
            assert_eq!(parse_header(&mut f, &p).unwrap(), (r, d, HEADER_LEN));
        }
    }
}
