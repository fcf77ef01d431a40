#!/usr/bin/env python3
"""The eGeMAPS + SVM baseline (../shared/tools/anchor_egemaps_svm.py, unchanged) on the
corrupted test clips that scripts/corrupt_clips.py writes: trained on the clean corpora
minus the mixed protocol's test speakers, exactly as its mixed row, then tested on the same
speakers' clips under each condition (each speaker z-scored by their own corrupted clips,
as the baseline does). Prints one line per corpus and pooled, the format of the anchor.

usage: python3 scripts/robustness_baseline.py [--data ../shared/data]
                                              [--corrupt /tmp/emoscope-corrupt]
Needs: pip install opensmile scikit-learn. eGeMAPS features are cached as the anchor does
(~/.cache/emoscope-anchor; the corrupted clips as corrupt_<condition>_<corpus>.npy).
"""
import argparse
import importlib.util
import os

import numpy as np


def anchor_module(data):
    path = os.path.join(os.path.dirname(os.path.abspath(data)), "tools", "anchor_egemaps_svm.py")
    if not os.path.exists(path):
        raise SystemExit(f"error: {path} is missing (the baseline lives in ../shared/tools)")
    spec = importlib.util.spec_from_file_location("anchor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--corrupt", default="/tmp/emoscope-corrupt")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/emoscope-anchor"))
    a = ap.parse_args()
    A = anchor_module(a.data)
    os.makedirs(a.cache, exist_ok=True)
    corpora = [A.ravdess(f"{a.data}/ravdess", a.cache),
               A.from_csv("emovo", f"{a.data}/emovo/labels.csv", a.cache),
               A.from_csv("nemo", f"{a.data}/nemo/labels.csv", a.cache)]
    train = []
    for c in corpora:
        keep = ~np.isin(c.spk, list(A.MIXED_TEST[c.name]))
        train.append((c.normalised("speaker")[keep], c.y[keep]))
    conds = sorted(d for d in os.listdir(a.corrupt) if os.path.isdir(os.path.join(a.corrupt, d)))
    for cond in conds:
        ys, ps = [], []
        for name in ("ravdess", "emovo", "nemo"):
            csv_path = os.path.join(a.corrupt, cond, name, "labels.csv")
            if not os.path.exists(csv_path):
                continue
            held = A.from_csv(f"corrupt_{cond}_{name}", csv_path, a.cache)
            p = A.fit_predict(train, held.normalised("speaker"))
            A.line(f"{cond}: {name}", held.y, p)
            ys.append(held.y)
            ps.append(p)
        A.line(f"{cond}: pooled", np.concatenate(ys), np.concatenate(ps))


if __name__ == "__main__":
    main()
