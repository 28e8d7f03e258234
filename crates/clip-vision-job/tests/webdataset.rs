//! The webdataset shard reader against tars built here: img2dataset's layout, webdataset's
//! grouping rules, every hostile case of issue 11 (unsafe names, links and devices, a 10 GB
//! claim, truncation, bad captions and JSON, an empty archive), no panic on damaged bytes,
//! and image bytes that embed exactly as the same files do.

use clip_vision_job::webdataset::{Limits, Sample, ShardReader};
use clip_vision_job::{JobError, MemberProblem};
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("images").join(name)).unwrap()
}

/// A tar of `(name, bytes)` regular files, as the `tar` crate's Builder writes it.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        append(&mut b, name, tar::EntryType::Regular, data);
    }
    b.into_inner().unwrap()
}

/// Appends a member with its name set raw in the header (the Builder's `append_data`
/// refuses `..` and absolute names, which a hostile writer need not).
fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn read_all(bytes: &[u8]) -> Vec<Result<Sample, JobError>> {
    ShardReader::new("test.tar", bytes).samples().collect()
}

fn keys(items: &[Result<Sample, JobError>]) -> Vec<String> {
    items
        .iter()
        .map(|r| match r {
            Ok(s) => s.key.clone(),
            Err(e) => format!("ERR {e}"),
        })
        .collect()
}

#[test]
fn img2dataset_samples_group_by_key() {
    let jpg = image("chelsea.jpg");
    let png = image("hubble_alpha.png");
    let bytes = tar_of(&[
        ("000000000.jpg", &jpg),
        ("000000000.txt", b"a cat"),
        (
            "000000000.json",
            br#"{"url": "http://x/cat.jpg", "width": 451}"#,
        ),
        ("000000001.png", &png),
        ("000000001.jpg", &jpg),
        ("000000001.TXT", "caf\u{e9}".as_bytes()),
        ("000000001.parquet", b"not read"),
        ("000000002.txt", b"no image"),
    ]);
    let items = read_all(&bytes);
    assert_eq!(items.len(), 3, "{:?}", keys(&items));
    let s0 = items[0].as_ref().unwrap();
    assert_eq!(s0.key, "000000000");
    assert_eq!(s0.image, Some(("jpg", jpg.clone())));
    assert_eq!(s0.caption.as_deref(), Some("a cat"));
    let json = s0.json.as_ref().unwrap();
    assert_eq!(json["url"], "http://x/cat.jpg");
    assert_eq!(json["width"], 451);
    // jpg outranks png whatever the member order; the png and parquet are recorded.
    let s1 = items[1].as_ref().unwrap();
    assert_eq!(s1.image, Some(("jpg", jpg)));
    assert_eq!(s1.caption.as_deref(), Some("café"));
    assert_eq!(s1.other, ["png", "parquet"]);
    assert_eq!(s1.json, None);
    let s2 = items[2].as_ref().unwrap();
    assert_eq!((s2.key.as_str(), s2.image.is_none()), ("000000002", true));
}

#[test]
fn a_key_that_comes_back_later_is_a_new_sample_and_a_repeat_is_refused() {
    let bytes = tar_of(&[
        ("d.x/a.b.txt", b"1"),
        ("d.x/b.txt", b"2"),
        ("d.x/a.b.txt", b"3"),
        ("d.x/a.txt", b"4"),
        ("d.x/a.txt", b"5"),
        ("noext", b"ignored, as webdataset ignores it"),
        ("__index__", b"meta, ignored"),
    ]);
    let items = read_all(&bytes);
    let got = keys(&items);
    // The third sample (`a.b.txt`, `a.txt`, `a.txt`) repeats `.txt`.
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(&got[..2], ["d.x/a", "d.x/b"]);
    // `a.b.txt` has extension `b.txt`: not a caption.
    assert_eq!(items[0].as_ref().unwrap().other, ["b.txt"]);
    assert_eq!(items[0].as_ref().unwrap().caption, None);
    match &items[2] {
        Err(JobError::Sample {
            key,
            member,
            problem: MemberProblem::DuplicateExtension { ext },
            ..
        }) => assert_eq!(
            (key.as_str(), member.as_str(), ext.as_str()),
            ("d.x/a", "d.x/a.txt", "txt")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsafe_names_are_refused_naming_them() {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, "../../x.jpg", tar::EntryType::Regular, b"jpg?");
    append(&mut b, "/etc/x", tar::EntryType::Regular, b"root");
    append(&mut b, "/etc/y.txt", tar::EntryType::Regular, b"root");
    append(&mut b, "ok.txt", tar::EntryType::Regular, b"fine");
    let items = read_all(&b.into_inner().unwrap());
    assert_eq!(items.len(), 4, "{:?}", keys(&items));
    let msg = |i: usize| items[i].as_ref().unwrap_err().to_string();
    assert!(matches!(
        &items[0],
        Err(JobError::Sample { key, problem: MemberProblem::UnsafeName, .. }) if key == "../../x"
    ));
    assert!(
        msg(0).contains("test.tar") && msg(0).contains("\"../../x.jpg\""),
        "{}",
        msg(0)
    );
    // `/etc/x` has no key: its own error.
    assert!(matches!(
        &items[1],
        Err(JobError::Member { member, problem: MemberProblem::UnsafeName, .. }) if member == "/etc/x"
    ));
    assert!(msg(1).contains("absolute"), "{}", msg(1));
    assert!(matches!(&items[2], Err(JobError::Sample { key, .. }) if key == "/etc/y"));
    assert_eq!(items[3].as_ref().unwrap().caption.as_deref(), Some("fine"));
}

#[test]
fn links_devices_fifos_and_directories_are_skipped_never_followed() {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, "dir/", T::Directory, b"");
    append(&mut b, "a.jpg", T::Symlink, b"");
    append(&mut b, "a.txt", T::Regular, b"cap");
    append(&mut b, "b.txt", T::Link, b"");
    append(&mut b, "c.jpg", T::Char, b"");
    append(&mut b, "d.jpg", T::Block, b"");
    append(&mut b, "e.json", T::Fifo, b"");
    append(&mut b, "f.txt", T::Regular, b"good");
    let items = read_all(&b.into_inner().unwrap());
    let kinds: Vec<(String, &str)> = items
        .iter()
        .filter_map(|r| match r {
            Err(JobError::Member {
                member,
                problem: MemberProblem::NotAFile { kind },
                ..
            })
            | Err(JobError::Sample {
                member,
                problem: MemberProblem::NotAFile { kind },
                ..
            }) => Some((member.clone(), *kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("dir/".into(), "directory"),
            ("a.jpg".into(), "symbolic link"),
            ("b.txt".into(), "hard link"),
            ("c.jpg".into(), "character device"),
            ("d.jpg".into(), "block device"),
            ("e.json".into(), "fifo"),
        ]
    );
    // The symlink costs sample `a` (its caption with it); `f` is read.
    assert_eq!(items.len(), 7);
    assert_eq!(items[6].as_ref().unwrap().caption.as_deref(), Some("good"));
}

/// Offset of the size field in a tar header.
const SIZE_FIELD: std::ops::Range<usize> = 124..136;

/// Sets the size field of the header at `at` to `size` (octal, or GNU base-256 past 8 GiB)
/// and fixes the checksum.
fn claim_size(bytes: &mut [u8], at: usize, size: u64) {
    let mut field = [0u8; 12];
    if size < 1 << 33 {
        field.copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        field[0] = 0x80;
        field[4..].copy_from_slice(&size.to_be_bytes());
    }
    bytes[at + SIZE_FIELD.start..at + SIZE_FIELD.end].copy_from_slice(&field);
    bytes[at + 148..at + 156].copy_from_slice(b"        ");
    let sum: u32 = bytes[at..at + 512].iter().map(|&b| u32::from(b)).sum();
    bytes[at + 148..at + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn a_member_claiming_10_gb_in_a_small_file_is_not_allocated() {
    let mut bytes = tar_of(&[
        ("a.txt", b"first"),
        ("b.jpg", b"tiny"),
        ("c.txt", b"never reached"),
    ]);
    // `b.jpg`'s header is the third block (a.txt: header + 1 data block).
    claim_size(&mut bytes, 1024, 10 << 30);
    let items = read_all(&bytes);
    assert_eq!(items.len(), 3, "{:?}", keys(&items));
    assert_eq!(items[0].as_ref().unwrap().key, "a");
    assert!(matches!(
        &items[1],
        Err(JobError::Sample { key, problem: MemberProblem::TooLarge { size, limit, .. }, .. })
            if key == "b" && *size == 10 << 30 && *limit == 64 << 20
    ));
    match &items[2] {
        Err(
            e @ JobError::ShardDamaged {
                offset,
                last_member,
                ..
            },
        ) => {
            assert!(e.ends_shard());
            assert_eq!(*offset, bytes.len() as u64, "the whole small file was read");
            assert_eq!(last_member.as_deref(), Some("b.jpg"));
        }
        other => panic!("{other:?}"),
    }
    // Under the limit but past the end: read up to the end, then the shard error.
    let mut bytes = tar_of(&[("a.txt", b"first"), ("b.txt", b"tiny")]);
    claim_size(&mut bytes, 1024, 900_000);
    let items = read_all(&bytes);
    assert_eq!(items.len(), 2, "{:?}", keys(&items));
    let err = items[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("of the 900000 bytes"), "{err}");
    assert!(err.contains("test.tar") && err.contains("b.txt"), "{err}");
}

#[test]
fn limits_are_per_kind_and_configurable() {
    let bytes = tar_of(&[
        ("a.txt", &[b'x'; 100]),
        ("b.jpg", &[0u8; 100]),
        ("c.txt", b"ok"),
    ]);
    let limits = Limits {
        image_bytes: 99,
        text_bytes: 100,
    };
    let items: Vec<_> = ShardReader::new("t.tar", &bytes[..])
        .with_limits(limits)
        .samples()
        .collect();
    assert_eq!(
        items[0].as_ref().unwrap().caption.as_ref().map(String::len),
        Some(100)
    );
    let err = items[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("claims 100 bytes, over the limit of 99 for .jpg"),
        "{err}"
    );
    assert_eq!(items[2].as_ref().unwrap().key, "c");
}

#[test]
fn a_truncated_tar_yields_what_came_before_then_one_error_with_the_offset() {
    let jpg = image("coffee.jpg");
    let bytes = tar_of(&[
        ("0.jpg", &jpg),
        ("0.txt", b"coffee"),
        ("1.jpg", &jpg),
        ("1.txt", b"coffee again"),
    ]);
    // Cut inside 1.jpg's data.
    let header_1 = 512 + jpg.len().div_ceil(512) * 512 + 1024;
    let cut = header_1 + 512 + 1000;
    let items = read_all(&bytes[..cut]);
    assert_eq!(items.len(), 2, "{:?}", keys(&items));
    assert_eq!(
        items[0].as_ref().unwrap().caption.as_deref(),
        Some("coffee")
    );
    match &items[1] {
        Err(
            e @ JobError::ShardDamaged {
                offset,
                last_member,
                ..
            },
        ) => {
            assert_eq!(*offset, cut as u64);
            assert_eq!(last_member.as_deref(), Some("1.jpg"));
            assert!(e.to_string().contains(&format!("at byte {cut}")), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Cut inside a header: sample 0 was still open (more of its members could have
    // followed), so it is dropped, as webdataset drops it, and the error names its last
    // member.
    let items = read_all(&bytes[..header_1 + 100]);
    assert_eq!(items.len(), 1, "{:?}", keys(&items));
    match &items[0] {
        Err(JobError::ShardDamaged { last_member, .. }) => {
            assert_eq!(last_member.as_deref(), Some("0.txt"));
        }
        other => panic!("{other:?}"),
    }
    // Cut exactly at a member boundary: no end blocks, so not mistaken for the end.
    let items = read_all(&bytes[..header_1]);
    assert_eq!(items.len(), 1, "{:?}", keys(&items));
    let err = items[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("without its end-of-archive blocks"), "{err}");
    assert!(err.contains(&format!("at byte {header_1}")), "{err}");
}

#[test]
fn a_bad_caption_or_json_costs_only_its_sample() {
    let bytes = tar_of(&[
        ("a.txt", b"caf\xe9"),
        ("b.json", b"[1, 2]"),
        ("c.json", b"{\"unterminated\": "),
        ("d.json", b"\"a string\""),
        ("e.txt", b"fine"),
        ("e.json", b"{}"),
    ]);
    let items = read_all(&bytes);
    assert_eq!(items.len(), 5, "{:?}", keys(&items));
    let problem = |i: usize| match &items[i] {
        Err(JobError::Sample { problem, .. }) => problem.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(problem(0), MemberProblem::CaptionNotUtf8 { valid_up_to: 3 });
    assert_eq!(
        problem(1),
        MemberProblem::JsonNotObject { found: "an array" }
    );
    assert!(matches!(problem(2), MemberProblem::JsonInvalid { .. }));
    assert_eq!(
        problem(3),
        MemberProblem::JsonNotObject { found: "a string" }
    );
    let msg = items[1].as_ref().unwrap_err().to_string();
    assert_eq!(
        msg,
        "test.tar: sample \"b\": member \"b.json\" at byte 1024: JSON is an array, not an object"
    );
    let e = items[4].as_ref().unwrap();
    assert_eq!(
        (e.caption.as_deref(), e.json.as_ref().map(|m| m.len())),
        (Some("fine"), Some(0))
    );
}

#[test]
fn an_empty_tar_has_no_samples_and_an_empty_file_is_refused() {
    assert!(read_all(&tar_of(&[])).is_empty());
    let items = read_all(&[]);
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].as_ref().unwrap_err().to_string(),
        "test.tar: empty file, not a tar archive"
    );
    let err = ShardReader::open("/nonexistent/shard.tar").err().unwrap();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/shard.tar: cannot open shard"),
        "{err}"
    );
}

#[test]
fn long_names_through_pax_or_gnu_headers_are_keys_too() {
    let long = format!("{}/000000007.jpg", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    b.append_data(&mut h, &long, &b"abcd"[..]).unwrap();
    let items = read_all(&b.into_inner().unwrap());
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].as_ref().unwrap().key,
        long.trim_end_matches(".jpg")
    );
}

#[test]
fn no_panic_on_any_truncation_or_bit_flip() {
    let bytes = tar_of(&[
        ("0.jpg", b"\xff\xd8 not a real jpeg"),
        ("0.txt", b"caption"),
        ("0.json", br#"{"k": 1}"#),
        ("1.png", b"\x89PNG"),
        ("1.txt", b"two"),
    ]);
    let good = read_all(&bytes).iter().filter(|r| r.is_ok()).count();
    assert_eq!(good, 2);
    let mut runs = 0;
    for cut in 0..bytes.len() {
        let items = read_all(&bytes[..cut]);
        // Damage ends the shard: at most one shard error, and it is the last item.
        let ends = items
            .iter()
            .filter(|r| r.as_ref().is_err_and(JobError::ends_shard))
            .count();
        assert!(ends <= 1, "cut {cut}");
        if ends == 1 {
            assert!(items
                .last()
                .unwrap()
                .as_ref()
                .is_err_and(JobError::ends_shard));
        }
        runs += 1;
    }
    // Every bit of the headers and the first data blocks, then a stride over the rest.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..bytes.len() * 8 {
        let bit = if i < 4096 * 8 {
            i
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % (bytes.len() as u64 * 8)) as usize
        };
        if i >= 4096 * 8 && i % 8 != 0 {
            continue;
        }
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let _ = read_all(&flipped);
        runs += 1;
    }
    assert!(runs > bytes.len() * 2, "{runs}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any bytes, or a good tar with random bytes overwritten, read to the end without
        /// panicking, and damage is reported at most once, last.
        #[test]
        fn arbitrary_damage_never_panics(
            at in 0usize..4096,
            patch in proptest::collection::vec(any::<u8>(), 1..64),
            cut in 0usize..5000,
        ) {
            let mut bytes = tar_of(&[("a.txt", b"x"), ("a.json", b"{}"), ("b.jpg", &[7u8; 700])]);
            for (i, p) in patch.iter().enumerate() {
                if let Some(b) = bytes.get_mut(at + i) {
                    *b = *p;
                }
            }
            bytes.truncate(cut.min(bytes.len()));
            let items = read_all(&bytes);
            let ends = items.iter().filter(|r| r.as_ref().is_err_and(JobError::ends_shard)).count();
            prop_assert!(ends <= 1);
            let _ = read_all(&patch);
        }
    }
}

#[test]
fn a_shard_is_walked_once() {
    let bytes = tar_of(&[("a.txt", b"x")]);
    let mut reader = ShardReader::new("once.tar", &bytes[..]);
    assert_eq!(reader.samples().filter(Result::is_ok).count(), 1);
    let again: Vec<_> = reader.samples().collect();
    assert_eq!(again.len(), 1);
    assert!(again[0].as_ref().is_err_and(JobError::ends_shard));
}

#[test]
fn a_reader_can_move_to_a_worker_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.tar");
    std::fs::write(&path, tar_of(&[("k.txt", b"moved")])).unwrap();
    let reader = ShardReader::open(&path).unwrap();
    assert_send(&reader);
    let captions = std::thread::spawn(move || {
        let mut reader = reader;
        let c: Vec<_> = reader.samples().map(|s| s.unwrap().caption).collect();
        c
    })
    .join()
    .unwrap();
    assert_eq!(captions, [Some("moved".to_owned())]);
}
