#!/usr/bin/env python3
"""Heads on block 3 of Whisper base (whisper_probe.py's layer 3) trained in PyTorch, to try
what the Rust heads do not: attention pooling over the encoder's frames against the
time-mean, and training on every non-test speaker (no validation speakers held back).
Each window is read raw or minus its speaker's enrolment (the mean of their other clips'
neutral speech windows, as `eval --profile enrol`); window probabilities averaged per clip
over speech windows; mixed test speakers and leave-one-corpus-out, as
scripts/profile_tradeoff.py. Every variant trains alike: AdamW 1e-3, weight decay 1e-2,
batch 128, 20 epochs, the last kept, no perturbed copies.

    emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \\
        --data csv=D/nemo/labels.csv --export runs/enc-npy
    cargo run --release --example encoder_frames -- runs/enc-npy   # only for attn variants
    python3 scripts/attention_pooling.py runs/enc-npy mean:enrol:256 attn:enrol:256 \\
        mean:enrol:256:noval mean:enrol:256:seed1

A variant is POOL:READING:HIDDEN[:noval][:seedN]: POOL mean (the time-mean) or attn (4
attention heads over the frames); READING enrol or raw; HIDDEN 0 (linear) or the width of
one hidden ReLU layer (dropout 0.2 before, 0.3 after, as the default's enrolled part);
noval: the validation speakers emoscope's trainer would hold back (the last one or two of
each corpus's speakers, sorted) are left out of training, as the Rust heads train.
Needs numpy, pandas, torch.
"""
import sys

import numpy as np
import torch
import torch.nn as nn

from enc_export import Export

torch.set_num_threads(2)
d = sys.argv[1]
ex = Export(d)
y, spk, corpus = ex.y, ex.spk, ex.corpus
N = len(ex.W)
F = ex.block(3, dtype=np.float32)
if any(a.startswith("attn") for a in sys.argv[2:]):
    lens = np.load(f"{d}/frames_len.npy").astype(int)
    FR = np.load(f"{d}/frames.npy", mmap_mode="r")
    chk = np.abs(np.asarray(FR[:50]).sum(1) / lens[:50, None] - F[:50]).max()
    print("frames' mean against the exported mean, largest difference", chk, flush=True)
else:
    lens = np.full(N, 150)
ENR, has = ex.enrolment(F)
MASK = (np.arange(150)[None, :] < lens[:, None])


class Head(nn.Module):
    def __init__(self, pool, hidden):
        super().__init__()
        self.pool = pool
        if pool == "attn":
            self.att = nn.Sequential(nn.Linear(512, 64), nn.Tanh(), nn.Linear(64, 4))
        dim = 512 * (4 if pool == "attn" else 1)
        self.out = (nn.Sequential(nn.Dropout(0.2), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 8))
                    if hidden else nn.Linear(dim, 8))
    def forward(self, h, m):  # h (B,T,512) standardised, m (B,T) bool
        if self.pool == "mean":
            p = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        else:
            a = self.att(h).masked_fill(~m[..., None], -1e9).softmax(1)  # B,T,4
            p = torch.einsum("bth,btd->bhd", a, h).flatten(1)
        return self.out(p)

def val_speakers(te_mask):
    out = []
    for c in np.unique(corpus):
        sp = sorted(set(spk[(corpus == c) & ~te_mask]))
        k = 1 if len(sp) <= 8 else 2
        if len(sp) > k: out += sp[-k:]
    return out

def run(pool, enrol, hidden, te_mask, epochs=20, seed=0, noval=False):
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    keep = ~np.isin(spk, val_speakers(te_mask)) if noval else np.ones(N, bool)
    tr = np.where(~te_mask & keep & (has | (not enrol)))[0]
    te = np.where(te_mask)[0]
    ref = ENR if enrol else np.zeros_like(F)
    mu = (F[tr] - ref[tr]).mean(0); sd = (F[tr] - ref[tr]).std(0) + 1e-5
    def batch(idx):
        if pool == "mean":  # the mean of standardised frames is the standardised mean
            h = (torch.from_numpy(F[idx] - ref[idx] - mu) / torch.from_numpy(sd))[:, None]
            return h, torch.ones(len(idx), 1, dtype=torch.bool)
        h = (torch.from_numpy(np.asarray(FR[idx])) - torch.from_numpy(ref[idx])[:, None] - torch.from_numpy(mu)) / torch.from_numpy(sd)
        return h, torch.from_numpy(MASK[idx])
    model = Head(pool, hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    for ep in range(epochs):
        model.train()
        for b in np.array_split(rng.permutation(tr), max(1, len(tr) // 128)):
            h, m = batch(b)
            loss = nn.functional.cross_entropy(model(h, m), torch.from_numpy(y[b]))
            opt.zero_grad(); loss.backward(); opt.step()
    model.eval(); P = np.zeros((N, 8))
    with torch.no_grad():
        for b in np.array_split(te, max(1, len(te) // 256)):
            h, m = batch(b); P[b] = model(h, m).softmax(1).numpy()
    return ex.clip_accuracy(P[te], te)

for arg in sys.argv[2:]:
    pool, enrol, hidden, *opt = arg.split(":"); enrol = enrol == "enrol"; hidden = int(hidden)
    seed = int(next((o[4:] for o in opt if o.startswith("seed")), 0))
    res = [run(pool, enrol, hidden, m, seed=seed, noval="noval" in opt) for _, m in ex.held_out()]
    print(f"{arg:<20} mixed {res[0]:5.1f}  LOCO {res[1]:5.1f} {res[2]:5.1f} {res[3]:5.1f}  mean {np.mean(res[1:]):5.1f}", flush=True)
