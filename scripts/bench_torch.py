"""The same networks as emoscope's, trained in PyTorch on the CPU: seconds per training
epoch, to set beside `emoscope train` (docs/performance.md; scripts/bench_training.sh runs both
side by side). Layers as in src/model/arch.rs:

- paper1_cnn: conv 10x3, 3x3, 3x3 with 32 kernels, LeakyReLU 0.01, 2x2 average pooling,
  dropout 0.5, one dense layer to 8; Adam lr 5e-5 with an L2 penalty of 1e-4 on the
  weights; 40 x 160 MFCC images.
- emocnn: four conv3x3 (no bias)-BatchNorm-ReLU-average-pool blocks (24, 48, 96, 96
  channels; pools 2x2, 2x2, 2x2, 2x1), mean over frequency, attention pooling (96 -> 64
  tanh -> 1, softmax over time) and max pooling over time, dropout 0.3, dense to 8;
  AdamW lr 2e-3, weight decay 0.05, mixup; 64 x 188 log-mel images.
- fser (paper 2): four conv3x3 blocks (32, 64, 128, 128 channels, ReLU, 2x2 max pooling,
  dropout 0.25), dense 256 and 64 (ReLU, dropout 0.5) to 8; Adam lr 3e-4, batch 64 (its
  recipe's); 64 x 94 log-mel images.
- paper1_lstm: two LSTM layers of 1024 (dropout 0.5 between) over the 160 frames of a
  40 x 160 MFCC image, the last state through dense 128 (ReLU, dropout 0.5) to 8; Adam lr
  5e-4.

Batch 32 (FSER 64). The inputs are random: this measures the network's training compute;
emoscope's epoch also builds each batch from its feature pack (augmentation included),
which is in its figure.

Usage: python3 scripts/bench_torch.py [--arch paper1_cnn|emocnn|fser|paper1_lstm] [--clips N] [--epochs E]
       [--threads 1,2] [--device cpu|cuda]
Prints one line per thread count: "<arch> torch <threads> thread(s): <median> s/epoch (epochs: ...)".
"""

import argparse
import statistics
import time

import torch
from torch import nn


class Paper1Cnn(nn.Module):
    shape = (40, 160)

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


class EmoCnn(nn.Module):
    shape = (64, 188)

    def __init__(self, width=24):
        super().__init__()
        c = [1, width, width * 2, width * 4, width * 4]
        pools = [(2, 2), (2, 2), (2, 2), (2, 1)]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c[i], c[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(c[i + 1]),
                nn.ReLU(),
                nn.AvgPool2d(pools[i], pools[i]),
            )
            for i in range(4)
        )
        d = c[4]
        self.att_hidden = nn.Linear(d, 64)
        self.att_score = nn.Linear(64, 1)
        self.head = nn.Linear(2 * d, 8)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        h = x.mean(2).transpose(1, 2)  # (b, t, c)
        w = torch.softmax(self.att_score(torch.tanh(self.att_hidden(h))), dim=1)
        att = (h * w).sum(1)
        mx = h.max(1).values
        return self.head(self.drop(torch.cat([att, mx], -1)))


class Fser(nn.Module):
    shape = (64, 94)

    def __init__(self):
        super().__init__()
        ch = [1, 32, 64, 128, 128]
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, padding=1) for i in range(4))
        self.fcs = nn.ModuleList([nn.Linear(128 * 4 * 5, 256), nn.Linear(256, 64), nn.Linear(64, 8)])
        # Keras's defaults, as the paper and emoscope: Glorot-uniform weights, zero biases.
        for m in list(self.convs) + list(self.fcs):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        for c in self.convs:
            x = nn.functional.dropout(nn.functional.max_pool2d(torch.relu(c(x)), 2), 0.25, self.training)
        x = x.flatten(1)
        for i, f in enumerate(self.fcs):
            x = f(x)
            if i < 2:
                x = nn.functional.dropout(torch.relu(x), 0.5, self.training)
        return x


class Paper1Lstm(nn.Module):
    shape = (40, 160)

    def __init__(self, hidden=1024):
        super().__init__()
        self.l1 = nn.LSTM(40, hidden, batch_first=True)
        self.l2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.fc1 = nn.Linear(hidden, 128)
        self.fc2 = nn.Linear(128, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = x.squeeze(1).transpose(1, 2)  # (b, frames, rows)
        h, _ = self.l1(x)
        h, _ = self.l2(self.drop(h))
        z = torch.relu(self.fc1(h[:, -1]))
        return self.fc2(self.drop(z))


def epoch_seconds(arch, threads, n, epochs, device="cpu"):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = {"paper1_cnn": Paper1Cnn, "emocnn": EmoCnn, "fser": Fser, "paper1_lstm": Paper1Lstm}[arch]().to(device)
    batch = 64 if arch == "fser" else 32
    rows, frames = net.shape
    x = torch.randn(n, 1, rows, frames, device=device)
    y = torch.randint(0, 8, (n,), device=device)
    if arch == "paper1_cnn":
        opt = torch.optim.Adam(net.parameters(), lr=5e-5)
        weights = [p for p in net.parameters() if p.dim() > 1]
    elif arch == "paper1_lstm":
        opt = torch.optim.Adam(net.parameters(), lr=5e-4)
        weights = []
    elif arch == "fser":
        opt = torch.optim.Adam(net.parameters(), lr=3e-4)
        weights = []
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.05)
        weights = []
    net.train()
    times = []
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            xb, yb = x[idx], nn.functional.one_hot(y[idx], 8).float()
            if arch == "emocnn":  # mixup, as emoscope's recipe
                lam = 0.8
                p = torch.randperm(len(idx), device=device)
                xb, yb = lam * xb + (1 - lam) * xb[p], lam * yb + (1 - lam) * yb[p]
            loss = -(torch.log_softmax(net(xb), -1) * yb).sum(-1).mean()
            if weights:
                loss = loss + 1e-4 * sum((w * w).sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="paper1_cnn", choices=["paper1_cnn", "emocnn", "fser", "paper1_lstm"])
    ap.add_argument("--clips", type=int, default=1200)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the same network on the GPU")
    a = ap.parse_args()
    print(f"# torch {torch.__version__}, {a.arch}, {a.clips} random inputs, batch {64 if a.arch == 'fser' else 32}, {a.device}")
    for threads in [int(t) for t in a.threads.split(",")]:
        t = epoch_seconds(a.arch, threads, a.clips, a.epochs, a.device)
        print(
            f"{a.arch} torch {threads} thread(s): {statistics.median(t):.2f} s/epoch"
            f" (epochs: {', '.join(f'{x:.2f}' for x in t)})"
        )


if __name__ == "__main__":
    main()
