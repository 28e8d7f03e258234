#!/usr/bin/env bash
# The `clip-vision embed` throughput against the encoder alone, on the same checkpoint, batch
# size and thread count, interleaved round by round (this machine's speed drifts by ±10 %
# from minute to minute, so only ratios from one run mean anything).
#
#   scripts/bench_cli.sh MODEL_DIR [IMAGES_DIR] [ROUNDS] [BATCH]
#   EMBED_ARGS="--fast-decode" scripts/bench_cli.sh MODEL_DIR DIR_OF_12MP_JPEGS 3
#
# Both sides are the shipped build (the CLI's default features; encode_loop with the same
# `gemm` and `packed`). EMBED_ARGS are passed to `clip-vision embed` as they are.
# IMAGES_DIR defaults to target/bench/jpeg640: 512 JPEGs of 640×480 (quality 90) cut from the
# committed photos, made once with Pillow (`scripts/requirements.txt`).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/bench_cli.sh MODEL_DIR [IMAGES_DIR] [ROUNDS] [BATCH]}
images=${2:-target/bench/jpeg640}
rounds=${3:-3}
batch=${4:-32}
python=${PYTHON:-python3}

if [ ! -d "$images" ]; then
    mkdir -p "$images"
    "$python" - "$images" <<'PY'
import random, sys
from PIL import Image
names = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "retina_large.jpg",
         "rocket_portrait.jpg", "camera_grey.jpg"]
photos = [Image.open(f"fixtures/images/{n}").convert("RGB") for n in names]
random.seed(0)
for i in range(512):
    im = photos[i % len(photos)]
    w, h = im.size
    cw, ch = int(w * random.uniform(0.6, 1)), int(h * random.uniform(0.6, 1))
    x, y = random.randint(0, w - cw), random.randint(0, h - ch)
    im.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.BICUBIC).save(
        f"{sys.argv[1]}/img{i:04d}.jpg", quality=90)
PY
fi
n=$(find "$images" -type f | wc -l)

cargo build --release -q -p clip-vision-cli
cargo build --release -q -p vit-benches --features gemm,packed --example encode_loop
iters=$(( n / batch < 8 ? 8 : n / batch ))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ratios=()
for r in $(seq "$rounds"); do
    enc=$(RAYON_NUM_THREADS=2 target/release/examples/encode_loop "$model" "$batch" "$iters" |
        sed -E 's/.* ([0-9.]+) images\/s.*/\1/')
    # shellcheck disable=SC2086 # EMBED_ARGS is a list of flags
    cli=$(target/release/clip-vision embed --model "$model" --batch-size "$batch" --threads 2 \
        ${EMBED_ARGS:-} --output "$out/e.npy" "$images" 2>&1 | tail -1 | sed -E 's/.*\(([0-9.]+) images\/s\).*/\1/')
    rm -f "$out"/e.npy*
    ratio=$(awk "BEGIN { printf \"%.3f\", $cli / $enc }")
    ratios+=("$ratio")
    echo "round $r: encoder alone $enc images/s, clip-vision embed ($n JPEGs) $cli images/s, ratio $ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median ratio embed / encoder alone: $median (batch $batch, 2 threads)"
