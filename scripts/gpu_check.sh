#!/usr/bin/env bash
# The GPU check of the live path (docs/gpu.md): on a lent GPU machine, with a CUDA build of
# emoscope carried in carry/ (../shared/CUDA_BUILD.md), measures
#   1. CPU-vs-CUDA equality of the probabilities, window by window, over the carried clips
#      (RAVDESS actors 1-2, 120 clips, windows every 0.1 s: about 500; goal: within 1e-4);
#   2. the headless monitor on a real 60 s recording at real-time pace on CUDA and on the
#      CPU: windows, dropped samples and windows, latency p50/p95 (goal: 0 dropped; the
#      latency is features + inference of a window, from its last sample to its prediction);
#   3. `analyze` throughput over the carried clips, CPU against CUDA (each file's windows
#      are one batch on the GPU);
#   4. one training epoch of emocnn on the carried pack, CPU against CUDA, beside the same
#      network in PyTorch on the same GPU (scripts/bench_torch.py --device cuda);
# and writes every figure into one JSON ($OUT/gpu_check.json, or /tmp).
#
#   bash scripts/gpu_check.sh --prepare [DATA]   here, without a GPU: fills carry/check/
#                                                (clips, the 60 s recording, a 400-clip pack)
#   bash scripts/gpu_check.sh                    there, with carry/emoscope(.gz) built with
#                                                --features cuda
# GPU=cpu runs every step with the CPU in the GPU's place: a dry run of the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."
C=carry/check
if [ "${1:-}" = --prepare ]; then
  data="${2:-../shared/data}"
  [ -d "$data/ravdess/Actor_01" ] || { echo "error: $data/ravdess is missing (RAVDESS is needed)" >&2; exit 1; }
  bin="${EMOSCOPE_BIN:-target/release/emoscope}"
  [ -x "$bin" ] || { echo "error: build first: cargo build --release" >&2; exit 1; }
  mkdir -p "$C/clips"
  cp "$data"/ravdess/Actor_0[12]/*.flac "$C/clips/"
  tmp=$(mktemp -d)
  python3 - "$data" "$C" "$tmp" <<'EOF'
import glob, os, shutil, sys
import numpy as np, soundfile as sf
from scipy.signal import resample_poly
data, out, tmp = sys.argv[1:]
# 60 s of one actor's speech, 16 kHz mono, for the monitor at real-time pace.
parts, n = [], 0
for f in sorted(glob.glob(f"{data}/ravdess/Actor_01/*.flac")):
    y, sr = sf.read(f, dtype="float64", always_2d=True)
    y = resample_poly(y.mean(1), 1, 3) if sr == 48000 else y.mean(1)
    parts.append(y); n += len(y)
    if n >= 60 * 16000:
        break
sf.write(f"{out}/talk.wav", np.concatenate(parts)[: 60 * 16000], 16000, subtype="PCM_16")
# 400 clips of actors 1-10 as a labels.csv corpus named ravdess, for the training epoch.
labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
rows = []
for f in sorted(glob.glob(f"{data}/ravdess/Actor_*/*.flac")):
    p = os.path.basename(f)[:-5].split("-")
    if int(p[6]) <= 10 and len(rows) < 400:
        dst = os.path.join(tmp, "ravdess", os.path.basename(f))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(f, dst)
        rows.append(f"{os.path.basename(f)},{labels[int(p[2]) - 1]},ravdess_{int(p[6]):02d}")
open(f"{tmp}/ravdess/labels.csv", "w").write("path,emotion,speaker\n" + "\n".join(rows) + "\n")
EOF
  pack=$("$bin" train --data "csv=$tmp/ravdess/labels.csv" --arch emocnn --pack-only --cache "$tmp/cache" 2>/dev/null | tail -1)
  cp "$pack" "$C/emocnn_400.pack"
  rm -rf "$tmp"
  du -sh "$C"
  echo "carry/check is ready; add carry/emoscope (the stripped cuda build, gzipped) and run the script there"
  exit 0
fi

GPU="${GPU:-cuda}"
OUTDIR="${OUT:-/tmp}"
W=$(mktemp -d)
for f in carry/*.gz; do [ -e "$f" ] && { [ -e "${f%.gz}" ] || gunzip -k "$f"; }; done
B="${EMOSCOPE_BIN:-carry/emoscope}"
[ -x "$B" ] || chmod +x "$B" 2>/dev/null || { echo "error: no emoscope binary at $B" >&2; exit 1; }
[ -d "$C/clips" ] || { echo "error: $C is missing: run 'bash scripts/gpu_check.sh --prepare' where the corpora are" >&2; exit 1; }
if [ "$GPU" != cpu ]; then
  export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))'):${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$W/gpu.txt" || true
else
  echo "none (dry run: GPU=cpu)" > "$W/gpu.txt"
fi
clips=("$C"/clips/*.flac)
echo "1. equality on ${#clips[@]} clips" >&2
for d in cpu "$GPU"; do
  s=$(date +%s%N)
  "$B" analyze --json --hop 0.1 --compute "$d" "${clips[@]}" > "$W/analyze_$d.json" 2> "$W/analyze_$d.err"
  echo $(( ($(date +%s%N) - s) / 1000000 )) > "$W/analyze_$d.ms"
done
echo "2. the monitor at real-time pace" >&2
for d in cpu "$GPU"; do
  "$B" monitor --headless --input "$C/talk.wav" --compute "$d" > "$W/monitor_$d.jsonl" 2> "$W/monitor_$d.err"
done
echo "3. one training epoch of emocnn" >&2
for d in cpu "$GPU"; do
  "$B" train --pack "$C/emocnn_400.pack" --arch emocnn --epochs 1 --test-speakers ravdess:1,2 \
    --compute "$d" --out "$W/train_$d" > "$W/train_$d.log" 2>&1
done
python3 scripts/bench_torch.py --arch emocnn --clips 320 --epochs 3 --threads 2 \
  --device "$([ "$GPU" = cpu ] && echo cpu || echo cuda)" > "$W/torch.txt" 2>&1 || true
python3 - "$W" "$GPU" "$OUTDIR/gpu_check.json" <<'EOF'
import json, re, sys
w, gpu, out = sys.argv[1:]
def analyze(d):
    files = [json.loads(l) for l in open(f"{w}/analyze_{d}.json") if l.strip()]
    return {a["file"]: [[p for _, p in win["probs"]] for win in a["windows"]] for a in files}
a, b = analyze("cpu"), analyze(gpu)
diffs = [abs(x - y) for f in a for wa, wb in zip(a[f], b[f]) for x, y in zip(wa, wb)]
windows = sum(len(v) for v in a.values())
def monitor(d):
    lines = [json.loads(l) for l in open(f"{w}/monitor_{d}.jsonl")]
    s = lines[-1]["summary"]
    return {k: s[k] for k in ("windows", "dropped_samples", "dropped_windows", "latency_ms_p50", "latency_ms_p95", "compute", "compute_fallbacks", "wall_seconds")}
def epoch(d):
    m = re.search(r"\(([\d.]+) s per epoch on ([^)]+)\)", open(f"{w}/train_{d}.log").read())
    return {"seconds": float(m.group(1)), "on": m.group(2)} if m else {"error": open(f"{w}/train_{d}.log").read()[-500:]}
torch = re.search(r"([\d.]+) s/epoch", open(f"{w}/torch.txt").read())
r = {
    "gpu": open(f"{w}/gpu.txt").read().strip(),
    "equality": {"clips": len(a), "windows": windows, "max_abs_diff": max(diffs), "goal": 1e-4,
                 # a CUDA build that could not open the GPU runs on the CPU and says so: then
                 # this comparison is the CPU against itself
                 "gpu_used": gpu != "cpu" and "the model runs on the CPU" not in open(f"{w}/analyze_{gpu}.err").read()},
    "monitor_real_time": {"cpu": monitor("cpu"), gpu: monitor(gpu)},
    "analyze_seconds": {"clips": len(a), "windows": windows,
                        "cpu": int(open(f"{w}/analyze_cpu.ms").read()) / 1000,
                        gpu: int(open(f"{w}/analyze_{gpu}.ms").read()) / 1000},
    "emocnn_epoch_320_clips": {"cpu": epoch("cpu"), gpu: epoch(gpu),
                               "pytorch_same_gpu_seconds": float(torch.group(1)) if torch else open(f"{w}/torch.txt").read()[-500:]},
}
json.dump(r, open(out, "w"), indent=1)
print(json.dumps(r, indent=1))
EOF
echo "written: $OUTDIR/gpu_check.json" >&2
