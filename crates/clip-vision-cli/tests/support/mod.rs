//! Helpers of the CLI tests: the binary, distinct generated images, readers of the two
//! output formats, and row comparison against an uninterrupted run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `clip-vision` binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clip-vision"))
}

/// The workspace root, canonical.
pub fn root() -> PathBuf {
    std::fs::canonicalize(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap()
}

/// The 32-wide demo model.
pub fn demo() -> PathBuf {
    root().join("fixtures/models/demo")
}

/// The fixture images.
pub fn images() -> PathBuf {
    root().join("fixtures/images")
}

/// Runs a command to its end.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A 24-bit BMP of `w × h` pixels whose colours depend on `seed`: images of different seeds
/// embed to different rows, so a row given to the wrong path shows.
pub fn write_bmp(path: &Path, w: u32, h: u32, seed: u32) {
    let stride = (w * 3).div_ceil(4) * 4;
    let size = 54 + stride * h;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&(w as i32).to_le_bytes());
    b.extend_from_slice(&(h as i32).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(stride * h).to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    for y in 0..h {
        let start = b.len();
        for x in 0..w {
            let v = |k: u32| ((x * (seed % 7 + 1) + y * k + seed * 37 * k) % 256) as u8;
            b.extend_from_slice(&[v(3), v(5 + seed % 3), v(11)]);
        }
        b.resize(start + stride as usize, 0);
    }
    std::fs::write(path, b).unwrap();
}

/// `n` distinct BMPs `img000.bmp`… of `side × side` pixels in `dir`; their canonical paths,
/// sorted.
pub fn distinct_images(dir: &Path, n: u32, side: u32) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img{i:03}.bmp"));
            write_bmp(&p, side, side, i);
            std::fs::canonicalize(&p)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// One output row.
pub type Row = (String, Vec<f32>);

/// `(path, embedding)` rows of a .jsonl output; every line must end in a newline.
pub fn read_jsonl(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines only");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["path"].as_str().unwrap().to_owned(), e)
        })
        .collect()
}

/// The paths of a `.npy` sidecar: one JSON string per line.
pub fn read_sidecar(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines only");
    text.lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect()
}

/// `(path, embedding)` rows of a .npy output and its sidecar.
pub fn read_npy(path: &Path) -> Vec<Row> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..header_len]).into_owned();
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let values: Vec<f32> = bytes[header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(
        values.len(),
        shape[0] * shape[1],
        "data length agrees with the header"
    );
    let paths = read_sidecar(&path.with_extension("paths.txt"));
    assert_eq!(paths.len(), shape[0], "one sidecar line per row");
    paths
        .into_iter()
        .zip(values.chunks(shape[1].max(1)).map(<[f32]>::to_vec))
        .collect()
}

/// Rows of either format.
pub fn read_rows(path: &Path) -> Vec<Row> {
    if path.extension().is_some_and(|e| e == "npy") {
        read_npy(path)
    } else {
        read_jsonl(path)
    }
}

/// Asserts `got` holds the rows of `want` (an uninterrupted run) in the same order: the same
/// paths, each once, each row within 1e-6 of the reference row of its path.
pub fn assert_same_rows(got: &[Row], want: &[Row], what: &str) {
    let got_paths: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    let want_paths: Vec<&str> = want.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(got_paths, want_paths, "{what}: every image once, in order");
    for ((p, a), (_, b)) in got.iter().zip(want) {
        assert_eq!(a.len(), b.len(), "{what}: width of {p}");
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "{what}: row of {p} is off by {worst}");
    }
}

/// Asserts the rows of a reference run are pairwise distinct (so a shifted row shows).
pub fn assert_rows_distinct(rows: &[Row]) {
    for (i, (pa, a)) in rows.iter().enumerate() {
        for (pb, b) in &rows[i + 1..] {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(d > 1e-3, "{pa} and {pb} embed alike ({d})");
        }
    }
}

/// `K` of the `resuming: K images already embedded` line, 0 without one.
pub fn resumed(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("resuming: "))
        .map_or(0, |rest| rest.split(' ').next().unwrap().parse().unwrap())
}

/// `M` of the summary `embedded M images in …`.
pub fn embedded(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("embedded "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stderr}"))
}
