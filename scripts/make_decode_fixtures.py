#!/usr/bin/env python3
"""Make the fixtures of clip-preprocess's two opt-in decoding options from PIL itself.

    python3 scripts/make_decode_fixtures.py     # rewrite fixtures/exif/, fixtures/images/fast_decode.json

Same pinned environment as make_image_fixtures.py (scripts/requirements.txt).

fixtures/exif/ (`--exif-transpose`, PIL's `ImageOps.exif_transpose`):
    orientation_<n>.jpg   n = 1..8: one 24×16 colour pattern, the same JPEG data each time,
                          with EXIF orientation n (IFD0 tag 0x0112, SHORT)
    xmp_orientation_6.jpg the same pattern, orientation 6 only in an XMP packet
                          (`tiff:Orientation="6"`, which PIL's getexif falls back to)
    orientation_6.png     the pattern as PNG with an eXIf chunk of orientation 6
    <name>.transposed.png `ImageOps.exif_transpose(Image.open(<name>))` as RGB, lossless

fixtures/images/fast_decode.json (`--fast-decode`, PIL's `Image.draft`): per fixture JPEG,
the DCT scale PIL's `draft("RGB", (224, 224))` picks, the decoded size, the FNV-1a 64 of the
224×224×3 levels `CLIPImageProcessorPil` (OpenAI defaults, do_rescale and do_normalize off)
makes of the drafted image, and how far those levels are from the exact path's
(`Image.open` without draft: reference.safetensors' `<file>@openai-224.levels`).
"""

import io
import json
import pathlib

import numpy as np
import PIL
import transformers
from PIL import Image, ImageOps
from transformers import CLIPImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGES = ROOT / "fixtures" / "images"
EXIF_DIR = ROOT / "fixtures" / "exif"
JPEGS = [
    "astronaut.jpg",
    "camera_grey.jpg",
    "chelsea.jpg",
    "coffee.jpg",
    "coffee_cmyk.jpg",
    "retina_large.jpg",
    "rocket_portrait.jpg",
]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"fnv1a64:{h:016x}"


def pattern() -> Image.Image:
    """24×16: a gradient in each channel and a bright corner block, so every one of the
    eight orientations gives a different image."""
    y, x = np.mgrid[0:16, 0:24]
    rgb = np.stack([x * 10, y * 15, 255 - x * 5 - y * 5], axis=-1).astype(np.uint8)
    rgb[0:4, 0:6] = [250, 250, 30]
    return Image.fromarray(rgb, "RGB")


def make_exif() -> None:
    EXIF_DIR.mkdir(exist_ok=True)
    base = pattern()
    for n in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = n
        path = EXIF_DIR / f"orientation_{n}.jpg"
        base.save(path, "JPEG", quality=95, exif=exif.tobytes())
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
        b"</x:xmpmeta>"
    )
    base.save(EXIF_DIR / "xmp_orientation_6.jpg", "JPEG", quality=95, xmp=xmp)
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(EXIF_DIR / "orientation_6.png", "PNG", exif=exif.tobytes())
    inputs = sorted(EXIF_DIR.glob("*.jpg")) + [EXIF_DIR / "orientation_6.png"]
    for path in inputs:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112)
            out = ImageOps.exif_transpose(im).convert("RGB")
        out.save(EXIF_DIR / f"{path.name}.transposed.png", "PNG")
        print(f"{path.name:24s} orientation {orientation} → {out.size}")


def levels(image: Image.Image) -> np.ndarray:
    p = CLIPImageProcessorPil(do_rescale=False, do_normalize=False)
    assert p.backend == "pil", type(p)
    out = p(image, return_tensors="np")["pixel_values"][0]
    assert np.array_equal(out, np.round(out)), out.dtype
    return np.ascontiguousarray(out.astype(np.uint8).transpose(1, 2, 0))  # [H, W, 3]


def make_fast_decode() -> None:
    cases = []
    for name in JPEGS:
        exact = levels(Image.open(IMAGES / name))
        im = Image.open(IMAGES / name)
        size = im.size
        im.draft("RGB", (224, 224))
        scale = im.decoderconfig[0] if im.decoderconfig else 1
        drafted = im.size
        fast = levels(im)
        diff = np.abs(fast.astype(np.int16) - exact.astype(np.int16))
        cases.append(
            dict(
                file=name,
                size=list(size),
                draft_scale=scale,
                draft_size=list(drafted),
                levels_fnv1a64=fnv1a64(fast.tobytes()),
                vs_exact_mean_abs=round(float(diff.mean()), 4),
                vs_exact_max_abs=int(diff.max()),
            )
        )
        print(f"{name:22s} {size} /{scale} → {drafted}: mean {diff.mean():.3f}, max {diff.max()}")
    meta = dict(
        pillow=PIL.__version__,
        transformers=transformers.__version__,
        processor="CLIPImageProcessorPil() with do_rescale=False, do_normalize=False",
        draft='Image.open(f); im.draft("RGB", (224, 224))',
        cases=cases,
    )
    (IMAGES / "fast_decode.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    make_exif()
    make_fast_decode()
