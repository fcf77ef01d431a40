#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/, not committed) from real inputs: the
# audio fixtures, a short WAV, the shipped fusion model, labels.csv rows of EMOVO and nEMO,
# and JSON lines of a headless monitor run. Run from the repository root after
# `cargo build --release`:  bash fuzz/seed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
C=fuzz/corpus
mkdir -p $C/decode_features $C/labels_csv $C/model_card $C/session_report
# decode_features: first byte picks the extension (0 wav, 1 flac, 2 ogg, 3 mp3).
python3 - <<'PY'
import struct, math, pathlib
C = pathlib.Path("fuzz/corpus/decode_features")
for pick, src in [(1, "tests/fixtures/audio/tone.flac"), (2, "tests/fixtures/audio/tone.ogg"), (3, "tests/fixtures/audio/tone_stereo.mp3")]:
    (C / pathlib.Path(src).name).write_bytes(bytes([pick]) + pathlib.Path(src).read_bytes())
n, sr = 8000, 16000
pcm = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 180 * i / sr))) for i in range(n))
hdr = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16) + b"data" + struct.pack("<I", len(pcm))
(C / "tone.wav").write_bytes(bytes([0]) + hdr + pcm)
# model_card: u16 length of card.json, the card, then the weights.
M = pathlib.Path("fuzz/corpus/model_card")
card = pathlib.Path("weights/fusion/card.json").read_bytes()
(M / "fusion").write_bytes(struct.pack("<H", len(card)) + card + pathlib.Path("weights/fusion/model.safetensors").read_bytes())
card = pathlib.Path("weights/paper1_cnn/card.json").read_bytes()
(M / "paper1_cnn_card_only").write_bytes(struct.pack("<H", len(card)) + card)
PY
for corpus in emovo nemo; do
  head -20 ../shared/data/$corpus/labels.csv > $C/labels_csv/$corpus.csv
done
printf 'path,emotion,speaker\nangry-20260101-120000-00.wav,angry,me\nsub/x.wav,sad,me\n' > $C/labels_csv/store.csv
./target/release/emoscope monitor --headless --synthetic tone:220 --duration 4 --fast > $C/session_report/tone.jsonl 2>/dev/null
./target/release/emoscope monitor --headless --input ../shared/data/ravdess/Actor_01/03-01-05-01-01-01-01.flac --fast > $C/session_report/ravdess.jsonl 2>/dev/null
ls $C/*/ | head -40
