#!/usr/bin/env bash
# CPU training speed, emoscope beside PyTorch, in one invocation on this machine: for paper 1's
# CNN and emocnn, training-pass seconds per epoch (validation excluded) on 1 and 2 threads,
# the median of EPOCHS epochs, RAVDESS with actors 1-2 held out (actors 23-24 validate),
# batch 32. PyTorch runs the same layers on random inputs of the same shape and count
# (scripts/bench_torch.py; `pip install torch`).
# Usage: bash scripts/bench_training.sh [DATA_DIR] [EPOCHS] [ARCHS]
#   defaults: ../shared/data, 3, "paper1_cnn emocnn" (ARCHS may also name fser). Needs
#   `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data}"; epochs="${2:-3}"; archs="${3:-paper1_cnn emocnn}"
bin=target/release/emoscope
[ -x "$bin" ] || { echo "error: build first: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.2f}')" "$@"; }
echo "# $(date -u +%F) $(git rev-parse --short HEAD), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for arch in $archs; do
  pack=$("$bin" train --data "ravdess=$data/ravdess" --arch "$arch" --pack-only 2>/dev/null | tail -1)
  for t in 1 2; do
    cpus=0; [ "$t" = 2 ] && cpus=0,1
    RAYON_NUM_THREADS=$t taskset -c "$cpus" "$bin" train --pack "$pack" --only ravdess --arch "$arch" \
      --test-speakers ravdess:1,2 --epochs "$epochs" --out "$tmp/$arch-$t" > "$tmp/log" 2>&1 \
      || { cat "$tmp/log" >&2; exit 1; }
    n=$(sed -n 's/.*training on \([0-9]*\) clips.*/\1/p' "$tmp/log" | head -1)
    mapfile -t secs < <(sed -n 's/.*(train \([0-9.]*\) s, validation.*/\1/p' "$tmp/log")
    echo "$arch emoscope $t thread(s): $(median "${secs[@]}") s/epoch (epochs: ${secs[*]}; $n training clips)"
  done
  python3 scripts/bench_torch.py --arch "$arch" --clips "${n:-1200}" --epochs "$epochs" 2>/dev/null | grep -v '^#'
done
