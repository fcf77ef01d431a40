#!/usr/bin/env python3
"""What a speaker profile buys and costs a head on the frozen encoder: logistic regressions
on the time-mean of representation 3 (whisper_probe.py's layer 3) of every 3 s window, the
windows' probabilities averaged per clip (speech windows), read under three profiles: all
of the speaker's clips ("speaker"), the speaker's clips of the clip's own emotion only
("emotion", a session in one mood), the clip alone ("clip"). Features: the vector as it
is (raw), z-scored by the profile (norm, as whisper_probe.py --norm speaker), or with a
share alpha of the profile mean subtracted (center), or with a share alpha of a *calm
reference* subtracted (calm: the mean of the profile's speech windows that the raw
regression calls neutral or calm with probability > 0.5, once it holds 3 of them; a window
whose profile holds fewer is read by the raw regression), or with a share alpha of an
*enrolment reference* subtracted (enrol: the mean of the speaker's speech windows labelled
neutral, the clip's own windows left out, as if the speaker had first read a few sentences
in a neutral voice when asked to; fixed before the session, so the same under every
profile; a window whose speaker has fewer than 2 other neutral windows is read by the raw
regression; its rows also print the accuracy with the neutral clips, which would be the
enrolment, left unscored). Mixed test speakers and leave-one-corpus-out as
anchor_egemaps_svm.py.

    emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \\
        --data csv=D/nemo/labels.csv --export runs/enc-npy
    python3 scripts/profile_tradeoff.py runs/enc-npy

Needs numpy, pandas, scikit-learn.
"""
import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
MIXED = {"ravdess_01", "ravdess_02", "emovo_f1", "emovo_m1", "nemo_EB0", "nemo_KS0"}

d = sys.argv[1]
W = pd.read_csv(f"{d}/windows.csv")
X = np.load(f"{d}/X.npy", mmap_mode="r")
F = np.asarray(X[:, 3 * 1024:3 * 1024 + 512], dtype=np.float64)  # representation 3, mean
y = W.label.map({l: i for i, l in enumerate(LABELS)}).values
spk, corpus, speech = W.speaker.values, W.corpus.values, W.speech.values.astype(bool)
clip = W.path.astype("category").cat.codes.values
KEYS = {"speaker": spk, "clip": W.path.values,
        "emotion": np.array([s + "~" + l for s, l in zip(spk, W.label.values)])}


def profile(keys):
    mu, sd = np.zeros_like(F), np.ones_like(F)
    for k in np.unique(keys):
        m = keys == k
        ms = m & speech if (m & speech).any() else m
        mu[m], sd[m] = F[ms].mean(0), F[ms].std(0) + 1e-3
    return mu, sd


PROF = {k: profile(v) for k, v in KEYS.items()}


def feats(scope, mode, alpha):
    mu, sd = PROF[scope]
    return {"raw": F, "norm": np.clip((F - mu) / sd, -10, 10), "center": F - alpha * mu}[mode]


def fit(X, labels):
    m, s = X.mean(0), X.std(0) + 1e-6
    clf = LogisticRegression(C=0.01, max_iter=3000).fit((X - m) / s, labels)

    def predict(Z):
        P = np.zeros((len(Z), 8))
        P[:, clf.classes_] = clf.predict_proba((Z - m) / s)
        return P
    return predict


CALM_P, CALM_MIN = 0.5, 3


def calm_feats(keys, p_calm, alpha):
    """F minus alpha times each key's calm reference, and whether the key has one."""
    out, has = F.copy(), np.zeros(len(F), dtype=bool)
    for k in np.unique(keys):
        m = keys == k
        calm = m & speech & (p_calm > CALM_P)
        if calm.sum() >= CALM_MIN:
            out[m] = F[m] - alpha * F[calm].mean(0)
            has[m] = True
    return out, has


def enrol_feats(alpha):
    """F minus alpha times the speaker's enrolment reference (their other neutral speech
    windows' mean), and whether the window has one."""
    out, has = F.copy(), np.zeros(len(F), dtype=bool)
    for s in np.unique(spk):
        e = np.where((spk == s) & speech & (y == 0))[0]
        for i in np.where(spk == s)[0]:
            others = e[clip[e] != clip[i]]
            if len(others) >= 2:
                out[i] = F[i] - alpha * F[others].mean(0)
                has[i] = True
    return out, has


def run(mode, alpha, te_mask):
    tr, te = np.where(~te_mask)[0], np.where(te_mask)[0]
    if mode == "enrol":
        raw = fit(F[tr], y[tr])
        X, has = enrol_feats(alpha)
        enrolled = fit(X[tr][has[tr]], y[tr][has[tr]])
        P = np.where(has[te][:, None], enrolled(X[te]), raw(F[te]))
        not_neutral = y[te] != 0
        return [acc_of(P, te)] * 3 + [acc_of(P[not_neutral], te[not_neutral])]
    if mode == "calm":
        raw = fit(F[tr], y[tr])
        P0 = raw(F)
        p_calm = P0[:, 0] + P0[:, 1]  # neutral + calm
        Xtr, _ = calm_feats(spk, p_calm, alpha)
        centred = fit(Xtr[tr], y[tr])
        out = []
        for scope in ["speaker", "emotion", "clip"]:
            X, has = calm_feats(KEYS[scope], p_calm, alpha)
            P = np.where(has[te][:, None], centred(X[te]), P0[te])
            out.append(acc_of(P, te))
        return out
    predict = fit(feats("speaker", mode, alpha)[tr], y[tr])
    out = [acc_of(predict(feats(scope, mode, alpha)[te]), te)
           for scope in ["speaker", "emotion", "clip"]]
    if mode == "raw":  # the same subset as the enrolment rows' second figure
        not_neutral = y[te] != 0
        out.append(acc_of(predict(F[te][not_neutral]), te[not_neutral]))
    return out


def acc_of(P, te):
    full = np.zeros((len(W), 8))
    full[te] = P
    df = pd.DataFrame({"clip": clip[te], "speech": speech[te], "y": y[te], "i": te})
    hits = []
    for _, g in df.groupby("clip"):
        idx = g.i.values[g.speech.values] if g.speech.any() else g.i.values
        hits.append(full[idx].mean(0).argmax() == g.y.values[0])
    return 100 * np.mean(hits)


print("accuracy % with the profile of: speaker (all clips) / one emotion / one clip")
MODES = [("raw", 0), ("center", 0.25), ("center", 0.5), ("center", 0.75), ("norm", 0),
         ("calm", 0.5), ("calm", 0.75)]
if len(sys.argv) > 2:  # e.g. calm:0.5 to run one row
    MODES = [(a.split(":")[0], float(a.split(":")[1]) if ":" in a else 0) for a in sys.argv[2:]]
for mode, alpha in MODES:
    name = f"{mode} {alpha}" if mode in ("center", "calm", "enrol") else mode
    rows = [("mixed", np.isin(spk, list(MIXED)))] + [(f"LOCO {c}", corpus == c) for c in ["ravdess", "emovo", "nemo"]]
    for label, mask in rows:
        a = run(mode, alpha, mask)
        extra = f"   (neutral clips unscored: {a[3]:5.1f})" if len(a) > 3 else ""
        print(f"{name:<12} {label:<13} {a[0]:5.1f} / {a[1]:5.1f} / {a[2]:5.1f}{extra}", flush=True)
