#!/usr/bin/env python3
"""One training step (forward and backward of the states' sum) of PyTorch's nn.LSTM, the
layer of paper 1 (hidden 1024) on a batch of 32 sequences of 160 frames, input 40 (layer 1)
and 1024 (layer 2): the step `cargo bench --bench lstm` times for emoscope's layer.
Run by scripts/bench_lstm.sh with the same thread count. Needs torch (CPU)."""
import statistics
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
for inp in (40, 1024):
    lstm = torch.nn.LSTM(inp, 1024, batch_first=True)
    x = torch.randn(32, 160, inp, requires_grad=True)
    runs = []
    for i in range(5):
        t0 = time.perf_counter()
        h, _ = lstm(x)
        h.sum().backward()
        runs.append(time.perf_counter() - t0)
    runs = runs[1:]  # the first run warms up
    print(f"torch lstm input {inp}: train step {statistics.median(runs):.2f} s "
          f"(runs {', '.join(f'{r:.2f}' for r in runs)})", flush=True)
