#!/usr/bin/env python3
"""Make the image-preprocessing fixtures of clip-vision from HF transformers' CLIPImageProcessor.

The photos are scikit-image's sample data (public domain / CC0, see fixtures/images/README.md),
saved the way users' files come: JPEG at quality 90 through PIL, and a few PNG, GIF and WebP
variants (alpha, palette with transparency, 16-bit, CMYK JPEG, greyscale JPEG). Every
reference is computed by transformers 5's PIL backend (`CLIPImageProcessorPil`, not the
torchvision "fast" `CLIPImageProcessor`) on the file *as saved*, reopened with `Image.open`,
exactly as a user would call it.

    python3 scripts/make_image_fixtures.py      # rewrite fixtures/images/*

Layout of fixtures/images/:
    <photo files>               the inputs
    processors/<name>.json      the processor configs, written by `to_json_file`
    reference.json              the cases (image × processor), versions, sizes
    reference.safetensors       per case `<case>.levels`: U8 [H, W, 3], the 8-bit image after
                                convert_to_rgb + resize + center crop (the processor run with
                                do_rescale=False, do_normalize=False); per processor
                                `<processor>.table`: F32 [3, 256], the processor's own
                                rescale+normalise of every level in each channel

`pixel_values` of a case is stored factorised: this script asserts, bit for bit, that the
processor's normalised output equals `table[c][levels[y, x, c]]` (the PIL backend rescales
and normalises elementwise), so the tests rebuild transformers' exact `[3, H, W]` output
from 150 KB instead of storing 600 KB of floats per image.
"""

import io
import json
import pathlib
import struct
import zlib

import numpy as np
import PIL
import PIL.features
import skimage
import skimage.data
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "images"

# Processor configs, by name. "openai-224" is CLIPImageProcessor's defaults (ViT-B/32, B/16,
# L/14); the others exercise the keys a checkpoint can change, at small sizes.
PROCESSORS = {
    "openai-224": {},
    "small-112": dict(size=112, crop_size=112),
    "crop-64x48": dict(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 48}),
    "exact-60x90-bilinear": dict(
        size={"height": 60, "width": 90}, resample=2, do_center_crop=False
    ),
    "pad-100-crop-120": dict(size=100, crop_size=120),
    "upscale-448-crop-64": dict(size=448, crop_size=64),
    "no-rescale-crop-32": dict(
        size=40, crop_size=32, do_rescale=False, image_mean=[127.5, 127.5, 127.5],
        image_std=[64.0, 32.0, 16.0],
    ),
}


def png_rgb16(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def make_images() -> dict[str, str]:
    """Writes the input files; returns {file name: how it was made}."""
    made = {}
    rng = np.random.default_rng(0)

    def jpeg(name, array, how, mode=None):
        im = Image.fromarray(array)
        if mode:
            im = im.convert(mode)
        im.save(OUT / name, "JPEG", quality=90)
        made[name] = how

    jpeg("astronaut.jpg", skimage.data.astronaut(), "astronaut, 512×512 RGB, JPEG q90")
    jpeg("coffee.jpg", skimage.data.coffee(), "coffee, 600×400 RGB, JPEG q90")
    jpeg("chelsea.jpg", skimage.data.chelsea(), "chelsea, 451×300 RGB, JPEG q90")
    jpeg("camera_grey.jpg", skimage.data.camera(), "camera, 512×512 greyscale (L) JPEG q90")
    jpeg(
        "rocket_portrait.jpg",
        skimage.data.rocket()[:, 179:462],
        "rocket, crop x 179..462 → 283×427 portrait RGB, JPEG q90",
    )
    jpeg(
        "retina_large.jpg",
        skimage.data.retina()[150:1270, 160:1240],
        "retina, crop 1080×1120 (W×H) RGB, JPEG q90",
    )
    jpeg(
        "coffee_cmyk.jpg",
        skimage.data.coffee()[100:260, 200:440],
        "coffee, crop 240×160 converted to CMYK (Adobe inverted), JPEG q90",
        mode="CMYK",
    )

    # RGBA PNG: a crop of the Hubble deep field under a left-to-right alpha ramp 0 → 255.
    hubble = skimage.data.hubble_deep_field()[200:360, 300:500]
    h, w, _ = hubble.shape
    alpha = np.round(np.linspace(0, 255, w))[None, :].repeat(h, 0).astype(np.uint8)
    Image.fromarray(np.dstack([hubble, alpha]), "RGBA").save(OUT / "hubble_alpha.png", optimize=True)
    made["hubble_alpha.png"] = "hubble_deep_field, crop 200×160, alpha ramp 0→255 across, RGBA PNG"

    # Palette PNG whose palette entry 0 is transparent (tRNS).
    cat = Image.fromarray(skimage.data.chelsea()[60:210, 120:320]).quantize(colors=64)
    cat.save(OUT / "chelsea_palette.png", transparency=0, optimize=True)
    made["chelsea_palette.png"] = "chelsea, crop 200×150 quantised to 64 colours, index 0 transparent"

    # GIF of the same kind of palette image (first and only frame).
    Image.fromarray(skimage.data.coffee()[50:250, 100:400]).quantize(colors=128).save(OUT / "coffee.gif")
    made["coffee.gif"] = "coffee, crop 300×200 quantised to 128 colours, GIF"

    # 16-bit RGB PNG: 8-bit photo levels × 257 plus noise in the low byte.
    crop = skimage.data.astronaut()[40:104, 180:276].astype(np.uint16)
    rgb16 = crop * 256 + rng.integers(0, 256, crop.shape, dtype=np.uint16)
    (OUT / "astronaut_rgb16.png").write_bytes(png_rgb16(rgb16))
    made["astronaut_rgb16.png"] = "astronaut, crop 96×64, 16-bit RGB PNG (v·256 + random low byte)"

    # Lossy WebP (decoded by libwebp in PIL, by image-webp in Rust).
    Image.fromarray(skimage.data.rocket()).save(OUT / "rocket.webp", "WEBP", quality=90)
    made["rocket.webp"] = "rocket, 640×427 RGB, lossy WebP q90"
    return made


# (image file, processor name); a case is named "<file>@<processor>". The photos run at the
# default 224 px; the decoder and pixel-format variants at 112 px, which checks their
# decoding as well and keeps reference.safetensors (150 KB per 224-px case) small.
PHOTOS = [
    "astronaut.jpg", "coffee.jpg", "chelsea.jpg", "camera_grey.jpg", "rocket_portrait.jpg",
    "retina_large.jpg", "hubble_alpha.png",
]
FORMATS = [
    "coffee_cmyk.jpg", "chelsea_palette.png", "coffee.gif", "astronaut_rgb16.png", "rocket.webp",
]
CASES = [(f, "openai-224") for f in PHOTOS] + [(f, "small-112") for f in FORMATS] + [
    ("coffee.jpg", "crop-64x48"),
    ("rocket_portrait.jpg", "exact-60x90-bilinear"),
    ("chelsea.jpg", "pad-100-crop-120"),
    ("chelsea.jpg", "upscale-448-crop-64"),
    ("hubble_alpha.png", "no-rescale-crop-32"),
]


def processor(kwargs: dict) -> CLIPImageProcessorPil:
    p = CLIPImageProcessorPil(**kwargs)
    # The slow PIL path, not the torchvision one that `CLIPImageProcessor` is in transformers 5.
    assert type(p).__name__ == "CLIPImageProcessorPil" and p.backend == "pil", type(p)
    return p


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "processors").mkdir(exist_ok=True)
    made = make_images()

    tensors = {}
    for name, kwargs in PROCESSORS.items():
        p = processor(kwargs)
        p.to_json_file(OUT / "processors" / f"{name}.json")
        # Every level in every channel, through the processor's rescale + normalise only.
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
        table_proc = processor({**kwargs, "do_resize": False, "do_center_crop": False})
        table = table_proc(Image.fromarray(ramp), return_tensors="np")["pixel_values"][0]
        tensors[f"{name}.table"] = np.ascontiguousarray(table[:, 0, :], dtype=np.float32)

    cases = []
    for file, proc_name in CASES:
        case = f"{file}@{proc_name}"
        kwargs = PROCESSORS[proc_name]
        image = Image.open(OUT / file)
        mode = image.mode
        pixel_values = processor(kwargs)(image, return_tensors="np")["pixel_values"][0]
        levels_proc = processor({**kwargs, "do_rescale": False, "do_normalize": False})
        levels = levels_proc(Image.open(OUT / file), return_tensors="np")["pixel_values"][0]
        assert levels.dtype == np.uint8 or np.array_equal(levels, np.round(levels)), levels.dtype
        levels = levels.astype(np.uint8)  # [3, H, W]
        table = tensors[f"{proc_name}.table"]
        rebuilt = np.stack([table[c][levels[c]] for c in range(3)])
        assert pixel_values.dtype == np.float32
        assert np.array_equal(rebuilt, pixel_values), f"{case}: pixel_values is not table[levels]"
        tensors[f"{case}.levels"] = np.ascontiguousarray(levels.transpose(1, 2, 0))
        cases.append(dict(
            name=case, image=file, processor=proc_name, pil_mode=mode,
            input_size=list(image.size), height=int(levels.shape[1]), width=int(levels.shape[2]),
        ))
        print(f"{case:42s} {mode:5s} {image.size} → {levels.shape[1]}×{levels.shape[2]}")

    save_file(tensors, OUT / "reference.safetensors")
    meta = dict(
        made_by="scripts/make_image_fixtures.py",
        transformers=transformers.__version__,
        processor_class="CLIPImageProcessorPil",
        pillow=PIL.__version__,
        libjpeg_turbo=PIL.features.version("libjpeg_turbo"),
        libwebp=PIL.features.version("webp"),
        numpy=np.__version__,
        scikit_image=skimage.__version__,
        images=made,
        cases=cases,
    )
    (OUT / "reference.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"fixtures/images: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
