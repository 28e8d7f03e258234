"""ImageEmbedder.embed_partition on three webdataset shards (one with a corrupt JPEG): the
files of clip-retrieval's layout, the rows against transformers' image_embeds and the
captions' text_embeds (within float16 rounding), the skipped sample, byte-identical reruns,
resuming a done partition, and the shard specs it refuses."""

import json
import signal

import numpy as np
import pytest

import clip_vision
from clip_vision._clip_vision import count_units
from conftest import CORRUPT_KEY, DEMO, files_of, normalized

# float16 keeps 11 bits of mantissa: |x| <= 1 rounds by at most 2**-11 ≈ 4.9e-4.
F16_TOL = 1e-3


@pytest.fixture(scope="module")
def one_thread():
    return clip_vision.ImageEmbedder.from_pretrained(DEMO, threads=1, batch_size=32)


def expected_rows(reference, planted, partition):
    names = reference[0]["images"]
    embeds = normalized(reference[1]["image_embeds"])
    return embeds[[names.index(name) for _, name, _ in planted[partition]]]


def test_three_partitions_of_shards_match_transformers(one_thread, reference, shards, tmp_path):
    pattern, planted = shards
    assert count_units([pattern]) == 3
    out = tmp_path / "out"
    reports = [
        one_thread.embed_partition([pattern], out, shard=spec)
        for spec in ["0/3", (1, 3), "2/3"]
    ]
    files = files_of(out)
    assert sorted(files) == sorted(
        [f"img_emb/img_emb_{i}.npy" for i in range(3)]
        + [f"metadata/metadata_{i}.parquet" for i in range(3)]
        + [f"partitions/partition_{i}.done.json" for i in range(3)]
    )
    for i, report in enumerate(reports):
        bad = [(CORRUPT_KEY,)] if i == 1 else []
        assert report["shard"] == f"{i}/3"
        assert report["units"] == [i]
        assert report["rows"] == len(planted[i]) == (3 if i == 2 else 4)
        assert report["skipped"] == len(bad)
        assert [name for name, _ in report["skipped_items"]] == [k for (k,) in bad]
        assert (report["resumed_rows"], report["already_done"]) == (0, False)
        rows = np.load(out / f"img_emb/img_emb_{i}.npy")
        assert rows.dtype == np.float16 and rows.shape == (report["rows"], 32)
        assert np.abs(rows.astype(np.float64) - expected_rows(reference, planted, i)).max() <= F16_TOL
        assert files[f"metadata/metadata_{i}.parquet"][:4] == b"PAR1"
        done = json.loads(files[f"partitions/partition_{i}.done.json"])
        assert (done["partition"], done["rows"], done["skipped"]) == (i, report["rows"], len(bad))
        assert done["record"]["activation"] is None and done["record"]["dtype"] == "float16"
    why = reports[1]["skipped_items"][0][1]
    assert "decode" in why or "jpeg" in why.lower(), why

    # The same job into another directory: the same bytes.
    again = tmp_path / "again"
    for spec in [(0, 3), (1, 3), (2, 3)]:
        one_thread.embed_partition([pattern], again, shard=spec)
    assert files_of(again) == files

    # A partition already done is not redone.
    report = one_thread.embed_partition([pattern], out, shard="1/3")
    assert report["already_done"] and report["rows"] == 4 and report["skipped"] == 1
    assert files_of(out) == files


def test_the_whole_job_in_float32_with_captions(reference, shards, tmp_path):
    meta, tensors = reference
    pattern, planted = shards
    embedder = clip_vision.ImageEmbedder.from_pretrained(DEMO, batch_size=5)
    report = embedder.embed_partition(
        [pattern], tmp_path, dtype="float32", embed_captions=True
    )
    assert (report["shard"], report["units"], report["rows"]) == ("0/1", [0, 1, 2], 11)
    assert [name for name, _ in report["skipped_items"]] == [CORRUPT_KEY]
    img = np.load(tmp_path / "img_emb/img_emb_0.npy")
    expected = np.concatenate([expected_rows(reference, planted, i) for i in range(3)])
    assert img.dtype == np.float32 and np.abs(img - expected).max() <= 1e-5
    text = np.load(tmp_path / "text_emb/text_emb_0.npy")
    labels = normalized(tensors["text_embeds.labels"])
    captions = [c for i in range(3) for _, _, c in planted[i]]
    expected = labels[[meta["labels"].index(c) for c in captions]]
    assert text.dtype == np.float32 and np.abs(text - expected).max() <= 1e-5
    done = json.loads((tmp_path / "partitions/partition_0.done.json").read_text())
    assert done["record"]["embed_captions"] and done["record"]["dtype"] == "float32"


def test_image_files_and_the_recorded_activation(image_paths, reference, tmp_path):
    # The demo's config names its activation; the one given is recorded as given.
    embedder = clip_vision.ImageEmbedder.from_pretrained(DEMO, activation="quick_gelu")
    pngs = sorted(str(p) for p in image_paths if p.suffix == ".png")
    assert count_units(pngs, files_per_unit=2) == 2
    report = embedder.embed_partition(pngs, tmp_path, shard=(1, 2), files_per_unit=2)
    assert (report["units"], report["rows"], report["skipped"]) == ([1], 1, 0)
    done = json.loads((tmp_path / "partitions/partition_1.done.json").read_text())
    assert done["record"]["activation"] == "quick_gelu"
    assert done["record"]["inputs"] == "files" and done["record"]["files_per_unit"] == 2
    names = reference[0]["images"]
    row = np.load(tmp_path / "img_emb/img_emb_1.npy").astype(np.float64)
    expected = normalized(reference[1]["image_embeds"])[names.index(pngs[2].rsplit("/", 1)[1])]
    assert np.abs(row[0] - expected).max() <= F16_TOL
    # Another setting into the same directory is refused, naming what differs.
    with pytest.raises(clip_vision.ClipVisionError, match="dtype"):
        embedder.embed_partition(pngs, tmp_path, shard=(0, 2), files_per_unit=2, dtype="float32")


@pytest.mark.parametrize(
    "spec, says",
    [
        ("3/3", "3/3.*below the count"),
        ((0, 0), "0/0.*at least 1"),
        ("1/x", "1/x.*not a whole number"),
        ((-1, 2), r"-1/2.*not a whole number"),
        ("1", "expected i/n"),
        ((1, 2, 3), "expected None, a tuple"),
        (1.5, "expected None, a tuple"),
    ],
)
def test_bad_shard_specs_raise_naming_them(one_thread, shards, tmp_path, spec, says):
    with pytest.raises(ValueError, match=says):
        one_thread.embed_partition([shards[0]], tmp_path, shard=spec)
    assert not any(tmp_path.iterdir())


def test_bad_arguments_raise(one_thread, shards, tmp_path):
    pattern = shards[0]
    with pytest.raises(ValueError, match="dtype"):
        one_thread.embed_partition([pattern], tmp_path, dtype="f16")
    with pytest.raises(ValueError, match="files_per_unit"):
        one_thread.embed_partition([pattern], tmp_path, files_per_unit=0)
    with pytest.raises(ValueError, match="single str"):
        one_thread.embed_partition(pattern, tmp_path)
    with pytest.raises(ValueError, match=r"inputs\[1\]"):
        one_thread.embed_partition([pattern, 3], tmp_path)
    with pytest.raises(clip_vision.ClipVisionError, match="no inputs: give image files"):
        one_thread.embed_partition([], tmp_path)
    with pytest.raises(clip_vision.ClipVisionError, match=r"a\.tar is a tar shard and .*config\.json is not"):
        one_thread.embed_partition(["a.tar", str(DEMO / "config.json")], tmp_path)
    with pytest.raises(clip_vision.ClipVisionError, match=r"brace pattern .*s/\{00000\.\.\}\.tar"):
        count_units(["s/{00000..}.tar"])


def test_an_interrupted_partition_keeps_its_rows_and_resumes(image_paths, tmp_path):
    """A KeyboardInterrupt raised between batches (by a SIGALRM handler, once the journal
    holds a committed batch) stops the run; the next call resumes and writes the bytes an
    uninterrupted run writes."""
    images = tmp_path / "images"
    images.mkdir()
    for copy in range(4):
        for p in image_paths:
            (images / f"{copy}_{p.name}").write_bytes(p.read_bytes())
    embedder = clip_vision.ImageEmbedder.from_pretrained(DEMO, threads=1, batch_size=2)
    out = tmp_path / "out"
    journal = out / "partitions" / "partition_0.journal.index.jsonl"
    calls = []

    def interrupt(signum, frame):
        calls.append(signum)
        # The header line and at least one item line: a batch is committed. Raised once.
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 2:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        with pytest.raises(KeyboardInterrupt):
            embedder.embed_partition([images], out)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls and not (out / "partitions" / "partition_0.done.json").exists()
    committed = journal.read_bytes().count(b"\n") - 1
    assert 1 <= committed < 48
    report = embedder.embed_partition([images], out)
    assert report["resumed_rows"] == committed and report["rows"] == 48
    clean = tmp_path / "clean"
    assert embedder.embed_partition([images], clean)["resumed_rows"] == 0
    assert files_of(out) == files_of(clean)
