#!/usr/bin/env python3
"""Time CLIP's text tower end to end from strings: clip-text beside transformers and ONNX Runtime.

The text counterpart of bench_peers.py, whose timing, busy-call rejection, subprocess driver
and summary it imports (one subprocess per runtime, batch size and round; rounds interleaved).

Model: a random-weight `CLIPTextModelWithProjection` of a --preset (text_b32: the text tower of
OpenAI ViT-B/32), saved with save_pretrained together with CLIP's real tokenizer, built from
open_clip's bundled `bpe_simple_vocab_16e6.txt.gz` the way OpenAI builds the vocabulary and
saved by transformers' `CLIPTokenizer` (tokenizer.json, vocab.json, merges.txt).

Texts: 256 seeded English captions of 5-25 words, the same for every runtime (texts.json in
the work dir). Each timed call goes from strings to `text_embeds`:
  batch 1    one text per call, cycling through the 256 (at least 256 timed calls, so each
             text is timed once; the median call is a median-length text)
  batch 256  all texts in one call
Runtimes:
  torch  transformers' fast CLIPTokenizer (padding=True: to the longest of the batch,
         truncation to 77) + `CLIPTextModelWithProjection`, eager, f32, inference_mode,
         torch.set_num_threads(T)
  ort    the same tokenizer + the model exported to ONNX (input_ids, attention_mask with
         dynamic batch and sequence axes -> text_embeds), CPUExecutionProvider, intra_op T,
         inter_op 1, ORT_ENABLE_ALL
  NAME   (--rust-worker NAME=PATH) clip-text: benches/examples/text_peer_worker.rs, which
         loads the dir with `ClipTextEncoder::from_pretrained` (its own tokenizer) and times
         `text_embeds` the same way; one padded batch per call, like the peers
Each worker also times its tokenizer alone on the same calls (`tokenize_median_s`), and saves
the text_embeds of all 256 texts (one at a time for batch 1), which are checked against
torch's (max abs diff, and relative to max |torch|).

Usage:
    python3 scripts/bench_text_peers.py --threads 2 --rounds 3 \\
        --rust-worker clip-vision-gemm=target/release/examples/text_peer_worker --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import (  # noqa: E402  (the shared harness, one directory up the path)
    OthersWatch, cpu_flags, cpu_name, perturb_, proc_status_kib, report_ratios_and_json, run_rust, run_sub,
    summarise, time_calls)

PRESETS = {
    # The text tower of OpenAI CLIP ViT-B/32, as the hub config gives it.
    "text_b32": dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                     num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                     hidden_act="quick_gelu", projection_dim=512),
}
CONTEXT = 77
N_TEXTS = 256


# ----------------------------------------------------------------------------- texts

_DET = ["a", "the", "two", "three", "an old", "a young", "some", "one", "a few", "several"]
_ADJ = ["small", "large", "red", "blue", "green", "white", "black", "brown", "yellow", "wooden",
        "happy", "tired", "busy", "quiet", "bright", "dark", "tall", "tiny", "empty", "crowded",
        "shiny", "rusty", "fluffy", "striped", "colorful", "snowy", "sunny", "wet", "modern",
        "ancient", "smiling", "hungry", "curious", "narrow", "wide", "golden", "plastic"]
_NOUN = ["dog", "cat", "man", "woman", "child", "girl", "boy", "horse", "bird", "car", "bus",
         "train", "bicycle", "boat", "table", "house", "tree", "flower", "plate", "pizza",
         "cake", "kitchen", "street", "skateboard", "umbrella", "laptop", "phone", "sandwich",
         "giraffe", "elephant", "zebra", "sheep", "cow", "bench", "clock", "kite", "surfer",
         "player", "chef", "bridge", "window", "truck", "motorcycle", "couch", "bowl", "apple"]
_VERB = ["sitting", "standing", "running", "walking", "riding", "holding", "eating", "looking",
         "playing", "lying", "jumping", "waiting", "parked", "flying", "sleeping", "resting",
         "smiling", "carrying", "crossing", "climbing", "swimming", "cooking", "reading"]
_PREP = ["on", "in", "near", "next to", "under", "behind", "in front of", "beside", "across",
         "along", "inside", "outside", "over", "by", "at", "around", "between"]
_PLACE = ["the beach", "a busy street", "a kitchen table", "a grassy field", "the snow",
          "a city park", "the water", "a dirt road", "the sidewalk", "a living room",
          "the airport", "a train station", "the mountains", "a wooden fence", "the ocean",
          "a parking lot", "a small town", "the forest", "a crowded market", "the river"]
_PLURAL = {"man": "men", "woman": "women", "child": "children", "sheep": "sheep",
           "bus": "buses", "bench": "benches", "sandwich": "sandwiches", "couch": "couches"}
_LINK = ["and", "while", "as", "where", "and then", "just as"]


def _noun_phrase(rng: random.Random) -> list[str]:
    words = rng.choice(_DET).split()
    for _ in range(rng.choice([0, 1, 1, 2])):
        words.append(rng.choice(_ADJ))
    noun = rng.choice(_NOUN)
    plural = words[0] in ("two", "three", "some", "several") or words[:2] == ["a", "few"]
    words.append(_PLURAL.get(noun, noun + "s") if plural else noun)
    if words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    return words


def _clause(rng: random.Random) -> list[str]:
    words = [rng.choice(_VERB)]
    if rng.random() < 0.6:
        words += rng.choice(_PREP).split() + rng.choice(_PLACE).split()
    else:
        words += rng.choice(_PREP).split() + _noun_phrase(rng)
    return words


def caption(rng: random.Random) -> str:
    """One caption of 5-25 words: a noun phrase, then clauses, cut to a drawn length."""
    n = rng.randint(5, 25)
    words = _noun_phrase(rng) + _clause(rng)
    while len(words) < n:
        if rng.random() < 0.3:
            words += ["with"] + _noun_phrase(rng)
        else:
            words += rng.choice(_LINK).split() + _noun_phrase(rng) + _clause(rng)
    words = words[:n]
    text = " ".join(words)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.4:
        text += "."
    return text


def make_texts(seed: int, n: int = N_TEXTS) -> list[str]:
    rng = random.Random(seed)
    return [caption(rng) for _ in range(n)]


# ----------------------------------------------------------------------------- model & tokenizer

def clip_tokenizer(out_dir: pathlib.Path) -> None:
    """CLIP's tokenizer from open_clip's bundled merges, built as OpenAI builds the vocabulary,
    saved by transformers' CLIPTokenizer (objects, not files: transformers 5 ignores vocab_file)."""
    import gzip

    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer
    gz = pathlib.Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(gz).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges)
    tok.save_pretrained(out_dir)


def build_model(preset: str, out_dir: pathlib.Path, seed: int) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    model = CLIPTextModelWithProjection(CLIPTextConfig(**PRESETS[preset])).eval()
    perturb_(model, seed)
    model.save_pretrained(out_dir)
    clip_tokenizer(out_dir)


def load_torch(model_dir: str, attn: str | None):
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer
    kw = {"attn_implementation": attn} if attn else {}
    model = CLIPTextModelWithProjection.from_pretrained(model_dir, dtype="float32", **kw).eval()
    return model, CLIPTokenizer.from_pretrained(model_dir)


def tokenize(tok, texts: list[str], tensors: str):
    return tok(texts, padding=True, truncation=True, max_length=CONTEXT, return_tensors=tensors)


def export_onnx(model_dir: str, out: str, exporter: str, opset: int | None,
                attn: str | None) -> None:
    """text_embeds = model(input_ids, attention_mask), dynamic batch and sequence axes."""
    import torch

    class TextEmbeds(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).text_embeds

    model, tok = load_torch(model_dir, attn)
    model = TextEmbeds(model)
    enc = tokenize(tok, ["a photo of a dog", "a photo of two cats sitting on a red couch"], "pt")
    example = (enc["input_ids"], enc["attention_mask"])
    kw = dict(input_names=["input_ids", "attention_mask"], output_names=["text_embeds"])
    if opset:
        kw["opset_version"] = opset
    with torch.no_grad():
        if exporter == "dynamo":
            b, s = torch.export.Dim("batch"), torch.export.Dim("sequence", max=CONTEXT)
            kw["dynamic_shapes"] = {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}}
            prog = torch.onnx.export(model, example, dynamo=True, **kw)
            prog.save(out, external_data=False)
        else:
            axes = {0: "batch", 1: "sequence"}
            kw["dynamic_axes"] = {"input_ids": axes, "attention_mask": axes,
                                  "text_embeds": {0: "batch"}}
            torch.onnx.export(model, example, out, dynamo=False, **kw)


# ----------------------------------------------------------------------------- workers

def worker(a: argparse.Namespace) -> None:
    """One runtime, one batch size: time strings -> text_embeds, save all 256, print one JSON line."""
    import numpy as np
    rss_start = proc_status_kib("VmRSS")
    spec = json.loads(pathlib.Path(a.input).read_text())
    texts, batch = spec["texts"], spec["batch"]
    info: dict = {}
    if a.worker == "torch":
        import torch
        torch.set_num_threads(a.threads)
        rss_libs = proc_status_kib("VmRSS")
        model, tok = load_torch(a.model, a.attn)
        info["attn_implementation"] = model.config._attn_implementation
        info["torch_threads"] = torch.get_num_threads()

        def embed(chunk):
            with torch.inference_mode():
                return model(**tokenize(tok, chunk, "pt")).text_embeds.numpy()
    else:
        import onnxruntime as ort
        from transformers import CLIPTokenizer
        rss_libs = proc_status_kib("VmRSS")
        tok = CLIPTokenizer.from_pretrained(a.model)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        info["providers"] = sess.get_providers()

        def embed(chunk):
            enc = tokenize(tok, chunk, "np")
            feeds = {"input_ids": enc["input_ids"].astype(np.int64),
                     "attention_mask": enc["attention_mask"].astype(np.int64)}
            return sess.run(["text_embeds"], feeds)[0]
    tensors = "pt" if a.worker == "torch" else "np"
    info["tokenizer"] = type(tok).__name__ + (" (fast)" if tok.is_fast else " (slow)")
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    out = np.concatenate([embed(c) for c in chunks])
    rss_loaded = proc_status_kib("VmRSS")
    np.save(a.output, np.ascontiguousarray(out, dtype=np.float32))

    def cycling(fn):
        state = {"next": 0}

        def call():
            c = chunks[state["next"] % len(chunks)]
            state["next"] += 1
            return fn(c)
        return call

    watch = OthersWatch(not a.no_reject_busy)
    times, noise = time_calls(cycling(embed), a.warmup, a.iters, a.min_time, a.max_iters,
                              watch, a.max_wall)
    tok_times, _ = time_calls(cycling(lambda c: tokenize(tok, c, tensors)), a.warmup, a.iters,
                              a.min_time / 5, a.max_iters, watch, a.max_wall)
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "times_s": times,
        "rss_start_kib": rss_start,
        "rss_after_import_kib": rss_libs,
        "rss_after_load_kib": rss_loaded,
        "vmhwm_kib": proc_status_kib("VmHWM"),
        "ru_maxrss_kib": ru_maxrss,
        **noise,
        "tokenize_median_s": statistics.median(tok_times),
        **info,
    }))


# ----------------------------------------------------------------------------- driver

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="text_b32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, N_TEXTS],
                    help=f"texts per call; must divide {N_TEXTS}")
    ap.add_argument("--runtimes", nargs="+", default=None,
                    help="which to time: torch, ort and the --rust-worker names (default: all)")
    ap.add_argument("--rust-worker", action="append", default=[], metavar="NAME=PATH",
                    help="a text_peer_worker binary to time as runtime NAME")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    ap.add_argument("--iters", type=int, default=10,
                    help=f"minimum timed calls (batch B: at least {N_TEXTS}/B, every text once)")
    ap.add_argument("--min-time", type=float, default=5.0,
                    help="keep timing until this many seconds were spent (up to --max-iters)")
    ap.add_argument("--max-iters", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="repeat each subprocess, interleaved")
    ap.add_argument("--no-reject-busy", action="store_true",
                    help="keep calls during which other processes were busy (default: drop them)")
    ap.add_argument("--max-wall", type=float, default=900.0)
    ap.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                    help="transformers attention implementation (default: transformers' own)")
    ap.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    ap.add_argument("--opset", type=int, default=None)
    ap.add_argument("--workdir", help="where the model, ONNX file and texts go (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    # internal: one subprocess per step
    ap.add_argument("--worker", choices=["torch", "ort"], help=argparse.SUPPRESS)
    ap.add_argument("--export-to", help=argparse.SUPPRESS)
    ap.add_argument("--build-to", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        return worker(a)
    if a.build_to:
        return build_model(a.preset, pathlib.Path(a.build_to), a.seed)
    if a.export_to:
        return export_onnx(a.model, a.export_to, a.exporter, a.opset, a.attn)
    rust = dict(w.split("=", 1) for w in a.rust_worker)
    if a.runtimes is None:
        a.runtimes = ["torch", "ort", *rust]
    unknown = [r for r in a.runtimes if r not in ("torch", "ort", *rust)]
    if unknown:
        raise SystemExit(f"unknown runtimes {unknown}: give them with --rust-worker NAME=PATH")
    bad = [b for b in a.batch_sizes if b < 1 or N_TEXTS % b]
    if bad:
        raise SystemExit(f"--batch-sizes {bad}: each must divide {N_TEXTS}")

    import numpy as np

    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="bench_text_peers_"))
    work.mkdir(parents=True, exist_ok=True)
    script = os.path.abspath(__file__)
    common = ["--threads", str(a.threads), "--exporter", a.exporter, "--seed", str(a.seed),
              "--preset", a.preset, "--max-wall", str(a.max_wall)]
    if a.attn:
        common += ["--attn", a.attn]
    if a.opset:
        common += ["--opset", str(a.opset)]
    if a.no_reject_busy:
        common += ["--no-reject-busy"]

    model_dir = work / f"model-{a.preset}-seed{a.seed}"
    if not (model_dir / "tokenizer.json").exists():
        print(f"building a random {a.preset} text model in {model_dir}", flush=True)
        run_sub(["--build-to", str(model_dir), *common], a.threads, script)
    onnx = work / f"model-{a.exporter}{'' if a.attn is None else '-' + a.attn}-dyn.onnx"
    if "ort" in a.runtimes and not onnx.exists():
        print(f"exporting {onnx.name}", flush=True)
        t0 = time.perf_counter()
        run_sub(["--export-to", str(onnx), "--model", str(model_dir), *common], a.threads, script)
        print(f"  {time.perf_counter() - t0:.1f} s", flush=True)

    texts = make_texts(a.seed)
    inputs = {}
    for b in a.batch_sizes:
        inputs[b] = work / f"texts-b{b}.json"
        inputs[b].write_text(json.dumps({"batch": b, "texts": texts}, indent=0) + "\n")
    words = [len(t.split()) for t in texts]

    raw: dict[tuple[str, int], list[dict]] = {}
    for b in a.batch_sizes:
        for r in range(a.rounds):
            for rt in a.runtimes:
                argv = ["--worker", rt, "--model", str(model_dir), "--input", str(inputs[b]),
                        "--output", str(work / f"out-{rt}-b{b}.npy"),
                        "--warmup", str(a.warmup), "--iters", str(max(a.iters, N_TEXTS // b)),
                        "--min-time", str(a.min_time), "--max-iters", str(a.max_iters), *common]
                if rt == "ort":
                    argv += ["--onnx", str(onnx)]
                if rt in rust:
                    out = run_rust(rust[rt], argv[2:], a.threads)
                else:
                    out = run_sub(argv, a.threads, script)
                res = json.loads(out.strip().splitlines()[-1])
                raw.setdefault((rt, b), []).append(res)
                print(f"  {rt:16s} batch {b:3d} round {r + 1}: median "
                      f"{statistics.median(res['times_s']):.4f} s over {len(res['times_s'])} calls "
                      f"(tokenizer alone {res['tokenize_median_s'] * 1e3:.2f} ms; "
                      f"{len(res['dropped_calls_s'])} dropped as disturbed, "
                      f"{res['waited_for_quiet_s']:.0f} s waiting for quiet)", flush=True)

    results = []
    for (rt, b), runs in raw.items():
        s = summarise(runs, b)
        s["texts_per_s"], s["ms_per_text"] = s.pop("images_per_s"), s.pop("ms_per_image")
        s["tokenize_median_s"] = statistics.median(r["tokenize_median_s"] for r in runs)
        s["extra"].pop("tokenize_median_s", None)
        results.append(dict(runtime=rt, **s))
    checks = []
    if "torch" in a.runtimes:
        for rt in a.runtimes:
            for b in a.batch_sizes:
                if rt == "torch" and b == a.batch_sizes[0]:
                    continue
                t = np.load(work / f"out-torch-b{a.batch_sizes[0]}.npy").astype(np.float64)
                o = np.load(work / f"out-{rt}-b{b}.npy").astype(np.float64)
                diff = float(np.abs(t - o).max())
                scale = float(np.abs(t).max())
                checks.append({"runtime": rt, "batch": b, "shape": list(o.shape),
                               "max_abs_diff": diff, "max_abs_torch": scale,
                               "max_rel_diff": diff / scale})

    import onnxruntime
    import torch
    import transformers
    cfg = json.loads((model_dir / "config.json").read_text())
    meta = {
        "model_dir": str(model_dir),
        "preset": a.preset,
        "config": {k: cfg.get(k) for k in PRESETS[a.preset]},
        "texts": {"n": len(texts), "words_min": min(words), "words_max": max(words),
                  "words_mean": statistics.mean(words), "seed": a.seed, "first": texts[:3]},
        "threads": a.threads,
        "warmup": a.warmup, "iters": a.iters, "min_time": a.min_time, "rounds": a.rounds,
        "exporter": a.exporter,
        "batch_reference": a.batch_sizes[0],
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "cpu": cpu_name(), "cpu_flags": cpu_flags(), "nproc": os.cpu_count(),
    }

    print()
    print(f"{meta['cpu']} [{' '.join(meta['cpu_flags'])}], {a.threads} threads; torch "
          f"{torch.__version__}, transformers {transformers.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    print(f"{len(texts)} texts of {min(words)}-{max(words)} words (mean {statistics.mean(words):.1f})")
    hdr = (f"{'runtime':16s} {'batch':>5s} {'median s':>9s} {'min s':>9s} {'max s':>9s} "
           f"{'texts/s':>8s} {'ms/text':>8s} {'tok ms':>8s} {'peak RSS':>9s} {'calls':>6s} {'dropped':>7s}")
    print(hdr)
    print("-" * len(hdr))
    for r in sorted(results, key=lambda r: (r["batch"], r["runtime"])):
        print(f"{r['runtime']:16s} {r['batch']:5d} {r['median_s']:9.4f} {r['min_s']:9.4f} "
              f"{r['max_s']:9.4f} {r['texts_per_s']:8.2f} {r['ms_per_text']:8.2f} "
              f"{r['tokenize_median_s'] * 1e3:8.2f} {r['peak_rss_mib']:6.0f} MiB "
              f"{sum(r['iters_per_round']):6d} {r['dropped_calls']:7d}"
              + ("  (hit --max-wall)" if r["hit_max_wall"] else ""))
    for c in checks:
        print(f"{c['runtime']} (batch {c['batch']}) vs torch (batch {a.batch_sizes[0]}) text_embeds "
              f"{c['shape']}: max abs diff {c['max_abs_diff']:.2e} (max |torch| "
              f"{c['max_abs_torch']:.2e}, relative {c['max_rel_diff']:.2e})")
    report_ratios_and_json(a, rust, results, checks, raw, meta)


if __name__ == "__main__":
    main()
