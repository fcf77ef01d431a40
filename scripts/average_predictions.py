#!/usr/bin/env python3
"""Averages models' probabilities offline, from `emoscope eval --predictions` CSVs of the
same clips: what `emoscope ensemble` with those weights would give (at top temperature 1),
to try weightings and seed ensembles without building each one.

usage: python3 scripts/average_predictions.py W1,W2,... A.csv B.csv ...
Prints accuracy, UAR and ECE (15 bins, as emoscope) pooled, and accuracy per corpus.
"""
import csv
import sys

import numpy as np
LABELS = ["neutral","calm","happy","sad","angry","fearful","disgust","surprised"]
def load(f):
    r = list(csv.DictReader(open(f)))
    P = np.array([[float(x[l]) for l in LABELS] for x in r])
    y = np.array([LABELS.index(x['label']) for x in r])
    return [x['path'] for x in r], P, y, [x['corpus'] for x in r]
def metrics(P, y):
    pred = P.argmax(1); acc = (pred == y).mean()
    present = sorted(set(y)); uar = np.mean([(pred[y == c] == c).mean() for c in present])
    conf = P.max(1); bins = np.minimum((conf * 15).astype(int), 14); ece = 0
    for b in range(15):
        m = bins == b
        if m.any(): ece += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return acc, uar, ece
def combo(files, weights):
    paths0 = None; S = 0
    for f, w in zip(files, weights):
        p, P, y, c = load(f)
        if paths0 is None: paths0, y0, c0 = p, y, c
        assert p == paths0
        S = S + w * P
    return S / sum(weights), y0, np.array(c0)
if __name__ == "__main__":
    w = [float(x) for x in sys.argv[1].split(",")]; files = sys.argv[2:]
    P, y, c = combo(files, w)
    a, u, e = metrics(P, y)
    out = f"pooled {100*a:.1f} % UAR {u:.3f} ECE {e:.3f}"
    if len(set(c)) > 1:
        for k in sorted(set(c)):
            m = c == k; a2, u2, e2 = metrics(P[m], y[m]); out += f" | {k} {100*a2:.1f}"
    print(out)
