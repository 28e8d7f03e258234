"""Fixtures of the clip_vision tests: the committed demo model and images, and a reader of
the reference .safetensors files (8-byte little-endian header length, JSON header, raw
little-endian data), so the tests need neither torch nor the safetensors package."""

import json
import struct
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
