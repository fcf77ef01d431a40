#!/usr/bin/env python3
"""Writes corrupted copies of the mixed protocol's test clips, to measure how a model and the
eGeMAPS + SVM baseline hold up under recording conditions the corpora do not have.

Conditions (all seeded, so every run writes the same files):
  babble10  four other speakers talking at once (RAVDESS actors 3-24, never test speakers),
            added at 10 dB SNR (speech power of the clip against the babble's)
  noise10   white noise at 10 dB SNR
  reverb    a synthetic room: exponentially decaying noise, RT60 0.6 s, direct path 0 dB
            above the tail's energy
  phone     telephone channel: 300-3400 Hz band-pass, 8 kHz, G.711 mu-law

Each condition is a folder OUT/COND/<corpus>/ with the clips as 16-bit FLAC and a
labels.csv (path, emotion, speaker), so `emoscope eval --data csv=OUT/COND/<corpus>/labels.csv`
reads it, per corpus and pooled, and scripts/robustness.py gives the baseline the same files.

With --train it writes, instead, one corrupted copy of every *training* speaker's clips
(every speaker but the mixed test speakers; with --loco C also none of corpus C), for
training with them: each speaker's copy is one recording session, one condition drawn for
all of that speaker's clips (babble from EMOVO and nEMO speakers, never RAVDESS as in the
test babble, at 5-20 dB SNR; white noise at 5-20 dB; a room of RT60 0.3-0.9 s; telephone),
as OUT/train/<corpus>_session/labels.csv with speaker "<speaker>_session": sorted as their
clean speakers, so `train`'s validation speakers and cross-fitting folds stay the same
speakers' (no clip of a validation speaker trains a model it validates).

usage: python3 scripts/corrupt_clips.py [--data ../shared/data] [--out /tmp/emoscope-corrupt]
                                       [--conditions babble10,noise10,reverb,phone] [--train]
Needs numpy, scipy, soundfile. The audio is written outside the repository; nothing is copied
into it.
"""
import argparse
import csv
import glob
import os
import sys

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
TEST = {"ravdess": {"ravdess_01", "ravdess_02"}, "emovo": {"emovo_f1", "emovo_m1"},
        "nemo": {"nemo_EB0", "nemo_KS0"}}
CONDITIONS = ["babble10", "noise10", "reverb", "phone"]


def test_clips(data):
    """(corpus, path, emotion, speaker) of every mixed-protocol test clip."""
    out = []
    for f in sorted(glob.glob(f"{data}/ravdess/Actor_0[12]/*.flac")):
        p = os.path.basename(f).rsplit(".", 1)[0].split("-")
        out.append(("ravdess", f, LABELS[int(p[2]) - 1], f"ravdess_{int(p[6]):02d}"))
    for c in ("emovo", "nemo"):
        csv_path = f"{data}/{c}/labels.csv"
        base = os.path.dirname(csv_path)
        for r in csv.DictReader(open(csv_path)):
            if r["speaker"] in TEST[c]:
                out.append((c, os.path.join(base, r["path"]), r["emotion"], r["speaker"]))
    if not out:
        sys.exit(f"error: no test clips under {data} (RAVDESS, EMOVO and nEMO are needed)")
    return out


def train_clips(data):
    """(corpus, path, emotion, speaker) of every clip of the mixed protocol's training speakers."""
    out = []
    for f in sorted(glob.glob(f"{data}/ravdess/Actor_*/*.flac")):
        p = os.path.basename(f).rsplit(".", 1)[0].split("-")
        spk = f"ravdess_{int(p[6]):02d}"
        if spk not in TEST["ravdess"]:
            out.append(("ravdess", f, LABELS[int(p[2]) - 1], spk))
    for c in ("emovo", "nemo"):
        csv_path = f"{data}/{c}/labels.csv"
        base = os.path.dirname(csv_path)
        for r in csv.DictReader(open(csv_path)):
            if r["speaker"] not in TEST[c]:
                out.append((c, os.path.join(base, r["path"]), r["emotion"], r["speaker"]))
    return out


def mono(path):
    y, sr = sf.read(path, dtype="float64", always_2d=True)
    return y.mean(axis=1), sr


def resample(y, sr, to):
    if sr == to:
        return y
    g = np.gcd(int(sr), int(to))
    return resample_poly(y, to // g, sr // g)


def speech_power(y):
    """Mean power of the frames within 30 dB of the loudest (the speech, not the silence)."""
    n = 512
    frames = y[: len(y) // n * n].reshape(-1, n)
    p = (frames ** 2).mean(axis=1) + 1e-12
    return p[p >= p.max() * 1e-3].mean()


def at_snr(y, noise, snr_db):
    noise = noise[: len(y)]
    gain = np.sqrt(speech_power(y) / (speech_power(noise) * 10 ** (snr_db / 10)))
    return y + gain * noise


def babble(data, sr, length, rng, files=None):
    if files is None:  # the test babble: RAVDESS actors 3-24
        files = sorted(glob.glob(f"{data}/ravdess/Actor_*/*.flac"))
        files = [f for f in files if int(os.path.basename(f).split("-")[6].split(".")[0]) > 2]
    out = np.zeros(length)
    for f in rng.choice(files, 4, replace=False):
        x, s = mono(f)
        x = resample(x, s, sr)
        x = x / np.sqrt(speech_power(x))
        x = np.tile(x, length // len(x) + 1)
        start = rng.integers(0, len(x) - length + 1)
        out += x[start : start + length]
    return out


def reverb(y, sr, rng, rt60=0.6):
    t = np.arange(int(rt60 * sr)) / sr
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    tail[0] = 0.0
    rir = tail / np.sqrt((tail ** 2).sum())
    rir[0] = 1.0
    wet = fftconvolve(y, rir)[: len(y)]
    return wet * np.sqrt((y ** 2).mean() / max((wet ** 2).mean(), 1e-20))


def phone(y, sr):
    x = resample(y, sr, 8000)
    x = sosfilt(butter(4, [300, 3400], btype="band", fs=8000, output="sos"), x)
    peak = max(np.abs(x).max(), 1e-9)
    mu = 255.0
    z = np.sign(x / peak) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
    z = np.round(z * 127) / 127
    return np.sign(z) * np.expm1(np.abs(z) * np.log1p(mu)) / mu * peak, 8000


def corrupt(cond, y, sr, data, rng):
    if cond == "babble10":
        return at_snr(y, babble(data, sr, len(y), rng), 10), sr
    if cond == "noise10":
        return at_snr(y, rng.standard_normal(len(y)), 10), sr
    if cond == "reverb":
        return reverb(y, sr, rng), sr
    if cond == "phone":
        return phone(y, sr)
    raise ValueError(cond)


def session(data, babble_files, rng):
    """One training session's condition: a function of (clip, rate) -> (clip, rate)."""
    kind = rng.choice(["babble", "noise", "reverb", "phone"])
    snr = rng.uniform(5, 20)
    rt60 = rng.uniform(0.3, 0.9)
    if kind == "babble":
        return kind, lambda y, sr, r: (at_snr(y, babble(data, sr, len(y), r, babble_files), snr), sr)
    if kind == "noise":
        return kind, lambda y, sr, r: (at_snr(y, r.standard_normal(len(y)), snr), sr)
    if kind == "reverb":
        return kind, lambda y, sr, r: (reverb(y, sr, r, rt60), sr)
    return kind, lambda y, sr, r: phone(y, sr)


def write(clips, out, name_of, corrupt_one):
    """Writes each clip corrupted; returns the labels.csv rows by output corpus."""
    rows = {}
    for i, (corpus, path, emotion, speaker) in enumerate(clips):
        y, sr = mono(path)
        z, zsr = corrupt_one(i, corpus, speaker, y, sr)
        peak = np.abs(z).max()
        if peak > 0.99:
            z = z * 0.99 / peak
        folder, spk = name_of(corpus, speaker)
        name = f"{spk}/{os.path.basename(path).rsplit('.', 1)[0]}.flac"
        dst = os.path.join(out, folder, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        sf.write(dst, z, zsr, subtype="PCM_16")
        rows.setdefault(folder, []).append((name, emotion, spk))
    for folder, r in rows.items():
        with open(os.path.join(out, folder, "labels.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "emotion", "speaker"])
            w.writerows(r)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="/tmp/emoscope-corrupt")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--train", action="store_true", help="corrupted sessions of the training speakers")
    a = ap.parse_args()
    conds = a.conditions.split(",")
    bad = [c for c in conds if c not in CONDITIONS]
    if bad:
        sys.exit(f"error: unknown condition {bad[0]}; use some of {','.join(CONDITIONS)}")
    if a.train:
        clips = train_clips(a.data)
        babble_files = [p for c, p, _, _ in clips if c != "ravdess"]
        sessions = {}
        for spk in sorted({c[3] for c in clips}):
            sessions[spk] = session(a.data, babble_files, np.random.default_rng([99, len(sessions)]))

        def corrupt_one(i, corpus, speaker, y, sr):
            return sessions[speaker][1](y, sr, np.random.default_rng([98, i]))

        write(clips, os.path.join(a.out, "train"), lambda c, s: (f"{c}_session", f"{s}_session"), corrupt_one)
        kinds = {}
        for spk, (kind, _) in sessions.items():
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"train: {len(clips)} clips of {len(sessions)} speakers in {a.out}/train "
              f"(sessions: {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
        return
    clips = test_clips(a.data)
    for cond in conds:
        def corrupt_one(i, corpus, speaker, y, sr, cond=cond):
            return corrupt(cond, y, sr, a.data, np.random.default_rng([CONDITIONS.index(cond), i]))

        write(clips, os.path.join(a.out, cond), lambda c, s: (c, s), corrupt_one)
        print(f"{cond}: {len(clips)} clips in {os.path.join(a.out, cond)}", flush=True)


if __name__ == "__main__":
    main()
