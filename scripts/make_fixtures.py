#!/usr/bin/env python3
"""Generates the librosa reference fixtures used by tests/librosa_parity.rs.

Run once (needs `pip install librosa==0.11.0 soundfile`); the outputs are committed and the
tests themselves need no Python:

    python3 scripts/make_fixtures.py ../shared/data

Writes tests/fixtures/librosa/: the input signals (float32 .npy) and, for every parameter
set and signal, librosa's power mel, dB mel and MFCC, plus a manifest.json listing them.
"""
import json
import os
import sys

import librosa
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "librosa")

# name: (sr, n_fft, hop_length, n_mels, n_mfcc, fmin, fmax)
PARAMS = {
    "librosa_default": (22050, 2048, 512, 128, 20, 0.0, None),
    "paper1_cnn": (22050, 4096, 1024, 128, 40, 0.0, None),
    "paper2_fser": (22050, 512, 512, 64, 20, 0.0, None),
    "speech16k": (16000, 400, 160, 64, 20, 0.0, None),
    "speech16k_band": (16000, 512, 160, 40, 13, 50.0, 7000.0),
}


def signals(sr, data_dir):
    rng = np.random.default_rng(1234)
    t = np.arange(int(1.2 * sr)) / sr
    out = {
        "chirp": (0.5 * librosa.chirp(fmin=80, fmax=sr / 2.5, sr=sr, duration=1.2)).astype(np.float32),
        "noise": (0.1 * rng.standard_normal(int(1.0 * sr))).astype(np.float32),
        "silence": np.zeros(int(0.6 * sr), dtype=np.float32),
        "tones": (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32),
    }
    if data_dir and sr == 16000:
        clip = os.path.join(data_dir, "ravdess", "Actor_01", "03-01-05-02-01-01-01.flac")
        y, _ = librosa.load(clip, sr=None)
        out["ravdess_angry"] = y.astype(np.float32)
    return out


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else None
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for name, (sr, n_fft, hop, n_mels, n_mfcc, fmin, fmax) in PARAMS.items():
        for sig_name, y in signals(sr, data_dir).items():
            key = f"{name}__{sig_name}"
            source = None
            if sig_name == "ravdess_angry":
                source = "ravdess/Actor_01/03-01-05-02-01-01-01.flac"  # read from ../shared/data by the test
            else:
                np.save(os.path.join(OUT, f"signal_{sig_name}_{sr}.npy"), y)
            mel = librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax
            ).astype(np.float32)
            mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0).astype(np.float32)
            mfcc = librosa.feature.mfcc(
                y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax
            ).astype(np.float32)
            np.save(os.path.join(OUT, f"{key}__mel.npy"), mel)
            np.save(os.path.join(OUT, f"{key}__meldb.npy"), mel_db)
            np.save(os.path.join(OUT, f"{key}__mfcc.npy"), mfcc)
            manifest.append(
                dict(key=key, params=name, signal=sig_name, sr=sr, n_fft=n_fft, hop_length=hop,
                     n_mels=n_mels, n_mfcc=n_mfcc, fmin=fmin, fmax=fmax,
                     signal_file=None if source else f"signal_{sig_name}_{sr}.npy", data_file=source)
            )
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"librosa": librosa.__version__, "numpy": np.__version__, "cases": manifest}, f, indent=1)
    print(f"wrote {len(manifest)} cases to {OUT}")


if __name__ == "__main__":
    main()
