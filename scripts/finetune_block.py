"""Fine-tuning Whisper base's third block (the block whose time-mean carries emotion best)
on the three corpora, on the CPU, measured the way the enrolment heads are: does a block
tuned to emotion read voices of a corpus it never heard better than the frozen one?

For each held-out set (the mixed test speakers, then each corpus left out) it trains, on
every other speaker's windows, block 3 (`layer_2` of weights/whisper_base/encoder.safetensors,
its own float16 weights as the start) under a linear head on its output's mean over the
window's frames; block 2's frames are the fixed input (`encoder_frames DIR 2`). Every
corpus is an equal share of every epoch. Then it reads every window through the tuned
block and fits the screens' logistic regressions on its time-mean, without an enrolment
and with one (minus the speaker's other neutral windows' mean), beside the same
regressions on the frozen block's mean, and prints clip accuracy (%) both ways, the
tuned network's own head (and with `--enrol` its own enrolled head), and the screens'
reference (frozen blocks 2, 3, 4 averaged) with the tuned block as a fourth member.

    emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \\
        --data csv=D/nemo/labels.csv --export runs/enc-npy
    cargo run --release --example encoder_frames -- runs/enc-npy 2
    python3 scripts/finetune_block.py runs/enc-npy [--epochs 5] [--lr 3e-5] [--enrol]

Needs numpy, pandas, scikit-learn, torch; about 3 GB of memory; 5 epochs of 3000 windows
and the readings take about 6 minutes a held-out set on two cores.
"""
import json
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from encoder_screens import BLOCKS, Screens, balanced_weights, readings

warnings.filterwarnings("ignore")
WIDTH, HEADS = 512, 8
WEIGHTS = "weights/whisper_base/encoder.safetensors"


def safetensors(path):
    """{name: float32 array} of a safetensors file (the format is a JSON header and raw
    little-endian data; read here so that the script needs no safetensors package)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    kinds = {"F16": np.float16, "F32": np.float32}
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
    return out


class Block(torch.nn.Module):
    """One pre-norm Whisper encoder block, as src/encoder.rs computes it."""

    def __init__(self, w, k):
        super().__init__()
        p = f"layer_{k}"
        t = lambda n: torch.nn.Parameter(torch.tensor(w[f"{p}/{n}"]))  # noqa: E731
        self.n1g, self.n1b = t("self_attention/layer_norm/gamma"), t("self_attention/layer_norm/beta")
        self.qkv_w, self.qkv_b = t("self_attention/linear_0/weight"), t("self_attention/linear_0/bias")
        self.o_w, self.o_b = t("self_attention/linear_1/weight"), t("self_attention/linear_1/bias")
        self.n2g, self.n2b = t("ffn/layer_norm/gamma"), t("ffn/layer_norm/beta")
        self.f1_w, self.f1_b = t("ffn/linear_0/weight"), t("ffn/linear_0/bias")
        self.f2_w, self.f2_b = t("ffn/linear_1/weight"), t("ffn/linear_1/bias")

    def forward(self, x, keep):
        """x: batch x frames x 512; keep: batch x frames, True where a frame is real."""
        b, t, _ = x.shape
        h = F.linear(F.layer_norm(x, (WIDTH,), self.n1g, self.n1b, 1e-5), self.qkv_w, self.qkv_b)
        q, k, v = (h[..., i * WIDTH:(i + 1) * WIDTH].reshape(b, t, HEADS, -1).transpose(1, 2) for i in range(3))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + F.linear(o.transpose(1, 2).reshape(b, t, WIDTH), self.o_w, self.o_b)
        f = F.linear(F.gelu(F.linear(F.layer_norm(x, (WIDTH,), self.n2g, self.n2b, 1e-5), self.f1_w, self.f1_b)),
                     self.f2_w, self.f2_b)
        return x + f


class Standardise(torch.nn.Module):
    def __init__(self, mu, sd):
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("sd", sd)

    def forward(self, x):
        return (x - self.mu) / self.sd


def mean_over(x, keep):
    k = keep[..., None].float()
    return (x * k).sum(1) / k.sum(1)


def batches(frames, lens, idx, size):
    for s in range(0, len(idx), size):
        i = np.sort(idx[s:s + size])
        n = int(lens[i].max())
        x = torch.from_numpy(np.ascontiguousarray(frames[i, :n]))
        keep = torch.arange(n)[None, :] < torch.from_numpy(lens[i])[:, None]
        yield i, x, keep


def tuned_means(block, frames, lens, idx=None):
    """The tuned block's time-mean of the windows idx (every window by default)."""
    idx = np.arange(len(lens)) if idx is None else idx
    block.eval()
    out = np.zeros((len(lens), WIDTH))
    with torch.no_grad():
        for i, x, keep in batches(frames, lens, idx, 64):
            out[i] = mean_over(block(x, keep), keep).numpy()
    return out[idx]


def standardised_head(A):
    """A linear head on vectors standardised by A's statistics (the frozen block's, on
    the training windows, as the regressions standardise), so that it learns at the
    block's pace rather than the scale's."""
    mu = torch.tensor(A.mean(0), dtype=torch.float32)
    sd = torch.tensor(A.std(0) + 1e-6, dtype=torch.float32)
    return torch.nn.Sequential(Standardise(mu, sd), torch.nn.Linear(WIDTH, 8))


def train(ex, frames, lens, tr, frozen, epochs, lr, enrol, seed=0):
    """The tuned block and its heads (without an enrolment; with one where `enrol`: each
    training window's mean minus its enrolment's, the enrolment read through the block as
    it stood at the epoch's start). `frozen`: the frozen block's mean and its enrolment
    (reference, has one), whose statistics standardise the heads' inputs."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    block = Block(safetensors(WEIGHTS), 2)
    X, (ref, has) = frozen
    head = standardised_head(X[tr])
    head_e = standardised_head((X - ref)[tr][has[tr]])
    params = list(head.parameters()) + (list(head_e.parameters()) if enrol else [])
    opt = torch.optim.AdamW([{"params": block.parameters(), "lr": lr},
                             {"params": params, "lr": 1e-3}], weight_decay=1e-2)
    p = balanced_weights(ex.corpus[tr])
    p = p / p.sum()
    per_epoch = min(len(tr), 3000)
    y = torch.from_numpy(ex.y)
    neutral = tr[ex.speech[tr] & (ex.y[tr] == 0)]
    for e in range(epochs):
        t0, tot, hits = time.time(), 0.0, 0
        if enrol:
            M = np.zeros((len(lens), WIDTH))
            M[neutral] = tuned_means(block, frames, lens, neutral)
            ref, has = ex.enrolment(M)
        block.train()
        pick = rng.choice(tr, size=per_epoch, replace=True, p=p)
        for i, x, keep in batches(frames, lens, pick, 32):
            m = mean_over(block(x, keep), keep)
            logits = head(m)
            loss = F.cross_entropy(logits, y[i])
            if enrol and has[i].any():
                h = torch.from_numpy(has[i])
                d = m[h] - torch.from_numpy(ref[i][has[i]]).float()
                loss = loss + F.cross_entropy(head_e(d), y[i][h])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(i)
            hits += (logits.argmax(1) == y[i]).sum().item()
        print(f"  epoch {e + 1}: loss {tot / per_epoch:.3f}, train acc {100 * hits / per_epoch:.1f} %, "
              f"{time.time() - t0:.0f} s", flush=True)
    return block, head, head_e


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="a folder of emoscope encode --export with frames_b2.npy")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-5, help="the block's learning rate (heads 1e-3)")
    ap.add_argument("--sets", default="mixed,ravdess,emovo,nemo", help="held-out sets to run")
    ap.add_argument("--enrol", action="store_true",
                    help="also train a head on the mean minus the enrolment's, through the block")
    a = ap.parse_args()
    torch.set_num_threads(2)
    screens = Screens(a.dir)  # the frozen blocks' means and enrolments, once for every set
    ex = screens.ex
    frames = np.load(f"{a.dir}/frames_b2.npy", mmap_mode="r")
    lens = np.load(f"{a.dir}/frames_b2_len.npy").astype(np.int64)
    for name, te_mask in ex.held_out():
        if name.replace("LOCO ", "") not in a.sets.split(","):
            continue
        tr, te = np.where(~te_mask)[0], np.where(te_mask)[0]
        print(f"{name}: {len(tr)} training windows, {len(te)} test windows, {a.epochs} epochs, "
              f"lr {a.lr}{', enrolled head' if a.enrol else ''}", flush=True)
        block, head, head_e = train(ex, frames, lens, tr, (screens.F[3], screens.E[3]), a.epochs, a.lr, a.enrol)
        M = tuned_means(block, frames, lens)
        ref, has = ex.enrolment(M)
        with torch.no_grad():
            own = torch.softmax(head(torch.from_numpy(M[te]).float()), 1).numpy()
            own_e = torch.softmax(head_e(torch.from_numpy((M - ref)[te]).float()), 1).numpy()
        own_e = np.where(has[te][:, None], own_e, own)
        w = balanced_weights(ex.corpus[tr])
        three = {b: readings(ex, screens.F[b], screens.F[b] - screens.E[b][0], screens.E[b][1], tr, te, w)
                 for b in BLOCKS}
        tuned, tuned_e = readings(ex, M, M - ref, has, tr, te, w)
        acc = lambda P: f"{ex.clip_accuracy(P, te):.1f}"  # noqa: E731
        mine = f" / {acc(own_e)}" if a.enrol else ""
        print(f"{name}: frozen block 3 {acc(three[3][0])} / {acc(three[3][1])} %, "
              f"tuned {acc(tuned)} / {acc(tuned_e)} %, "
              f"tuned network's own heads {acc(own)}{mine} % (without / with an enrolment)", flush=True)
        # The tuned block as a fourth member beside the reference's three frozen blocks:
        # its own head without an enrolment, the regression on its deviation with one.
        alone3 = sum(r[0] for r in three.values()) / 3
        with3 = sum(r[1] for r in three.values()) / 3
        print(f"{name}: frozen blocks 2-4 {acc(alone3)} / {acc(with3)} %, with the tuned block a "
              f"fourth member {acc((3 * alone3 + own) / 4)} / {acc((3 * with3 + tuned_e) / 4)} %",
              flush=True)


if __name__ == "__main__":
    main()
