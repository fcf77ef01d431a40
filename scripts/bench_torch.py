"""Paper 1's CNN in PyTorch on the CPU: seconds per training epoch, to set beside
`emoscope train --arch paper1_cnn` (README, "Speed"). Same layers as src/model/arch.rs
(conv 10x3, 3x3, 3x3 with 32 kernels, LeakyReLU 0.01, 2x2 average pooling, dropout 0.5,
one dense layer to 8), Adam lr 5e-5 with an L2 penalty of 1e-4 on the weights, batch 32,
40 x 160 MFCC images. The inputs are random: this measures the network's training
compute; emoscope's epoch also builds each batch from its feature pack (MFCCs from cached
dB mels), which is included in its figure.

Usage: python3 scripts/bench_torch_paper1.py [N_CLIPS] [EPOCHS]
"""

import sys
import time

import torch
from torch import nn


class Paper1Cnn(nn.Module):
    def __init__(self, rows=40, frames=160):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, (10, 3))
        self.c2 = nn.Conv2d(32, 32, 3)
        self.c3 = nn.Conv2d(32, 32, 3)
        h, w = (rows - 9) // 2, (frames - 2) // 2
        h, w = (h - 2) // 2, (w - 2) // 2
        h, w = (h - 2) // 2, (w - 2) // 2
        self.fc = nn.Linear(32 * h * w, 8)
        self.act = nn.LeakyReLU(0.01)
        self.pool = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        for c in (self.c1, self.c2, self.c3):
            x = self.pool(self.act(c(x)))
        return self.fc(self.drop(x.flatten(1)))


def epoch_seconds(threads, n, epochs):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(n, 1, 40, 160)
    y = torch.randint(0, 8, (n,))
    net = Paper1Cnn()
    opt = torch.optim.Adam(net.parameters(), lr=5e-5)
    weights = [p for p in net.parameters() if p.dim() > 1]
    times = []
    for _ in range(epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for i in range(0, n, 32):
            idx = perm[i : i + 32]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss = loss + 1e-4 * sum((w * w).sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1150
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"torch {torch.__version__}, {n} clips of 40x160, batch 32, best of {epochs} epochs")
    for threads in (1, 2):
        print(f"  {threads} thread(s): {epoch_seconds(threads, n, epochs):.2f} s/epoch")


if __name__ == "__main__":
    main()
