#!/usr/bin/env python3
"""Generates the openSMILE reference for tests/prosody.rs: eGeMAPSv02 low-level descriptors
(10 ms frames) of a few real clips from each corpus.

Run once (needs `pip install opensmile`); the output is committed and the tests need no
Python, only the corpora beside the checkout:

    python3 scripts/make_opensmile_fixtures.py ../shared/data

Writes tests/fixtures/opensmile/llds.json: per clip its path under the data folder and, per
frame, F0 in semitones from 27.5 Hz (0 = unvoiced, as openSMILE writes it), loudness, HNR,
local jitter and shimmer, F1-F3.
"""
import json
import os
import sys

import opensmile

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "opensmile", "llds.json")
CLIPS = [
    "ravdess/Actor_01/03-01-01-01-01-01-01.flac",
    "ravdess/Actor_01/03-01-05-02-01-01-01.flac",
    "ravdess/Actor_01/03-01-04-01-02-01-01.flac",
    "ravdess/Actor_02/03-01-03-02-01-02-02.flac",
    "ravdess/Actor_02/03-01-06-01-02-01-02.flac",
    "emovo/f1/gio-f1-b1.flac",
    "emovo/m1/rab-m1-b1.flac",
    "nemo/EB0/EB0_neutral_13.ogg",
    "nemo/KS0/KS0_anger_1.ogg",
]
COLUMNS = {
    "f0_semitones": "F0semitoneFrom27.5Hz_sma3nz",
    "loudness": "Loudness_sma3",
    "hnr_db": "HNRdBACF_sma3nz",
    "jitter_local": "jitterLocal_sma3nz",
    "shimmer_local_db": "shimmerLocaldB_sma3nz",
    "f1_hz": "F1frequency_sma3nz",
    "f2_hz": "F2frequency_sma3nz",
    "f3_hz": "F3frequency_sma3nz",
}


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    out = {"opensmile": opensmile.__version__, "feature_set": "eGeMAPSv02", "hop_seconds": 0.01,
           "clips": []}
    for rel in CLIPS:
        path = os.path.join(data, rel)
        if not os.path.exists(path):
            sys.exit(f"{path}: missing; give the data folder as the first argument")
        df = smile.process_file(path)
        clip = {"path": rel}
        for k, col in COLUMNS.items():
            clip[k] = [round(float(v), 5) for v in df[col].values]
        out["clips"].append(clip)
        print(rel, len(df), "frames")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
