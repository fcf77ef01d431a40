#!/usr/bin/env python3
"""Paper 2's FSER fed as the paper feeds it, to see what its 95 % rests on: each clip is ONE
64x64 image (its whole mel-spectrogram resized to 64 columns; emoscope reads 3 s windows of
94 frames instead), and training images are augmented as the paper's Keras generator does
(width and height shift, zoom, horizontal flip, i.e. time reversal; drawn afresh each epoch,
where the paper drew 20 fixed copies a clip). The network and its initialisation are
`bench_torch.Fser` with its dense input resized to the 64x64 image (128 x 4 x 4). Protocol as
`fser_torch.py`: a seeded random 80/20 split of RAVDESS's clips stratified by label
(speaker-DEPENDENT, the paper's), test clips read once, unaugmented.

Usage: python3 scripts/fser_paper_input.py MEL_DIR EPOCHS SEED [noaug] [sgd]
  MEL_DIR: one .npy per RAVDESS clip, from `emoscope features CLIP --kind mel --sr 16000
  --n-fft 512 --hop-length 512 --n-mels 64 --db`.
  noaug: no augmentation; sgd: the paper's SGD at 1e-3 (default Adam 3e-4, as emoscope).
"""
import glob
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import Fser  # noqa: E402

mel_dir, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
aug = "noaug" not in sys.argv[4:]
sgd = "sgd" in sys.argv[4:]
torch.manual_seed(seed)
rng = np.random.default_rng(seed)
torch.set_num_threads(int(os.environ.get("THREADS", "2")))


def image(m):
    """The whole clip as a 64x64 image: resized in time (linear), scaled to zero mean, unit RMS."""
    t = torch.from_numpy(m.astype(np.float32))[None, None]
    t = F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    t = t - t.mean()
    return (t / t.pow(2).mean().sqrt().clamp_min(1e-8)).numpy()


files = sorted(glob.glob(os.path.join(mel_dir, "*.npy")))
labels = np.array([int(os.path.basename(f).split("-")[2]) - 1 for f in files])
images = np.stack([image(np.load(f)) for f in files])[:, None]
test = np.zeros(len(files), bool)
for c in range(8):  # the same draw as fser_torch.py
    idx = np.flatnonzero(labels == c)
    rng.shuffle(idx)
    test[idx[: round(0.2 * len(idx))]] = True
tr, te = np.flatnonzero(~test), np.flatnonzero(test)
X, Y = torch.from_numpy(images[tr]), torch.from_numpy(labels[tr])
XT, YT = torch.from_numpy(images[te]), torch.from_numpy(labels[te])
print(f"{len(tr)} training clips, {len(te)} test clips; augmentation {aug}; "
      f"{'SGD 1e-3' if sgd else 'Adam 3e-4'}", flush=True)


def augment(x):
    """Keras ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1,
    horizontal_flip=True, fill_mode='nearest'), one draw per image."""
    n = len(x)
    zoom = torch.empty(n).uniform_(0.9, 1.1)
    theta = torch.zeros(n, 2, 3)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta[:, 0, 0] = zoom * flip
    theta[:, 1, 1] = zoom
    theta[:, 0, 2] = torch.empty(n).uniform_(-0.2, 0.2)  # 0.1 of the width, in [-1, 1] units
    theta[:, 1, 2] = torch.empty(n).uniform_(-0.2, 0.2)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FserImage(Fser):
    shape = (64, 64)

    def __init__(self):
        super().__init__()
        self.fcs[0] = nn.Linear(128 * 4 * 4, 256)
        nn.init.xavier_uniform_(self.fcs[0].weight)
        nn.init.zeros_(self.fcs[0].bias)


net = FserImage()
opt = torch.optim.SGD(net.parameters(), lr=1e-3) if sgd else torch.optim.Adam(net.parameters(), lr=3e-4)
for ep in range(1, epochs + 1):
    net.train()
    perm = torch.randperm(len(X))
    tot = 0.0
    for b in range(0, len(X), 64):
        i = perm[b:b + 64]
        x = augment(X[i]) if aug else X[i]
        loss = F.cross_entropy(net(x), Y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(i)
    if ep % 5 == 0 or ep == epochs:
        net.eval()
        with torch.no_grad():
            acc = (net(XT).argmax(1) == YT).float().mean().item()
            tra = (net(X).argmax(1) == Y).float().mean().item()
        print(f"epoch {ep:4d}  loss {tot / len(X):.3f}  train {100 * tra:.1f} %  test {100 * acc:.1f} %",
              flush=True)
