#!/usr/bin/env python3
"""What bf16 does to CLIP's embeddings, simulated in transformers (docs/performance.md, issue 13).

For each fixture (a `save_pretrained` CLIPVisionModelWithProjection directory with a
`reference.safetensors` holding `pixel_values`), prints the smallest raw and batch-centred
cosine of `image_embeds` to the f32 model's, for
  weights-only: every encoder linear's weight rounded to bf16 (what `Precision::Bf16` does);
  +activations: also each of those linears' input rounded to bf16 (what `vdpbf16ps` does).

Usage: python3 scripts/sim_bf16_activations.py fixtures/models/massive fixtures/models/tiny-gelu
Needs torch, transformers, safetensors (scripts/requirements.txt). No downloads.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import CLIPVisionModelWithProjection


def cosines(got, want):
    got, want = got.double(), want.double()
    raw = torch.nn.functional.cosine_similarity(got, want, dim=1).min().item()
    gc, wc = got - got.mean(0), want - want.mean(0)
    return raw, torch.nn.functional.cosine_similarity(gc, wc, dim=1).min().item()


def to_bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def main(dirs):
    torch.set_num_threads(1)
    for d in dirs:
        pixels = load_file(f"{d}/reference.safetensors")["pixel_values"]
        model = CLIPVisionModelWithProjection.from_pretrained(d).eval()
        linears = [m for m in model.vision_model.encoder.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            want = model(pixel_values=pixels).image_embeds
            for m in linears:
                m.weight.copy_(to_bf16(m.weight))
            weights_only = model(pixel_values=pixels).image_embeds
            for m in linears:
                m.register_forward_pre_hook(lambda _m, args: (to_bf16(args[0]),))
            both = model(pixel_values=pixels).image_embeds
        print("%s weights-only raw %.6f centred %.6f; +activations raw %.6f centred %.6f"
              % ((d,) + cosines(weights_only, want) + cosines(both, want)))


if __name__ == "__main__":
    main(sys.argv[1:])
