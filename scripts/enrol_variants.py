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
import os
import sys
import warnings

import numpy as np

from enc_export import Export, logistic

warnings.filterwarnings("ignore")
d = sys.argv[1]
ex = Export(d)
W, y, spk, speech = ex.W, ex.y, ex.spk, ex.speech
BL = {b: ex.block(b) for b in range(4)}
F = BL[3]
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
    ref, has = ex.enrolment(M)
    return np.where(has[:, None], M - ref, M), has


Fe, has = enrol(F)
Ee, _ = enrol(E)
B2e, _ = enrol(BL[2])
B1e, _ = enrol(BL[1])
S3e, _ = enrol(ex.block(3, std=True))
SETS = {
    "raw enc": (F, None),
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
for name in sys.argv[2:] or list(SETS):
    A, hm = SETS[name]
    res = []
    for _, mask in ex.held_out():
        tr, te = np.where(~mask)[0], np.where(mask)[0]
        if hm is None:
            P = logistic(A[tr], y[tr])(A[te])
        else:  # a window without an enrolment is read by the raw regression
            t2 = tr[hm[tr]]
            P = np.where(hm[te][:, None], logistic(A[t2], y[t2])(A[te]), logistic(F[tr], y[tr])(F[te]))
        res.append(ex.clip_accuracy(P, te))
    print(f"{name:<24} mixed {res[0]:5.1f}  LOCO {res[1]:5.1f} {res[2]:5.1f} {res[3]:5.1f}  mean {np.mean(res[1:]):5.1f}", flush=True)
