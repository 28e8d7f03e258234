"""Writes the safetensors_reader seeds (stdlib only): `python3 make_safetensors_seeds.py`.

Run from fuzz/seeds/; reads the tiny-gelu-tanh fixture for its key layout.
"""
import json
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent / "safetensors_reader"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/models/tiny-gelu-tanh/model.safetensors"


def write(name, tensors, metadata=None):
    """A file of `(name, dtype, shape, raw bytes)` tensors, laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for n, dt, shape, raw in tensors:
        header[n] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # writers pad the header to 8 bytes
    (OUT / name).write_bytes(struct.pack("<Q", len(h)) + h + data)


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def f16(*v):
    return struct.pack("<%de" % len(v), *v)


def bf16(*v):
    return b"".join(struct.pack("<f", x)[2:] for x in v)


OUT.mkdir(exist_ok=True)
write("f32.safetensors", [("w", "F32", [2, 3], f32(1, -2, 3.5, 0, float("inf"), 1e-30))])
write(
    "f16_bf16.safetensors",
    [("a.weight", "F16", [2, 2], f16(1, -0.5, 65504, 6e-8)), ("b.bias", "BF16", [3], bf16(1, -3.0, 1e38))],
    metadata={"format": "pt"},
)
write("empty.safetensors", [])
write("zero_elements.safetensors", [("z", "F32", [0, 4], b""), ("s", "F32", [], f32(7))])
write(
    "unsupported_dtype.safetensors",
    [("ids", "I64", [2], struct.pack("<2q", 1, -1)), ("u", "U8", [3], b"\x01\x02\x03"), ("x", "F32", [1], f32(2))],
)

# The fixture's header (HF names, one layer) with every dimension cut to 2 at most, so the
# seed keeps a real checkpoint's key layout in a few kB.
raw = FIXTURE.read_bytes()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8 : 8 + n])
meta = hdr.pop("__metadata__", None)
tensors = []
for i, (name, info) in enumerate(sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0])):
    shape = [min(d, 2) for d in info["shape"]]
    count = 1
    for d in shape:
        count *= d
    tensors.append((name, "F32", shape, f32(*[(i + k) * 0.25 for k in range(count)])))
write("tiny_gelu_tanh_shrunk.safetensors", tensors, metadata=meta)
