"""Fixtures of the clip_vision tests: the committed demo model and images, a reader of the
reference .safetensors files (8-byte little-endian header length, JSON header, raw
little-endian data), so the tests need neither torch nor the safetensors package, and
webdataset shards made from the images."""

import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "fixtures" / "models" / "demo"
IMAGES = ROOT / "fixtures" / "images"

DTYPES = {"F32": "<f4", "U8": "u1", "I64": "<i8"}


def read_safetensors(path):
    """Every tensor of a .safetensors file, by name, as a numpy array."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def normalized(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture(scope="session")
def reference():
    """(reference.json, tensors) of the demo model: transformers' outputs on fixtures/images."""
    meta = json.loads((DEMO / "reference.json").read_text())
    return meta, read_safetensors(DEMO / "reference.safetensors")


@pytest.fixture(scope="session")
def image_reference():
    """(reference.json, tensors) of fixtures/images: CLIPImageProcessor's levels and tables."""
    meta = json.loads((IMAGES / "reference.json").read_text())
    return meta, read_safetensors(IMAGES / "reference.safetensors")


@pytest.fixture(scope="session")
def image_paths(reference):
    return [IMAGES / name for name in reference[0]["images"]]


@pytest.fixture(scope="session")
def embedder():
    import clip_vision

    return clip_vision.ImageEmbedder.from_pretrained(str(DEMO))


# The sample that is a corrupt JPEG (shard 1): skipped, every other sample has a row.
CORRUPT_KEY = "000010099"


def _member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_shards(dir, meta):
    """dir/{00000..00002}.tar as img2dataset writes them: the 11 reference images that are
    jpg / png / webp, 4 a shard, each as key.ext + key.txt (a label as caption) + key.json;
    shard 1 also holds a corrupt JPEG (CORRUPT_KEY). Returns {partition: [(key, image
    name, caption)]} of the good samples, in shard order."""
    images = [n for n in meta["images"] if not n.endswith(".gif")]
    planted = {}
    for shard in range(3):
        rows = []
        with tarfile.open(Path(dir) / f"{shard:05}.tar", "w", format=tarfile.GNU_FORMAT) as tar:
            for index, name in enumerate(images[shard * 4 : shard * 4 + 4]):
                key = f"{shard:05}{index:04}"
                caption = meta["labels"][(shard * 4 + index) % len(meta["labels"])]
                _member(tar, f"{key}.{name.rsplit('.', 1)[1]}", (IMAGES / name).read_bytes())
                _member(tar, f"{key}.txt", caption.encode())
                record = {"url": f"https://example.invalid/{name}", "key": key, "caption": caption}
                _member(tar, f"{key}.json", json.dumps(record).encode())
                rows.append((key, name, caption))
            if shard == 1:
                _member(tar, f"{CORRUPT_KEY}.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
                _member(tar, f"{CORRUPT_KEY}.txt", b"a dog")
        planted[shard] = rows
    return planted


@pytest.fixture(scope="session")
def shards(tmp_path_factory, reference):
    """(the brace pattern of the three shards, make_shards' planted samples)."""
    dir = tmp_path_factory.mktemp("shards")
    planted = make_shards(dir, reference[0])
    return str(dir / "{00000..00002}.tar"), planted


def files_of(dir):
    """{relative path: bytes} of every file under dir."""
    dir = Path(dir)
    return {str(p.relative_to(dir)): p.read_bytes() for p in sorted(dir.rglob("*")) if p.is_file()}
