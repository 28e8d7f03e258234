//! The built `clip-vision` binary, run as users run it: every behaviour of `embed`,
//! `similar` and `info`, including a folder with bad files and a run killed and resumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clip-vision"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo() -> PathBuf {
    root().join("fixtures/models/demo")
}

fn images() -> PathBuf {
    root().join("fixtures/images")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(path, embedding)` rows of a .jsonl output.
fn read_jsonl(path: &Path) -> Vec<(String, Vec<f32>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
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

/// `(path, embedding)` rows of a .npy output and its sidecar.
fn read_npy(path: &Path) -> Vec<(String, Vec<f32>)> {
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
    let paths: Vec<String> = std::fs::read_to_string(path.with_extension("paths.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths.len(), shape[0]);
    paths
        .into_iter()
        .zip(values.chunks(shape[1]).map(<[f32]>::to_vec))
        .collect()
}

fn sorted_images(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let ext = p.extension()?.to_str()?.to_ascii_lowercase();
            ["jpg", "png", "webp", "gif"]
                .contains(&ext.as_str())
                .then(|| p.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn embed_a_folder_to_jsonl_and_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("e.jsonl");
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("--output")
        .arg(&jsonl)
        .arg(images()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows = read_jsonl(&jsonl);
    let want = sorted_images(&images());
    assert_eq!(
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        want,
        "rows follow the sorted paths"
    );
    for (_, e) in &rows {
        assert_eq!(e.len(), 32);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "L2-normalised by default");
    }
    // Nothing but the summary on stderr when it is not a terminal: no progress bar.
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("embedded {} images", want.len())) && !err.contains("ETA"),
        "{err}"
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("e.jsonl.meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            meta["kind"].as_str(),
            meta["normalized"].as_bool(),
            meta["dim"].as_u64()
        ),
        (Some("image-embeds"), Some(true), Some(32))
    );

    let npy = tmp.path().join("e.npy");
    let out = run(bin()
        .args(["embed", "--batch-size", "5", "--threads", "1", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(&npy)
        .arg(images()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let npy_rows = read_npy(&npy);
    assert_eq!(npy_rows.len(), rows.len());
    for ((p1, e1), (p2, e2)) in rows.iter().zip(&npy_rows) {
        assert_eq!(p1, p2);
        for (a, b) in e1.iter().zip(e2) {
            assert!(
                (a - b).abs() < 1e-6,
                "batch size and threads do not change the result"
            );
        }
    }
    assert!(
        !tmp.path().join("e.npy.partial").exists(),
        "the partial file was renamed"
    );
}

#[test]
fn kinds_and_normalisation_and_stdout() {
    let out = run(bin()
        .args(["embed", "--kind", "pooled", "--no-normalize", "--model"])
        .arg(demo())
        .arg(images().join("coffee.jpg")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert!(line.starts_with("{\"path\":"), "path first: {line}");
    let e = v["embedding"].as_array().unwrap();
    assert_eq!(e.len(), 64, "pooled output is hidden_size wide");
    let norm: f64 = e
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "not normalised");
}

#[test]
fn a_bad_file_costs_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for f in ["coffee.jpg", "chelsea.jpg", "rocket.webp"] {
        std::fs::copy(images().join(f), dir.join("sub").join(f)).unwrap();
    }
    let good = std::fs::read(images().join("astronaut.jpg")).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(dir.join("not-an-image.png"), b"hello, I am text").unwrap();
    std::fs::write(dir.join("empty.gif"), b"").unwrap();
    let out_file = tmp.path().join("e.jsonl");
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(&out_file)
        .arg(&dir));
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit 3: done with skipped files\n{err}"
    );
    for bad in ["truncated.jpg", "not-an-image.png", "empty.gif"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("skipped") && l.contains(bad)),
            "{bad} reported: {err}"
        );
    }
    assert!(
        err.contains("embedded 3 images") && err.contains("skipped 3"),
        "{err}"
    );
    let rows = read_jsonl(&out_file);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(p, _)| p.contains("/sub/")));
}

#[test]
fn killed_then_resumed_run_has_every_image_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many");
    std::fs::create_dir(&dir).unwrap();
    let big = std::fs::read(images().join("retina_large.jpg")).unwrap();
    for i in 0..60 {
        std::fs::write(dir.join(format!("img{i:03}.jpg")), &big).unwrap();
    }
    let out_file = tmp.path().join("e.npy");
    let args = |cmd: &mut Command| {
        cmd.args([
            "embed",
            "--resume",
            "--batch-size",
            "2",
            "--threads",
            "1",
            "--model",
        ])
        .arg(demo())
        .arg("-o")
        .arg(&out_file)
        .arg(&dir);
    };
    let mut cmd = bin();
    args(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some rows are on disk, then kill -9 mid-run.
    let sidecar = tmp.path().join("e.paths.txt.partial");
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&sidecar)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 4 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run must still be going when it is killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out_file.exists(),
        "a killed run leaves no file under the final name"
    );

    let mut cmd = bin();
    args(&mut cmd);
    let out = run(&mut cmd);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("resuming:"), "{err}");
    let rows = read_npy(&out_file);
    let want: Vec<String> = (0..60)
        .map(|i| {
            dir.join(format!("img{i:03}.jpg"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        want,
        "every image once, in order"
    );
    for (_, e) in &rows {
        for (a, b) in e.iter().zip(&rows[0].1) {
            assert!(
                (a - b).abs() < 1e-6,
                "identical images, identical rows (no torn row)"
            );
        }
    }
}

#[test]
fn similar_ranks_the_query_first_and_info_describes_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index.npy");
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(&index)
        .arg(images()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(bin()
        .args(["similar", "-k", "3", "--index"])
        .arg(&index)
        .arg("--query")
        .arg(images().join("chelsea.jpg")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    let first: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(first[0], "1");
    assert!(first[2].ends_with("chelsea.jpg"), "{lines:?}");
    assert!(first[1].parse::<f64>().unwrap() > 0.999_99);

    let out = run(bin().args(["info", "--model"]).arg(demo()));
    let info = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for want in [
        "parameters      269120",
        "224×224 (50 tokens)",
        "width 64, 2 layers, 4 heads of 16",
        "F32",
        "center crop 224×224",
    ] {
        assert!(info.contains(want), "{want:?} in\n{info}");
    }
}

#[test]
fn errors_that_stop_the_run_come_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(tmp.path().join("missing/dir/e.npy"))
        .arg(images()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    let out = run(bin()
        .args(["embed", "--model", "/no/such/model"])
        .arg(images()));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/no/such/model"));
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(tmp.path().join("e.csv"))
        .arg(images()));
    assert_eq!(out.status.code(), Some(1));
    let out = run(bin()
        .args(["embed", "--resume", "--model"])
        .arg(demo())
        .arg(images()));
    assert_eq!(out.status.code(), Some(2), "--resume needs --output");
}

/// A file system too small for the output: refused before any image is embedded. Needs a
/// tiny tmpfs, which only root can mount; elsewhere the check is reported as not run.
#[test]
fn a_full_disk_is_reported_before_work_is_wasted() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here (not root?): free-space check not exercised");
        return;
    }
    let dir = tmp.path().join("many");
    std::fs::create_dir(&dir).unwrap();
    let photo = std::fs::read(images().join("coffee.jpg")).unwrap();
    for i in 0..200 {
        std::fs::write(dir.join(format!("p{i:03}.jpg")), &photo).unwrap();
    }
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(mnt.join("e.jsonl"))
        .arg(&dir));
    let _ = Command::new("umount").arg(&mnt).status();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough space"), "{err}");
    assert!(!err.contains("embedded"), "nothing was embedded: {err}");
}
