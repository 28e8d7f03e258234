#!/usr/bin/env python3
"""Per-shape sgemm beside the peers: one `x·W + b` product of a ViT block, `[m, k]·[k, n]`,
timed in ONNX Runtime (MLAS, the weight a constant initializer, so prepacked at session
creation), numpy (its BLAS, OpenBLAS in the PyPI wheel) and clip-vision's Rust workers
(`benches/examples/gemm_worker.rs`), in one run, interleaved per round.

This is the table issue 12 asks for where an end-to-end target is missed: how fast the best
sgemm on this machine runs each shape the encoder runs, against ours.

Usage:
    python3 scripts/bench_sgemm_peers.py --presets vit_b32 vit_b16 vit_l14 --batches 1 32 \
        --rust-worker gemm=PATH --rust-worker packed=PATH@packed --rounds 3 --json out.json

`NAME=PATH[@packed[:PATH]]`: PATH is a gemm_worker binary (`cargo build --release -p
vit-benches --example gemm_worker [--features gemm[,packed]]`); `@packed` times
`linear_packed` (the `packed` build), `@packed:avx2` forces a micro-kernel path. Each
(shape, runtime) is its own subprocess with T threads (OMP/OpenBLAS/MKL_NUM_THREADS and
ORT's intra-op threads); each reports the median seconds of its calls (warm-up first, then
at least --iters calls and --min-time seconds). GFLOP/s counts `2·m·k·n`. Every runtime
multiplies the same weight on every call (hot in L3 where it fits, unlike a forward pass,
which streams each weight once); numpy adds the bias in a second pass; each keeps every call
(no noise filter), and the runtimes run in the same order every round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import PRESETS, cpu_flags, cpu_name, thread_env  # noqa: E402  (the shared harness)


def shapes(preset: str, batch: int) -> list[tuple[str, int, int, int]]:
    cfg = PRESETS[preset]
    d, i = cfg["hidden_size"], cfg["intermediate_size"]
    m = batch * ((cfg["image_size"] // cfg["patch_size"]) ** 2 + 1)
    return [("qkv", m, d, 3 * d), ("out_proj", m, d, d), ("fc1", m, d, i), ("fc2", m, i, d)]


def time_loop(call, warmup: int, iters: int, min_time: float) -> list[float]:
    for _ in range(warmup):
        call()
    times: list[float] = []
    spent = 0.0
    while len(times) < iters or (spent < min_time and len(times) < 10000):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def worker(args) -> None:
    import numpy as np

    m, k, n = (int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = (rng.standard_normal((k, n), dtype=np.float32) * 0.02).astype(np.float32)
    b = (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)
    info = {}
    if args.worker == "numpy":
        out = np.empty((m, n), dtype=np.float32)

        def call():
            np.matmul(x, w, out=out)
            np.add(out, b, out=out)

        try:
            from threadpoolctl import threadpool_info

            info["blas"] = [
                {k2: d.get(k2) for k2 in ("internal_api", "version", "architecture", "num_threads")}
                for d in threadpool_info()
            ]
        except ImportError:
            pass
    else:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
            "linear",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
            [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        info["ort"] = ort.__version__
        # Input and output bound once, as numpy and ours write into a buffer made once.
        out = np.empty((m, n), dtype=np.float32)
        binding = sess.io_binding()
        binding.bind_cpu_input("x", x)
        binding.bind_output("y", "cpu", 0, np.float32, [m, n], out.ctypes.data)

        def call():
            sess.run_with_iobinding(binding)

    times = time_loop(call, args.warmup, args.iters, args.min_time)
    print(json.dumps({"times_s": times, **info}))


def run_one(cmd: list[str], env: dict) -> dict:
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["vit_b32"], choices=sorted(PRESETS))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--only", nargs="+", default=None, help="products to time (qkv out_proj fc1 fc2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runtimes", nargs="*", default=["ort", "numpy"])
    ap.add_argument("--rust-worker", action="append", default=[], metavar="NAME=PATH[@packed[:PATH]]")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--worker", choices=["ort", "numpy"], help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    env = thread_env(args.threads)
    timing = ["--warmup", str(args.warmup), "--iters", str(args.iters), "--min-time", str(args.min_time)]
    runtimes: list[tuple[str, list[str]]] = []
    for name in args.runtimes:
        runtimes.append((name, [sys.executable, __file__, "--worker", name, "--threads", str(args.threads), *timing]))
    for spec in args.rust_worker:
        name, _, rest = spec.partition("=")
        path, _, kernel = rest.partition("@")
        # --no-reject-busy: the Python workers keep every call too.
        cmd = [path, "--threads", str(args.threads), "--no-reject-busy", *timing]
        if kernel:
            kind, _, forced = kernel.partition(":")
            cmd += ["--kernel", kind] + (["--path", forced] if forced else [])
        runtimes.append((name, cmd))

    cpu, vec = cpu_name(), cpu_flags()
    results = []
    names = [n for n, _ in runtimes]
    print(f"# {cpu} ({os.cpu_count()} cpus; {' '.join(vec)}); {args.threads} threads, {args.rounds} rounds")
    print("| shape | " + " | ".join(f"{n} GFLOP/s" for n in names) + " | " + " | ".join(f"{n} / best peer" for n in names if n not in args.runtimes) + " |")
    for preset in args.presets:
        for batch in args.batches:
            for prod, m, k, n in shapes(preset, batch):
                if args.only and prod not in args.only:
                    continue
                flop = 2 * m * k * n
                per_round: dict[str, list[float]] = {nm: [] for nm in names}
                for _ in range(args.rounds):
                    for nm, cmd in runtimes:
                        r = run_one(cmd + ["--shape", f"{m},{k},{n}"], env)
                        per_round[nm].append(statistics.median(r["times_s"]))
                gflops = {nm: flop / statistics.median(ts) / 1e9 for nm, ts in per_round.items()}
                peers = [gflops[nm] for nm in args.runtimes]
                best = max(peers) if peers else float("nan")
                # Ratios per round against the best peer of that round, then their median.
                ratio = {}
                for nm in names:
                    if nm in args.runtimes:
                        continue
                    rs = [
                        min(per_round[p][i] for p in args.runtimes) / per_round[nm][i]
                        for i in range(args.rounds)
                    ] if args.runtimes else []
                    ratio[nm] = statistics.median(rs) if rs else float("nan")
                label = f"{preset} b{batch} {prod} {m}×{k}×{n}"
                print(
                    f"| {label} | "
                    + " | ".join(f"{gflops[nm]:.0f}" for nm in names)
                    + " | "
                    + " | ".join(f"{ratio[nm]:.2f}" for nm in ratio)
                    + " |",
                    flush=True,
                )
                results.append({"preset": preset, "batch": batch, "product": prod, "m": m, "k": k, "n": n,
                                "median_s_per_round": per_round, "gflops": gflops, "vs_best_peer": ratio,
                                "best_peer_gflops": best})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": {"cpu": cpu, "vector_extensions": vec, "threads": args.threads,
                                "rounds": args.rounds, "machine": platform.machine()},
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
