#!/usr/bin/env bash
# Fine-tune proof: speakers the shipped model never saw, treated as "the user". For each,
# half of every label's clips fine-tune weights/emocnn, the other half is scored before
# and after. Usage: bash scripts/finetune_proof.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/finetune_proof}
BIN=${EMOSCOPE_BIN:-target/release/emoscope}
mkdir -p "$OUT"
for spec in "ravdess=$DATA/ravdess ravdess:1" "ravdess=$DATA/ravdess ravdess:2" \
            "csv=$DATA/emovo/labels.csv emovo:f1" "csv=$DATA/emovo/labels.csv emovo:m1"; do
  set -- $spec
  name=${2//:/_}
  echo "== $2"
  "$BIN" finetune --data "$1" --speakers "$2" --holdout 0.5 --epochs 15 --out "$OUT/$name" 2>/dev/null | tee "$OUT/$name.txt"
done
