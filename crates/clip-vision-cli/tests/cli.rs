//! The built `clip-vision` binary, run as users run it: every behaviour of `embed`,
//! `similar` and `info`, including a folder with bad files, runs killed (by `kill -9` and by
//! the fault hook at every step of the output protocol) and resumed, and the meta file.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

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
            meta["format_version"].as_u64(),
            meta["model"].as_str(),
            meta["activation"].is_null(),
            meta["kind"].as_str(),
            meta["normalized"].as_bool(),
            meta["dim"].as_u64()
        ),
        (
            Some(1),
            Some(demo().to_str().unwrap()),
            true,
            Some("image-embeds"),
            Some(true),
            Some(32)
        ),
        "the meta records the canonical model path and every option"
    );
    let fp = meta["fingerprint"].as_str().unwrap();
    assert!(
        fp.starts_with("fnv1a64:") && fp.len() == 8 + 16,
        "fingerprint {fp}"
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
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(bad)).collect();
        assert_eq!(lines.len(), 1, "{bad} reported once: {err}");
        assert!(lines[0].starts_with("skipped "), "{err}");
        assert_eq!(
            lines[0].matches(bad).count(),
            1,
            "the path is named once: {}",
            lines[0]
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

/// `embed` over `paths` into `out` with the small batches of the crash tests, the fault hook
/// aborting after step `fault` when given.
fn embed_small(out: &Path, resume: bool, paths: &[&Path], fault: Option<usize>) -> Output {
    let mut cmd = bin();
    cmd.args(["embed", "--batch-size", "2", "--threads", "1", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(out);
    if resume {
        cmd.arg("--resume");
    }
    cmd.args(paths);
    if let Some(n) = fault {
        cmd.env("CLIP_VISION_FAULT_ABORT_AT", n.to_string());
    }
    run(&mut cmd)
}

/// Files `embed` leaves only when interrupted.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial") || n.ends_with(".tmp"))
        .collect()
}

/// Aborts `embed` right after each step of the output protocol in turn (the fault hook),
/// then resumes: every image once, rows equal to an uninterrupted run, and exactly the rows
/// committed before the abort (plus those of an earlier finished run, when `extend`) are
/// kept: only the batch in flight is embedded again. Returns the number of steps.
fn crash_at_every_step(ext: &str, extend: bool) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    let imgs = distinct_images(&dir, 5, 24);
    let reference = tmp.path().join(format!("ref.{ext}"));
    let out = embed_small(&reference, false, &[&dir], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let want = read_rows(&reference);
    assert_eq!(want.len(), 5);
    assert_rows_distinct(&want);
    let first: Vec<&Path> = imgs[..3].iter().map(Path::new).collect();
    let base = if extend { 3 } else { 0 };
    for step in 1.. {
        let case = tmp.path().join(format!("step{step}"));
        std::fs::create_dir(&case).unwrap();
        let out_file = case.join(format!("e.{ext}"));
        if extend {
            let out = embed_small(&out_file, false, &first, None);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        }
        let crashed = embed_small(&out_file, extend, &[&dir], Some(step));
        let trace = text(&crashed.stderr);
        if crashed.status.success() {
            assert!(step > 5, "a protocol of {} steps?\n{trace}", step - 1);
            assert!(!trace.contains("abort"), "{trace}");
            assert_same_rows(&read_rows(&out_file), &want, "fault-free run");
            return step - 1;
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(crashed.status.signal(), Some(6), "aborted: {trace}");
        }
        let steps: Vec<&str> = trace
            .lines()
            .filter(|l| l.starts_with("fault step "))
            .collect();
        let last = *steps.last().unwrap();
        assert!(
            last.starts_with(&format!("fault step {step}: ")),
            "{last}\n{trace}"
        );
        // Rows whose commit step (paths appended for .npy, lines for .jsonl) completed.
        let committed: usize = steps
            .iter()
            .filter(|l| l.contains("(commit)"))
            .map(|l| {
                let words: Vec<&str> = l.split(' ').collect();
                let i = words.iter().position(|w| *w == "append").unwrap();
                words[i + 1].parse::<usize>().unwrap()
            })
            .sum();
        let resumed_run = embed_small(&out_file, true, &[&dir], None);
        let err = text(&resumed_run.stderr);
        assert_eq!(resumed_run.status.code(), Some(0), "after {last}: {err}");
        let kept = resumed(&err);
        assert_eq!(
            kept,
            base + committed,
            "after {last}: every finished row kept, no unfinished one\n{trace}\n{err}"
        );
        assert_eq!(embedded(&err), 5 - kept, "after {last}: {err}");
        assert_same_rows(&read_rows(&out_file), &want, last);
        assert_eq!(leftovers(&case), Vec::<String>::new(), "after {last}");
    }
    unreachable!()
}

#[test]
fn npy_output_survives_an_abort_at_every_step() {
    let steps = crash_at_every_step("npy", false);
    assert!(steps >= 25, "{steps} steps");
}

#[test]
fn jsonl_output_survives_an_abort_at_every_step() {
    let steps = crash_at_every_step("jsonl", false);
    assert!(steps >= 14, "{steps} steps");
}

#[test]
fn extending_a_finished_npy_survives_an_abort_at_every_step() {
    crash_at_every_step("npy", true);
}

#[test]
fn extending_a_finished_jsonl_survives_an_abort_at_every_step() {
    crash_at_every_step("jsonl", true);
}

/// A run without `--resume` over a finished output replaces it: aborted at any step, the
/// next `--resume` still gives every image once with the right rows (the old rows, of the
/// same options, may or may not be kept; they are never mixed with rows of another run).
#[test]
fn replacing_an_output_survives_an_abort_at_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    distinct_images(&dir, 3, 24);
    let reference = tmp.path().join("ref.npy");
    let out = embed_small(&reference, false, &[&dir], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let want = read_rows(&reference);
    for step in 1.. {
        let case = tmp.path().join(format!("step{step}"));
        std::fs::create_dir(&case).unwrap();
        let out_file = case.join("e.npy");
        let out = embed_small(&out_file, false, &[&dir], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let crashed = embed_small(&out_file, false, &[&dir], Some(step));
        if crashed.status.success() {
            assert!(step > 10);
            break;
        }
        let out = embed_small(&out_file, true, &[&dir], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "step {step}: {err}");
        assert_eq!(resumed(&err) + embedded(&err), 3, "{err}");
        assert_same_rows(&read_rows(&out_file), &want, &format!("step {step}"));
    }
}

/// `kill -9` at several moments of a real run over distinct images, each followed by a
/// `--resume` (itself killed, but the last): rows equal to an uninterrupted run's, and each
/// resume keeps exactly the rows whose path lines were whole at the kill.
#[test]
fn kill_9_at_several_moments_then_resume_gives_the_uninterrupted_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many");
    let n = 48;
    distinct_images(&dir, n, 200);
    let reference = tmp.path().join("ref.npy");
    let out = embed_small(&reference, false, &[&dir], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let want = read_rows(&reference);
    assert_eq!(want.len(), n as usize);
    assert_rows_distinct(&want);

    let out_file = tmp.path().join("e.npy");
    let sidecar = tmp.path().join("e.paths.txt.partial");
    let whole_lines = || {
        std::fs::read(&sidecar)
            .map(|t| t.iter().filter(|&&b| b == b'\n').count())
            .unwrap_or(0)
    };
    let mut on_disk = 0;
    for (i, at) in [3, 17, 33].into_iter().enumerate() {
        let log = tmp.path().join(format!("run{i}.log"));
        let mut child = bin()
            .args(["embed", "--resume", "--batch-size", "2", "--threads", "1"])
            .arg("--model")
            .arg(demo())
            .arg("-o")
            .arg(&out_file)
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while whole_lines() < at {
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run must still be going when it is killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!out_file.exists(), "no file under the final name");
        let err = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            resumed(&err),
            on_disk,
            "run {i} kept the rows of the last: {err}"
        );
        on_disk = whole_lines();
        assert!(
            on_disk >= at && on_disk < n as usize,
            "{on_disk} rows at the kill"
        );
    }
    let out = run(bin()
        .args(["embed", "--resume", "--batch-size", "2", "--threads", "1"])
        .arg("--model")
        .arg(demo())
        .arg("-o")
        .arg(&out_file)
        .arg(&dir));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(resumed(&err), on_disk, "{err}");
    assert_eq!(
        embedded(&err),
        n as usize - on_disk,
        "nothing finished redone: {err}"
    );
    assert_same_rows(&read_npy(&out_file), &want, "after 3 kills");
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// Torn tails no writer of ours leaves whole are cut and redone, never glued to: a JSON
/// line without its newline, a sidecar line without its newline, data rows past the
/// sidecar, and a half-written data row.
#[test]
fn torn_tails_are_cut_and_redone_never_glued_to() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    distinct_images(&dir, 5, 24);
    let embed_into = |out: &Path, resume: bool| {
        let out = embed_small(out, resume, &[&dir], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    // JSONL: the last row complete but for its newline.
    let jsonl = tmp.path().join("e.jsonl");
    embed_into(&jsonl, false);
    let want = read_jsonl(&jsonl);
    let mut bytes = std::fs::read(&jsonl).unwrap();
    assert_eq!(bytes.pop(), Some(b'\n'));
    std::fs::write(tmp.path().join("e.jsonl.partial"), &bytes).unwrap();
    std::fs::remove_file(&jsonl).unwrap();
    let err = embed_into(&jsonl, true);
    assert_eq!((resumed(&err), embedded(&err)), (4, 1), "{err}");
    assert_same_rows(&read_jsonl(&jsonl), &want, "jsonl without its last newline");
    // A whole line that is not a row is no torn tail: refused, naming the line.
    let good = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines[2] = "{\"edited\": true}";
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let out = embed_small(&jsonl, true, &[&dir], None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("e.jsonl.partial:3: a whole line that is not a row"),
        "{err}"
    );

    // NPY: 4 whole paths + half a fifth, 4.5 rows of data: 4 kept.
    let npy = tmp.path().join("e.npy");
    embed_into(&npy, false);
    let want = read_npy(&npy);
    let side = std::fs::read(tmp.path().join("e.paths.txt")).unwrap();
    let cut = side.iter().rposition(|&b| b == b'\n').unwrap();
    let cut = side[..cut].iter().rposition(|&b| b == b'\n').unwrap() + 4;
    std::fs::write(tmp.path().join("e.paths.txt.partial"), &side[..cut]).unwrap();
    std::fs::remove_file(tmp.path().join("e.paths.txt")).unwrap();
    let data = std::fs::read(&npy).unwrap();
    std::fs::write(tmp.path().join("e.npy.partial"), &data[..data.len() - 64]).unwrap();
    std::fs::remove_file(&npy).unwrap();
    let err = embed_into(&npy, true);
    assert_eq!((resumed(&err), embedded(&err)), (4, 1), "{err}");
    assert_same_rows(&read_npy(&npy), &want, "npy with torn tails");

    // NPY: data of 5 rows, sidecar of 2: 2 kept.
    let side = std::fs::read(tmp.path().join("e.paths.txt")).unwrap();
    let two = side
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    std::fs::write(tmp.path().join("e.paths.txt"), &side[..two]).unwrap();
    let err = embed_into(&npy, true);
    assert_eq!((resumed(&err), embedded(&err)), (2, 3), "{err}");
    assert_same_rows(&read_npy(&npy), &want, "npy with a short sidecar");
}

#[test]
fn resume_refuses_an_output_made_otherwise_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("e.npy");
    let coffee = images().join("coffee.jpg");
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("-o")
        .arg(&out_file)
        .arg(&coffee));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = std::fs::read(&out_file).unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--no-normalize"],
            &["normalized: true (output) vs false (this run)"],
        ),
        (
            &["--kind", "pooled"],
            &[
                "kind: image-embeds (output) vs pooled (this run)",
                "dim: 32 (output) vs 64 (this run)",
            ],
        ),
        (
            &["--activation", "gelu"],
            &["activation: none (output) vs gelu (this run)"],
        ),
        (
            &["--fast-decode"],
            &["fast_decode: false (output) vs true (this run)"],
        ),
        (
            &["--exif-transpose"],
            &["exif_transpose: false (output) vs true (this run)"],
        ),
    ];
    for (flags, wants) in cases {
        let out = run(bin()
            .args(["embed", "--resume", "--model"])
            .arg(demo())
            .args(flags)
            .arg("-o")
            .arg(&out_file)
            .arg(images().join("chelsea.jpg")));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        for want in wants {
            assert!(err.contains(want), "{flags:?}: {want:?} in {err}");
        }
        assert!(!err.contains("format_version:"), "only what differs: {err}");
        assert_eq!(
            std::fs::read(&out_file).unwrap(),
            before,
            "output untouched"
        );
    }
    // The same model by another path (relative, through `..`) is the same model.
    let rel_dir = tmp.path().join("sub");
    std::fs::create_dir(&rel_dir).unwrap();
    let out = run(bin()
        .current_dir(&rel_dir)
        .args(["embed", "--resume", "--model"])
        .arg(demo().join("../demo"))
        .arg("-o")
        .arg("../e.npy")
        .arg(&coffee)
        .arg(images().join("chelsea.jpg")));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!((resumed(&err), embedded(&err)), (1, 1), "{err}");
}

/// The 32-pixel OpenAI-named fixture in a directory of its own, with a preprocessing that
/// makes 32×32 images: it loads only with `--activation`.
fn openai_model_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        root().join("fixtures/models/openai-naming/tiny.safetensors"),
        dir.join("tiny.safetensors"),
    )
    .unwrap();
    let mut pre: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(demo().join("preprocessor_config.json")).unwrap(),
    )
    .unwrap();
    pre["crop_size"] = serde_json::json!({"height": 32, "width": 32});
    pre["size"] = serde_json::json!({"shortest_edge": 32});
    std::fs::write(dir.join("preprocessor_config.json"), pre.to_string()).unwrap();
}

/// Rewrites a safetensors file with `__metadata__` added: same tensors, another header.
fn add_metadata(file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"] = serde_json::json!({"format": "pt", "note": "re-exported"});
    let mut h = header.to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(file, out).unwrap();
}

/// `similar` embeds the query with the model the meta records: the canonical path of a
/// relative `--model` given in another directory, and the `--activation` OpenAI weights
/// need; it refuses once the weights' fingerprint changed.
#[test]
fn similar_uses_the_recorded_model_and_refuses_changed_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let t = std::fs::canonicalize(tmp.path()).unwrap();
    openai_model_dir(&t.join("models/oa"));
    distinct_images(&t.join("imgs"), 4, 40);
    std::fs::create_dir(t.join("work")).unwrap();
    let embed = |extra: &[&str]| {
        run(bin()
            .current_dir(t.join("work"))
            .args(["embed", "--model", "../models/oa", "-o", "idx.npy"])
            .args(extra)
            .arg("../imgs"))
    };
    let out = embed(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("hidden_act"),
        "{}",
        text(&out.stderr)
    );
    let out = embed(&["--activation", "quick_gelu"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("work/idx.npy.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["model"].as_str(), t.join("models/oa").to_str());
    assert_eq!(meta["activation"].as_str(), Some("quick_gelu"));
    assert_eq!(meta["dim"].as_u64(), Some(24));
    assert!(meta["num_attention_heads"].is_null());

    // The head count a config-less tower cannot say: given, it changes the rows and is
    // recorded; resuming with another one is refused.
    let heads = |n: &str, resume: bool| {
        let mut cmd = bin();
        cmd.current_dir(t.join("work"))
            .args(["embed", "--model", "../models/oa", "-o", "idx4.npy"])
            .args(["--activation", "quick_gelu", "--num-attention-heads", n]);
        if resume {
            cmd.arg("--resume");
        }
        run(cmd.arg("../imgs"))
    };
    let out = heads("4", false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let meta4: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("work/idx4.npy.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta4["num_attention_heads"].as_u64(), Some(4));
    let (two, four) = (
        read_npy(&t.join("work/idx.npy")),
        read_npy(&t.join("work/idx4.npy")),
    );
    assert_eq!(two.len(), four.len());
    let moved = two
        .iter()
        .zip(&four)
        .map(|(a, b)| {
            a.1.iter()
                .zip(&b.1)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "4 heads gave the rows of 2 ({moved})");
    let out = heads("2", true);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("num_attention_heads: 4 (output) vs 2 (this run)"),
        "{err}"
    );

    let similar = || {
        run(bin()
            .current_dir(&t)
            .args(["similar", "-k", "2", "--index", "work/idx.npy", "--query"])
            .arg("imgs/img002.bmp"))
    };
    let out = similar();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first = text(&out.stdout).lines().next().unwrap().to_owned();
    let cols: Vec<&str> = first.split('\t').collect();
    assert_eq!(cols[2], t.join("imgs/img002.bmp").to_str().unwrap());
    assert!(cols[1].parse::<f64>().unwrap() > 0.999_99, "{first}");

    add_metadata(&t.join("models/oa/tiny.safetensors"));
    let out = similar();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("changed since the index was built"), "{err}");
    assert!(
        err.contains(&format!(
            "fingerprint {}",
            meta["fingerprint"].as_str().unwrap()
        )),
        "{err}"
    );
}

/// One row per file however it is named on the command line, and any file name (even with
/// a newline) keeps its row in both formats; `--resume` recognises every one as done.
#[test]
fn paths_are_canonical_and_any_file_name_keeps_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let t = std::fs::canonicalize(tmp.path()).unwrap();
    let photos = t.join("photos");
    std::fs::create_dir(&photos).unwrap();
    let mut names = vec!["a.bmp", "b c.bmp", "quote\".bmp", "back\\slash.bmp"];
    if cfg!(unix) {
        names.push("new\nline.bmp");
    }
    for (i, name) in names.iter().enumerate() {
        write_bmp(&photos.join(name), 20, 20, i as u32);
    }
    let mut want: Vec<String> = names
        .iter()
        .map(|n| photos.join(n).to_string_lossy().into_owned())
        .collect();
    want.sort();
    for ext in ["npy", "jsonl"] {
        let embed = |resume: bool| {
            let mut cmd = bin();
            cmd.current_dir(&t)
                .args(["embed", "--batch-size", "2", "--model"])
                .arg(demo())
                .args([
                    "-o",
                    &format!("e.{ext}"),
                    "./photos",
                    "photos",
                    "photos/a.bmp",
                ])
                .arg(photos.join("a.bmp"));
            if resume {
                cmd.arg("--resume");
            }
            run(&mut cmd)
        };
        let out = embed(false);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let rows = read_rows(&t.join(format!("e.{ext}")));
        let paths: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(paths, want, "{ext}: one row per file, by canonical path");
        assert_rows_distinct(&rows);
        let out = embed(true);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(
            (resumed(&err), embedded(&err)),
            (want.len(), 0),
            "{ext}: {err}"
        );
        assert_eq!(read_rows(&t.join(format!("e.{ext}"))), rows);
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
        "cpu features",
        "attention: two-pass",
    ] {
        assert!(info.contains(want), "{want:?} in\n{info}");
    }
    // The SIMD level the element-wise kernels run on: on an AVX2 machine, "avx2+fma".
    let simd = format!(
        "element-wise (softmax, LayerNorm, activations): {} vectors",
        clip_vision::kernels::elementwise_simd()
    );
    assert!(info.contains(&simd), "{simd:?} in\n{info}");
    let out = run(bin()
        .env("VIT_ATTENTION", "tiled")
        .args(["info", "--model"])
        .arg(demo()));
    let info = text(&out.stdout);
    assert!(
        info.contains("attention: tiled") && info.contains("forced by VIT_ATTENTION"),
        "{info}"
    );
}

/// A kernel or attention path the environment names but this build or CPU cannot run stops
/// the command before any work, naming the variable and the value.
/// `--precision int8` and `bf16` keep the demo's vectors (cosine to f32), say so in the
/// meta, and an index of one precision refuses to be resumed in another.
#[test]
fn precisions_keep_the_vectors_and_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let embed = |precision: &str, out: &str, extra: &[&str]| {
        run(bin()
            .args(["embed", "--model"])
            .arg(demo())
            .args(["--precision", precision])
            .args(extra)
            .arg("-o")
            .arg(tmp.path().join(out))
            .arg(images()))
    };
    assert!(embed("f32", "f32.jsonl", &[]).status.success());
    let f32_rows = read_jsonl(&tmp.path().join("f32.jsonl"));
    for (precision, min_cos) in [("int8", 0.9995), ("bf16", 0.9999)] {
        let file = format!("{precision}.jsonl");
        let out = embed(precision, &file, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows = read_jsonl(&tmp.path().join(&file));
        assert_eq!(rows.len(), f32_rows.len());
        for ((p, a), (q, b)) in rows.iter().zip(&f32_rows) {
            assert_eq!(p, q);
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(cos >= min_cos, "{precision} {p}: cosine {cos}");
        }
        assert!(
            rows.iter().zip(&f32_rows).any(|(a, b)| a.1 != b.1),
            "{precision} gave the f32 rows"
        );
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(format!("{file}.meta.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["precision"].as_str(), Some(precision));
    }
    let out = embed("f32", "int8.jsonl", &["--resume"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("precision") && err.contains("int8"), "{err}");
    let out = run(bin().args(["info", "--model"]).arg(demo()));
    assert!(
        text(&out.stdout).contains("int8 linear layers"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_kernel_and_attention_settings_are_refused() {
    for (var, value) in [("VIT_TENSOR_KERNEL", "avx9000"), ("VIT_ATTENTION", "flash")] {
        let out = run(bin().env(var, value).args(["info", "--model"]).arg(demo()));
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = text(&out.stderr);
        assert!(err.contains(var) && err.contains(value), "{err}");
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
/// 16 kB tmpfs, which only root can mount; run with `--ignored` where that works (it fails,
/// not passes, when it cannot mount).
#[test]
#[ignore = "needs root and mount(8) for a 16 kB tmpfs"]
fn a_full_disk_is_reported_before_work_is_wasted() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .output();
    match &mount {
        Ok(m) if m.status.success() => {}
        Ok(m) => panic!(
            "cannot mount a 16 kB tmpfs (root needed): {}",
            text(&m.stderr)
        ),
        Err(e) => panic!("cannot run mount(8): {e}"),
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

/// `embed` of `paths` to JSON lines on stdout with `flags`: the embeddings by file name.
fn embed_rows(flags: &[&str], paths: &[&Path]) -> std::collections::BTreeMap<String, Vec<f64>> {
    let out = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .args(flags)
        .args(paths));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let e = v["embedding"].as_array().unwrap();
            (name, e.iter().map(|x| x.as_f64().unwrap()).collect())
        })
        .collect()
}

#[test]
fn fast_decode_and_exif_transpose_change_only_what_they_should() {
    let astronaut = images().join("astronaut.jpg"); // 512², decoded at 1/2
    let chelsea = images().join("chelsea.jpg"); // 451×300: no DCT scale keeps 224
    let webp = images().join("rocket.webp");
    let rotated = root().join("fixtures/exif/orientation_6.jpg");
    let upright = root().join("fixtures/exif/orientation_6.jpg.transposed.png");
    let paths = [astronaut.as_path(), &chelsea, &webp, &rotated, &upright];
    let exact = embed_rows(&[], &paths);
    let fast = embed_rows(&["--fast-decode"], &paths);
    let exif = embed_rows(&["--exif-transpose"], &paths);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Rows are unit vectors: their dot product is the cosine.
    let c = dot(&fast["astronaut.jpg"], &exact["astronaut.jpg"]);
    assert!(c < 1.0 - 1e-9 && c > 0.9999, "astronaut: cosine {c}");
    for same in [
        "chelsea.jpg",
        "rocket.webp",
        "orientation_6.jpg.transposed.png",
    ] {
        assert_eq!(fast[same], exact[same], "{same}");
        assert_eq!(exif[same], exact[same], "{same}");
    }
    assert_eq!(
        fast["orientation_6.jpg"], exact["orientation_6.jpg"],
        "24×16: no scale"
    );
    // With the option the rotated file embeds as PIL's upright pixels; without, it does not.
    assert_eq!(
        exif["orientation_6.jpg"],
        exact["orientation_6.jpg.transposed.png"]
    );
    assert_ne!(
        exact["orientation_6.jpg"],
        exact["orientation_6.jpg.transposed.png"]
    );
}
