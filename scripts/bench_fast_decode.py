#!/usr/bin/env python3
"""Decode + preprocess of a 12-megapixel JPEG, one thread: clip-vision exact and with
`--fast-decode`, against PIL with and without `Image.draft`, in the same run.

    python3 scripts/bench_fast_decode.py [ROUNDS]

Writes a 4000×3000 photo-like JPEG (smooth waves plus noise, quality 90, 4:2:0, as
benches/preprocess.rs makes them) to a temporary directory, runs
`cargo run --release -p vit-benches --example decode_time` on it, and times on the same file:

- PIL exact: `Image.open(p).convert("RGB")`, then resize (shortest edge 224, bicubic,
  transformers' long side) and center crop with PIL, as `CLIPImageProcessorPil` does;
- PIL draft: the same after `im.draft("RGB", (224, 224))`;
- each also through `CLIPImageProcessorPil()` itself (rescale and normalise included).

Prints one JSON object: medians in ms, the fast-vs-exact level distances (ours and PIL's)
and the `lscpu` model name. Same pinned environment as make_image_fixtures.py.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import CLIPImageProcessorPil  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def photo_like(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(7)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    u /= width
    v /= height
    chans = []
    for c in range(3):
        wave = np.sin(u * (7.0 + c) + v * 5.0) * np.cos(v * 11.0 - u * 3.0) * 80.0 + 128.0
        noise = (rng.random((height, width), dtype=np.float32) - 0.5) * 24.0
        chans.append(np.clip(wave + noise, 0, 255).astype(np.uint8))
    return Image.fromarray(np.stack(chans, axis=-1), "RGB")


def clip_resize_crop(im: Image.Image, size: int = 224) -> np.ndarray:
    """Shortest edge → size (long side truncated, as transformers), bicubic, center crop."""
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    out = im.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(out.crop((left, top, left + size, top + size)))


def median_ms(rounds: int, f) -> float:
    f()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="clip-vision-fast-decode-"))
    path = tmp / "photo_4000x3000.jpg"
    photo_like(4000, 3000).save(path, "JPEG", quality=90)

    def pil_open(draft: bool) -> Image.Image:
        im = Image.open(path)
        if draft:
            im.draft("RGB", (224, 224))
        return im.convert("RGB")

    processor = CLIPImageProcessorPil()
    pil = {}
    for draft in (False, True):
        key = "draft" if draft else "exact"
        pil[f"pil_{key}_resize_crop_ms"] = median_ms(
            rounds, lambda: clip_resize_crop(pil_open(draft))
        )
        pil[f"pil_{key}_processor_ms"] = median_ms(
            rounds, lambda: processor(pil_open(draft), return_tensors="np")
        )
    a = clip_resize_crop(pil_open(False)).astype(np.int16)
    b = clip_resize_crop(pil_open(True)).astype(np.int16)
    pil["pil_draft_vs_exact_mean_abs"] = round(float(np.abs(a - b).mean()), 4)
    pil["pil_draft_vs_exact_max_abs"] = int(np.abs(a - b).max())

    ours = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "vit-benches", "--example", "decode_time",
         "--", str(path), str(rounds)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result = {f"ours_{k}": v for k, v in json.loads(ours.stdout).items()}
    result.update(pil)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    result["cpu"] = next(
        (line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")),
        "unknown",
    )
    result["file"] = "4000×3000, quality 90, 4:2:0, %d bytes" % path.stat().st_size
    path.unlink()
    tmp.rmdir()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
