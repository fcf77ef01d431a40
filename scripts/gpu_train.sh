#!/usr/bin/env bash
# The training runs behind the figures of docs/recognition.md, as run on the lent GPU machine: a CUDA
# build of emoscope (see ../shared/CUDA_BUILD.md) and feature packs, carried gzipped in
# carry/ (packs come from `emoscope train --data ... --arch A --pack-only`). Runs in parallel
# on one GPU; each writes its model, card and log under runs/, packed into $OUT/runs.tar.gz.
#   usage: bash scripts/gpu_train.sh [LIMIT_SECONDS] [GROUP]
set -u
LIMIT=${1:-520}
GROUP=${2:-all}
cd carry && for f in *.gz; do [ -e "${f%.gz}" ] || gunzip -k "$f"; done; chmod +x emoscope; cd ..
export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))'):${LD_LIBRARY_PATH:-}
export RAYON_NUM_THREADS=2
B=carry/emoscope
E=carry/emocnn_all.pack; P=carry/paper1_ravdess.pack; F=carry/fser_ravdess.pack
mkdir -p runs
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
run() { name=$1; shift; timeout "$LIMIT" $B train "$@" --out runs/$name > runs/$name.log 2>&1; echo "$name exit $?"; }
if [ "$GROUP" = final ]; then
  # Second round: emocnn 70 epochs; RAVDESS-only folds; FSER with Adam; LSTM with bigger batches.
  EMO="--arch emocnn --epochs 70 --max-minutes 8.3"
  run emocnn_main --pack $E $EMO --test-speakers "ravdess:1,2;emovo:f1,m1" &
  run emocnn_ravdess --pack $E --only ravdess $EMO --test-speakers ravdess:1,2 &
  for k in 1 2 3 4 5 6; do (timeout "$LIMIT" $B train --pack $E --only ravdess $EMO --folds 6 --fold $k --out runs/emocnn_ravdess_cv > runs/emocnn_ravdess_cv_fold$k.log 2>&1; echo "cv fold $k exit $?") & done
  run fser --pack $F --arch fser --test-speakers ravdess:1,2 --max-minutes 8.3 &
  run paper1_lstm --pack $P --arch paper1_lstm --test-speakers ravdess:1,2 --epochs 20 --batch-size 128 --lr 1e-3 --max-minutes 8.0 &
fi
if [ "$GROUP" = level ]; then
  # Third round: emocnn with level-only normalisation (keeps the spectral tilt), FSER with Glorot init.
  EMO="--arch emocnn --epochs 70 --norm level --max-minutes 6.6"
  run emocnnL_main --pack $E $EMO --test-speakers "ravdess:1,2;emovo:f1,m1" &
  run emocnnL_ravdess --pack $E --only ravdess $EMO --test-speakers ravdess:1,2 &
  for k in 1 2 3 4 5 6; do (timeout "$LIMIT" $B train --pack $E --only ravdess $EMO --folds 6 --fold $k --out runs/emocnnL_ravdess_cv > runs/emocnnL_ravdess_cv_fold$k.log 2>&1; echo "cv fold $k exit $?") & done
  run fser --pack $F --arch fser --test-speakers ravdess:1,2 --max-minutes 6.6 &
fi
if [ "$GROUP" = all ] || [ "$GROUP" = emo ]; then
  run emocnn_main --pack $E --arch emocnn --test-speakers "ravdess:1,2;emovo:f1,m1" &
  run emocnn_ravdess --pack $E --only ravdess --arch emocnn --test-speakers ravdess:1,2 &
  for k in 1 2 3 4 5 6; do (timeout "$LIMIT" $B train --pack $E --arch emocnn --folds 6 --fold $k --out runs/emocnn_cv > runs/emocnn_cv_fold$k.log 2>&1; echo "cv fold $k exit $?") & done
fi
if [ "$GROUP" = all ] || [ "$GROUP" = papers ]; then
  run paper1_cnn --pack $P --arch paper1_cnn --test-speakers ravdess:1,2 &
  run paper1_lstm --pack $P --arch paper1_lstm --test-speakers ravdess:1,2 --epochs 30 &
  run fser --pack $F --arch fser --test-speakers ravdess:1,2 &
fi
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait
for l in runs/*.log; do echo "== $l"; grep -v "^\s*$" "$l" | tail -4; done
tar czf "${OUT:-/tmp}/runs.tar.gz" --exclude='last.safetensors' --exclude='runs/paper1_lstm/*.safetensors' --exclude='runs/paper1_lstm/checkpoint' runs
