#!/usr/bin/env python3
"""Make the reference fixtures of clip-vision from HF transformers, with random weights.

Every checkpoint here is a small `CLIPVisionModelWithProjection` built from a config and
random weights, saved with `save_pretrained` exactly as the hub serves real ones, next to
fixed pixel inputs and transformers' own outputs. Nothing is downloaded.

    python3 scripts/make_fixtures.py            # rewrite fixtures/models/*
    python3 scripts/make_fixtures.py --b32 DIR  # also a ViT-B/32-sized checkpoint (not committed)

Layout of each fixture directory:
    config.json, model.safetensors   what `save_pretrained` writes
    reference.safetensors            pixel_values [B, C, S, S] and the outputs:
                                     last_hidden_state, pooler_output, image_embeds,
                                     hidden_states.{0..L}
    reference.json                   the torch/transformers versions, the seed, and how far
                                     PyTorch's own f32 run is from an f64 run of the same weights
"""

import argparse
import json
import math
import pathlib

import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "models"

# Small configs that exercise what a loader can get wrong: head_dim != 8, an intermediate
# size that is not 4 x hidden, a non-default eps, and each activation.
TINY = {
    "tiny-quickgelu": dict(
        hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=24, hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    ),
    "tiny-gelu": dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        image_size=30, patch_size=6, projection_dim=40, hidden_act="gelu",
        layer_norm_eps=1e-6,
    ),
    "tiny-gelu-tanh": dict(
        hidden_size=30, intermediate_size=50, num_hidden_layers=2, num_attention_heads=2,
        image_size=24, patch_size=4, projection_dim=16, hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-5,
    ),
}
BATCH = 3


def perturb_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draw every weight so that each one matters to the output.

    HF's init leaves biases at 0 and LayerNorms at (1, 0), so a loader that dropped them
    would still pass; and its small projections make attention nearly uniform, so a loader
    that swapped q and k would too. Here projections get unit-gain scales (attention logits
    of order 1), biases and LayerNorm shifts N(0, 0.1²), LayerNorm scales 1 + N(0, 0.2²).
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("class_embedding") or "position_embedding" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("weight"):
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            else:
                raise ValueError(f"unexpected parameter {name}")


def run(model, pixels):
    """transformers' outputs, as a dict of tensors."""
    with torch.inference_mode():
        out = model(pixel_values=pixels, output_hidden_states=True)
        pooled = model.vision_model(pixel_values=pixels).pooler_output
    tensors = {
        "last_hidden_state": out.last_hidden_state,
        "pooler_output": pooled,
        "image_embeds": out.image_embeds,
    }
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    return tensors


def make_tiny(name: str, cfg: dict, seed: int) -> None:
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    config = CLIPVisionConfig(**cfg)
    model = CLIPVisionModelWithProjection(config).eval()
    perturb_(model, gen)
    model.save_pretrained(out_dir)

    size = cfg["image_size"]
    pixels = torch.randn(BATCH, 3, size, size, generator=gen)
    ref = run(model, pixels)
    ref64 = run(model.double(), pixels.double())
    f32_vs_f64 = {k: float((ref[k].double() - ref64[k]).abs().max()) for k in ref}

    tensors = {"pixel_values": pixels}
    tensors.update({k: v.clone().contiguous() for k, v in ref.items()})
    save_file(tensors, out_dir / "reference.safetensors")
    meta = {
        "made_by": "scripts/make_fixtures.py",
        "seed": seed,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
        "batch": BATCH,
        "max_abs_reference": {k: float(v.abs().max()) for k, v in ref.items()},
        "torch_f32_vs_f64_max_abs": f32_vs_f64,
    }
    (out_dir / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"f32 vs f64 last_hidden_state {f32_vs_f64['last_hidden_state']:.2e}")


def make_b32(out_dir: pathlib.Path, seed: int) -> None:
    """A ViT-B/32-sized checkpoint (88M parameters, 352 MB): random, not committed."""
    cfg = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512,
               hidden_act="quick_gelu")
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg)).eval()
    perturb_(model, gen)
    model.save_pretrained(out_dir)
    pixels = torch.randn(2, 3, 224, 224, generator=gen)
    ref = run(model, pixels)
    keep = ["last_hidden_state", "pooler_output", "image_embeds", "hidden_states.11"]
    tensors = {"pixel_values": pixels}
    tensors.update({k: ref[k].clone().contiguous() for k in keep})
    save_file(tensors, out_dir / "reference.safetensors")
    print(f"ViT-B/32-sized checkpoint in {out_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--b32", type=pathlib.Path, help="also write a ViT-B/32-sized checkpoint here")
    ap.add_argument("--only", nargs="*", help="only these fixtures")
    args = ap.parse_args()
    torch.manual_seed(0)
    for seed, (name, cfg) in enumerate(TINY.items()):
        if not args.only or name in args.only:
            make_tiny(name, cfg, seed=1000 + seed)
    if args.b32:
        make_b32(args.b32, seed=32)


if __name__ == "__main__":
    main()
