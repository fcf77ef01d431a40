#!/usr/bin/env python3
"""Paper 2's FSER in PyTorch on emoscope's own features, to tell a weak implementation from
a weak recipe or protocol: the same network (four 3x3 conv blocks of 32/64/128/128 channels,
ReLU, 2x2 max-pool, dropout 0.25; dense 256 and 64 with dropout 0.5; Glorot-uniform weights,
zero biases), the same recipe (Adam 3e-4, batch 64), the same input (64-band dB mel, n_fft
512, hop 512 at 16 kHz, 3 s windows of 94 frames every 16 frames, each band's mean removed
and the window scaled to unit RMS), on a seeded random 80/20 split of RAVDESS's clips
stratified by label (speaker-DEPENDENT, as the paper's protocol). A clip is read as the mean
of its windows' probabilities. Prints test accuracy by epoch.

With a fourth argument `crop` it draws as emoscope's trainer draws instead: one random 3 s
crop of each training clip an epoch (each normalised alone), so the two can be compared
step for step.

Usage: python3 scripts/fser_torch.py MEL_DIR [EPOCHS] [SEED] [crop]
  MEL_DIR: one .npy per RAVDESS clip, named as the clip, from
  `emoscope features CLIP --kind mel --sr 16000 --n-fft 512 --hop-length 512 --n-mels 64 --db`.
"""
import glob
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import Fser  # noqa: E402  (the same network the speed bench times)

mel_dir = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
crop = len(sys.argv) > 4 and sys.argv[4] == "crop"
torch.manual_seed(seed)
rng = np.random.default_rng(seed)
torch.set_num_threads(2)
WIN, HOP = 94, 16


def padded(m):
    if m.shape[1] < WIN:
        m = np.pad(m, ((0, 0), (0, WIN - m.shape[1])), mode="constant", constant_values=m.min())
    return m


def window(m, s):
    w = m[:, s:s + WIN] - m[:, s:s + WIN].mean(axis=1, keepdims=True)
    return (w / max(np.sqrt((w ** 2).mean()), 1e-8)).astype(np.float32)


def windows(m):
    m = padded(m)
    return [window(m, s) for s in range(0, m.shape[1] - WIN + 1, HOP)]


files = sorted(glob.glob(os.path.join(mel_dir, "*.npy")))
clips, labels, mels = [], [], []
for f in files:
    emo = int(os.path.basename(f).split("-")[2]) - 1
    mels.append(padded(np.load(f)))
    clips.append(windows(mels[-1]))
    labels.append(emo)
labels = np.array(labels)
test = np.zeros(len(files), bool)
for c in range(8):
    idx = np.flatnonzero(labels == c)
    rng.shuffle(idx)
    test[idx[: round(0.2 * len(idx))]] = True
train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
xw = np.stack([w for i in train_idx for w in clips[i]])[:, None]
yw = np.array([labels[i] for i in train_idx for _ in clips[i]])
draw = "one random crop of each an epoch" if crop else f"{len(xw)} windows"
print(f"{len(train_idx)} training clips ({draw}), {len(test_idx)} test clips", flush=True)


net = Fser()
opt = torch.optim.Adam(net.parameters(), lr=3e-4)
X, Y = torch.from_numpy(xw), torch.from_numpy(yw)
if crop:
    Y = torch.from_numpy(labels[train_idx])
for ep in range(1, epochs + 1):
    net.train()
    if crop:  # one random crop of each training clip this epoch
        X = torch.from_numpy(np.stack([
            window(mels[i], rng.integers(0, mels[i].shape[1] - WIN + 1)) for i in train_idx])[:, None])
    perm = torch.randperm(len(X))
    tot = 0.0
    for b in range(0, len(X), 64):
        i = perm[b:b + 64]
        loss = nn.functional.cross_entropy(net(X[i]), Y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(i)
    net.eval()
    right = 0
    with torch.no_grad():
        for c in test_idx:
            p = torch.softmax(net(torch.from_numpy(np.stack(clips[c])[:, None])), 1).mean(0)
            right += int(p.argmax()) == labels[c]
    print(f"epoch {ep:3d}  loss {tot / len(X):.3f}  test {100 * right / len(test_idx):.1f} %", flush=True)
