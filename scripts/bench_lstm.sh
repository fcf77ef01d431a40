#!/usr/bin/env bash
# Paper 1's LSTM layer, one training step (batch 32, 160 frames, hidden 1024), emoscope's
# layer beside PyTorch's in one invocation, on 2 threads and on 1 (pinned with taskset).
# Usage: bash scripts/bench_lstm.sh [OUT]   (default weights/reports/lstm_train_step.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-weights/reports/lstm_train_step.txt}"
cargo bench --bench lstm --no-run >/dev/null 2>&1
{
  echo "# $(date -u +%F) $(git rev-parse --short HEAD), $(nproc) cores"
  for t in 2 1; do
    cpus=$([ "$t" = 1 ] && echo 0 || echo 0-1)
    echo "## emoscope, $t thread(s)"
    RAYON_NUM_THREADS=$t taskset -c "$cpus" cargo bench --bench lstm -- --noplot 2>/dev/null \
      | grep -E "^lstm_train_step|time:"
    echo "## torch, $t thread(s)"
    taskset -c "$cpus" python3 scripts/bench_lstm_torch.py "$t"
  done
} | tee "$out"
