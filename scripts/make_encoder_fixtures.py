#!/usr/bin/env python3
"""Generates tests/fixtures/encoder/: the numpy reference encoder's (shared/tools/whisper_probe.py,
`WhisperEncoder.layer_means`) time-mean of the input to block 0 and of blocks 1-4's outputs,
for real RAVDESS clips (16 kHz as stored, so both sides read the same samples) read from
../shared/data by the test, plus the log-mel of the first clip. Committed once; the test needs
no Python:

    python3 scripts/make_encoder_fixtures.py W/model.bin ../shared/data

(model.bin as scripts/convert_whisper.py or whisper_probe.py's docstring reassembles it.)
"""
import json
import os
import sys

import librosa
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools"))
from whisper_probe import WhisperEncoder  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "encoder")
CLIPS = ["ravdess/Actor_01/03-01-05-02-01-01-01.flac",  # angry
         "ravdess/Actor_02/03-01-04-01-02-02-02.flac",  # sad
         "ravdess/Actor_13/03-01-03-02-01-02-13.flac"]  # happy
BLOCKS = 4


def main():
    enc = WhisperEncoder(sys.argv[1])
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for i, rel in enumerate(CLIPS):
        y, sr = librosa.load(os.path.join(sys.argv[2], rel), sr=None)
        assert sr == 16000, rel
        means = enc.layer_means(y)[:BLOCKS + 1].astype(np.float32)
        name = f"layer_means_{i}.npy"
        np.save(os.path.join(OUT, name), means)
        entry = {"clip": rel, "layer_means": name, "samples": len(y)}
        if i == 0:
            np.save(os.path.join(OUT, "log_mel_0.npy"), enc.log_mel(y))
            entry["log_mel"] = "log_mel_0.npy"
        manifest.append(entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {len(manifest)} clips to {OUT}")


if __name__ == "__main__":
    main()
