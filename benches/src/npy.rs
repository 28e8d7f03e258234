//! The `.npy` files the peer workers exchange with `scripts/bench_peers.py` and
//! `scripts/bench_text_peers.py`: C-order little-endian f32 only, the one kind they write.

use std::io::Write;

/// A `.npy` of little-endian f32: (shape, values).
///
/// # Errors
/// A message naming `path` when it cannot be read or is not a C-order `<f4` array.
pub fn read_f32(path: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(format!("{path}: not a .npy file"));
    }
    let header_len = match bytes[6] {
        1 => 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        _ if bytes.len() >= 12 => {
            12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
        }
        _ => return Err(format!("{path}: truncated .npy header")),
    };
    let header = bytes
        .get(..header_len)
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .ok_or_else(|| format!("{path}: truncated .npy header"))?;
    if !(header.contains("'<f4'") && header.contains("False")) {
        return Err(format!(
            "{path}: not a C-order <f4 array ({})",
            header.trim()
        ));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_default();
    let shape: Vec<usize> = shape
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let values: Vec<f32> = bytes[header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.len() != shape.iter().product::<usize>() {
        return Err(format!(
            "{path}: shape {shape:?} but {} values",
            values.len()
        ));
    }
    Ok((shape, values))
}

/// Writes `rows` (`[n][dim]`, every row `dim` long) as an `(n, dim)` `<f4` array.
///
/// # Errors
/// A message naming `path` when it cannot be written.
pub fn write_f32_rows(path: &str, rows: &[Vec<f32>]) -> Result<(), String> {
    let dim = rows.first().map_or(0, Vec::len);
    let mut dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        rows.len()
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(rows.iter().flatten().flat_map(|v| v.to_le_bytes()));
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.npy");
        let path = path.to_str().unwrap();
        let rows = vec![vec![1.5, -2.0, 3.25], vec![0.0, 1e-7, -4.5]];
        write_f32_rows(path, &rows).unwrap();
        let (shape, values) = read_f32(path).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(values, vec![1.5, -2.0, 3.25, 0.0, 1e-7, -4.5]);
    }
}
