//! `embed --output-dir` as users run it: folders cut into units by `--shard i/n`, every
//! image once across the shards, a rerun that finds its partitions done, a directory made
//! otherwise refused, `similar --index DIR`, and the usage errors of `--shard`.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use support::*;

fn embed_layout(out: &Path, extra: &[&str]) -> std::process::Output {
    run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .arg(images()))
}

/// The `image_path`s of a layout, read back through `similar` (one line per row).
fn ranked(out: &Path, query: &Path) -> Vec<String> {
    let got = run(bin()
        .args(["similar", "--index"])
        .arg(out)
        .arg("--query")
        .arg(query)
        .args(["-k", "100"]));
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    text(&got.stdout)
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap().to_owned())
        .collect()
}

#[test]
fn shards_of_a_folder_cover_every_image_once_and_rerun_as_done() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for i in 0..3 {
        let got = embed_layout(
            &out,
            &["--shard", &format!("{i}/3"), "--files-per-unit", "2"],
        );
        // coffee.gif and the like decode; a folder of good images skips nothing.
        assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    }
    let query = images().join("chelsea.jpg");
    let rows = ranked(&out, &query);
    let unique: BTreeSet<&String> = rows.iter().collect();
    assert_eq!(unique.len(), rows.len(), "a row twice: {rows:?}");
    let whole = tmp.path().join("whole");
    let got = embed_layout(&whole, &[]);
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    let mut all = ranked(&whole, &query);
    assert_eq!(all[0], query.canonicalize().unwrap().display().to_string());
    let mut sharded = rows.clone();
    all.sort();
    sharded.sort();
    assert_eq!(
        sharded, all,
        "the shards hold exactly the images of one run"
    );

    let again = embed_layout(&out, &["--shard", "1/3", "--files-per-unit", "2"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("already done"),
        "{}",
        text(&again.stderr)
    );
    // A run with another decoding is refused, naming the field.
    let fast = embed_layout(&whole, &["--fast-decode"]);
    assert_eq!(fast.status.code(), Some(1));
    let err = text(&fast.stderr);
    assert!(
        err.contains("fast_decode: false (output) vs true (this run)"),
        "{err}"
    );
    let other = embed_layout(&out, &["--shard", "1/3", "--files-per-unit", "3"]);
    assert_eq!(other.status.code(), Some(1));
    let err = text(&other.stderr);
    assert!(
        err.contains("files_per_unit: 2 (output) vs 3 (this run)"),
        "{err}"
    );
}

#[test]
fn bad_shard_specs_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (spec, says) in [
        ("3/3", "below the count"),
        ("0/0", "at least 1"),
        ("-1/2", "not a whole number"),
        ("1/x", "not a whole number"),
    ] {
        let got = embed_layout(&out, &["--shard", spec]);
        assert_eq!(got.status.code(), Some(2), "{spec}");
        let err = text(&got.stderr);
        assert!(err.contains(says), "{spec}: {err}");
    }
    let got = run(bin()
        .args(["embed", "--model"])
        .arg(demo())
        .args(["--shard", "0/2"])
        .arg(images()));
    assert_eq!(got.status.code(), Some(2));
    assert!(
        text(&got.stderr).contains("--output-dir"),
        "{}",
        text(&got.stderr)
    );
    assert!(!out.exists(), "a usage error wrote nothing");
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `kill -9` twice in the middle of a partition, each run resuming the last: the files end
/// byte-identical to an uninterrupted run's, and no committed row is embedded twice.
#[test]
fn a_partition_killed_twice_resumes_to_the_uninterrupted_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many");
    let n = 40;
    distinct_images(&dir, n, 200);
    let args = [
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--files-per-unit",
        "7",
    ];
    let embed = |out: &Path| {
        let mut cmd = bin();
        cmd.args(["embed", "--model"])
            .arg(demo())
            .arg("--output-dir")
            .arg(out)
            .args(args)
            .arg(&dir);
        cmd
    };
    let whole = tmp.path().join("whole");
    let got = run(&mut embed(&whole));
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));

    let out = tmp.path().join("out");
    let index = out.join("partitions/partition_0.journal.index.jsonl");
    let lines = || {
        std::fs::read(&index)
            .map(|t| t.iter().filter(|&&b| b == b'\n').count())
            .unwrap_or(0)
    };
    let mut kept = 0;
    for at in [6, 23] {
        let mut child = embed(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        // The header line, then one per image.
        while lines() < at + 1 {
            assert!(start.elapsed().as_secs() < 60, "no progress");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(child.try_wait().unwrap().is_none(), "killed while running");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !out.join("img_emb").exists(),
            "nothing final before the finish"
        );
        kept = lines() - 1;
        assert!(kept >= at && kept < n as usize, "{kept} rows at the kill");
    }
    let got = run(&mut embed(&out));
    let err = text(&got.stderr);
    assert_eq!(got.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("resuming: {kept} rows")), "{err}");
    assert!(
        err.contains(&format!("embedded {} images", n as usize - kept)),
        "nothing committed redone: {err}"
    );
    assert!(tree(&out) == tree(&whole), "the resumed partition differs");
}
