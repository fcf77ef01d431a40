#!/usr/bin/env python3
"""Feature extraction speed: the whole `emoscope features` process against librosa's
in-process `mfcc`, on the same 10-minute clip with the same parameters, in one run.

    python3 scripts/bench_vs_librosa.py ../shared/data [--runs 7]

Builds /tmp/emoscope_bench_10min.wav (RAVDESS clips resampled to 22.05 kHz and
concatenated up to 10 minutes; never committed), then reports median wall times, the
ratio, and the single-core ratio (RAYON_NUM_THREADS=1).
"""
import argparse
import glob
import os
import subprocess
import time

import librosa
import numpy as np
import soundfile as sf

SR, N_FFT, HOP, N_MELS, N_MFCC = 22050, 2048, 512, 128, 20
WAV = "/tmp/emoscope_bench_10min.wav"


def make_clip(data):
    if os.path.exists(WAV):
        return
    files = sorted(glob.glob(os.path.join(data, "ravdess", "Actor_*", "*.flac")))
    parts, total = [], 0
    for f in files:
        y, _ = librosa.load(f, sr=SR)
        parts.append(y)
        total += len(y)
        if total >= 600 * SR:
            break
    y = np.concatenate(parts)[: 600 * SR]
    sf.write(WAV, y, SR, subtype="PCM_16")


def median_time(fn, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--bin", default="target/release/emoscope")
    a = ap.parse_args()
    make_clip(a.data)
    y, _ = librosa.load(WAV, sr=None)
    librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)  # warm up
    t_lib = median_time(lambda: librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS), a.runs)
    cmd = [a.bin, "features", WAV, "--kind", "mfcc", "--n-fft", str(N_FFT), "--hop-length", str(HOP),
           "--n-mels", str(N_MELS), "--n-mfcc", str(N_MFCC), "--out", "/tmp/emoscope_bench_mfcc.npy"]
    res = {}
    for label, threads in [("all cores", None), ("one core", "1")]:
        env = dict(os.environ)
        if threads:
            env["RAYON_NUM_THREADS"] = threads
        subprocess.run(cmd, check=True, env=env)
        res[label] = median_time(lambda: subprocess.run(cmd, check=True, env=env), a.runs)
    ours = np.load("/tmp/emoscope_bench_mfcc.npy")
    ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"10 min at {SR} Hz, n_fft {N_FFT}, hop {HOP}, {N_MELS} mels, {N_MFCC} MFCCs; {os.cpu_count()} cores")
    print(f"librosa {librosa.__version__} mfcc (in-process, decode excluded): {t_lib*1000:.0f} ms")
    for label, t in res.items():
        print(f"emoscope features process ({label}, decode + write included): {t*1000:.0f} ms  -> {t_lib/t:.1f}x faster")
    print(f"max |ours - librosa| / max|librosa| = {err:.2e}")


if __name__ == "__main__":
    main()
