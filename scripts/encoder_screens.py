"""Leads for the enrolment heads screened on the exported windows (docs/recognition.md,
"Measured in the seventh session"): logistic regressions on blocks 2, 3 and 4's time-means,
one per block, probabilities averaged, every corpus weighing the same, read without an
enrolment and with one (the window's vector minus its speaker's other neutral windows'
mean), on the mixed test speakers and each corpus left out. Every variant changes what
one of the two readings sees:

  reference      the default's inputs
  nap:K          the top K directions of the training speakers' centroids (each the mean
                 of the speaker's per-emotion means) projected out of every vector
  mix:A          with an enrolment, a share A of the reading without one mixed in, per
                 block (arithmetic and geometric means; both printed)
  unit           the deviation from the enrolment at unit length
  unit+log       the same and its length's logarithm
  spread         the deviation divided by the enrolment windows' spread (RMS of their std)

    emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \\
        --data csv=D/nemo/labels.csv --export runs/enc-npy
    python3 scripts/encoder_screens.py runs/enc-npy reference nap:4 mix:0.25 unit+log

Needs numpy, pandas, scikit-learn; a few minutes a variant on two cores.
"""
import sys
import warnings

import numpy as np

from enc_export import Export, logistic

warnings.filterwarnings("ignore")
BLOCKS = [2, 3, 4]


def balanced_weights(corpus):
    """Sample weights giving every corpus of `corpus` the same total."""
    w = np.ones(len(corpus))
    names = np.unique(corpus)
    for c in names:
        m = corpus == c
        w[m] = len(corpus) / (len(names) * m.sum())
    return w


def readings(ex, X, D, has, tr, te, w):
    """The window probabilities of te read by two regressions fitted on tr (each window
    weighted by w): on X (without an enrolment) and on D, the deviation from the
    enrolment, for the windows that have one (`has`; the others keep the first reading)."""
    h = has[tr]
    alone = logistic(X[tr], ex.y[tr], sample_weight=w)(X[te])
    enrolled = logistic(D[tr][h], ex.y[tr][h], sample_weight=w[h])(D[te])
    return alone, np.where(has[te][:, None], enrolled, alone)


class Screens:
    def __init__(self, d):
        self.ex = ex = Export(d)
        self.F = {b: ex.block(b) for b in BLOCKS}
        self.E = {b: ex.enrolment(self.F[b]) for b in BLOCKS}
        self.spreads = {}

    def speaker_directions(self, X, tr, k):
        """The top k directions of the training speakers' emotion-balanced centroids."""
        ex = self.ex
        tr = tr[ex.speech[tr]]
        cents = []
        for s in np.unique(ex.spk[tr]):
            m = tr[ex.spk[tr] == s]
            cents.append(np.mean([X[m[ex.y[m] == e]].mean(0) for e in np.unique(ex.y[m])], 0))
        C = np.array(cents)
        _, _, vt = np.linalg.svd(C - C.mean(0), full_matrices=False)
        return vt[:k].T

    def spread(self, b):
        """Per window: the RMS over values of its enrolment windows' standard deviation
        (1 without an enrolment); computed once per block."""
        if b not in self.spreads:
            M, out = self.F[b], np.ones(len(self.F[b]))
            for i, others in self.ex.enrolment_windows():
                out[i] = np.sqrt(M[others].var(0).mean())
            self.spreads[b] = out
        return self.spreads[b]

    def run(self, variant):
        """{held-out set: (accuracy without an enrolment, with one[, geometric mix])}."""
        ex = self.ex
        kind, _, arg = variant.partition(":")
        out = {}
        for name, te_mask in ex.held_out():
            tr, te = np.where(~te_mask)[0], np.where(te_mask)[0]
            w = balanced_weights(ex.corpus[tr])
            p_alone, p_with, p_geo = 0, 0, 0
            for b in BLOCKS:
                X = self.F[b]
                ref, has = self.E[b]
                D = X - ref
                proj = lambda Z: Z  # noqa: E731
                if kind == "nap":
                    U = self.speaker_directions(X, tr, int(arg))
                    proj = lambda Z, U=U: Z - (Z @ U) @ U.T  # noqa: E731
                elif kind in ("unit", "unit+log"):
                    n = np.linalg.norm(D, axis=1, keepdims=True) + 1e-6
                    D = D / n if kind == "unit" else np.hstack([D / n, np.log(n)])
                elif kind == "spread":
                    D = D / self.spread(b)[:, None]
                alone, enrolled = readings(ex, proj(X), proj(D), has, tr, te, w)
                a = float(arg) if kind == "mix" else 0.0
                p_alone = p_alone + alone / 3
                p_with = p_with + ((1 - a) * enrolled + a * alone) / 3
                p_geo = p_geo + np.exp((1 - a) * np.log(enrolled + 1e-9) + a * np.log(alone + 1e-9)) / 3
            out[name] = (ex.clip_accuracy(p_alone, te), ex.clip_accuracy(p_with, te),
                         ex.clip_accuracy(p_geo, te))
        return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    s = Screens(sys.argv[1])
    print("accuracy % without an enrolment / with one (mix: / geometric)")
    for v in sys.argv[2:]:
        r = s.run(v)
        loco = [r[n] for n in r if n.startswith("LOCO")]
        cells = " | ".join(f"{n} {a:.1f} / {e:.1f}" + (f" / {g:.1f}" if v.startswith("mix") else "")
                           for n, (a, e, g) in r.items())
        geo = f" / {np.mean([g for _, _, g in loco]):.1f}" if v.startswith("mix") else ""
        print(f"{v:10s} {cells} | never heard, mean {np.mean([a for a, _, _ in loco]):.1f} / "
              f"{np.mean([e for _, e, _ in loco]):.1f}{geo}", flush=True)


if __name__ == "__main__":
    main()
