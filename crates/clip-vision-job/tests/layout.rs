//! Three webdataset shards (one with a corrupt member) embedded as three partitions of
//! clip-retrieval's layout: the files, every good key exactly once, the embeddings against
//! transformers' (within float16 rounding), byte-identical reruns and thread counts,
//! resuming a stopped partition, and refusing a directory made otherwise.

use clip_vision::text::ClipTextEncoder;
use clip_vision::ImageEmbedder;
use clip_vision_job::metadata::read_parquet;
use clip_vision_job::npy::read_npy;
use clip_vision_job::partition::PartitionFiles;
use clip_vision_job::{Dtype, Event, Job, JobError, Shard};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// transformers' `image_embeds` of the demo model for each reference image, L2-normalised,
/// and the labels' `text_embeds`, by file name / label.
struct Reference {
    images: BTreeMap<String, Vec<f32>>,
    labels: Vec<(String, Vec<f32>)>,
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (f64::from(*x) / n) as f32).collect()
}

fn reference() -> Reference {
    let dir = fixtures().join("models/demo");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let rows = |name: &str| -> Vec<Vec<f32>> {
        let t = st.tensor(name).unwrap();
        let w = t.shape()[1];
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        v.chunks(w).map(normalized).collect()
    };
    let names = json["images"].as_array().unwrap().iter();
    let images = names
        .map(|n| n.as_str().unwrap().to_owned())
        .zip(rows("image_embeds"))
        .collect();
    let labels = json["labels"].as_array().unwrap().iter();
    let labels = labels
        .map(|n| n.as_str().unwrap().to_owned())
        .zip(rows("text_embeds.labels"))
        .collect();
    Reference { images, labels }
}

/// What went into the shards: key → (image file, caption).
type Planted = BTreeMap<String, (String, String)>;

fn member(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, name, data).unwrap();
}

/// `dir/{00000..00002}.tar` as img2dataset writes them: the 11 reference images that are
/// jpg / png / webp with a caption (a label) and a json; shard 1 also holds a corrupt
/// JPEG, shard 2 a sample whose only image is a .gif (not a webdataset image).
fn make_shards(dir: &Path, reference: &Reference) -> Planted {
    let mut planted = Planted::new();
    let images: Vec<&String> = reference
        .images
        .keys()
        .filter(|n| !n.ends_with(".gif"))
        .collect();
    for shard in 0..3 {
        let mut b = tar::Builder::new(Vec::new());
        for (index, name) in images.iter().skip(shard * 4).take(4).enumerate() {
            let key = format!("{shard:05}{index:04}");
            let ext = name.rsplit('.').next().unwrap();
            let caption = reference.labels[(shard * 4 + index) % 6].0.clone();
            let bytes = std::fs::read(fixtures().join("images").join(name)).unwrap();
            member(&mut b, &format!("{key}.{ext}"), &bytes);
            member(&mut b, &format!("{key}.txt"), caption.as_bytes());
            let json = serde_json::json!({
                "url": format!("https://example.invalid/{name}"),
                "key": key,
                "caption": caption,
                "width": 100 + index,
                "exif": {"Make": "demo"},
            });
            member(&mut b, &format!("{key}.json"), json.to_string().as_bytes());
            planted.insert(key, ((*name).clone(), caption));
        }
        if shard == 1 {
            member(
                &mut b,
                "000010099.jpg",
                b"\xff\xd8\xff\xe0 not really a jpeg",
            );
            member(&mut b, "000010099.txt", b"a dog");
        }
        if shard == 2 {
            let gif = std::fs::read(fixtures().join("images/coffee.gif")).unwrap();
            member(&mut b, "000020099.gif", &gif);
        }
        let path = dir.join(format!("{shard:05}.tar"));
        std::fs::write(path, b.into_inner().unwrap()).unwrap();
    }
    planted
}

fn embedder(threads: usize) -> ImageEmbedder {
    ImageEmbedder::builder(fixtures().join("models/demo"))
        .batch_size(2)
        .threads(threads)
        .build()
        .unwrap()
}

fn job(shards: &Path, out: &Path, shard: Shard) -> Job {
    Job {
        shard,
        ..Job::new(vec![shards.join("{00000..00002}.tar")], out)
    }
}

fn go(job: &Job, e: &ImageEmbedder) -> Result<clip_vision_job::Report, JobError> {
    job.run(e, None, &mut |_| ControlFlow::Continue(()))
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
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

#[test]
fn three_shards_make_three_partitions_with_every_good_key_once() {
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (shards, out) = (tmp.path().join("shards"), tmp.path().join("out"));
    std::fs::create_dir(&shards).unwrap();
    let planted = make_shards(&shards, &reference);
    assert_eq!(planted.len(), 11);
    let e = embedder(2);

    let mut skipped = Vec::new();
    for i in 0..3 {
        let j = job(&shards, &out, Shard::new(i, 3).unwrap());
        let report = j
            .run(&e, None, &mut |ev| {
                if let Event::Skipped { name, why } = ev {
                    skipped.push((name.to_owned(), why.to_owned()));
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(report.units, [i]);
        assert!(!report.already_done);
    }
    // The layout: exactly these files, nothing temporary or half-written left behind.
    let files: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(
        files,
        [
            "img_emb/img_emb_0.npy",
            "img_emb/img_emb_1.npy",
            "img_emb/img_emb_2.npy",
            "metadata/metadata_0.parquet",
            "metadata/metadata_1.parquet",
            "metadata/metadata_2.parquet",
            "partitions/partition_0.done.json",
            "partitions/partition_1.done.json",
            "partitions/partition_2.done.json",
        ]
    );
    // The corrupt JPEG and the gif-only sample cost their samples, named.
    let names: Vec<&str> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["000010099", "000020099"], "{skipped:?}");
    assert!(skipped[1].1.contains("no image member"), "{skipped:?}");

    let mut seen = BTreeMap::new();
    for i in 0..3 {
        let files = PartitionFiles::new(&out, Shard::new(i, 3).unwrap());
        let header = std::fs::read(files.img_emb()).unwrap();
        let m = read_npy(&files.img_emb()).unwrap();
        assert_eq!((m.dtype, m.dim), (Dtype::F16, 32));
        let want = format!("'shape': ({}, 32)", m.rows);
        assert!(
            String::from_utf8_lossy(&header[..128]).contains(&want),
            "partition {i}: header is not exactly ({}, 32)",
            m.rows
        );
        assert_eq!(&header[6..8], &[1, 0], "npy format version 1.0");
        let meta = read_parquet(&files.metadata()).unwrap();
        assert_eq!(meta.len(), m.rows, "partition {i}: rows not aligned 1:1");
        for (row, vector) in meta.iter().zip(m.data.chunks(32)) {
            let (image, caption) = &planted[&row.image_path];
            assert_eq!(row.caption.as_deref(), Some(caption.as_str()));
            let want = &reference.images[image];
            let worst = vector
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-3, "{}: {image}: off by {worst}", row.image_path);
            *seen.entry(row.image_path.clone()).or_insert(0) += 1;
        }
        let marker: serde_json::Value =
            serde_json::from_slice(&std::fs::read(files.done()).unwrap()).unwrap();
        assert_eq!(marker["rows"], m.rows as u64);
        assert_eq!(marker["width"], 32);
        assert_eq!(marker["dtype"], "float16");
        assert_eq!(marker["record"]["shard_count"], 3);
        assert_eq!(marker["skipped"], u64::from(i > 0));
    }
    assert_eq!(seen.len(), planted.len());
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");

    // A rerun into a new directory writes the same bytes; with one thread, too.
    let again = tmp.path().join("again");
    let one = embedder(1);
    for i in 0..3 {
        go(&job(&shards, &again, Shard::new(i, 3).unwrap()), &one).unwrap();
    }
    assert!(
        tree(&out) == tree(&again),
        "a rerun (1 thread vs 2) changed bytes"
    );

    // A done partition is skipped; a run made otherwise is refused, naming the field.
    let done = go(&job(&shards, &out, Shard::new(1, 3).unwrap()), &e).unwrap();
    assert!(done.already_done);
    assert_eq!(done.rows, 4);
    let f32_run = Job {
        dtype: Dtype::F32,
        ..job(&shards, &out, Shard::new(1, 3).unwrap())
    };
    let refused = go(&f32_run, &e).unwrap_err().to_string();
    assert!(
        refused.contains("dtype: \"float16\" (output) vs \"float32\""),
        "{refused}"
    );
    let refused = go(&job(&shards, &out, Shard::new(0, 2).unwrap()), &e)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("shard_count: 3 (output) vs 2"),
        "{refused}"
    );
}

#[test]
fn a_stopped_partition_resumes_after_its_committed_rows_and_ends_identical() {
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    make_shards(&shards, &reference);
    let e = embedder(2);
    let whole = tmp.path().join("whole");
    go(&job(&shards, &whole, Shard::WHOLE), &e).unwrap();

    let out = tmp.path().join("out");
    let j = job(&shards, &out, Shard::WHOLE);
    let mut batches = 0;
    let stopped = j.run(&e, None, &mut |ev| {
        if matches!(ev, Event::Batch { .. }) {
            batches += 1;
            if batches == 3 {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    assert!(
        matches!(stopped, Err(JobError::Stopped { rows: 6, .. })),
        "{stopped:?}"
    );
    // Nothing a reader picks up exists yet; a torn line at the journal's end is cut.
    assert!(!out.join("img_emb").exists());
    let index = out.join("partitions/partition_0.journal.index.jsonl");
    let mut torn = std::fs::read(&index).unwrap();
    torn.extend_from_slice(b"{\"row\":{\"key\":\"half");
    std::fs::write(&index, torn).unwrap();

    let mut resumed = None;
    let mut embedded = 0;
    let report = j
        .run(&e, None, &mut |ev| {
            match ev {
                Event::Resumed { rows, .. } => resumed = Some(rows),
                Event::Batch { rows, .. } => embedded += rows,
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(resumed, Some(6));
    assert_eq!(
        embedded, 5,
        "only the rows after the committed ones are embedded"
    );
    assert_eq!(
        (report.rows, report.resumed_rows, report.skipped),
        (11, 6, 2)
    );
    assert!(tree(&out) == tree(&whole), "the resumed partition differs");
}

#[test]
fn captions_are_embedded_beside_the_images_as_transformers_does() {
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (shards, out) = (tmp.path().join("shards"), tmp.path().join("out"));
    std::fs::create_dir(&shards).unwrap();
    make_shards(&shards, &reference);
    let e = embedder(2);
    let text = ClipTextEncoder::from_pretrained(fixtures().join("models/demo")).unwrap();
    let j = Job {
        embed_captions: true,
        ..job(&shards, &out, Shard::WHOLE)
    };
    let report = j
        .run(&e, Some(&text), &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(report.rows, 11);
    let files = PartitionFiles::new(&out, Shard::WHOLE);
    let texts = read_npy(&files.text_emb()).unwrap();
    let meta = read_parquet(&files.metadata()).unwrap();
    assert_eq!(texts.rows, meta.len());
    for (row, v) in meta.iter().zip(texts.data.chunks(32)) {
        let caption = row.caption.as_deref().unwrap();
        let want = &reference
            .labels
            .iter()
            .find(|(l, _)| l == caption)
            .unwrap()
            .1;
        let worst = v
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-3, "{caption}: off by {worst}");
    }
    let without =
        job(&shards, &out, Shard::WHOLE).run(&e, Some(&text), &mut |_| ControlFlow::Continue(()));
    let refused = without.unwrap_err().to_string();
    assert!(
        refused.contains("embed_captions: true (output) vs false"),
        "{refused}"
    );
}

#[test]
fn two_runs_of_one_partition_at_once_leave_the_files_of_one() {
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    make_shards(&shards, &reference);
    let e = embedder(1);
    let whole = tmp.path().join("whole");
    go(&job(&shards, &whole, Shard::WHOLE), &e).unwrap();

    let out = tmp.path().join("out");
    let j = job(&shards, &out, Shard::WHOLE);
    // Each waits at its first committed batch for the other: both are mid-partition at once
    // (one on the shared journal, the other on a private one).
    let barrier = std::sync::Barrier::new(2);
    let run = || {
        let mut first = true;
        j.run(&e, None, &mut |ev| {
            if matches!(ev, Event::Batch { .. }) && std::mem::take(&mut first) {
                barrier.wait();
            }
            ControlFlow::Continue(())
        })
    };
    let reports = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        [a.join().unwrap(), b.join().unwrap()]
    });
    for r in &reports {
        let r = r.as_ref().unwrap();
        assert_eq!((r.rows, r.already_done), (11, false), "{r:?}");
    }
    // Whichever finished last, the files are whole and those of one run; no journal,
    // lock or temporary file is left.
    assert!(tree(&out) == tree(&whole), "two writers left other bytes");
}
