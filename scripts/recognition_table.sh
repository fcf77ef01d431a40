#!/usr/bin/env bash
# Every row of the recognition table (docs/recognition.md, issue 13) for one architecture,
# under the protocols of ../shared/tools/anchor_egemaps_svm.py, so the two can stand side by
# side; test speakers are never in training, validation or calibration:
#   ravdess12  train RAVDESS 3-24, test actors 1-2
#   folds6     RAVDESS, 6 folds of 4 actors (1-4, 5-8, ...), mean
#   mixed      train on RAVDESS + EMOVO + nEMO minus RAVDESS 1,2, EMOVO f1,m1, nEMO EB0,KS0;
#              test on those, per corpus and pooled
#   loco       leave one corpus out: train on the other two, test on every clip of it
# Usage: bash scripts/recognition_table.sh [ARCH] [DATA_DIR] [OUT_DIR] [ROWS]
#   defaults: prosody, ../shared/data, runs/table-ARCH, "ravdess12 folds6 mixed loco".
#   CROSSFIT=K (default 4; 0 = off) calibrates each model (not the folds) by cross-fitting
#   (train --crossfit); EPOCHS overrides the recipe's epochs, WIDTH emocnn/fusion's width, SEED the seed,
#   EMOSCOPE_BIN the binary. Needs `cargo build --release`.
#   Each row's model and log stay in OUT_DIR; the table is OUT_DIR/table.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-prosody}"; data="${2:-../shared/data}"; out="${3:-runs/table-$arch}"
rows="${4:-ravdess12 folds6 mixed loco}"
bin="${EMOSCOPE_BIN:-target/release/emoscope}"
[ -x "$bin" ] || { echo "error: build first: cargo build --release" >&2; exit 1; }
for c in ravdess emovo nemo; do
  [ -e "$data/$c" ] || { echo "error: $data/$c is missing (RAVDESS, EMOVO and nEMO are needed)" >&2; exit 1; }
done
mkdir -p "$out"
extra=(); [ -n "${EPOCHS:-}" ] && extra+=(--epochs "$EPOCHS")
[ -n "${WIDTH:-}" ] && extra+=(--width "$WIDTH")
[ -n "${SEED:-}" ] && extra+=(--seed "$SEED")
cf=(); [ "${CROSSFIT:-4}" != 0 ] && cf+=(--crossfit "${CROSSFIT:-4}")
pack=$("$bin" train --data "ravdess=$data/ravdess" --data "csv=$data/emovo/labels.csv" \
  --data "csv=$data/nemo/labels.csv" --arch "$arch" --pack-only 2>/dev/null | tail -1)
speakers() { # all speakers of a labels.csv corpus, as corpus:a,b,c
  echo "$1:$(tail -n +2 "$data/$1/labels.csv" | cut -d, -f3 | sed "s/^$1_//" | sort -u | paste -sd,)"
}
train() { # name, then train arguments; prints the held-out lines
  local name=$1; shift
  "$bin" train --pack "$pack" --arch "$arch" "${extra[@]}" --out "$out/$name" "$@" \
    > "$out/$name.log" 2>&1 || { tail -20 "$out/$name.log" >&2; exit 1; }
  grep -E "held-out test|^    [a-z]|fold mean" "$out/$name.log" | sed "s/^/$name: /"
}
{
  echo "# $(date -u +%F) $(git rev-parse --short HEAD) arch $arch ${WIDTH:+width $WIDTH }${EPOCHS:+epochs $EPOCHS }crossfit ${CROSSFIT:-4}"
  for row in $rows; do
    case $row in
      ravdess12) train ravdess12 --only ravdess --test-speakers ravdess:1,2 "${cf[@]}" ;;
      folds6) train folds6 --only ravdess --folds 6 ;;
      mixed) train mixed --test-speakers "ravdess:1,2;emovo:f1,m1;nemo:EB0,KS0" "${cf[@]}" ;;
      loco)
        train loco-ravdess --test-speakers "ravdess:$(seq -s, 1 24)" "${cf[@]}"
        train loco-emovo --test-speakers "$(speakers emovo)" "${cf[@]}"
        train loco-nemo --test-speakers "$(speakers nemo)" "${cf[@]}" ;;
      *) echo "error: unknown row $row (ravdess12 folds6 mixed loco)" >&2; exit 1 ;;
    esac
  done
} | tee "$out/table.txt"
