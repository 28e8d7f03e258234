"""clip-vision's clip-retrieval output layout read by its users' tools, in their own pinned
virtualenv (tests/compat/requirements.txt; `cargo xtask compat-test` makes it and runs this).

Three webdataset shards (img2dataset style: `key.<ext>` + `key.txt` + `key.json`) are built
from fixtures/images and embedded by the `clip-vision` binary ($CLIP_VISION_BIN) with
`--shard 0/3`, `1/3`, `2/3` into one folder:

    DIR/img_emb/img_emb_{i}.npy          float16 (n, d), L2-normalised, npy v1
    DIR/metadata/metadata_{i}.parquet    image_path, caption, then the .json fields

Then `embedding_reader` (parquet_npy mode) must read every key exactly once with its own
metadata and an embedding within 1e-3 of transformers' image_embeds of the demo model
(fixtures/models/demo/reference.safetensors, L2-normalised), and an autofaiss index built on
DIR/img_emb must return, for every embedding, its own id: the same row, the same key.
"""

import io
import json
import logging
import math
import os
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from autofaiss import build_index
from embedding_reader import EmbeddingReader

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "models" / "demo"
IMAGES = ROOT / "fixtures" / "images"

# The image members the webdataset reader takes (clip-vision-job's IMAGE_EXTENSIONS):
# coffee.gif of the fixtures is left out.
IMAGE_EXTENSIONS = {".jpg": "jpg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}
N_SHARDS = 3
TOL = 1e-3
# The .json fields of every sample that become metadata columns; its "caption" does not
# (the caption column is the .txt's, as clip-retrieval's writer drops the .json's).
JSON_COLUMNS = {"url", "key", "width"}


def read_safetensors(path):
    """Every F32 tensor of a .safetensors file, by name (8-byte little-endian header length,
    JSON header, raw little-endian data), so this venv needs neither torch nor safetensors."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(t["shape"])
    return out


def reference_embeddings():
    """{image file name: transformers' image_embeds of the demo model, L2-normalised}."""
    names = json.loads((DEMO / "reference.json").read_text())["images"]
    embeds = read_safetensors(DEMO / "reference.safetensors")["image_embeds"].astype(np.float64)
    embeds /= np.linalg.norm(embeds, axis=1, keepdims=True)
    return dict(zip(names, embeds))


def make_shards(folder):
    """Writes N_SHARDS tar shards `{00000..00002}.tar` into `folder`; returns (the brace
    pattern of their paths, the samples: {key: {"shard", "name", "caption", "json"}})."""
    names = [n for n in reference_embeddings() if Path(n).suffix in IMAGE_EXTENSIONS]
    per_shard = math.ceil(len(names) / N_SHARDS)
    samples = {}
    for shard in range(N_SHARDS):
        with tarfile.open(folder / f"{shard:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i, name in enumerate(names[shard * per_shard : (shard + 1) * per_shard]):
                key = f"{shard:05d}{i:04d}"
                # Non-ASCII on purpose: the caption must come through as UTF-8.
                caption = f"{Path(name).stem.replace('_', ' ')} — café photo nº{i}"
                meta = {
                    "url": f"https://example.com/images/{name}",
                    "key": key,
                    "width": 200 + 17 * len(samples),
                    "caption": caption + " (from the .json)",
                }
                ext = IMAGE_EXTENSIONS[Path(name).suffix]
                for member, data in [
                    (f"{key}.{ext}", (IMAGES / name).read_bytes()),
                    (f"{key}.txt", caption.encode()),
                    (f"{key}.json", json.dumps(meta).encode()),
                ]:
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    info.mtime = 0
                    tar.addfile(info, io.BytesIO(data))
                samples[key] = {"shard": shard, "name": name, "caption": caption, "json": meta}
    pattern = str(folder / ("{00000.." + f"{N_SHARDS - 1:05d}" + "}.tar"))
    return pattern, samples


def run_cli(out, pattern):
    """`clip-vision embed` of every shard, one partition per `--shard i/n`, into `out`."""
    binary = os.environ.get("CLIP_VISION_BIN")
    if not binary:
        pytest.skip("CLIP_VISION_BIN is not set (cargo xtask compat-test sets it)")
    for i in range(N_SHARDS):
        args = [binary, "embed", "--model", str(DEMO), "--output-dir", str(out)]
        args += ["--shard", f"{i}/{N_SHARDS}", pattern]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stderr}"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """(the output folder, the samples put into the shards)."""
    tmp = tmp_path_factory.mktemp("cli")
    shards = tmp / "shards"
    shards.mkdir()
    pattern, samples = make_shards(shards)
    out = tmp / "out"
    run_cli(out, pattern)
    return out, samples


def read_all(out, batch_size=2):
    """Every row through embedding_reader (parquet_npy): (embeddings in its order, metadata
    DataFrame with its running index `i`). batch_size 2 makes batches cross file ends."""
    reader = EmbeddingReader(
        str(out / "img_emb"),
        file_format="parquet_npy",
        embedding_column="embedding",
        meta_columns=["image_path", "caption"],
        metadata_folder=str(out / "metadata"),
    )
    batches = list(reader(batch_size=batch_size, show_progress=False))
    assert batches, f"embedding_reader read no batch from {out}"
    embeddings = np.concatenate([b[0] for b in batches])
    meta = pd.concat([b[1] for b in batches], ignore_index=True)
    assert reader.count == len(embeddings) == len(meta)
    return reader, embeddings, meta


def test_files_are_named_aligned_and_typed_as_clip_retrieval_writes_them(layout):
    out, samples = layout
    digits = int(math.log10(N_SHARDS)) + 1
    npys = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    parquets = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert npys == [f"img_emb/img_emb_{i:0{digits}d}.npy" for i in range(N_SHARDS)]
    assert parquets == [f"metadata/metadata_{i:0{digits}d}.parquet" for i in range(N_SHARDS)]
    dims = set()
    for i in range(N_SHARDS):
        npy = out / npys[i]
        head = npy.read_bytes()[:10]
        assert head[:8] == b"\x93NUMPY\x01\x00", f"{npy}: not an npy v1.0 header: {head!r}"
        emb = np.load(npy)
        assert emb.dtype == np.dtype("<f2") and emb.ndim == 2, f"{npy}: {emb.dtype} {emb.shape}"
        dims.add(emb.shape[1])
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)
        assert np.abs(norms - 1).max() <= TOL, f"{npy}: row norms {norms}"
        table = pq.read_table(out / parquets[i])
        # embedding_reader pairs the n-th .npy with the n-th .parquet and slices the table by
        # row: only aligned files give each embedding its own metadata row.
        n_rows = table.num_rows
        assert n_rows == emb.shape[0], f"{npy}: {emb.shape[0]} rows, {n_rows} in its parquet"
        names = table.column_names
        assert names[:2] == ["image_path", "caption"] and set(names[2:]) == JSON_COLUMNS, names
        assert len(set(names)) == len(names), f"duplicate columns in {parquets[i]}: {names}"
        for name in ["image_path", "caption", "url", "key"]:
            t = table.schema.field(name).type
            assert pa.types.is_string(t) or pa.types.is_large_string(t), f"{name}: {t}"
        assert table.schema.field("width").type == pa.int64()
        # --shard i/3 of three shards: partition i holds shard i's samples.
        rows = table.to_pylist()
        assert sorted(r["image_path"] for r in rows) == sorted(
            k for k, s in samples.items() if s["shard"] == i
        )
        for row in rows:
            meta = samples[row["image_path"]]["json"]
            assert {c: row[c] for c in JSON_COLUMNS} == {c: meta[c] for c in JSON_COLUMNS}
    assert dims == {32}


def test_embedding_reader_gives_each_key_once_with_its_metadata_and_embedding(layout):
    out, samples = layout
    reader, embeddings, meta = read_all(out)
    assert reader.dimension == embeddings.shape[1] == 32
    assert meta["i"].tolist() == list(range(len(meta)))
    keys = meta["image_path"].tolist()
    assert sorted(keys) == sorted(samples), "every key exactly once"
    refs = reference_embeddings()
    for key, caption, emb in zip(keys, meta["caption"], embeddings):
        sample = samples[key]
        assert caption == sample["caption"], key
        err = np.abs(emb - refs[sample["name"]]).max()
        assert err <= TOL, f"{key} ({sample['name']}): max |embedding - reference| {err:.2e}"


def test_autofaiss_index_maps_every_embedding_back_to_its_own_row(layout, tmp_path):
    out, samples = layout
    _, embeddings, meta = read_all(out, batch_size=3)
    index, infos = build_index(
        embeddings=str(out / "img_emb"),
        index_path=str(tmp_path / "knn.index"),
        index_infos_path=str(tmp_path / "index_infos.json"),
        metric_type="ip",
        max_index_memory_usage="64MB",
        current_memory_available="1G",
        nb_cores=1,
        verbose=logging.WARNING,
    )
    assert index is not None and index.ntotal == len(samples), infos
    scores, ids = index.search(np.ascontiguousarray(embeddings, dtype=np.float32), 1)
    # Ids are positions in embedding_reader's order (autofaiss reads img_emb/ with it).
    found = meta["image_path"].to_numpy()[ids[:, 0]]
    assert found.tolist() == meta["image_path"].tolist()
    assert np.abs(scores[:, 0] - 1).max() <= 2 * TOL
