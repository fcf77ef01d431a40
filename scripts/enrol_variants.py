#!/usr/bin/env python3
"""What else the enrolment could read, beside block 3's time-mean minus the speaker's
neutral enrolment (the default's enrolled part): the same logistic regressions as
scripts/profile_tradeoff.py's enrol:1 row (C 0.01, window probabilities averaged per clip
over speech windows; mixed test speakers and leave-one-corpus-out), each variant's features
taken relative to the enrolment the same way (the speaker's other clips' neutral speech
windows; the clip's own left out):

  raw enc / enrol enc          block 3's mean as it is / minus the enrolment
  enrol egemaps only           openSMILE eGeMAPS v02 functionals of the clip (88) minus the
                               enrolment clips' mean
  enrol enc+egemaps            both side by side; `... raw`: eGeMAPS as it is
  enrol enc b2+b3, b1+b2+b3    blocks 2 (and 1) beside block 3, each minus its enrolment
  enrol enc mean+std           block 3's mean and its standard deviation over time
  enrol enc + raw enc          block 3's mean minus the enrolment, and as it is

    emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \\
        --data csv=D/nemo/labels.csv --export runs/enc-npy
    python3 scripts/enrol_variants.py runs/enc-npy ["enrol enc" "enrol enc+egemaps" ...]

Run it from the folder `encode` ran in (windows.csv's paths are relative to it). eGeMAPS is
computed once per clip (about 10 min on one core) and kept in DIR/egemaps.npz. Needs numpy, pandas, scikit-learn, opensmile.
"""
import sys, os, warnings, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
warnings.filterwarnings("ignore")
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
MIXED = {"ravdess_01", "ravdess_02", "emovo_f1", "emovo_m1", "nemo_EB0", "nemo_KS0"}
d = sys.argv[1]
W = pd.read_csv(f"{d}/windows.csv")
X = np.load(f"{d}/X.npy", mmap_mode="r")
BL = {b: np.asarray(X[:, b * 1024:b * 1024 + 512], dtype=np.float64) for b in range(4)}
F = BL[3]
y = W.label.map({l: i for i, l in enumerate(LABELS)}).values
spk, corpus, speech = W.speaker.values, W.corpus.values, W.speech.values.astype(bool)
clip = W.path.astype("category").cat.codes.values
if not os.path.exists(f"{d}/egemaps.npz"):
    import opensmile
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    paths = sorted(set(W.path.values))
    print(f"eGeMAPS of {len(paths)} clips (once; kept in {d}/egemaps.npz)", flush=True)
    np.savez(f"{d}/egemaps.npz", X=np.stack([smile.process_file(p).values[0] for p in paths]),
             paths=np.array([os.path.realpath(p) for p in paths]))
eg = np.load(f"{d}/egemaps.npz")
idx = {p: i for i, p in enumerate(eg["paths"])}
E = eg["X"][[idx[os.path.realpath(p)] for p in W.path.values]].astype(np.float64)

def enrol(M):
    out, has = M.copy(), np.zeros(len(M), bool)
    for s in np.unique(spk):
        e = np.where((spk == s) & speech & (y == 0))[0]
        for i in np.where(spk == s)[0]:
            o = e[clip[e] != clip[i]]
            if len(o) >= 2:
                out[i] = M[i] - M[o].mean(0); has[i] = True
    return out, has

def fit(A, labels, C):
    m, s = A.mean(0), A.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000).fit((A - m) / s, labels)
    def predict(Z):
        P = np.zeros((len(Z), 8)); P[:, clf.classes_] = clf.predict_proba((Z - m) / s); return P
    return predict

def acc_of(P, te):
    full = np.zeros((len(W), 8)); full[te] = P
    df = pd.DataFrame({"clip": clip[te], "speech": speech[te], "y": y[te], "i": te})
    hits = []
    for _, g in df.groupby("clip"):
        ii = g.i.values[g.speech.values] if g.speech.any() else g.i.values
        hits.append(full[ii].mean(0).argmax() == g.y.values[0])
    return 100 * np.mean(hits)

Fe, has = enrol(F)
Ee, _ = enrol(E)
B2e, _ = enrol(BL[2])
B1e, _ = enrol(BL[1])
S3 = np.asarray(X[:, 3 * 1024 + 512:4 * 1024], dtype=np.float64)
S3e, _ = enrol(S3)
SETS = {
    "raw enc": (np.hstack([F]), None),
    "raw enc+egemaps": (np.hstack([F, E]), None),
    "enrol enc": (Fe, has),
    "enrol egemaps only": (Ee, has),
    "enrol enc+egemaps": (np.hstack([Fe, Ee]), has),
    "enrol enc+egemaps raw": (np.hstack([Fe, E]), has),
    "enrol enc b2+b3": (np.hstack([Fe, B2e]), has),
    "enrol enc b1+b2+b3": (np.hstack([Fe, B2e, B1e]), has),
    "enrol enc mean+std": (np.hstack([Fe, S3e]), has),
    "enrol enc + raw enc": (np.hstack([Fe, F]), has),
}
pick = sys.argv[2:] or list(SETS)
C = 0.01
for name in pick:
    A, hm = SETS[name]
    res = []
    for label, mask in [("mixed", np.isin(spk, list(MIXED)))] + [(c, corpus == c) for c in ["ravdess", "emovo", "nemo"]]:
        tr, te = np.where(~mask)[0], np.where(mask)[0]
        if hm is None:
            P = fit(A[tr], y[tr], C)(A[te])
        else:
            raw = fit(F[tr], y[tr], C)
            t2 = tr[hm[tr]]
            P = np.where(hm[te][:, None], fit(A[t2], y[t2], C)(A[te]), raw(F[te]))
        res.append(acc_of(P, te))
    print(f"{name:<24} mixed {res[0]:5.1f}  LOCO {res[1]:5.1f} {res[2]:5.1f} {res[3]:5.1f}  mean {np.mean(res[1:]):5.1f}", flush=True)
