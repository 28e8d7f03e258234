#!/usr/bin/env python3
"""Convert pickled CLIP checkpoints to safetensors, once, so that clip-vision can read them.

clip-vision refuses PyTorch pickles (`.bin`, `.pt`, `.pth`): unpickling can run code. This
script turns the pickles people already have into `.safetensors` files beside them, with
the tensor names kept verbatim, so that `clip-vision --model DIR` (or `--model FILE`) loads
them. It reads local files only and never downloads anything.

What it reads (INPUT is a file or a directory):

    DIR with pytorch_model.bin.index.json   HF shards -> model-*.safetensors (same split)
      or that index file itself                           + model.safetensors.index.json
    DIR with pytorch_model.bin              HF weights -> model.safetensors
      or that file itself
    DIR with open_clip_pytorch_model.bin    open_clip -> open_clip_pytorch_model.safetensors
    any other FILE.bin / .pt / .pth         -> FILE.safetensors (ViT-B-32.pt -> ViT-B-32.safetensors)

How each file is opened:
  - a TorchScript archive (OpenAI CLIP's ViT-B-32.pt and kin) with
    `torch.jit.load(path, map_location="cpu").state_dict()`: TorchScript code is compiled,
    not run, and no Python object is unpickled;
  - everything else with `torch.load(path, map_location="cpu", weights_only=True)`, which
    unpickles tensors and plain containers only and refuses anything else.
  A training checkpoint holding its weights under "state_dict" is unwrapped, and a
  "module." prefix carried by every name (DataParallel) is stripped, as open_clip does;
  nothing else is renamed.

What it writes: each tensor contiguous, in its own storage (tied or shared tensors are
cloned, which safetensors requires), floating-point tensors cast by --dtype (integer ones
kept), metadata {"format": "pt"} as transformers writes it. Files go to a temporary name
in the output directory and are renamed into place once written and read back; an existing
output is refused unless --force. config.json, preprocessor_config.json and
open_clip_config.json are not touched: with the default output directory (the input's own)
they are already beside the new files.

Examples:
    python3 scripts/convert_to_safetensors.py ~/models/clip-vit-base-patch32
    python3 scripts/convert_to_safetensors.py ~/.cache/clip/ViT-B-32.pt --dtype f32
    clip-vision info --model ~/.cache/clip/ViT-B-32.safetensors --activation quick_gelu

Pinned environment: scripts/requirements.txt (torch, safetensors); a different installed
version is reported on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata

HERE = pathlib.Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
# The libraries this script calls, whose versions are checked against requirements.txt.
CHECKED = ("torch", "safetensors")

HF_INDEX = "pytorch_model.bin.index.json"
HF_SINGLE = "pytorch_model.bin"
OPEN_CLIP_SINGLE = "open_clip_pytorch_model.bin"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
DTYPES = ("keep", "f32", "f16", "bf16")
# The configs clip-vision reads beside the weights (never written by this script).
CONFIGS = ("config.json", "preprocessor_config.json", "open_clip_config.json")


class ConvertError(Exception):
    """A checkpoint that cannot be converted, with the file and the reason."""


@dataclass
class Job:
    """One pickle to read and the safetensors file to write from it."""

    source: pathlib.Path
    target: pathlib.Path


@dataclass
class Plan:
    """Every file a conversion writes; `index` rewrites a sharded HF index last."""

    kind: str
    jobs: list[Job]
    index: tuple[pathlib.Path, pathlib.Path] | None = None  # (source index, target index)


# ---------------------------------------------------------------------------------------
# What to convert


def safetensors_name(name: str) -> str:
    """The output name of a pickle: HF's `pytorch_model*.bin` -> `model*.safetensors`,
    anything else keeps its stem (`ViT-B-32.pt` -> `ViT-B-32.safetensors`)."""
    if re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", name):
        return "model" + name[len("pytorch_model") : -len(".bin")] + ".safetensors"
    for suffix in PICKLE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".safetensors"
    raise ConvertError(f"{name}: not a .bin, .pt or .pth file")


def plan_sharded(index_path: pathlib.Path, out_dir: pathlib.Path) -> Plan:
    """Reads an HF `pytorch_model.bin.index.json` and plans one output per shard."""
    index = read_index(index_path)
    shards = sorted(set(index["weight_map"].values()))
    jobs = []
    for shard in shards:
        if pathlib.PurePath(shard).name != shard:
            raise ConvertError(f"{index_path}: shard name {shard!r} is not a plain file name")
        source = index_path.parent / shard
        if not source.is_file():
            raise ConvertError(f"{index_path}: names shard {shard}, which is not a file")
        jobs.append(Job(source, out_dir / safetensors_name(shard)))
    target_index = out_dir / "model.safetensors.index.json"
    return Plan("transformers, sharded", jobs, (index_path, target_index))


def plan(input_path: pathlib.Path, out_dir: pathlib.Path | None) -> Plan:
    """Decides what to read and write for INPUT (a directory or a pickle file)."""
    if not input_path.exists():
        raise ConvertError(f"{input_path}: no such file or directory")
    if input_path.is_dir():
        out = out_dir or input_path
        if (input_path / HF_INDEX).is_file():
            return plan_sharded(input_path / HF_INDEX, out)
        if (input_path / HF_SINGLE).is_file():
            return Plan("transformers", [Job(input_path / HF_SINGLE, out / "model.safetensors")])
        if (input_path / OPEN_CLIP_SINGLE).is_file():
            target = out / safetensors_name(OPEN_CLIP_SINGLE)
            return Plan("open_clip", [Job(input_path / OPEN_CLIP_SINGLE, target)])
        pickles = sorted(p.name for p in input_path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if len(pickles) == 1:
            return plan(input_path / pickles[0], out_dir)
        found = ", ".join(pickles) if pickles else "none"
        raise ConvertError(
            f"{input_path}: no {HF_INDEX}, {HF_SINGLE} or {OPEN_CLIP_SINGLE}, and not exactly "
            f"one .bin/.pt/.pth file (found: {found}); pass the file to convert"
        )
    if not input_path.is_file():
        raise ConvertError(f"{input_path}: not a regular file")
    out = out_dir or input_path.parent
    name = input_path.name
    if name.endswith(".index.json"):
        if name != HF_INDEX:
            raise ConvertError(f"{input_path}: only {HF_INDEX} indexes are converted")
        return plan_sharded(input_path, out)
    return Plan("single file", [Job(input_path, out / safetensors_name(name))])


def read_index(path: pathlib.Path) -> dict:
    """An HF shard index: {"metadata": {...}, "weight_map": {tensor: shard file}}."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot read the shard index: {e}") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ConvertError(f"{path}: no \"weight_map\" object of tensor name -> shard file")
    return index


# ---------------------------------------------------------------------------------------
# Reading


def is_torchscript(path: pathlib.Path) -> bool:
    """A TorchScript archive is a zip holding `*/constants.pkl` (a `torch.save` zip has none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def weights_only_detail(message: str) -> str:
    """The reason inside torch's long weights_only message (which also suggests loading with
    weights_only=False: not something to repeat here)."""
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\s*Please use|\s*Please file|\n\s*\n|$)", message, re.S)
    text = m.group(1) if m else message
    return " ".join(text.split())


def load_state_dict(path: pathlib.Path) -> tuple[dict, list[str]]:
    """The name -> tensor map of one pickle, and notes on what was unwrapped."""
    import torch

    notes = []
    try:
        if is_torchscript(path):
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
            notes.append("TorchScript archive: read its state_dict()")
        else:
            # mmap avoids a second copy of the file in memory; only the zip format has it.
            mmap = zipfile.is_zipfile(path)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        detail = weights_only_detail(str(e))
        if "global" not in detail.lower():  # not a pickle torch can read at all
            raise ConvertError(f"{path}: cannot load it as a PyTorch checkpoint: {detail}") from e
        raise ConvertError(
            f"{path}: refused by torch.load(weights_only=True): it holds objects other than "
            f"tensors and plain containers ({detail})"
        ) from e
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ConvertError(f"{path}: cannot load it as a PyTorch checkpoint: {e}") from e

    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
        notes.append('weights taken from its "state_dict" entry')
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    if not obj:
        raise ConvertError(f"{path}: holds no tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({type(obj[k]).__name__})" for k in bad[:5])
        raise ConvertError(f"{path}: entries that are not named tensors: {shown}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
        notes.append('"module." prefix stripped from every name')
    return obj, notes


# ---------------------------------------------------------------------------------------
# Writing


def target_dtype(name: str):
    import torch

    return {"keep": None, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[
        name
    ]


def prepare(tensors: dict, dtype) -> dict:
    """Detached, cast (floating point only), contiguous tensors, none sharing storage."""
    out = {}
    seen = set()
    for name, t in tensors.items():
        t = t.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        t = t.contiguous()
        storage = t.untyped_storage()
        key = storage.data_ptr()
        # safetensors refuses tensors that share memory (tied weights, views of one buffer):
        # any tensor whose storage was already used, or that is a part of a larger one, gets
        # its own copy.
        if key in seen or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()
            key = t.untyped_storage().data_ptr()
        seen.add(key)
        out[name] = t
    return out


def temp_name(target: pathlib.Path) -> pathlib.Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def write_tensors(tensors: dict, target: pathlib.Path) -> pathlib.Path:
    """Writes to a temporary file beside `target`, reads it back, and returns the temp path."""
    import torch
    from safetensors.torch import load_file, save_file

    tmp = temp_name(target)
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    back = load_file(str(tmp))
    if back.keys() != tensors.keys():
        raise ConvertError(f"{tmp}: read back with other tensor names than written")
    for name, t in tensors.items():
        if back[name].dtype != t.dtype or not torch.equal(back[name], t):
            raise ConvertError(f"{tmp}: tensor {name} read back differs from what was written")
    return tmp


def convert(p: Plan, dtype_name: str, force: bool, log=print) -> list[pathlib.Path]:
    """Runs a plan; returns the files written. Nothing is renamed into place until every
    output has been written and read back."""
    targets = [j.target for j in p.jobs] + ([p.index[1]] if p.index else [])
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise ConvertError(
            f"{existing[0]}: already exists (pass --force to overwrite)"
        )
    for t in targets:
        if not t.parent.is_dir():
            raise ConvertError(f"{t.parent}: the output directory does not exist")

    dtype = target_dtype(dtype_name)
    temps: list[tuple[pathlib.Path, pathlib.Path]] = []
    weight_map: dict[str, str] = {}
    total_size = 0
    try:
        for job in p.jobs:
            tensors, notes = load_state_dict(job.source)
            for note in notes:
                log(f"{job.source}: {note}")
            tensors = prepare(tensors, dtype)
            temps.append((write_tensors(tensors, job.target), job.target))
            for name, t in tensors.items():
                weight_map[name] = job.target.name
                total_size += t.numel() * t.element_size()
            log(f"{job.source} -> {job.target}: {len(tensors)} tensors, {describe(tensors)}")
            del tensors
        if p.index:
            source_index, target_index = p.index
            index = read_index(source_index)
            if set(index["weight_map"]) != set(weight_map):
                missing = sorted(set(index["weight_map"]) - set(weight_map))[:5]
                extra = sorted(set(weight_map) - set(index["weight_map"]))[:5]
                raise ConvertError(
                    f"{source_index}: the shards do not hold what the index lists "
                    f"(listed but absent: {missing}; present but unlisted: {extra})"
                )
            meta = dict(index.get("metadata") or {})
            meta["total_size"] = total_size
            new_index = {"metadata": meta, "weight_map": dict(sorted(weight_map.items()))}
            tmp = temp_name(target_index)
            tmp.write_text(json.dumps(new_index, indent=2) + "\n", encoding="utf-8")
            temps.append((tmp, target_index))
        for tmp, target in temps:
            os.replace(tmp, target)
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()
    return targets


def describe(tensors: dict) -> str:
    counts: dict[str, int] = {}
    nbytes = 0
    for t in tensors.values():
        d = str(t.dtype).removeprefix("torch.")
        counts[d] = counts.get(d, 0) + 1
        nbytes += t.numel() * t.element_size()
    kinds = ", ".join(f"{n} {d}" for d, n in sorted(counts.items()))
    return f"{kinds}; {nbytes / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------
# Versions


def pinned_versions() -> dict[str, str]:
    """`name==version` lines of scripts/requirements.txt."""
    pins = {}
    try:
        lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    except OSError:
        return pins
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s#]+)\s*(#.*)?", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def check_versions(warn) -> None:
    pins = pinned_versions()
    for name in CHECKED:
        want = pins.get(name)
        try:
            have = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            raise ConvertError(
                f"{name} is not installed: pip install -r {REQUIREMENTS}"
            ) from None
        # A local build tag (2.15.0+cpu) is the same release.
        if want is not None and have.split("+")[0] != want:
            warn(f"warning: {name} {have} is installed; {REQUIREMENTS.name} pins {want}")


# ---------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_to_safetensors.py",
        description=(
            "Convert a pickled CLIP checkpoint (HF pytorch_model.bin or its shards, OpenAI "
            "CLIP's TorchScript .pt, an open_clip .bin/.pt state dict) to safetensors that "
            "clip-vision reads. Tensor names are kept; nothing is downloaded."
        ),
        epilog=(
            "Outputs: pytorch_model.bin -> model.safetensors; pytorch_model.bin.index.json + "
            "shards -> model.safetensors.index.json + model-*.safetensors; any other "
            "NAME.bin/.pt/.pth -> NAME.safetensors. Configs are not copied (with the default "
            "output directory they are already beside the outputs)."
        ),
    )
    p.add_argument(
        "input",
        type=pathlib.Path,
        help="an HF model directory, pytorch_model.bin[.index.json], or a .bin/.pt/.pth file",
    )
    p.add_argument(
        "--output-dir",
        type=pathlib.Path,
        help="where to write (default: beside the input)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="keep",
        help="cast floating-point tensors (integer tensors are kept); default: keep",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite outputs that already exist"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_versions(lambda msg: print(msg, file=sys.stderr))
        p = plan(args.input, args.output_dir)
        written = convert(p, args.dtype, args.force)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote ({p.kind}):")
    for path in written:
        print(f"  {path}")
    source_dir = args.input if args.input.is_dir() else args.input.parent
    out_dir = args.output_dir or source_dir
    if out_dir.resolve() != source_dir.resolve():
        configs = [n for n in CONFIGS if (source_dir / n).is_file() and not (out_dir / n).exists()]
        if configs:
            print(f"not copied (copy them to {out_dir} yourself): {', '.join(configs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
