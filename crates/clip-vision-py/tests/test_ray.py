"""clip_vision.ray.embed_shards on a local Ray instance: three shards as three tasks, their
reports, and every file byte-identical to what `clip-vision embed --shard i/3` writes
(the CLI binary named by CLIP_VISION_BIN, which `cargo xtask py-test` sets); a rerun finds
every partition done, and a job made otherwise fails naming each partition."""

import os
import subprocess
import sys
import time

import pytest

import clip_vision
from conftest import CORRUPT_KEY, DEMO, files_of

ray = pytest.importorskip("ray")

import clip_vision.ray  # noqa: E402  (after the skip: needs nothing of ray at import)


@pytest.fixture(scope="module")
def local_ray(request, tmp_path_factory):
    """A local Ray instance of 2 CPUs, its session files (logs, sockets) in a temporary
    directory (short: Ray's socket paths must stay under 108 bytes), shut down at the end."""
    temp = tmp_path_factory.mktemp("ray")
    started = time.perf_counter()
    ray.init(
        num_cpus=2,
        object_store_memory=78_643_200,
        include_dashboard=False,
        _temp_dir=str(temp),
        log_to_driver=False,
    )
    request.addfinalizer(ray.shutdown)
    sys.stderr.write(f"\nray.init: {time.perf_counter() - started:.1f} s\n")


def test_import_clip_vision_does_not_import_ray():
    code = "import sys, clip_vision, clip_vision.ray; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def ray_job(local_ray, shards, tmp_path_factory):
    """(output directory, reports, {file: bytes}) of embed_shards on the three shards."""
    pattern, _ = shards
    out = tmp_path_factory.mktemp("job") / "ray"
    started = time.perf_counter()
    reports = clip_vision.ray.embed_shards(DEMO, [pattern], out, num_shards=3, num_cpus=1)
    sys.stderr.write(f"embed_shards, 3 tasks: {time.perf_counter() - started:.1f} s\n")
    return out, reports, files_of(out)


def test_embed_shards_reports_in_partition_order(ray_job, shards):
    _, planted = shards
    out, reports, files = ray_job
    assert [r["shard"] for r in reports] == ["0/3", "1/3", "2/3"]
    assert [r["units"] for r in reports] == [[0], [1], [2]]
    assert [r["rows"] for r in reports] == [len(planted[i]) for i in range(3)] == [4, 4, 3]
    assert [[name for name, _ in r["skipped_items"]] for r in reports] == [[], [CORRUPT_KEY], []]
    assert sorted(files) == sorted(
        f"{kind}/{kind}_{i}.{ext}"
        for i in range(3)
        for kind, ext in [("img_emb", "npy"), ("metadata", "parquet")]
    ) + [f"partitions/partition_{i}.done.json" for i in range(3)]


def test_a_rerun_finds_every_partition_done_and_other_settings_fail_by_partition(
    ray_job, shards
):
    pattern, _ = shards
    out, _, files = ray_job
    # num_shards defaults to the number of units.
    again = clip_vision.ray.embed_shards(DEMO, [pattern], out, num_cpus=1)
    assert [(r["shard"], r["already_done"], r["rows"]) for r in again] == [
        ("0/3", True, 4),
        ("1/3", True, 4),
        ("2/3", True, 3),
    ]
    with pytest.raises(clip_vision.ClipVisionError) as raised:
        clip_vision.ray.embed_shards(DEMO, [pattern], out, num_cpus=1, dtype="float32")
    message = str(raised.value)
    assert f"3 of 3 partitions of {out} failed" in message
    for i in range(3):
        assert f"partition {i}/3: ClipVisionError: partition {i}/3 of {out}: " in message
    assert message.count("dtype: \"float16\" (output) vs \"float32\" (this run)") == 3, message
    assert files_of(out) == files


@pytest.mark.skipif(
    not os.environ.get("CLIP_VISION_BIN"),
    reason="CLIP_VISION_BIN (the clip-vision binary) is not set; cargo xtask py-test sets it",
)
def test_the_cli_writes_the_same_bytes(ray_job, shards, tmp_path):
    pattern, _ = shards
    _, _, files = ray_job
    for i in range(3):
        args = [os.environ["CLIP_VISION_BIN"], "embed", "--model", str(DEMO)]
        args += ["--output-dir", str(tmp_path), "--shard", f"{i}/3", "--threads", "1"]
        args += ["--batch-size", "32", pattern]
        done = subprocess.run(args, capture_output=True, text=True)
        # Exit code 3: inputs were skipped (the corrupt JPEG of partition 1).
        assert done.returncode == (3 if i == 1 else 0), done.stderr
    assert files_of(tmp_path) == files


def test_bad_arguments_raise_before_any_task():
    with pytest.raises(ValueError, match="single str"):
        clip_vision.ray.embed_shards(DEMO, "a.tar", "out")
    with pytest.raises(ValueError, match="num_shards"):
        clip_vision.ray.embed_shards(DEMO, ["a.tar"], "out", num_shards=0)
