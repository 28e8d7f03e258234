#!/usr/bin/env python3
"""Make the reference fixtures of clip-vision from HF transformers, with random weights.

Every checkpoint here is a small `CLIPVisionModelWithProjection` built from a config and
random weights, saved with `save_pretrained` exactly as the hub serves real ones, next to
fixed pixel inputs and transformers' own outputs. Nothing is downloaded.

    python3 scripts/make_fixtures.py            # rewrite fixtures/models/*
    python3 scripts/make_fixtures.py --b32 DIR  # also a ViT-B/32-sized checkpoint (not committed)

Fixtures (fixtures/models/NAME unless said):
    tiny-quickgelu, tiny-gelu,       CLIPVisionModelWithProjection, one file each; tiny-quickgelu
    tiny-gelu-tanh                   also holds references at other input sizes (interp.*)
    sharded                          the same saved in shards with model.safetensors.index.json
    f16, bf16                        weights stored in half precision (reference: f32 run on the
                                     same rounded weights)
    clip-full                        a whole CLIPModel (text tower too), config.json a CLIPConfig
    openai-naming/tiny.safetensors   OpenAI names (visual.*), no config, made by renaming a
                                     transformers model's tensors; text-tower tensors beside it
    open-clip                        open_clip_config.json + open_clip_model.safetensors, exact
                                     GELU, head_width 12; cross-checked against open_clip itself
    demo                             the bundled default model of the README's run command: a CLIPModel,
                                     vision at 224 px, text on CLIP's real vocabulary, with
                                     preprocessor_config.json and the real tokenizer files (vocab.json,
                                     merges.txt, tokenizer.json, tokenizer_config.json, built from
                                     open_clip's bpe_simple_vocab_16e6.txt.gz); the end-to-end reference
                                     of transformers' CLIPImageProcessor (PIL) + model on fixtures/images,
                                     and of the text side: text_embeds.{labels,queries,ensemble} (raw
                                     get_text_features, except ensemble: unit mean of unit prompt
                                     embeddings), logits_per_image.labels, probs.{labels,ensemble};
                                     reference.json: labels, templates, queries, text_ids (the
                                     tokenizer's ids), search (per query the image indices by falling
                                     cosine, and those cosines in that order)
    massive                          a tower with real CLIP's massive activations, for int8 quantization:
                                     CLIPVisionModelWithProjection, width 128, 4 layers of 4 heads, MLP 512,
                                     quick_gelu, eps 1e-5, 64 px in patches of 8, projection 64, seed 2007
                                     (initializer_factor 2 in its config, but perturb_ redraws every weight,
                                     at unit gain); then massive_: the ordinary residual stream x0.15,
                                     channels pushed to (100, -50, -50) on every token by fc2.bias of layers
                                     1 and 2 (0.8 / 0.2 of it; ~200-440x the median channel), 4 fc1 neurons
                                     always on (fc1.bias +20 in layers 1 and 2), LayerNorm gains x50 on the
                                     other channels past them and x8 on theirs, so that q/k/v/fc1 read a few
                                     channels ~60x the rest, and the constants those outliers feed the next
                                     linears taken out of their biases. The end-to-end reference on
                                     fixtures/images (every file PIL opens) through CLIPImageProcessorPil at
                                     64 px (preprocessor_config.json); reference.json: the parameters, the
                                     channels and neurons drawn, the outliers' sizes per hidden state and per
                                     linear's input, and how much image_embeds depend on the image
    fixtures/hub                     an HF hub cache (models--clip-vision--tiny-hub) holding
                                     tiny-gelu-tanh as the hub lays it out (symlinks into blobs/)

Layout of each HF fixture directory:
    config.json, model.safetensors   what `save_pretrained` writes
    reference.safetensors            pixel_values [B, C, S, S] and the outputs:
                                     last_hidden_state, pooler_output, image_embeds,
                                     hidden_states.{0..L}
    reference.json                   the torch/transformers versions, the seed, and how far
                                     PyTorch's own f32 run is from an f64 run of the same weights
"""

import argparse
import gzip
import hashlib
import json
import math
import os
import pathlib
import shutil

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

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
            if name == "logit_scale":
                continue
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


def run(model, pixels, **kwargs):
    """transformers' outputs, as a dict of tensors."""
    with torch.inference_mode():
        out = model(pixel_values=pixels, output_hidden_states=True, **kwargs)
        pooled = model.vision_model(pixel_values=pixels, **kwargs).pooler_output
    tensors = {
        "last_hidden_state": out.last_hidden_state,
        "pooler_output": pooled,
        "image_embeds": out.image_embeds,
    }
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    return tensors


def build(cfg: dict, seed: int, cls=CLIPVisionModelWithProjection):
    """A perturbed random model and the generator that made it (for the inputs)."""
    gen = torch.Generator().manual_seed(seed)
    config = CLIPVisionConfig(**cfg) if cls is CLIPVisionModelWithProjection else cfg
    model = cls(config).eval()
    perturb_(model, gen)
    return model, gen


def save_reference(out_dir: pathlib.Path, tensors: dict, meta: dict, name: str = "reference") -> None:
    """NAME.safetensors (the tensors as f32) and NAME.json (the versions, then `meta`)."""
    tensors = {k: v.detach().clone().contiguous().float() for k, v in tensors.items()}
    save_file(tensors, out_dir / f"{name}.safetensors")
    meta = {
        "made_by": "scripts/make_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **meta,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


def reference_of(model, pixels, with_f64=True, **kwargs):
    """transformers' outputs in f32 (and how far they are from an f64 run)."""
    ref = run(model, pixels, **kwargs)
    meta = {"max_abs_reference": {k: float(v.abs().max()) for k, v in ref.items()}}
    if with_f64:
        import copy
        ref64 = run(copy.deepcopy(model).double(), pixels.double(), **kwargs)
        meta["torch_f32_vs_f64_max_abs"] = {k: float((ref[k].double() - ref64[k]).abs().max()) for k in ref}
    return ref, meta


def make_tiny(name: str, cfg: dict, seed: int) -> None:
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model, gen = build(cfg, seed)
    model.save_pretrained(out_dir)

    size = cfg["image_size"]
    pixels = torch.randn(BATCH, 3, size, size, generator=gen)
    ref, meta = reference_of(model, pixels)
    tensors = {"pixel_values": pixels, **ref}
    if name == "tiny-quickgelu":
        # Other input sizes through interpolate_pos_encoding (bicubic, align_corners=False):
        # a non-square 48x40 (grid 6x5) and a square 64x64 (grid 8x8).
        for tag, (h, w) in {"interp_48x40": (48, 40), "interp_64x64": (64, 64)}.items():
            px = torch.randn(2, 3, h, w, generator=gen)
            r = run(model, px, interpolate_pos_encoding=True)
            tensors[f"{tag}.pixel_values"] = px
            for k in ("last_hidden_state", "pooler_output", "image_embeds"):
                tensors[f"{tag}.{k}"] = r[k]
    save_reference(out_dir, tensors, {"seed": seed, "batch": BATCH,
                                      "attn_implementation": model.config._attn_implementation, **meta})
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"f32 vs f64 last_hidden_state {meta['torch_f32_vs_f64_max_abs']['last_hidden_state']:.2e}")


def make_sharded(seed: int) -> None:
    """tiny-quickgelu's shape saved as several shards with an index."""
    out_dir = FIXTURES / "sharded"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cfg = TINY["tiny-quickgelu"]
    model, gen = build(cfg, seed)
    model.save_pretrained(out_dir, max_shard_size="80KB")
    shards = sorted(p.name for p in out_dir.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out_dir / "model.safetensors.index.json").exists(), shards
    pixels = torch.randn(2, 3, cfg["image_size"], cfg["image_size"], generator=gen)
    ref, meta = reference_of(model, pixels)
    save_reference(out_dir, {"pixel_values": pixels, **ref}, {"seed": seed, "shards": shards, **meta})
    print(f"sharded: {len(shards)} shards")


def make_half(name: str, dtype, seed: int) -> None:
    """tiny-gelu's shape with weights stored as f16 / bf16. The reference is transformers'
    f32 run on the same rounded weights (what an f32 engine loading them should compute)."""
    out_dir = FIXTURES / name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cfg = TINY["tiny-gelu"]
    model, gen = build(cfg, seed)
    model = model.to(dtype)
    model.save_pretrained(out_dir)
    stored = load_file(out_dir / "model.safetensors")
    assert all(v.dtype == dtype for v in stored.values()), {k: v.dtype for k, v in stored.items()}
    model = model.float()
    pixels = torch.randn(BATCH, 3, cfg["image_size"], cfg["image_size"], generator=gen)
    ref, meta = reference_of(model, pixels)
    save_reference(out_dir, {"pixel_values": pixels, **ref}, {"seed": seed, "stored_dtype": str(dtype), **meta})
    print(f"{name}: weights stored as {dtype}")


def make_clip_full(seed: int) -> None:
    """A whole CLIPModel: config.json is a CLIPConfig with vision_config nested and the
    projection width at top level; the file holds the text tower and logit_scale too."""
    out_dir = FIXTURES / "clip-full"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    vision = dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=5,
                  image_size=28, patch_size=7, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=20)
    model, gen = build(config, seed, cls=CLIPModel)
    model.save_pretrained(out_dir)
    saved = json.loads((out_dir / "config.json").read_text())
    assert saved["model_type"] == "clip" and "vision_config" in saved and saved["projection_dim"] == 20
    pixels = torch.randn(2, 3, 28, 28, generator=gen)
    with torch.inference_mode():
        out = model.vision_model(pixel_values=pixels, output_hidden_states=True)
        embeds = model.visual_projection(out.pooler_output)
        feats = model.get_image_features(pixel_values=pixels)
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    assert torch.allclose(feats, embeds)
    tensors = {"pixel_values": pixels, "last_hidden_state": out.last_hidden_state,
               "pooler_output": out.pooler_output, "image_embeds": embeds}
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    save_reference(out_dir, tensors, {"seed": seed})
    print("clip-full: CLIPModel with text tower")


def to_openai_names(sd: dict, prefix: str = "visual.") -> dict:
    """transformers' vision tensors renamed as OpenAI CLIP / open_clip name them."""
    out = {}
    v = "vision_model."
    out[prefix + "conv1.weight"] = sd[v + "embeddings.patch_embedding.weight"]
    out[prefix + "class_embedding"] = sd[v + "embeddings.class_embedding"]
    out[prefix + "positional_embedding"] = sd[v + "embeddings.position_embedding.weight"]
    for part in ("weight", "bias"):
        out[prefix + f"ln_pre.{part}"] = sd[v + f"pre_layrnorm.{part}"]
        out[prefix + f"ln_post.{part}"] = sd[v + f"post_layernorm.{part}"]
    out.update(openai_resblocks(sd, v, prefix))
    out[prefix + "proj"] = sd["visual_projection.weight"].t()
    return {k: t.detach().clone().contiguous() for k, t in out.items()}


def openai_resblocks(sd: dict, hf_prefix: str, oa_prefix: str) -> dict:
    """The encoder layers under HF_PREFIX ("vision_model." / "text_model.") renamed as OpenAI's
    OA_PREFIX + "transformer.resblocks.{i}.*" (q, k, v fused into in_proj)."""
    out = {}
    n_layers = 1 + max(int(k[len(hf_prefix):].split(".")[2]) for k in sd
                       if k.startswith(hf_prefix + "encoder.layers."))
    for i in range(n_layers):
        hf, oa = f"{hf_prefix}encoder.layers.{i}.", f"{oa_prefix}transformer.resblocks.{i}."
        att = hf + "self_attn."
        out[oa + "attn.in_proj_weight"] = torch.cat([sd[att + f"{p}_proj.weight"] for p in "qkv"])
        out[oa + "attn.in_proj_bias"] = torch.cat([sd[att + f"{p}_proj.bias"] for p in "qkv"])
        for part in ("weight", "bias"):
            out[oa + f"attn.out_proj.{part}"] = sd[att + f"out_proj.{part}"]
            out[oa + f"ln_1.{part}"] = sd[hf + f"layer_norm1.{part}"]
            out[oa + f"ln_2.{part}"] = sd[hf + f"layer_norm2.{part}"]
            out[oa + f"mlp.c_fc.{part}"] = sd[hf + f"mlp.fc1.{part}"]
            out[oa + f"mlp.c_proj.{part}"] = sd[hf + f"mlp.fc2.{part}"]
    return out


def make_openai_naming(seed: int) -> None:
    """OpenAI names in a lone safetensors file, no config: the loader infers the shape from
    the tensors (heads = width / 64) and takes the activation from the caller."""
    out_dir = FIXTURES / "openai-naming"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cfg = dict(hidden_size=128, intermediate_size=200, num_hidden_layers=2, num_attention_heads=2,
               image_size=32, patch_size=8, projection_dim=24, hidden_act="quick_gelu")
    model, gen = build(cfg, seed)
    tensors = to_openai_names(model.state_dict())
    # Text-tower tensors and logit_scale sit beside the visual ones in OpenAI checkpoints.
    tensors["token_embedding.weight"] = torch.randn(10, 16, generator=gen)
    tensors["positional_embedding"] = torch.randn(7, 16, generator=gen)
    tensors["transformer.resblocks.0.attn.in_proj_weight"] = torch.randn(48, 16, generator=gen)
    tensors["logit_scale"] = torch.tensor(4.6052)
    save_file(tensors, out_dir / "tiny.safetensors")
    pixels = torch.randn(2, 3, 32, 32, generator=gen)
    ref, meta = reference_of(model, pixels)
    save_reference(out_dir, {"pixel_values": pixels, **ref},
                   {"seed": seed, "activation": "quick_gelu", "num_attention_heads": 2, **meta})
    print("openai-naming: renamed tensors, no config")


def make_open_clip(seed: int) -> None:
    """An open_clip checkpoint directory (open_clip_config.json + open_clip_model.safetensors)
    with exact GELU and head_width 12. Weights come from a transformers model (so it is the
    reference); open_clip itself, when installed, must agree."""
    out_dir = FIXTURES / "open-clip"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cfg = dict(hidden_size=48, intermediate_size=120, num_hidden_layers=2, num_attention_heads=4,
               image_size=32, patch_size=8, projection_dim=16, hidden_act="gelu", layer_norm_eps=1e-5)
    model, gen = build(cfg, seed)
    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "head_width": 12,
                       "mlp_ratio": 2.5, "patch_size": 8},
        "text_cfg": {"context_length": 8, "vocab_size": 50, "width": 16, "heads": 2, "layers": 1},
    }
    tensors = to_openai_names(model.state_dict())
    pixels = torch.randn(2, 3, 32, 32, generator=gen)
    ref, meta = reference_of(model, pixels)
    try:
        import open_clip
        oc = open_clip.CLIP(**model_cfg).eval()
        sd = oc.state_dict()
        missing = [k for k in tensors if k not in sd]
        assert not missing, missing
        for k, v in sd.items():
            if not k.startswith("visual."):
                tensors[k] = torch.randn(v.shape, generator=gen) * 0.02
        oc.load_state_dict(tensors, strict=True)
        with torch.inference_mode():
            oc_embeds = oc.encode_image(pixels)
        diff = float((oc_embeds - ref["image_embeds"]).abs().max())
        assert diff < 1e-5, f"open_clip disagrees with transformers by {diff}"
        meta["open_clip_version"] = open_clip.__version__
        meta["open_clip_vs_transformers_image_embeds_max_abs"] = diff
    except ImportError:
        raise SystemExit("open_clip_torch is needed for the open-clip fixture (see requirements.txt)")
    save_file(tensors, out_dir / "open_clip_model.safetensors")
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_reference(out_dir, {"pixel_values": pixels, **ref}, {"seed": seed, **meta})
    print(f"open-clip: open_clip agrees with transformers within {meta['open_clip_vs_transformers_image_embeds_max_abs']:.1e}")


# CLIP's vocabulary: 256 byte characters, the same with "</w>", 48894 merges, 2 specials.
N_MERGES = 49152 - 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_vocabulary():
    """CLIP's BPE vocabulary built from open_clip's bpe_simple_vocab_16e6.txt.gz exactly as
    OpenAI's and open_clip's SimpleTokenizer build it: (tokens in id order, merges as pairs).
    The specials are named as the hub's openai/clip-* tokenizers name them (open_clip calls
    them <start_of_text>/<end_of_text>; same ids 49406/49407)."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    assert len(merges) == N_MERGES and all(len(m) == 2 for m in merges)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    assert len(tokens) == len(set(tokens)) == 49408
    return tokens, merges


def clip_tokenizer():
    """transformers' fast CLIPTokenizer on the real vocabulary (objects, not file names:
    transformers 5 ignores vocab_file=, and tokenizers wants the merges as pairs)."""
    from transformers import CLIPTokenizer

    tokens, merges = clip_vocabulary()
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)


def save_clip_tokenizer(out_dir: pathlib.Path):
    """vocab.json + merges.txt (as the hub's openai/clip-vit-base-patch32 has them, with the
    "#version: 0.2" line) and what CLIPTokenizer.save_pretrained writes (tokenizer.json, written
    compact, and tokenizer_config.json). Returns the tokenizer."""
    tokens, merges = clip_vocabulary()
    tokenizer = clip_tokenizer()
    tokenizer.save_pretrained(out_dir)
    # save_pretrained pretty-prints tokenizer.json (3.6 MB: four lines a merge pair); the same
    # JSON written compact is 1.7 MB.
    path = out_dir / "tokenizer.json"
    pretty = json.loads(path.read_text(encoding="utf-8"))
    tokenizer.backend_tokenizer.save(str(path), pretty=False)
    assert json.loads(path.read_text(encoding="utf-8")) == pretty
    vocab = {t: i for i, t in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                        encoding="utf-8")
    return tokenizer


DEMO_LABELS = ["a dog", "a cat", "a beach", "a red car", "text", "mountains"]
DEMO_TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "art of the {}."]
DEMO_QUERIES = ["an astronaut in space", "a cup of coffee", "a rocket on the launch pad"]


def make_demo(seed: int) -> None:
    """The bundled default model: a small random CLIPModel (vision tower at 224 px, text
    tower on CLIP's real 49408-token vocabulary) with CLIPImageProcessor's config and the
    real CLIP tokenizer files, and the end-to-end references on the sample photos in
    fixtures/images (every file there that PIL opens): the vision outputs, zero-shot labels
    (one prompt, and the prompt ensemble), and text-to-image search."""
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    out_dir = FIXTURES / "demo"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cfg = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               image_size=224, patch_size=32, projection_dim=32, hidden_act="quick_gelu")
    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                bos_token_id=49406, eos_token_id=49407, pad_token_id=1, projection_dim=32)
    # The vision tower is drawn as when the demo was a CLIPVisionModelWithProjection (so its
    # references did not move), then the text tower from the same generator.
    vision, gen = build(cfg, seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=cfg, projection_dim=32)).eval()
    model.vision_model.load_state_dict(vision.vision_model.state_dict())
    model.visual_projection.load_state_dict(vision.visual_projection.state_dict())
    perturb_(model.text_model, gen)
    perturb_(model.text_projection, gen)
    with torch.no_grad():
        model.logit_scale.fill_(3.3)
    model.save_pretrained(out_dir)
    processor = CLIPImageProcessorPil()
    assert processor.backend == "pil"
    processor.save_pretrained(out_dir)
    tokenizer = save_clip_tokenizer(out_dir)
    images = sorted(p for p in (ROOT / "fixtures" / "images").iterdir()
                    if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
    names, pixels = [], []
    for path in images:
        with Image.open(path) as im:
            pixels.append(processor(images=im, return_tensors="pt")["pixel_values"][0])
        names.append(path.name)
    pixels = torch.stack(pixels)
    ref = run(vision, pixels)

    def features(out):
        return out.pooler_output if hasattr(out, "pooler_output") else out

    def embed_texts(texts):
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            return features(model.get_text_features(**batch))

    with torch.inference_mode():
        image_embeds = features(model.get_image_features(pixel_values=pixels))
        labels = tokenizer(DEMO_LABELS, padding=True, return_tensors="pt")
        out = model(input_ids=labels["input_ids"], attention_mask=labels["attention_mask"], pixel_values=pixels)
    assert torch.allclose(image_embeds, ref["image_embeds"], atol=1e-6)
    scale = model.logit_scale.detach().exp()
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)
    label_embeds = embed_texts(DEMO_LABELS)
    alone = torch.cat([embed_texts([t]) for t in DEMO_LABELS])
    assert torch.allclose(label_embeds, alone, atol=1e-5), "padding moved the label embeddings"
    logits = out.logits_per_image
    assert torch.allclose(logits, scale * unit(image_embeds) @ unit(label_embeds).T, atol=1e-4)
    # CLIP's prompt ensemble: per label, the mean of its unit prompt embeddings, renormalised.
    ensemble = torch.stack([unit(unit(embed_texts([t.format(label) for t in DEMO_TEMPLATES])).mean(0))
                            for label in DEMO_LABELS])
    ensemble_logits = scale * unit(image_embeds) @ ensemble.T
    query_embeds = embed_texts(DEMO_QUERIES)
    cosine = (unit(query_embeds) @ unit(image_embeds).T).numpy()
    search = []
    for q, row in zip(DEMO_QUERIES, cosine):
        order = np.argsort(-row, kind="stable")
        search.append({"query": q, "order": order.tolist(), "scores": [float(row[i]) for i in order]})
    gaps = [float(np.min(-np.diff(np.sort(row)[::-1]))) for row in cosine]
    texts = DEMO_LABELS + [t.format(label) for label in DEMO_LABELS for t in DEMO_TEMPLATES] + DEMO_QUERIES
    text_ids = [{"text": t, "ids": tokenizer(t)["input_ids"]} for t in texts]
    # pixel_values are not kept (7 MB): the test runs clip-vision's own preprocessing.
    tensors = {"last_hidden_state": ref["last_hidden_state"],
               "pooler_output": ref["pooler_output"], "image_embeds": ref["image_embeds"],
               "text_embeds.labels": label_embeds, "logits_per_image.labels": logits,
               "probs.labels": logits.softmax(dim=-1), "text_embeds.ensemble": ensemble,
               "probs.ensemble": ensemble_logits.softmax(dim=-1), "text_embeds.queries": query_embeds}
    save_reference(out_dir, tensors, {
        "seed": seed, "images": names, "processor": "CLIPImageProcessorPil",
        "logit_scale": model.logit_scale.item(), "labels": DEMO_LABELS, "templates": DEMO_TEMPLATES,
        "queries": DEMO_QUERIES, "search": search, "search_min_score_gap": min(gaps), "text_ids": text_ids,
    })
    print(f"demo: end-to-end reference on {len(names)} photos, {len(DEMO_LABELS)} labels, "
          f"{len(DEMO_QUERIES)} queries (closest search scores {min(gaps):.1e} apart)")


# The massive fixture: a tower with the activation outliers of real CLIP towers (see massive_).
MASSIVE = dict(
    hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
    image_size=64, patch_size=8, projection_dim=64, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    initializer_factor=2.0,
)
# What the massive residual channels reach. They sum to 0: a nonzero sum would shift every
# LayerNorm's mean, a constant that drowns the image in everything downstream.
MASSIVE_TARGETS = (100.0, -50.0, -50.0)
MASSIVE_SPLIT = {1: 0.8, 2: 0.2}  # fc2.bias share of the targets, by layer
MASSIVE_RESIDUAL_SCALE = 0.15     # on pre_layrnorm and every out_proj / fc2, weights and biases
MASSIVE_LN_GAIN = 50.0            # the ordinary channels' gain in the LayerNorms past the massive ones
MASSIVE_LN_OUTLIER = 8.0          # the massive channels' gain in those of the encoder (not post_layernorm)
MASSIVE_NEURONS = 4               # always-on MLP neurons, in the layers of MASSIVE_SPLIT
MASSIVE_NEURON_BIAS = 20.0        # added to their fc1 bias


def massive_(model, gen: torch.Generator) -> dict:
    """Give a perturbed tower (perturb_) real CLIP's activation outliers, in place; returns
    the indices drawn (massive residual channels, always-on neurons) and the LayerNorms
    whose gains were changed.

    1. The ordinary residual stream is made small: MASSIVE_RESIDUAL_SCALE on what writes it
       (LayerNorms are scale-invariant, so this alone is the perturbed tower's function, scaled).
    2. fc2.bias of layers 1 and 2 push MASSIVE_TARGETS into a few channels of every token
       (MASSIVE_SPLIT of it in each), and fc1.bias += MASSIVE_NEURON_BIAS keeps a few neurons
       of the same layers firing on every token.
    3. The LayerNorms that see the massive channels (layers 2-3's, post_layernorm) would squash
       the rest of the stream by their variance (~11x) and leave a tower that ignores its input:
       their gains on the ordinary channels are x MASSIVE_LN_GAIN. In the encoder's, the massive
       channels' gains are x MASSIVE_LN_OUTLIER, so that q/k/v/fc1 read a few channels ~60x the
       rest, as in trained towers.
    4. What is constant in those outliers is taken out of the biases of the linears that read
       them, as a trained tower absorbs them: q/k/v/fc1.bias -= W[:, channels] @ (the massive
       channels' LayerNorm output, gain * target / its rms + shift), fc2.bias -= W[:, neurons] @
       MASSIVE_NEURON_BIAS. So the f32 tower still depends on its input; int8 activation scales
       still see the outliers."""
    cfg = model.config
    vision = model.vision_model
    layers = vision.encoder.layers
    channels = torch.randperm(cfg.hidden_size, generator=gen)[:len(MASSIVE_TARGETS)]
    neurons = torch.randperm(cfg.intermediate_size, generator=gen)[:MASSIVE_NEURONS]
    after = range(min(MASSIVE_SPLIT) + 1, len(layers))
    ordinary = torch.ones(cfg.hidden_size, dtype=torch.bool)
    ordinary[channels] = False
    targets = torch.tensor(MASSIVE_TARGETS)
    with torch.no_grad():
        writers = [vision.pre_layrnorm] + [m for layer in layers for m in (layer.self_attn.out_proj, layer.mlp.fc2)]
        for module in writers:
            for p in module.parameters():
                p.mul_(MASSIVE_RESIDUAL_SCALE)
        for i, share in MASSIVE_SPLIT.items():
            layers[i].mlp.fc2.bias[channels] += share * targets
            layers[i].mlp.fc1.bias[neurons] += MASSIVE_NEURON_BIAS
        vision.post_layernorm.weight[ordinary] *= MASSIVE_LN_GAIN
        for i in after:
            layer = layers[i]
            # what the massive channels hold when layer i reads them (both of its LayerNorms:
            # layer i's own fc2 writes after them)
            massive = targets * sum(share for j, share in MASSIVE_SPLIT.items() if j < i)
            rms = float(massive.pow(2).mean() * len(massive) / cfg.hidden_size) ** 0.5
            attn = layer.self_attn
            for ln, readers in ((layer.layer_norm1, (attn.q_proj, attn.k_proj, attn.v_proj)),
                                (layer.layer_norm2, (layer.mlp.fc1,))):
                ln.weight[ordinary] *= MASSIVE_LN_GAIN
                ln.weight[channels] *= MASSIVE_LN_OUTLIER
                out = ln.weight[channels] * massive / rms + ln.bias[channels]
                for lin in readers:
                    lin.bias -= lin.weight[:, channels] @ out
        for i in MASSIVE_SPLIT:
            fc2 = layers[i].mlp.fc2
            fc2.bias -= fc2.weight[:, neurons].sum(dim=1) * MASSIVE_NEURON_BIAS
    regained = [f"encoder.layers.{i}.layer_norm{j}" for i in after for j in (1, 2)] + ["post_layernorm"]
    return {"channels": channels.tolist(), "neurons": neurons.tolist(), "regained_layer_norms": regained}


def massive_stats(model, pixels, ref: dict, channels: list, neurons: list, names: list) -> dict:
    """How large the outliers are: per hidden state, each channel's mean |h| over images and
    tokens, the massive channels' against the median channel (and their smallest |h| on any
    token); per layer, the inputs of its linears (q/k/v read layer_norm1's output, fc1
    layer_norm2's, fc2 the activations): max |x| and the largest channel's mean |x| against the
    median channel's, and at fc2 the always-on neurons' smallest and largest activation; and
    how much image_embeds depend on the image."""
    inputs = {}
    hooks = []
    for i, layer in enumerate(model.vision_model.encoder.layers):
        for name, lin in (("q_k_v", layer.self_attn.q_proj), ("out_proj", layer.self_attn.out_proj),
                          ("fc1", layer.mlp.fc1), ("fc2", layer.mlp.fc2)):
            hooks.append(lin.register_forward_pre_hook(
                lambda m, a, key=(str(i), name): inputs.__setitem__(key, a[0].detach().double())))
    try:
        with torch.inference_mode():
            model(pixel_values=pixels)
    finally:
        for h in hooks:
            h.remove()
    hidden = {}
    for i in range(model.config.num_hidden_layers + 1):
        h = ref[f"hidden_states.{i}"].double()
        mag = h.abs().mean(dim=(0, 1))
        median = float(mag.median())
        hidden[str(i)] = {
            "median_channel_mean_abs": median,
            "massive_channel_mean_abs": [float(mag[c]) for c in channels],
            "massive_channel_min_abs": [float(h[..., c].abs().min()) for c in channels],
            "max_over_median": float(mag.max()) / median,
            "massive_over_median": [float(mag[c]) / median for c in channels],
        }
    linear_inputs = {}
    for (i, name), x in inputs.items():
        mag = x.abs().mean(dim=(0, 1))
        median = float(mag.median())
        entry = {"max_abs": float(x.abs().max()), "median_channel_mean_abs": median,
                 "max_channel_over_median": float(mag.max()) / median}
        if name == "fc2":
            entry["neuron_min"] = [float(x[..., n].min()) for n in neurons]
            entry["neuron_max"] = [float(x[..., n].max()) for n in neurons]
        linear_inputs.setdefault(i, {})[name] = entry
    e = ref["image_embeds"].double()
    off = ~torch.eye(len(e), dtype=torch.bool)

    def cosines(x):
        u = x / x.norm(dim=-1, keepdim=True)
        c = (u @ u.T)[off]
        return {"mean": float(c.mean()), "max": float(c.max()), "min": float(c.min())}

    def centred(x):
        x = x.flatten(1).double()
        x = x - x.mean(dim=0)
        x = x / x.norm(dim=-1, keepdim=True)
        return x @ x.T

    mean = e.mean(dim=0)
    c = centred(e).masked_fill(~off, -2)
    i, j = divmod(int(c.argmax()), len(e))
    depend = {
        "raw_pairwise_cosine": cosines(e),
        "centred_pairwise_cosine": cosines(e - mean),
        # the closest pair is two versions of one photo: their pixel_values are as close
        "closest_pair": {"images": [names[i], names[j]], "centred_cosine": float(c[i, j]),
                         "pixel_values_centred_cosine": float(centred(pixels)[i, j])},
        "rms_deviation_over_mean_norm": float((e - mean).pow(2).sum(-1).mean().sqrt() / mean.norm()),
    }
    return {"hidden_states": hidden, "linear_inputs": linear_inputs, "image_embeds_input_dependence": depend}


def make_massive(seed: int) -> None:
    """A tower with massive activations, for int8 quantization: a few residual channels
    hundreds of times the median channel on every token, and MLP neurons firing on every
    token (massive_), run end to end on the sample photos at 64 px."""
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    out_dir = FIXTURES / "massive"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    model, gen = build(MASSIVE, seed)
    drawn = massive_(model, gen)
    model.save_pretrained(out_dir)
    size = MASSIVE["image_size"]
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor.save_pretrained(out_dir)
    images = sorted(p for p in (ROOT / "fixtures" / "images").iterdir()
                    if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
    names, pixels = [], []
    for path in images:
        with Image.open(path) as im:
            pixels.append(processor(images=im, return_tensors="pt")["pixel_values"][0])
        names.append(path.name)
    pixels = torch.stack(pixels)
    ref, meta = reference_of(model, pixels)
    assert all(torch.isfinite(v).all() for v in ref.values())
    stats = massive_stats(model, pixels, ref, drawn["channels"], drawn["neurons"], names)
    ratios = [min(s["massive_over_median"]) for i, s in stats["hidden_states"].items() if int(i) > min(MASSIVE_SPLIT)]
    assert min(ratios) > 100, ratios
    depend = stats["image_embeds_input_dependence"]
    assert depend["rms_deviation_over_mean_norm"] > 0.3 and depend["raw_pairwise_cosine"]["mean"] < 0.9, depend
    save_reference(out_dir, {"pixel_values": pixels, **ref}, {
        "seed": seed, "batch": len(names), "images": names, "processor": "CLIPImageProcessorPil",
        "attn_implementation": model.config._attn_implementation, "config": MASSIVE,
        "massive": {"channels": drawn["channels"], "targets": list(MASSIVE_TARGETS),
                    "fc2_bias_share_by_layer": {str(k): v for k, v in MASSIVE_SPLIT.items()},
                    "residual_scale": MASSIVE_RESIDUAL_SCALE, "layer_norm_gain": MASSIVE_LN_GAIN,
                    "layer_norm_outlier_gain": MASSIVE_LN_OUTLIER,
                    "regained_layer_norms": drawn["regained_layer_norms"],
                    "neurons": drawn["neurons"], "neuron_layers": sorted(MASSIVE_SPLIT),
                    "neuron_fc1_bias": MASSIVE_NEURON_BIAS},
        **stats, **meta,
    })
    per_layer = ", ".join(f"{i}: {s['max_over_median']:.0f}" for i, s in stats["hidden_states"].items())
    print(f"massive: channels {drawn['channels']}, neurons {drawn['neurons']}; max/median channel by "
          f"hidden state {per_layer}; image_embeds pairwise cosine mean {depend['raw_pairwise_cosine']['mean']:.2f}, "
          f"centred mean {depend['centred_pairwise_cosine']['mean']:.2f} max {depend['centred_pairwise_cosine']['max']:.2f}")


def make_hub_cache() -> None:
    """An HF hub cache holding tiny-gelu-tanh as huggingface_hub lays it out:
    models--ORG--NAME/{blobs/<sha256>, refs/main, snapshots/<commit>/<file> -> ../../blobs/<sha256>}."""
    root = ROOT / "fixtures" / "hub"
    shutil.rmtree(root, ignore_errors=True)
    repo = root / "models--clip-vision--tiny-hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        data = (FIXTURES / "tiny-gelu-tanh" / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / sha).write_bytes(data)
        os.symlink(f"../../blobs/{sha}", snap / name)
    print("hub: models--clip-vision--tiny-hub")


def make_b32(out_dir: pathlib.Path, seed: int) -> None:
    """A ViT-B/32-sized checkpoint (88M parameters, 352 MB): random, not committed."""
    cfg = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512,
               hidden_act="quick_gelu")
    out_dir.mkdir(parents=True, exist_ok=True)
    model, gen = build(cfg, seed)
    model.save_pretrained(out_dir)
    pixels = torch.randn(2, 3, 224, 224, generator=gen)
    ref, meta = reference_of(model, pixels, with_f64=False)
    keep = ["last_hidden_state", "pooler_output", "image_embeds", "hidden_states.0", "hidden_states.11"]
    save_reference(out_dir, {"pixel_values": pixels, **{k: ref[k] for k in keep}}, {"seed": seed, **meta})
    print(f"ViT-B/32-sized checkpoint in {out_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--b32", type=pathlib.Path, help="also write a ViT-B/32-sized checkpoint here")
    ap.add_argument("--only", nargs="*", help="only these fixtures")
    args = ap.parse_args()
    torch.manual_seed(0)
    want = lambda name: not args.only or name in args.only
    for seed, (name, cfg) in enumerate(TINY.items()):
        if want(name):
            make_tiny(name, cfg, seed=1000 + seed)
    if want("sharded"):
        make_sharded(seed=2000)
    if want("f16"):
        make_half("f16", torch.float16, seed=2001)
    if want("bf16"):
        make_half("bf16", torch.bfloat16, seed=2002)
    if want("clip-full"):
        make_clip_full(seed=2003)
    if want("openai-naming"):
        make_openai_naming(seed=2004)
    if want("open-clip"):
        make_open_clip(seed=2005)
    if want("hub"):
        make_hub_cache()
    if want("demo"):
        make_demo(seed=2006)
    if want("massive"):
        make_massive(seed=2007)
    if args.b32:
        make_b32(args.b32, seed=32)


if __name__ == "__main__":
    main()
