"""Writes the hostile inputs of fuzz/regressions/ (stdlib only): `python3 make_regressions.py`.

Each file is an input that once found a bug or that probes a limit: the open_clip
`quick_gelu` + `act_kwargs` config the seed replay found (refused with a misleading message
before), headers that lie about sizes, configs past the caps, decompression bombs, truncated
images. The outcome each must give (error kind and message) is listed in
crates/clip-vision/tests/fuzz_seeds.rs; a crash reproducer found by a fuzzer goes here too.
"""
import json
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parent / "seeds"


def out(target, name, data):
    d = HERE / target
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- config_parsing: `open_clip-*` through from_open_clip_config, `config-*` through
# from_hf_config, `preprocessor_config-*` through PreprocessorConfig, `vision_config-*`
# through ClipVisionConfig::from_json_str (the prefixes the seeds use).
def oc(vision, **model):
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 48,
                                           "head_width": 12, "patch_size": 8, **vision}}
    cfg.update(model)
    return json.dumps({"model_cfg": cfg}, indent=1)


T = "config_parsing"
out(T, "open_clip-quick_gelu-act_kwargs.json", oc({"act_kwargs": {"approximate": "tanh"}}, quick_gelu=True))
out(T, "open_clip-act_kwargs-none.json", oc({"act_kwargs": {"approximate": "none"}}))
out(T, "open_clip-resnet-layers.json", oc({"layers": [3, 4, 6, 3]}))
out(T, "open_clip-width-2pow40.json", oc({"width": 1 << 40, "head_width": 64}))
hf = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
      "image_size": 32, "patch_size": 8, "hidden_act": "gelu", "projection_dim": 8}
out(T, "config-heads-do-not-divide.json", json.dumps({**hf, "num_attention_heads": 5}))
out(T, "config-swish.json", json.dumps({**hf, "hidden_act": "swish"}))
out(T, "config-tokens-past-limit.json", json.dumps({**hf, "image_size": 65536, "patch_size": 1}))
out(T, "preprocessor_config-zero-crop.json", json.dumps({"crop_size": 0, "size": 32}))
out(T, "preprocessor_config-zero-std.json", json.dumps({"image_std": [0.5, 0, 0.5]}))
out(T, "vision_config-truncated.json", '{"hidden_size": 64, "num_attention_heads"')


# --- safetensors_reader: headers that lie.
def st(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


T = "safetensors_reader"
out(T, "header-past-end.safetensors", struct.pack("<Q", 1000) + b"{}")
out(T, "header-length-2pow63.safetensors", struct.pack("<Q", 1 << 63) + b"{}")
out(T, "too-short.safetensors", b"\x01\x02\x03")
w = lambda shape, begin, end: {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}
out(T, "shape-overflows.safetensors", st({"w": w([1 << 32, 1 << 32, 4096], 0, 16)}, bytes(16)))
out(T, "claims-4tb.safetensors", st({"w": w([10**12], 0, 4 * 10**12)}, bytes(16)))
out(T, "overlapping.safetensors", st({"a": w([4], 0, 16), "b": w([4], 8, 24)}, bytes(24)))
out(T, "duplicate-names.safetensors",
    st(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
       b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', bytes(4)))
out(T, "trailing-bytes.safetensors", st({"w": w([2], 0, 8)}, bytes(12)))


# --- decode_preprocess: bombs and broken files.
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


T = "decode_preprocess"
out(T, "bomb-100000x100000.png", png(100000, 100000))
out(T, "no-pixels-0x7.png", png(0, 7))
jpeg = (SEEDS / "decode_preprocess" / "rgb.jpg").read_bytes()
sof = jpeg.index(b"\xff\xc0")
bomb = bytearray(jpeg)
bomb[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
out(T, "bomb-65000x65000.jpg", bytes(bomb))
sos = jpeg.index(b"\xff\xda")
out(T, "cut-before-scan.jpg", jpeg[:sos])
out(T, "truncated-scan.jpg", jpeg[: sos + (len(jpeg) - sos) // 2])
out(T, "empty.bin", b"")
out(T, "text.txt", "hello, world: not an image\n")
out(T, "qoi.qoi", b"qoif\0\0\0\x01\0\0\0\x01\x04\0")
