"""clip_vision against the committed fixtures: transformers' image_embeds and text_embeds of
the demo model (fixtures/models/demo/reference.*), CLIPImageProcessor's pixel values
(fixtures/images/reference.*), and the errors bad input gets."""

import io
import os
import re
import warnings

import numpy as np
import pytest
from PIL import Image

import clip_vision
from conftest import DEMO, IMAGES, ROOT, normalized

TOL = 1e-5


def test_version_is_the_crates():
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert clip_vision.__version__ == version


def test_embed_paths_equals_transformers_image_embeds(embedder, reference, image_paths):
    out = embedder.embed_paths([str(p) for p in image_paths])
    assert out.dtype == np.float32 and out.shape == (12, 32)
    expected = normalized(reference[1]["image_embeds"])
    assert np.abs(out - expected).max() <= TOL
    assert np.abs(np.linalg.norm(out, axis=1) - 1).max() <= 1e-6


def test_reduced_precisions_keep_the_embeddings(reference, image_paths):
    expected = normalized(reference[1]["image_embeds"])
    for precision, min_cos in [("int8", 0.9995), ("bf16", 0.9999)]:
        e = clip_vision.ImageEmbedder.from_pretrained(DEMO, precision=precision)
        out = e.embed_paths([str(p) for p in image_paths])
        assert out.shape == expected.shape
        cos = (out * expected).sum(axis=1)
        assert cos.min() >= min_cos, (precision, cos.min())
        assert np.abs(out - expected).max() > 0, precision


def test_properties(embedder):
    assert embedder.dim == 32
    assert embedder.image_size == (224, 224)
    assert embedder.batch_size == 32
    assert os.path.samefile(embedder.model_path, DEMO)


def test_paths_accept_pathlike_and_options_do_not_change_rows(embedder, image_paths):
    base = embedder.embed_paths([str(p) for p in image_paths])
    small = clip_vision.ImageEmbedder.from_pretrained(DEMO, threads=1, batch_size=5)
    assert small.batch_size == 5
    assert np.abs(small.embed_paths(image_paths) - base).max() <= 1e-6


def test_embed_bytes_equals_embed_paths(embedder, image_paths):
    blobs = [p.read_bytes() for p in image_paths]
    blobs[1] = bytearray(blobs[1])
    blobs[2] = memoryview(blobs[2])
    out = embedder.embed_bytes(blobs)
    assert np.abs(out - embedder.embed_paths(image_paths)).max() <= 1e-6


def test_embed_images_on_pil_images_equals_embed_paths(embedder, image_paths):
    # PNGs of mode RGB (16-bit RGB opens as RGB), RGBA, and P with a transparent entry.
    pngs = [p for p in image_paths if p.suffix == ".png"]
    images = [Image.open(p) for p in pngs]
    assert sorted(im.mode for im in images) == ["P", "RGB", "RGBA"]
    out = embedder.embed_images(images)
    assert np.abs(out - embedder.embed_paths(pngs)).max() <= 1e-6


def test_embed_images_on_arrays_equals_embed_paths(embedder, image_paths):
    png = IMAGES / "hubble_alpha.png"
    rgba = np.asarray(Image.open(png))
    assert rgba.shape[2] == 4
    grey = IMAGES / "camera_grey.jpg"
    luma = np.asarray(Image.open(grey))
    assert luma.ndim == 2
    rgb = np.asarray(Image.open(IMAGES / "astronaut_rgb16.png"))
    # A strided view: the array's logical order is what counts.
    wide = np.zeros((rgb.shape[0], rgb.shape[1] * 2, 3), dtype=np.uint8)
    wide[:, ::2] = rgb
    out = embedder.embed_images([rgba, luma, luma[:, :, None], wide[:, ::2]])
    paths = [png, grey, grey, IMAGES / "astronaut_rgb16.png"]
    assert np.abs(out - embedder.embed_paths(paths)).max() <= 1e-6


def openai_224_cases(image_reference):
    """(image file, levels [224, 224, 3], pixel_values [3, 224, 224]) of every case under the
    demo model's processor (openai-224): pixel_values = table[c][levels[..., c]]."""
    meta, tensors = image_reference
    table = tensors["openai-224.table"]
    for case in meta["cases"]:
        if case["processor"] == "openai-224":
            levels = tensors[case["name"] + ".levels"]
            pixels = np.stack([table[c][levels[..., c]] for c in range(3)])
            yield case["image"], levels, pixels


def test_embed_pixels_equals_transformers_image_embeds(embedder, reference, image_reference):
    cases = list(openai_224_cases(image_reference))
    assert len(cases) == 7
    pixels = np.stack([c[2] for c in cases]).astype(np.float32)
    out = embedder.embed_pixels(pixels)
    names = reference[0]["images"]
    expected = normalized(reference[1]["image_embeds"][[names.index(c[0]) for c in cases]])
    assert out.shape == (7, 32)
    assert np.abs(out - expected).max() <= TOL
    # Preprocessed 224×224 levels as images: resizing and cropping leave them as they are.
    again = embedder.embed_images([c[1] for c in cases])
    assert np.abs(again - expected).max() <= TOL
    # More images than one batch.
    small = clip_vision.ImageEmbedder.from_pretrained(DEMO, batch_size=3)
    assert np.abs(small.embed_pixels(pixels) - out).max() <= 1e-6


def test_skip_mode_returns_kept_indices_and_warns_once_per_bad_file(embedder, image_paths):
    missing = IMAGES / "no_such_image.jpg"
    not_an_image = IMAGES / "README.md"
    paths = [image_paths[0], missing, not_an_image, image_paths[3]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, kept = embedder.embed_paths(paths, on_error="skip")
    assert kept.tolist() == [0, 3]
    assert out.shape == (2, 32)
    assert np.abs(out - embedder.embed_paths([image_paths[0], image_paths[3]])).max() <= 1e-6
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages
    assert "no_such_image.jpg" in messages[0] and "paths[1]" in messages[0]
    assert "README.md" in messages[1] and "paths[2]" in messages[1]
    assert all(issubclass(w.category, UserWarning) for w in caught)


def test_skip_mode_of_bytes_and_images(embedder, image_paths):
    good = image_paths[0].read_bytes()
    with pytest.warns(UserWarning, match=r"image 1"):
        out, kept = embedder.embed_bytes([good, b"not an image"], on_error="skip")
    assert kept.tolist() == [0] and out.shape == (1, 32)
    with pytest.warns(UserWarning, match=r"image 0"):
        out, kept = embedder.embed_images([np.zeros((0, 5, 3), np.uint8)], on_error="skip")
    assert kept.tolist() == [] and out.shape == (0, 32) and out.dtype == np.float32


def test_raise_mode_names_the_file(embedder, image_paths):
    missing = IMAGES / "no_such_image.jpg"
    with pytest.raises(clip_vision.ClipVisionError, match=r"paths\[1\].*no_such_image\.jpg"):
        embedder.embed_paths([image_paths[0], missing])
    truncated = image_paths[0].read_bytes()[:500]
    with pytest.raises(clip_vision.ClipVisionError, match=r"image 1"):
        embedder.embed_bytes([image_paths[0].read_bytes(), truncated])
    assert issubclass(clip_vision.ClipVisionError, Exception)


def test_text_embedder_equals_transformers_text_embeds(reference):
    meta, tensors = reference
    text = clip_vision.TextEmbedder.from_pretrained(DEMO)
    assert text.dim == 32
    out = text.embed_texts(meta["labels"])
    assert out.dtype == np.float32 and out.shape == (6, 32)
    assert np.abs(out - normalized(tensors["text_embeds.labels"])).max() <= TOL
    queries = text.embed_texts(meta["queries"])
    assert np.abs(queries - normalized(tensors["text_embeds.queries"])).max() <= TOL


def test_bad_arguments_raise(embedder):
    load = clip_vision.ImageEmbedder.from_pretrained
    with pytest.raises(ValueError, match="unknown precision"):
        load(DEMO, precision="f16")
    with pytest.raises(ValueError, match="unknown activation"):
        load(DEMO, activation="swish")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        load(DEMO, threads=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        load(DEMO, batch_size=0)
    with pytest.raises(OverflowError):
        load(DEMO, threads=-1)
    with pytest.raises(clip_vision.ClipVisionError, match="no_such_model"):
        load(IMAGES / "no_such_model")
    with pytest.raises(ValueError, match="on_error"):
        embedder.embed_paths([], on_error="ignore")
    with pytest.raises(ValueError, match="single str"):
        embedder.embed_paths("cat.jpg")
    with pytest.raises(ValueError, match="expected bytes"):
        embedder.embed_bytes(["cat.jpg"])
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed_images([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        embedder.embed_images([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(ValueError, match="PIL image or a uint8"):
        embedder.embed_images([42])
    with pytest.raises(ValueError, match="float32"):
        embedder.embed_pixels(np.zeros((1, 3, 224, 224), np.float64))
    with pytest.raises(ValueError, match=r"shape \(n, 3, 224, 224\)"):
        embedder.embed_pixels(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="float32"):
        embedder.embed_pixels(np.zeros((3, 224, 224), np.float32))
    nan = np.zeros((1, 3, 224, 224), np.float32)
    nan[0, 1, 2, 3] = np.nan
    with pytest.raises(clip_vision.ClipVisionError, match="not a finite number"):
        embedder.embed_pixels(nan)
    text = clip_vision.TextEmbedder.from_pretrained(DEMO)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        text.embed_texts(["a dog", 3])
    with pytest.raises(clip_vision.ClipVisionError, match="at most"):
        text.embed_texts(["x" * ((1 << 20) + 1)])
    with pytest.raises(clip_vision.ClipVisionError, match="fixtures.images"):
        clip_vision.TextEmbedder.from_pretrained(IMAGES)


def test_empty_inputs_give_empty_arrays(embedder):
    assert embedder.embed_paths([]).shape == (0, 32)
    assert embedder.embed_pixels(np.zeros((0, 3, 224, 224), np.float32)).shape == (0, 32)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_refuses_its_parents_pool_and_builds_its_own(embedder, image_paths):
    expected = embedder.embed_paths(image_paths[:2])  # the global pool runs in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 0
        try:
            try:
                embedder.embed_paths(image_paths[:2])
                code = 1
            except clip_vision.ClipVisionError as e:
                if "forked" not in str(e):
                    code = 2
            own = clip_vision.ImageEmbedder.from_pretrained(DEMO, threads=1)
            if np.abs(own.embed_paths(image_paths[:2]) - expected).max() > 1e-6:
                code = 3
        except BaseException:
            code = 4
        os.write(write, bytes([code]))
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    code = os.read(read, 1)
    os.close(read)
    assert os.WEXITSTATUS(status) == 0 and code == b"\x00", code


def test_fast_decode_and_exif_transpose_are_off_by_default_and_change_files_only(embedder):
    assert (embedder.fast_decode, embedder.exif_transpose) == (False, False)
    opts = clip_vision.ImageEmbedder.from_pretrained(DEMO, fast_decode=True, exif_transpose=True)
    assert (opts.fast_decode, opts.exif_transpose) == (True, True)
    astronaut = IMAGES / "astronaut.jpg"  # 512 px: decoded at 1/2
    chelsea = IMAGES / "chelsea.jpg"  # 451×300: no DCT scale keeps 224
    rotated = ROOT / "fixtures" / "exif" / "orientation_6.jpg"
    upright = ROOT / "fixtures" / "exif" / "orientation_6.jpg.transposed.png"
    a = embedder.embed_paths([astronaut, chelsea, rotated, upright])
    b = opts.embed_paths([astronaut, chelsea, rotated, upright])
    cos = float(a[0] @ b[0])
    assert 0.9999 < cos < 1.0 - 1e-9, cos
    np.testing.assert_array_equal(a[1], b[1])
    # With the option the rotated file embeds as PIL's upright pixels (the committed PNG).
    np.testing.assert_array_equal(b[2], a[3])
    assert not np.array_equal(a[2], a[3])
