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

from enc_export import Export, logistic

warnings.filterwarnings("ignore")

d = sys.argv[1]
ex = Export(d)
W = ex.W
F = ex.block(3)  # representation 3, mean
y, spk, corpus, speech, clip = ex.y, ex.spk, ex.corpus, ex.speech, ex.clip
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
    return logistic(X, labels, C=0.01)


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
    ref, has = ex.enrolment(F)
    return np.where(has[:, None], F - alpha * ref, F), has


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
    return ex.clip_accuracy(P, te)


print("accuracy % with the profile of: speaker (all clips) / one emotion / one clip")
MODES = [("raw", 0), ("center", 0.25), ("center", 0.5), ("center", 0.75), ("norm", 0),
         ("calm", 0.5), ("calm", 0.75)]
if len(sys.argv) > 2:  # e.g. calm:0.5 to run one row
    MODES = [(a.split(":")[0], float(a.split(":")[1]) if ":" in a else 0) for a in sys.argv[2:]]
for mode, alpha in MODES:
    name = f"{mode} {alpha}" if mode in ("center", "calm", "enrol") else mode
    for label, mask in ex.held_out():
        a = run(mode, alpha, mask)
        extra = f"   (neutral clips unscored: {a[3]:5.1f})" if len(a) > 3 else ""
        print(f"{name:<12} {label:<13} {a[0]:5.1f} / {a[1]:5.1f} / {a[2]:5.1f}{extra}", flush=True)
