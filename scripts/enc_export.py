"""What the research scripts share about a folder written by `emoscope encode --export DIR`
(X.npy: each window's pooled encoder vector, windows.csv: its clip, corpus, speaker, label,
start and speech flag): the labels, the mixed test speakers, each window's enrolment (its
speaker's other clips' neutral speech windows), the logistic regression they all fit and
the clip accuracy they all report (window probabilities averaged per clip over its speech
windows). Imported by profile_tradeoff.py, enrol_variants.py and attention_pooling.py.
"""
import numpy as np
import pandas as pd

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
MIXED = {"ravdess_01", "ravdess_02", "emovo_f1", "emovo_m1", "nemo_EB0", "nemo_KS0"}
CORPORA = ["ravdess", "emovo", "nemo"]


class Export:
    def __init__(self, d):
        self.W = pd.read_csv(f"{d}/windows.csv")
        self.X = np.load(f"{d}/X.npy", mmap_mode="r")
        self.y = self.W.label.map({l: i for i, l in enumerate(LABELS)}).values
        self.spk, self.corpus = self.W.speaker.values, self.W.corpus.values
        self.speech = self.W.speech.values.astype(bool)
        self.clip = self.W.path.astype("category").cat.codes.values

    def block(self, b, dtype=np.float64, std=False):
        """Representation b's mean over time (or its standard deviation), one row a window."""
        at = b * 1024 + (512 if std else 0)
        return np.asarray(self.X[:, at:at + 512], dtype=dtype)

    def enrolment_windows(self):
        """(window, its enrolment's windows) for every window that has an enrolment: its
        speaker's speech windows labelled neutral, its own clip's left out, 2 or more."""
        for s in np.unique(self.spk):
            e = np.where((self.spk == s) & self.speech & (self.y == 0))[0]
            for i in np.where(self.spk == s)[0]:
                others = e[self.clip[e] != self.clip[i]]
                if len(others) >= 2:
                    yield i, others

    def enrolment(self, M):
        """Each window's enrolment reference in M (the mean of its enrolment's windows) and
        whether it has one."""
        ref, has = np.zeros_like(M), np.zeros(len(M), dtype=bool)
        for i, others in self.enrolment_windows():
            ref[i], has[i] = M[others].mean(0), True
        return ref, has

    def held_out(self):
        """(name, test mask): the mixed test speakers, then each corpus left out."""
        return [("mixed", np.isin(self.spk, list(MIXED)))] + [
            (f"LOCO {c}", self.corpus == c) for c in CORPORA]

    def clip_accuracy(self, P, te):
        """Accuracy (%) of the test windows te's probabilities P averaged per clip."""
        full = np.zeros((len(self.W), 8))
        full[te] = P
        df = pd.DataFrame({"clip": self.clip[te], "speech": self.speech[te], "y": self.y[te], "i": te})
        hits = []
        for _, g in df.groupby("clip"):
            idx = g.i.values[g.speech.values] if g.speech.any() else g.i.values
            hits.append(full[idx].mean(0).argmax() == g.y.values[0])
        return 100 * np.mean(hits)


def logistic(A, labels, C=0.01, sample_weight=None):
    """scikit-learn's logistic regression on standardised A (each row weighted by
    sample_weight where given); returns predict(Z) -> (n, 8)."""
    from sklearn.linear_model import LogisticRegression
    m, s = A.mean(0), A.std(0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000).fit((A - m) / s, labels, sample_weight=sample_weight)

    def predict(Z):
        P = np.zeros((len(Z), 8))
        P[:, clf.classes_] = clf.predict_proba((Z - m) / s)
        return P
    return predict
