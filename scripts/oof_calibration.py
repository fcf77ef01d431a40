#!/usr/bin/env python3
"""How well an ensemble of heads is calibrated out of fold, per reading (with an enrolment
and without one), against how it reads held-out speakers: the check behind the default's
single temperature.

    python3 scripts/oof_calibration.py MEMBER_DIR... [--predictions CSV ...]

Each MEMBER_DIR is a head trained with `--crossfit K` (its crossfit.json holds the window
logits of every training speaker read by a head that never trained on them, and card.json
its temperature). The members' probabilities are averaged window by window, each at its own
temperature, as `emoscope ensemble` does; then per profile: the temperature that minimises
clip-level negative log-likelihood (the grid of `train::fit_temperature`), the one fitted on
both profiles together (what the card holds), and accuracy, mean confidence and ECE (15
bins) at each. `--predictions` adds held-out clips (`emoscope eval --predictions CSV`):
their accuracy against their mean confidence, overall and per corpus.
Needs numpy.
"""
import argparse
import csv
import json

import numpy as np

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def softmax(z, t):
    z = z / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def ece(p, y):
    conf, right = p.max(1), p.argmax(1) == y
    bins = np.minimum((conf * 15).astype(int), 14)
    return sum(abs(right[bins == b].sum() - conf[bins == b].sum()) for b in range(15)) / len(y)


ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("members", nargs="+")
ap.add_argument("--predictions", nargs="*", default=[])
a = ap.parse_args()
oof = [json.load(open(f"{m}/crossfit.json")) for m in a.members]
temps = [json.load(open(f"{m}/card.json"))["temperature"] for m in a.members]
for m, o in zip(a.members[1:], oof[1:]):
    if o["owner"] != oof[0]["owner"] or o["readings"] != oof[0]["readings"]:
        raise SystemExit(f"{m} read other clips out of fold than {a.members[0]}")
owner = np.array(oof[0]["owner"])
readings = oof[0]["readings"]
y = np.array([r["label"] for r in readings])
profile = np.array([r["profile"] for r in readings])
mean = np.mean([softmax(np.array(o["logits"], dtype=np.float64), t) for o, t in zip(oof, temps)], 0)
logp = np.log(np.maximum(mean, 1e-30))
grid = 0.25 * 16 ** (np.arange(61) / 60)


def clip_probs(t):
    w, out, n = softmax(logp, t), np.zeros((len(readings), 8)), np.zeros(len(readings))
    np.add.at(out, owner, w)
    np.add.at(n, owner, 1)
    return out / n[:, None]


at = {t: clip_probs(t) for t in grid}


def fit(mask):
    return min(grid, key=lambda t: -np.log(np.maximum(at[t][mask, y[mask]], 1e-7)).sum())


joint = fit(np.ones(len(y), bool))
print(f"{len(a.members)} members (temperatures {', '.join(f'{t:.3f}' for t in temps)}); "
      f"out of fold: {len(y)} readings; one temperature for both profiles {joint:.3f}")
for p in sorted(set(profile)):
    m = profile == p
    own = fit(m)
    pj, po = at[joint][m], at[own][m]
    print(f"  {p:<10} n={m.sum():5d}  accuracy {np.mean(pj.argmax(1) == y[m]):.3f}  "
          f"mean confidence {pj.max(1).mean():.3f}  ECE {ece(pj, y[m]):.3f} at {joint:.3f}; "
          f"its own temperature {own:.3f}: ECE {ece(po, y[m]):.3f}")
for f in a.predictions:
    rows = list(csv.DictReader(open(f)))
    for corpus in [None] + sorted({r["corpus"] for r in rows}):
        rr = [r for r in rows if corpus is None or r["corpus"] == corpus]
        p = np.array([[float(r[label]) for label in LABELS] for r in rr])
        t = np.array([LABELS.index(r["label"]) for r in rr])
        print(f"held out {f} {corpus or 'all'}: n={len(rr)} accuracy {np.mean(p.argmax(1) == t):.3f}  "
              f"mean confidence {p.max(1).mean():.3f}  ECE {ece(p, t):.3f}")
