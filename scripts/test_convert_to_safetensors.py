"""Tests of scripts/convert_to_safetensors.py on checkpoints made here from random weights.

    /work/venv/bin/python -m pytest scripts/test_convert_to_safetensors.py

Each test writes a pickle the way its library does (transformers' `save_pretrained` without
safetensors, `torch.jit.save` of a TorchScript module, an open_clip training checkpoint),
converts it, and compares every tensor of the output with the state dict it came from.
Nothing is downloaded.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (scripts/requirements.txt)")
safetensors_torch = pytest.importorskip(
    "safetensors.torch", reason="safetensors is not installed (scripts/requirements.txt)"
)

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "convert_to_safetensors.py"

_spec = importlib.util.spec_from_file_location("convert_to_safetensors", SCRIPT)
cts = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cts  # dataclasses look their module up there
_spec.loader.exec_module(cts)


def tiny_vision_model(seed=0):
    """A CLIPVisionModelWithProjection with the config of fixtures/models/tiny-quickgelu."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (scripts/requirements.txt)"
    )
    cfg = json.loads((ROOT / "fixtures/models/tiny-quickgelu/config.json").read_text())
    keys = (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "image_size", "patch_size", "projection_dim", "hidden_act", "layer_norm_eps",
    )
    config = transformers.CLIPVisionConfig(**{k: cfg[k] for k in keys})
    torch.manual_seed(seed)
    model = transformers.CLIPVisionModelWithProjection(config).eval()
    with torch.no_grad():  # non-trivial biases and LayerNorms, so that each tensor matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def save_bin(model, directory, shards=1):
    """Writes `model` as transformers 4.x's `save_pretrained(safe_serialization=False)` did
    (5.x writes safetensors only, but still loads these): config.json and pytorch_model.bin,
    or pytorch_model-0000i-of-0000n.bin shards with pytorch_model.bin.index.json."""
    directory = pathlib.Path(directory)
    model.config.save_pretrained(directory)
    state = model.state_dict()
    if shards == 1:
        torch.save(state, directory / "pytorch_model.bin")
        return
    names = list(state)
    weight_map = {}
    for i in range(shards):
        shard = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {n: state[n] for n in names[i::shards]}
        torch.save(part, directory / shard)
        weight_map.update({n: shard for n in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def load_in_transformers(directory):
    from transformers import CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection.from_pretrained(directory).eval()


PIXELS = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def embeds(model):
    with torch.no_grad():
        return model(PIXELS).image_embeds


def assert_same(converted: dict, reference: dict):
    assert sorted(converted) == sorted(reference)
    for name, ref in reference.items():
        got = converted[name]
        assert got.dtype == ref.dtype, name
        assert got.shape == ref.shape, name
        assert torch.equal(got, ref), name


def run(*args):
    """The script as a user runs it; returns (exit code, stdout, stderr)."""
    r = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )
    return r.returncode, r.stdout, r.stderr


def test_hf_single_file_round_trips_and_loads_in_transformers(tmp_path):
    model = tiny_vision_model()
    save_bin(model, tmp_path)
    assert torch.equal(embeds(load_in_transformers(tmp_path)), embeds(model))  # a real .bin

    code, out, err = run(tmp_path)
    assert code == 0, err
    assert str(tmp_path / "model.safetensors") in out

    converted = safetensors_torch.load_file(tmp_path / "model.safetensors")
    assert_same(converted, model.state_dict())
    with open(tmp_path / "model.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"] == {"format": "pt"}

    # transformers reads the converted directory alone to the same outputs.
    (tmp_path / "pytorch_model.bin").unlink()
    assert torch.equal(embeds(load_in_transformers(tmp_path)), embeds(model))


def test_hf_shards_keep_their_split_and_index(tmp_path):
    model = tiny_vision_model(seed=1)
    save_bin(model, tmp_path, shards=3)
    source_index = json.loads((tmp_path / "pytorch_model.bin.index.json").read_text())

    code, _, err = run(tmp_path)
    assert code == 0, err

    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    expected_map = {
        name: shard.replace("pytorch_model", "model").replace(".bin", ".safetensors")
        for name, shard in source_index["weight_map"].items()
    }
    assert index["weight_map"] == expected_map
    assert len(set(expected_map.values())) == 3
    converted = {}
    for shard in sorted(set(expected_map.values())):
        part = safetensors_torch.load_file(tmp_path / shard)
        assert all(expected_map[n] == shard for n in part)
        converted.update(part)
    state = model.state_dict()
    assert_same(converted, state)
    assert index["metadata"]["total_size"] == source_index["metadata"]["total_size"]

    for pickle_file in tmp_path.glob("pytorch_model*"):
        pickle_file.unlink()
    assert torch.equal(embeds(load_in_transformers(tmp_path)), embeds(model))


class Tiny(torch.nn.Module):
    """A small module with a tied weight and an integer buffer, as OpenAI's archives have."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 4, stride=4, bias=False)
        self.ln = torch.nn.LayerNorm(8)
        self.proj = torch.nn.Parameter(torch.randn(8, 5))
        self.head = torch.nn.Linear(5, 8)
        self.register_buffer("input_resolution", torch.tensor(16))

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        return self.head(self.ln(x) @ self.proj)


def test_torchscript_archive(tmp_path):
    torch.manual_seed(2)
    module = Tiny().eval()
    traced = torch.jit.trace(module, torch.randn(1, 3, 16, 16))
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(traced, str(path))
    assert cts.is_torchscript(path)

    code, out, err = run(path)
    assert code == 0, err
    assert "TorchScript" in out
    converted = safetensors_torch.load_file(tmp_path / "ViT-tiny.safetensors")
    assert_same(converted, torch.jit.load(str(path)).state_dict())
    assert_same(converted, module.state_dict())


def test_open_clip_checkpoint_unwrapped_and_prefix_stripped(tmp_path):
    torch.manual_seed(3)
    weights = {
        "visual.conv1.weight": torch.randn(8, 3, 4, 4),
        "visual.proj": torch.randn(8, 5),
        "logit_scale": torch.tensor(4.6),
    }
    checkpoint = {
        "epoch": 7,
        "name": "run",
        "state_dict": {"module." + k: v for k, v in weights.items()},
    }
    torch.save(checkpoint, tmp_path / "epoch_7.pt")

    code, out, err = run(tmp_path / "epoch_7.pt")
    assert code == 0, err
    assert '"module." prefix stripped' in out
    assert_same(safetensors_torch.load_file(tmp_path / "epoch_7.safetensors"), weights)


def test_tied_views_and_non_contiguous_tensors_are_saved_whole(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    weights = {
        "a.weight": base,
        "b.weight": base,  # tied: same tensor under two names
        "c.row": base[1],  # a view into the same storage
        "d.t": base.t(),  # not contiguous
    }
    torch.save(weights, tmp_path / "tied.bin")
    code, _, err = run(tmp_path / "tied.bin")
    assert code == 0, err
    converted = safetensors_torch.load_file(tmp_path / "tied.safetensors")
    assert_same(converted, {k: v.contiguous() for k, v in weights.items()})


def test_dtype_casts_floats_only(tmp_path):
    weights = {"w": torch.randn(3, 4), "position_ids": torch.arange(5).unsqueeze(0)}
    torch.save(weights, tmp_path / "m.bin")
    code, _, err = run(tmp_path / "m.bin", "--dtype", "bf16")
    assert code == 0, err
    converted = safetensors_torch.load_file(tmp_path / "m.safetensors")
    assert_same(
        converted, {"w": weights["w"].to(torch.bfloat16), "position_ids": weights["position_ids"]}
    )


def test_existing_output_needs_force(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "m.bin")
    (tmp_path / "m.safetensors").write_bytes(b"keep me")
    code, _, err = run(tmp_path / "m.bin")
    assert code == 1
    assert "m.safetensors: already exists (pass --force to overwrite)" in err
    assert (tmp_path / "m.safetensors").read_bytes() == b"keep me"

    code, _, err = run(tmp_path / "m.bin", "--force")
    assert code == 0, err
    assert_same(safetensors_torch.load_file(tmp_path / "m.safetensors"), {"w": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.safetensors"]


def test_output_dir_and_config_note(tmp_path):
    model = tiny_vision_model(seed=4)
    save_bin(model, tmp_path / "in")
    (tmp_path / "out").mkdir()
    code, out, err = run(tmp_path / "in", "--output-dir", tmp_path / "out")
    assert code == 0, err
    assert "not copied" in out and "config.json" in out
    assert_same(safetensors_torch.load_file(tmp_path / "out/model.safetensors"), model.state_dict())
    assert not (tmp_path / "in/model.safetensors").exists()


def test_pickled_object_is_refused_by_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"w": torch.ones(1), "x": Evil()}, tmp_path / "evil.bin")
    code, out, err = run(tmp_path / "evil.bin")
    assert code == 1
    assert "refused by torch.load(weights_only=True)" in err
    assert "ran" not in out
    assert not (tmp_path / "evil.safetensors").exists()


def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    code, _, err = run(tmp_path / "junk.bin")
    assert code == 1
    assert f"{tmp_path / 'junk.bin'}: cannot load it as a PyTorch checkpoint" in err

    torch.save([torch.ones(1)], tmp_path / "list.pt")
    code, _, err = run(tmp_path / "list.pt")
    assert code == 1
    assert "holds a list, not a dict of tensors" in err

    code, _, err = run(tmp_path / "missing")
    assert code == 1
    assert "no such file or directory" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(empty)
    assert code == 1
    assert "found: none" in err


def test_output_names():
    assert cts.safetensors_name("pytorch_model.bin") == "model.safetensors"
    assert cts.safetensors_name("pytorch_model-00002-of-00003.bin") == "model-00002-of-00003.safetensors"
    assert cts.safetensors_name("open_clip_pytorch_model.bin") == "open_clip_pytorch_model.safetensors"
    assert cts.safetensors_name("ViT-B-32.pt") == "ViT-B-32.safetensors"
    assert cts.safetensors_name("weights.pth") == "weights.safetensors"


def test_pins_are_read_from_requirements():
    pins = cts.pinned_versions()
    assert set(cts.CHECKED) <= set(pins)
    text = (HERE / "requirements.txt").read_text()
    for name in cts.CHECKED:
        assert f"{name}=={pins[name]}" in text
