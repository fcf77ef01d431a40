#!/usr/bin/env python3
"""The parity fixture against CTranslate2's own Whisper encoder: one RAVDESS clip padded to
30 s (as Whisper pads), its log-mel as whisper_probe.py computes it (3000 frames), through
CTranslate2's `Whisper.encode` on the CPU; writes tests/fixtures/encoder/ct2_final_0.npy:
row 0 the mean over all 1500 output frames, rows 1-150 the first 150 frames (the speech).

    python3 scripts/make_ct2_fixture.py CT2_DIR ../shared/data
    python3 scripts/convert_whisper.py --model-bin CT2_DIR/model.bin --blocks 6 --out /tmp/wb6
    EMOSCOPE_WHISPER_FULL=/tmp/wb6/encoder.safetensors cargo test --release --test encoder final

CT2_DIR holds model.bin with part 1's config.json, tokenizer.json and vocabulary.txt (see
whisper_probe.py). Needs `pip install ctranslate2 librosa numpy`.
"""
import os
import sys

import ctranslate2
import librosa
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools"))
from whisper_probe import WhisperEncoder  # noqa: E402  (its log-mel only)

CLIP = "ravdess/Actor_01/03-01-05-02-01-01-01.flac"


def main():
    model_dir, data = sys.argv[1], sys.argv[2]
    y, sr = librosa.load(os.path.join(data, CLIP), sr=None)
    assert sr == 16000
    y = np.pad(y, (0, 30 * 16000 - len(y)))
    enc = object.__new__(WhisperEncoder)
    enc.mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    enc.window = np.hanning(401)[:-1].astype(np.float32)
    mel = enc.log_mel(y)
    assert mel.shape == (80, 3000), mel.shape
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32")
    out = np.array(model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    assert out.shape == (1500, 512), out.shape
    fixture = np.concatenate([out.mean(0, keepdims=True), out[:150]]).astype(np.float32)
    path = os.path.join(HERE, "..", "tests", "fixtures", "encoder", "ct2_final_0.npy")
    np.save(path, fixture)
    print(f"wrote {path}: CTranslate2 {ctranslate2.__version__}, {CLIP} padded to 30 s")


if __name__ == "__main__":
    main()
