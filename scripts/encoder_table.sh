#!/usr/bin/env bash
# Every row of the recognition table for a head on the frozen encoder (issue 24), each test
# figure under the three speaker profiles (all of the speaker's clips / one emotion / one
# clip alone); test speakers are never in training, validation or calibration:
#   mixed      train on RAVDESS + EMOVO + nEMO minus RAVDESS 1,2, EMOVO f1,m1, nEMO EB0,KS0
#   loco       leave one corpus out: train on the other two, test on every clip of it
#   ravdess12  RAVDESS only, test actors 1-2
#   folds6     RAVDESS only, 6 folds of 4 actors, mean
# Usage: bash scripts/encoder_table.sh [ARCH] [DATA_DIR] [OUT_DIR] [ROWS]
#   defaults: encoder_head, ../shared/data, runs/table-ARCH, "mixed loco ravdess12 folds6".
#   The encoder cache (emoscope encode, ~10 min on 2 cores the first time) is under ./cache.
#   AUGMENT=SEED[,SEED...] adds a perturbed copy of every training clip per seed (train --augment-encoder;
#   another ~10 min of encoding the first time); the shipped default was made with AUGMENT=1.
#   LEVEL_DB=DB reads every window at that level (train --level-db; its own encoder cache).
#   BALANCE=1 gives each corpus an equal share of every epoch (train --balance-corpora).
#   WIDTH=N gives the head a hidden layer of N units (train --width; the shipped default:
#   WIDTH=256 with encoder_head_enrol, its enrolled part through the hidden layer).
#   NOVAL=K holds back no validation speakers (train --no-validation: every non-test
#   speaker trains for the fixed epochs) and cross-fits the temperature over K folds of them
#   (--crossfit K; in folds6, within each fold's training speakers).
#   SEEDS="S1 S2 ..." trains the row once per seed (train --seed; NAME-sS) and reads the
#   ensemble of them (emoscope ensemble: probabilities averaged, each head at its own
#   temperature; in folds6, one ensemble per fold, then the mean over folds). The shipped
#   default: AUGMENT=1 WIDTH=256 NOVAL=4 SEEDS="42 2 3" with encoder_head_enrol.
#   LAYERS="L1 L2 ..." (with SEEDS) trains each seed once per representation of the encoder
#   (train --layer; NAME-sS-lL) and ensembles every one of them: heads on different blocks
#   make a more varied ensemble than seeds alone. The shipped default: AUGMENT=1 WIDTH=256
#   NOVAL=4 SEEDS=42 LAYERS="2 3 4" with encoder_head_enrol.
#   A seed's run whose card.json exists is reused, so an interrupted table resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-encoder_head}"; data="${2:-../shared/data}"; out="${3:-runs/table-$arch}"
rows="${4:-mixed loco ravdess12 folds6}"
bin="${EMOSCOPE_BIN:-target/release/emoscope}"
[ -x "$bin" ] || { echo "error: build first: cargo build --release" >&2; exit 1; }
mkdir -p "$out"
data=(--data "ravdess=$data/ravdess" --data "csv=$data/emovo/labels.csv" --data "csv=$data/nemo/labels.csv")
all=("${data[@]}")
[ -n "${AUGMENT:-}" ] && all+=(--augment-encoder "$AUGMENT")
[ -n "${LEVEL_DB:-}" ] && all+=(--level-db "$LEVEL_DB")
[ -n "${BALANCE:-}" ] && all+=(--balance-corpora)
[ -n "${WIDTH:-}" ] && all+=(--width "$WIDTH")
[ -n "${NOVAL:-}" ] && all+=(--no-validation --crossfit "$NOVAL")
train() { # name, then train arguments; prints the held-out lines
  local name=$1; shift
  if [ -z "${SEEDS:-}" ]; then
    "$bin" train --arch "$arch" "${all[@]}" --out "$out/$name" "$@" > "$out/$name.log" 2>&1 \
      || { tail -20 "$out/$name.log" >&2; exit 1; }
    grep -E "held-out test|^    [a-z]|folds, " "$out/$name.log" | sed "s/^/$name: /"
    return
  fi
  local s l runs=()
  for s in $SEEDS; do
    if [ -z "${LAYERS:-}" ]; then runs+=("$name-s$s:"); continue; fi
    for l in $LAYERS; do runs+=("$name-s$s-l$l:$l"); done
  done
  local r run
  for r in "${runs[@]}"; do
    run=${r%%:*}; l=${r#*:}; s=${run#$name-s}; s=${s%%-*}
    [ -f "$out/$run/card.json" ] || [ -f "$out/$run/fold1/card.json" ] \
      || "$bin" train --arch "$arch" "${all[@]}" --seed "$s" ${l:+--layer "$l"} --out "$out/$run" "$@" \
        > "$out/$run.log" 2>&1 || { tail -20 "$out/$run.log" >&2; exit 1; }
  done
  local first=${runs[0]%%:*} folds=("")
  [ -d "$out/$first/fold1" ] && folds=($(cd "$out/$first" && ls -d fold*/ | tr -d /))
  local f members
  for f in "${folds[@]}"; do
    members=(); for r in "${runs[@]}"; do members+=("$out/${r%%:*}${f:+/$f}"); done
    "$bin" ensemble "${members[@]}" --out "$out/$name${f:+/$f}" "${data[@]}" > "$out/$name$f.ens.log" 2>&1 \
      || { tail -20 "$out/$name$f.ens.log" >&2; exit 1; }
    grep -E "^ensemble on held-out|^    [a-z]" "$out/$name$f.ens.log" | sed "s/^/$name${f:+ $f}: /"
  done
  if [ ${#folds[@]} -gt 1 ]; then # the mean over folds of each profile's accuracy and UAR
    python3 - "$out/$name" "${folds[@]}" <<'PY' | sed "s/^/$name: /"
import json, sys
d, folds = sys.argv[1], sys.argv[2:]
rows = [json.load(open(f"{d}/{f}/test.json")) for f in folds]
for j, r in enumerate(rows[0]):
    acc = sum(x[j]["metrics"]["accuracy"] for x in rows) / len(rows)
    uar = sum(x[j]["metrics"]["uar"] for x in rows) / len(rows)
    print(f"{len(rows)} folds, mean, {r['profile']}: accuracy {100 * acc:.1f} %  UAR {uar:.3f}")
PY
  fi
}
{
  for row in $rows; do
    case $row in
      mixed) train mixed --test-speakers "ravdess:1,2;emovo:f1,m1;nemo:EB0,KS0" ;;
      loco) for c in ravdess emovo nemo; do train "loco-$c" --test-speakers "${c}_*"; done ;;
      ravdess12) train ravdess12 --only ravdess --test-speakers ravdess:1,2 ;;
      folds6) train folds6 --only ravdess --folds 6 ;;
      *) echo "unknown row $row" >&2; exit 1 ;;
    esac
  done
} | tee "$out/table.txt"
