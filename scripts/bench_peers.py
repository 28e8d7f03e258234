#!/usr/bin/env python3
"""Time the peers a user would pick instead of clip-vision, on one random-weight checkpoint.

Runtimes (each in its own subprocess, so that its peak RSS is its own):
  torch  transformers `CLIPVisionModelWithProjection`, eager PyTorch (no torch.compile),
         f32, under `torch.inference_mode()`, `torch.set_num_threads(T)`;
         the attention implementation is transformers' default (`sdpa`) unless --attn says.
  ort    ONNX Runtime CPUExecutionProvider on the same model exported to ONNX (one output,
         `image_embeds`; dynamic batch axis unless --onnx-fixed-batch),
         `intra_op_num_threads=T`, `inter_op_num_threads=1`, ORT_ENABLE_ALL graph optimisations.
  ort-int8  the same session settings on that same f32 export quantized the way ORT documents
         for transformers on CPU: `quant_pre_process` (symbolic shape inference, ORT basic
         optimisation, ONNX shape inference), then `quantize_dynamic(per_channel=True,
         weight_type=QuantType.QInt8)`: int8 weights per output channel, uint8 activations
         quantized per tensor at run time (MatMulInteger / ConvInteger for every linear layer,
         the patch conv and the projection; the two attention matmuls stay f32). Cached in the
         workdir next to the f32 export as `<export>-int8.onnx`.

  NAME   (any --rust-worker NAME=PATH[@PRECISION]) clip-vision itself: PATH is the peer_worker
         example of the benches crate (`cargo build --release -p vit-benches --example
         peer_worker [--features gemm]`), which loads the same checkpoint with
         `ClipVisionEncoder::from_pretrained`, times `image_embeds` on the same pixels with
         the same rules, and prints the same JSON line. `cargo xtask bench --peers` passes
         one per GEMM backend. `@PRECISION` (f32, int8 or bf16) passes `--precision PRECISION`
         to the worker (without it the worker gets no such flag and runs its default), so
         `--rust-worker gemm=PATH --rust-worker gemm-int8=PATH@int8` times both on one binary.

All get the same pixel_values (seeded N(0, 1), [B, 3, S, S] f32) and the same thread count
(OMP/MKL/OpenBLAS_NUM_THREADS=T are also set in each subprocess). For each runtime and
batch size the script reports the median, min and max seconds per batch, images/s and
ms/image (both from the median), the peak RSS of the subprocess (VmHWM, which on Linux is
also what `ru_maxrss` reports) and its RSS before the model was loaded (the interpreter and
the runtime's libraries). Every runtime's image_embeds are checked against torch's on the same
inputs (max abs diff, and relative to max |torch|), so a broken export shows up, and each gets
two accuracy columns against the f32 reference (torch's output, or ORT f32's when torch did
not run): `min cos`, the smallest cosine over the batch rows, and `ctr cos`, the same after
subtracting each output's batch mean from its rows (batch > 1 only: random-weight towers give
embeddings that share a large common component, which flatters the raw cosine). After the
speed ratios of every Rust worker to ORT and torch come the reduced-precision ones: each int8
Rust worker against ort-int8, and each int8 / bf16 runtime against its own f32 (ort-int8 vs
ort; a Rust worker with @PRECISION vs the one with the same PATH and no @ or @f32).

Usage (no network: a missing --model is built from a preset config with random weights):
    python3 scripts/bench_peers.py --preset vit_b32 --threads 2 --batch-sizes 1 32 --json out.json
    python3 scripts/bench_peers.py --model DIR --threads 2 --batch-sizes 1 8 32 --rounds 3
    python3 scripts/bench_peers.py --runtimes ort ort-int8 gemm gemm-int8 \
        --rust-worker gemm=target/release/examples/peer_worker \
        --rust-worker gemm-int8=target/release/examples/peer_worker@int8

Timing: --warmup untimed calls, then at least --iters timed calls and more until
--min-time seconds have been spent (so batch 1 gets many samples without making batch 32
slow). --rounds R repeats every (runtime, batch) subprocess R times, interleaved
(torch, ort, torch, ort, ...), and reports the median of the per-round medians, the min of
mins and max of maxes; on a noisy machine compare runtimes as ratios within one invocation.
Only one benchmark subprocess runs at a time. Each subprocess waits until the machine is
quiet, and drops (and re-runs) any timed call during which other processes used more than
0.03 s + 10 % of its wall time in CPU (from /proc/stat; --no-reject-busy keeps them); the
number dropped is reported. Noise from outside the OS (a VM's neighbours) is not visible
this way: use --rounds and compare within one invocation.

Needs: torch, transformers, onnx, onnxruntime, numpy, safetensors, and onnxscript for the
(default) dynamo ONNX exporter; without onnxscript, or with `--exporter torchscript`, the
legacy TorchScript exporter is used (the JSON records which).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PRESETS = {
    # OpenAI CLIP vision towers (quick_gelu), as the hub configs give them.
    "vit_b32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, image_size=224, patch_size=32,
                    projection_dim=512, hidden_act="quick_gelu"),
    "vit_b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, image_size=224, patch_size=16,
                    projection_dim=512, hidden_act="quick_gelu"),
    "vit_l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                    num_attention_heads=16, image_size=224, patch_size=14,
                    projection_dim=768, hidden_act="quick_gelu"),
}

# What `--rust-worker NAME=PATH@PRECISION` may ask a peer_worker for (its `--precision`).
PRECISIONS = ("f32", "int8", "bf16")


# ----------------------------------------------------------------------------- helpers

def proc_status_kib(field: str) -> int | None:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM), in KiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


class OthersWatch:
    """CPU seconds used by *other* processes: /proc/stat's busy time minus this process's.

    The machine may be shared (a compile or another benchmark starting mid-run makes a
    2-core box useless for timing), so each timed call is checked and, when others took
    more than `0.03 s + 10 %` of its wall time, dropped and re-run once the machine is
    quiet again. /proc/stat counts in ticks (10 ms), hence the fixed slack.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and os.path.exists("/proc/stat")
        self.hz = os.sysconf("SC_CLK_TCK") if self.enabled else 100

    def sample(self) -> tuple[float, float]:
        if not self.enabled:
            return (0.0, 0.0)
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq
        return (busy / self.hz, time.process_time())

    def others(self, s0, s1) -> float:
        return max(0.0, (s1[0] - s0[0]) - (s1[1] - s0[1]))

    def disturbed(self, s0, s1, wall: float) -> bool:
        return self.enabled and self.others(s0, s1) > 0.03 + 0.1 * wall

    def wait_quiet(self, max_wait: float, window: float = 1.0) -> float:
        """Sleep until others use < 5 % of the machine over `window` s; returns the wait."""
        t0 = time.perf_counter()
        while self.enabled and time.perf_counter() - t0 < max_wait:
            s0 = self.sample()
            time.sleep(window)
            if self.others(s0, self.sample()) < 0.05 * window * (os.cpu_count() or 1):
                break
        return time.perf_counter() - t0


def time_calls(fn, warmup: int, iters: int, min_time: float, max_iters: int,
               watch: OthersWatch, max_wall: float) -> tuple[list[float], dict]:
    """Seconds per undisturbed call: `warmup` untimed calls, then >= iters timed ones, more
    until min_time; calls during which other processes were busy are dropped (see
    OthersWatch) and not counted, up to `max_wall` seconds in all."""
    waited = watch.wait_quiet(max_wall)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    dropped: list[float] = []
    spent = 0.0
    start = time.perf_counter()
    while len(times) < iters or (spent < min_time and len(times) < max_iters):
        if time.perf_counter() - start > max_wall:
            break
        s0 = watch.sample()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if watch.disturbed(s0, watch.sample(), dt):
            dropped.append(dt)
            waited += watch.wait_quiet(max_wall)
            fn()  # re-warm after the pause
            continue
        times.append(dt)
        spent += dt
    return times, {"dropped_calls_s": dropped, "waited_for_quiet_s": waited,
                   "hit_max_wall": len(times) < iters}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_flags() -> list[str]:
    """The vector extensions /proc/cpuinfo lists (AVX2, FMA, AVX-512*, AMX*)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(x for x in line.split(":", 1)[1].split()
                                  if x in ("avx2", "fma", "avx_vnni") or x.startswith(("avx512", "amx")))
    except OSError:
        pass
    return []


# ----------------------------------------------------------------------------- model & inputs

def perturb_(model, seed: int) -> None:
    """Re-draw the weights so that attention is not near-uniform (as make_fixtures.py does).

    HF's init makes tiny projections; the timings do not care, but the ORT-vs-torch check
    is more telling when every weight matters to the output.
    """
    import math
    import torch
    gen = torch.Generator().manual_seed(seed)
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
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def build_model(preset: str, out_dir: pathlib.Path, seed: int) -> None:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**PRESETS[preset])).eval()
    perturb_(model, seed)
    model.save_pretrained(out_dir)


def load_torch_model(model_dir: str, attn: str | None):
    from transformers import CLIPVisionModelWithProjection
    kw = {"attn_implementation": attn} if attn else {}
    model = CLIPVisionModelWithProjection.from_pretrained(model_dir, dtype="float32", **kw)
    return model.eval()


def export_onnx(model_dir: str, out: str, batch: int | None, image_size: int,
                exporter: str, opset: int | None, attn: str | None) -> None:
    """Export image_embeds = model(pixel_values) to `out`; batch None = dynamic batch axis."""
    import torch

    class ImageEmbeds(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).image_embeds

    model = ImageEmbeds(load_torch_model(model_dir, attn))
    example = torch.randn(batch or 2, 3, image_size, image_size)
    kw = dict(input_names=["pixel_values"], output_names=["image_embeds"])
    if opset:
        kw["opset_version"] = opset
    with torch.no_grad():
        if exporter == "dynamo":
            if batch is None:
                kw["dynamic_shapes"] = {"pixel_values": {0: torch.export.Dim("batch")}}
            prog = torch.onnx.export(model, (example,), dynamo=True, **kw)
            prog.save(out, external_data=False)
        else:
            if batch is None:
                kw["dynamic_axes"] = {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}
            torch.onnx.export(model, (example,), out, dynamo=False, **kw)


def quantize_onnx(src: str, out: str) -> None:
    """`out` = `src` (the f32 export) dynamically quantized: int8 weights per output channel,
    uint8 activations (QuantType.QUInt8 is the only activation type quantize_dynamic has).

    ORT's quantization docs ask for pre-processing first (`quant_pre_process`, which is
    `python -m onnxruntime.quantization.preprocess`: symbolic shape inference, ORT basic
    optimisation, ONNX shape inference), and the dynamo export needs it: it writes value_info
    for every initializer, quantize_dynamic turns the (bias-less) projection Gemm into a MatMul
    by transposing its weight without updating that value_info, and its own shape inference
    then fails ("Inferred shape and existing shape differ in dimension 0"). The pre-processed
    model has no such stale entries. The intermediate file is not kept.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = pathlib.Path(out).with_suffix(".pre.onnx")
    try:
        quant_pre_process(src, str(pre))
        quantize_dynamic(str(pre), out, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)


def min_cosines(ref, out) -> tuple[float, float | None]:
    """(min over batch rows of cos(ref_i, out_i), the same with each array's batch mean
    subtracted from its rows first; None for batch 1, where centring leaves zeros)."""
    import numpy as np
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)

    def mincos(x, y):
        den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
        return float(((x * y).sum(axis=1) / np.maximum(den, 1e-300)).min())

    centred = mincos(ref - ref.mean(axis=0), out - out.mean(axis=0)) if len(ref) > 1 else None
    return mincos(ref, out), centred


# ----------------------------------------------------------------------------- workers

def worker(a: argparse.Namespace) -> None:
    """One runtime, one batch size: time it, save its output, print one JSON line."""
    import numpy as np
    rss_start = proc_status_kib("VmRSS")
    x = np.load(a.input)
    info: dict = {}
    if a.worker == "torch":
        import torch
        torch.set_num_threads(a.threads)
        rss_libs = proc_status_kib("VmRSS")
        model = load_torch_model(a.model, a.attn)
        info["attn_implementation"] = model.config._attn_implementation
        xt = torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                return model(pixel_values=xt).image_embeds

        out = call().numpy()
        info["torch_threads"] = torch.get_num_threads()
    else:  # ort, ort-int8: the same session settings, on the f32 or the quantized file
        import onnxruntime as ort
        rss_libs = proc_status_kib("VmRSS")
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        feeds = {"pixel_values": x}

        def call():
            return sess.run(["image_embeds"], feeds)[0]

        out = call()
        info["providers"] = sess.get_providers()
        info["onnx_file"] = os.path.basename(a.onnx)
    rss_loaded = proc_status_kib("VmRSS")
    np.save(a.output, np.ascontiguousarray(out))
    times, noise = time_calls(call, a.warmup, a.iters, a.min_time, a.max_iters,
                              OthersWatch(not a.no_reject_busy), a.max_wall)
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "times_s": times,
        "rss_start_kib": rss_start,
        "rss_after_import_kib": rss_libs,
        "rss_after_load_kib": rss_loaded,
        "vmhwm_kib": proc_status_kib("VmHWM"),
        "ru_maxrss_kib": ru_maxrss,
        **noise,
        **info,
    }))


# ----------------------------------------------------------------------------- driver

def run_sub(argv: list[str], threads: int, script: str = __file__) -> str:
    """Runs `script` (this one unless told: bench_text_peers.py reuses the driver) with argv."""
    r = subprocess.run([sys.executable, os.path.abspath(script), *argv],
                       env=thread_env(threads), capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"subprocess failed: {' '.join(argv)}")
    return r.stdout


def parse_rust_workers(specs: list[str]) -> tuple[dict[str, str], dict[str, str | None]]:
    """`--rust-worker` values NAME=PATH[@PRECISION] as ({NAME: PATH}, {NAME: PRECISION or
    None}). Only a last `@` followed by no `/` is a precision, and not when the whole of
    PATH@X is an existing file, so a PATH with an `@` in it still works as before."""
    paths: dict[str, str] = {}
    precision: dict[str, str | None] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--rust-worker {spec!r}: give NAME=PATH or NAME=PATH@PRECISION")
        prec = None
        head, at, tail = path.rpartition("@")
        if at and head and "/" not in tail and not os.path.isfile(path):
            if tail not in PRECISIONS:
                raise SystemExit(f"--rust-worker {spec!r}: precision {tail!r} is not one of "
                                 f"{', '.join(PRECISIONS)}")
            path, prec = head, tail
        paths[name], precision[name] = path, prec
    return paths, precision


def run_rust(binary: str, argv: list[str], threads: int, precision: str | None = None) -> str:
    """Runs a clip-vision peer_worker with the worker arguments the Python workers get, plus
    `--precision PRECISION` when one is given (none by default: the worker's own default)."""
    keep = {"--model", "--input", "--output", "--warmup", "--iters", "--min-time", "--max-iters",
            "--threads", "--max-wall"}
    args, i = [], 0
    while i < len(argv):
        if argv[i] == "--no-reject-busy":
            args.append(argv[i])
            i += 1
            continue
        if argv[i] in keep:
            args += argv[i:i + 2]
        i += 2
    if precision:
        args += ["--precision", precision]
    r = subprocess.run([binary, *args], env=thread_env(threads), capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"{binary} failed")
    return r.stdout


def summarise(runs: list[dict], batch: int) -> dict:
    medians = [statistics.median(r["times_s"]) for r in runs]
    med = statistics.median(medians)
    return {
        "batch": batch,
        "rounds": len(runs),
        "iters_per_round": [len(r["times_s"]) for r in runs],
        "median_s": med,
        "round_medians_s": medians,
        "min_s": min(min(r["times_s"]) for r in runs),
        "max_s": max(max(r["times_s"]) for r in runs),
        "images_per_s": batch / med,
        "ms_per_image": 1000.0 * med / batch,
        "peak_rss_mib": max(r["vmhwm_kib"] or r["ru_maxrss_kib"] for r in runs) / 1024,
        "ru_maxrss_mib": max(r["ru_maxrss_kib"] for r in runs) / 1024,
        "rss_before_load_mib": (runs[0]["rss_after_import_kib"] or 0) / 1024,
        "dropped_calls": sum(len(r["dropped_calls_s"]) for r in runs),
        "waited_for_quiet_s": sum(r["waited_for_quiet_s"] for r in runs),
        "hit_max_wall": any(r["hit_max_wall"] for r in runs),
        "extra": {k: v for k, v in runs[0].items()
                  if k not in ("times_s", "dropped_calls_s", "waited_for_quiet_s", "hit_max_wall")
                  and not k.endswith("_kib")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a save_pretrained directory (CLIPVisionModelWithProjection)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="vit_b32",
                    help="config of the random model built when --model is absent")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--runtimes", nargs="+", default=None,
                    help="which to time: torch, ort, ort-int8 and the --rust-worker names "
                         "(default: all)")
    ap.add_argument("--rust-worker", action="append", default=[], metavar="NAME=PATH[@PRECISION]",
                    help="a clip-vision peer_worker binary to time as runtime NAME; @PRECISION "
                         f"({'|'.join(PRECISIONS)}) passes it --precision PRECISION")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    ap.add_argument("--iters", type=int, default=10, help="minimum timed calls")
    ap.add_argument("--min-time", type=float, default=5.0,
                    help="keep timing until this many seconds were spent (up to --max-iters)")
    ap.add_argument("--max-iters", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="repeat each subprocess, interleaved")
    ap.add_argument("--no-reject-busy", action="store_true",
                    help="keep calls during which other processes were busy (default: drop them)")
    ap.add_argument("--max-wall", type=float, default=900.0,
                    help="give up on undisturbed calls after this many seconds per subprocess")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                    help="transformers attention implementation (default: transformers' own)")
    ap.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    ap.add_argument("--opset", type=int, default=None)
    ap.add_argument("--onnx-fixed-batch", action="store_true",
                    help="export one ONNX per batch size with a fixed batch instead of a dynamic axis")
    ap.add_argument("--workdir", help="where the model, ONNX files and inputs go (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    # internal: one subprocess per step
    ap.add_argument("--worker", choices=["torch", "ort", "ort-int8"], help=argparse.SUPPRESS)
    ap.add_argument("--export-to", help=argparse.SUPPRESS)
    ap.add_argument("--quantize-to", help=argparse.SUPPRESS)
    ap.add_argument("--export-batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--build-to", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        return worker(a)
    if a.quantize_to:
        return quantize_onnx(a.onnx, a.quantize_to)
    rust, precision = parse_rust_workers(a.rust_worker)
    if a.runtimes is None:
        a.runtimes = ["torch", "ort", "ort-int8", *rust]
    unknown = [r for r in a.runtimes if r not in ("torch", "ort", "ort-int8", *rust)]
    if unknown:
        raise SystemExit(f"unknown runtimes {unknown}: give them with --rust-worker NAME=PATH")
    if a.build_to:
        return build_model(a.preset, pathlib.Path(a.build_to), a.seed)
    if a.export_to:
        cfg = json.loads((pathlib.Path(a.model) / "config.json").read_text())
        size = cfg.get("vision_config", cfg).get("image_size", 224)
        return export_onnx(a.model, a.export_to, a.export_batch or None, size,
                           a.exporter, a.opset, a.attn)

    import importlib.util

    import numpy as np

    uses_onnx = "ort" in a.runtimes or "ort-int8" in a.runtimes
    if uses_onnx and a.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        print("onnxscript is not installed: using the legacy TorchScript ONNX exporter "
              "(pip install onnxscript for the dynamo one)", file=sys.stderr)
        a.exporter = "torchscript"
    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="bench_peers_"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--threads", str(a.threads), "--exporter", a.exporter, "--seed", str(a.seed)]
    if a.attn:
        common += ["--attn", a.attn]
    if a.opset:
        common += ["--opset", str(a.opset)]
    if a.no_reject_busy:
        common += ["--no-reject-busy"]
    common += ["--max-wall", str(a.max_wall)]

    if a.model:
        model_dir = pathlib.Path(a.model)
    else:
        model_dir = work / f"model-{a.preset}-seed{a.seed}"
        if not (model_dir / "config.json").exists():
            print(f"building a random {a.preset} model in {model_dir}", flush=True)
            run_sub(["--build-to", str(model_dir), "--preset", a.preset, *common], a.threads)
    cfg = json.loads((model_dir / "config.json").read_text())
    size = cfg.get("vision_config", cfg).get("image_size", 224)

    onnx_for: dict[int, pathlib.Path] = {}
    if uses_onnx:
        tag = "" if a.attn is None else f"-{a.attn}"
        for b in a.batch_sizes:
            eb = b if a.onnx_fixed_batch else 0
            path = work / f"model-{a.exporter}{tag}-{'b%d' % b if eb else 'dyn'}.onnx"
            if not path.exists() or (a.model and path.stat().st_mtime <
                                     (model_dir / "config.json").stat().st_mtime):
                print(f"exporting {path.name}", flush=True)
                t0 = time.perf_counter()
                run_sub(["--export-to", str(path), "--export-batch", str(eb),
                         "--model", str(model_dir), *common], a.threads)
                print(f"  {time.perf_counter() - t0:.1f} s", flush=True)
            onnx_for[b] = path
    int8_for: dict[int, pathlib.Path] = {}
    if "ort-int8" in a.runtimes:
        for b in a.batch_sizes:
            src = onnx_for[b]
            path = src.with_name(f"{src.stem}-int8.onnx")
            if not path.exists() or path.stat().st_mtime < src.stat().st_mtime:
                print(f"quantizing {src.name} -> {path.name}", flush=True)
                t0 = time.perf_counter()
                run_sub(["--quantize-to", str(path), "--onnx", str(src), *common], a.threads)
                print(f"  {time.perf_counter() - t0:.1f} s", flush=True)
            int8_for[b] = path

    rng = np.random.default_rng(a.seed)
    inputs = {}
    for b in a.batch_sizes:
        inputs[b] = work / f"pixels-b{b}-s{size}.npy"
        np.save(inputs[b], rng.standard_normal((b, 3, size, size), dtype=np.float32))

    raw: dict[tuple[str, int], list[dict]] = {}
    width = max(8, *(len(rt) for rt in a.runtimes))
    for b in a.batch_sizes:
        for r in range(a.rounds):
            for rt in a.runtimes:
                argv = ["--worker", rt, "--model", str(model_dir), "--input", str(inputs[b]),
                        "--output", str(work / f"out-{rt}-b{b}.npy"),
                        "--warmup", str(a.warmup), "--iters", str(a.iters),
                        "--min-time", str(a.min_time), "--max-iters", str(a.max_iters), *common]
                if rt == "ort":
                    argv += ["--onnx", str(onnx_for[b])]
                if rt == "ort-int8":
                    argv += ["--onnx", str(int8_for[b])]
                if rt in rust:
                    out = run_rust(rust[rt], argv[2:], a.threads, precision[rt])
                    res = json.loads(out.strip().splitlines()[-1])
                else:
                    res = json.loads(run_sub(argv, a.threads).strip().splitlines()[-1])
                raw.setdefault((rt, b), []).append(res)
                print(f"  {rt:{width}s} batch {b:3d} round {r + 1}: median "
                      f"{statistics.median(res['times_s']):.4f} s over {len(res['times_s'])} calls "
                      f"({len(res['dropped_calls_s'])} dropped as disturbed, "
                      f"{res['waited_for_quiet_s']:.0f} s waiting for quiet)",
                      flush=True)

    results = [dict(runtime=rt, **summarise(runs, b)) for (rt, b), runs in raw.items()]
    # Accuracy: cosines of each runtime's image_embeds (its last round's, saved by the worker)
    # to the f32 reference on the same pixels.
    ref_rt = "torch" if "torch" in a.runtimes else "ort" if "ort" in a.runtimes else None
    for r in results:
        rt, b = r["runtime"], r["batch"]
        r["precision"] = (precision[rt] if rt in rust else "int8" if rt == "ort-int8" else "f32")
        r["cos_reference"] = ref_rt
        r["min_cos"] = r["min_centred_cos"] = None
        if ref_rt is None:
            continue
        ref = np.load(work / f"out-{ref_rt}-b{b}.npy")
        out = np.load(work / f"out-{rt}-b{b}.npy")
        if ref.shape != out.shape:
            print(f"warning: {rt} batch {b} image_embeds {list(out.shape)} vs {ref_rt}'s "
                  f"{list(ref.shape)}: no cosines", file=sys.stderr)
            continue
        r["min_cos"], r["min_centred_cos"] = min_cosines(ref, out)
    checks = []
    if "torch" in a.runtimes:
        for rt in a.runtimes:
            if rt == "torch":
                continue
            for b in a.batch_sizes:
                t = np.load(work / f"out-torch-b{b}.npy").astype(np.float64)
                o = np.load(work / f"out-{rt}-b{b}.npy").astype(np.float64)
                diff = float(np.abs(t - o).max())
                scale = float(np.abs(t).max())
                checks.append({"runtime": rt, "batch": b, "shape": list(o.shape), "max_abs_diff": diff,
                               "max_abs_torch": scale, "max_rel_diff": diff / scale})

    import onnxruntime
    import torch
    import transformers
    meta = {
        "model_dir": str(model_dir),
        "preset": None if a.model else a.preset,
        "config": {k: cfg.get(k) for k in ("hidden_size", "intermediate_size",
                                            "num_hidden_layers", "num_attention_heads",
                                            "image_size", "patch_size", "projection_dim",
                                            "hidden_act")},
        "threads": a.threads,
        "warmup": a.warmup, "iters": a.iters, "min_time": a.min_time, "rounds": a.rounds,
        "exporter": a.exporter,
        "onnx_batch": "fixed" if a.onnx_fixed_batch else "dynamic",
        "ort_int8": ("quant_pre_process, then quantize_dynamic(per_channel=True, "
                     "weight_type=QInt8); activations QUInt8" if "ort-int8" in a.runtimes else None),
        "cos_reference": ref_rt,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "cpu": cpu_name(), "cpu_flags": cpu_flags(), "nproc": os.cpu_count(),
    }

    print()
    print(f"{meta['cpu']} [{' '.join(meta['cpu_flags'])}], {a.threads} threads; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}")
    hdr = (f"{'runtime':{width}s} {'batch':>5s} {'median s':>9s} {'min s':>9s} {'max s':>9s} "
           f"{'img/s':>8s} {'ms/img':>8s} {'peak RSS':>9s} {'pre-load':>9s} {'calls':>6s} {'dropped':>7s} "
           f"{'min cos':>9s} {'ctr cos':>9s}")

    def cos_cell(r, key):
        if r["runtime"] == r["cos_reference"]:
            return f"{'ref':>9s}"
        return f"{'-':>9s}" if r[key] is None else f"{r[key]:9.6f}"

    print(hdr)
    print("-" * len(hdr))
    for r in sorted(results, key=lambda r: (r["batch"], r["runtime"])):
        print(f"{r['runtime']:{width}s} {r['batch']:5d} {r['median_s']:9.4f} {r['min_s']:9.4f} "
              f"{r['max_s']:9.4f} {r['images_per_s']:8.2f} {r['ms_per_image']:8.2f} "
              f"{r['peak_rss_mib']:6.0f} MiB {r['rss_before_load_mib']:5.0f} MiB "
              f"{sum(r['iters_per_round']):6d} {r['dropped_calls']:7d} "
              f"{cos_cell(r, 'min_cos')} {cos_cell(r, 'min_centred_cos')}"
              + ("  (hit --max-wall)" if r["hit_max_wall"] else ""))
    if ref_rt:
        print(f"min cos / ctr cos: smallest cosine over the batch rows to {ref_rt}'s image_embeds "
              f"(f32), raw / with each output's batch mean subtracted (batch > 1)")
    for c in checks:
        print(f"{c['runtime']} vs torch image_embeds, batch {c['batch']}: max abs diff {c['max_abs_diff']:.2e} "
              f"(max |torch| {c['max_abs_torch']:.2e}, relative {c['max_rel_diff']:.2e})")
    report_ratios_and_json(a, rust, results, checks, raw, meta, precision)


def own_f32(rt: str, rust: dict, precision: dict) -> str | None:
    """The f32 counterpart of a reduced-precision runtime: ort for ort-int8; for a Rust worker
    with @PRECISION, the first --rust-worker on the same PATH with no @ or @f32."""
    if rt == "ort-int8":
        return "ort"
    if rt in rust and precision.get(rt) not in (None, "f32"):
        return next((n for n in rust if rust[n] == rust[rt] and precision.get(n) in (None, "f32")),
                    None)
    return None


def report_ratios_and_json(a, rust, results, checks, raw, meta, precision=None) -> None:
    """The end of a run (vision or text): each Rust worker's speed as a ratio of ORT's and
    torch's medians at each batch size; with `precision` ({NAME: PRECISION or None}, from
    parse_rust_workers), each int8 Rust worker's to ort-int8's too, and each int8 / bf16
    runtime's to its own f32 (own_f32); then the JSON report when --json was given."""
    precision = precision or {}
    by = {(r["runtime"], r["batch"]): r for r in results}
    ratios = []

    def ratio(b, rt, peer, what):
        if (rt, b) in by and (peer, b) in by:
            x = by[(peer, b)]["median_s"] / by[(rt, b)]["median_s"]
            ratios.append({"batch": b, "runtime": rt, "vs": peer, "what": what, "speed_ratio": x})
            print(f"batch {b}: {rt} is {x:.2f}x the speed of {peer} ({what})")

    for b in a.batch_sizes:
        for rt in rust:
            peers = ("ort-int8", "ort", "torch") if precision.get(rt) == "int8" else ("ort", "torch")
            for peer in peers:
                ratio(b, rt, peer, "ratio of medians")
        for rt in ["ort-int8", *rust]:
            f32 = own_f32(rt, rust, precision)
            if f32:
                ratio(b, rt, f32, f"{precision.get(rt) or 'int8'} vs its own f32, ratio of medians")
    if a.json:
        meta = {**meta, "rust_workers": {n: {"path": rust[n], "precision": precision.get(n)}
                                         for n in rust}}
        pathlib.Path(a.json).write_text(json.dumps(
            {"meta": meta, "results": results, "vs_torch": checks, "ratios": ratios,
             "raw_times_s": {f"{rt}-b{b}": [r["times_s"] for r in runs]
                             for (rt, b), runs in raw.items()}}, indent=2) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
