#!/usr/bin/env python3
"""Soak benchmark (not a CI test): the live monitor for a long time on a looped real clip
through the virtual microphone (PulseAudio pipe source behind ALSA `default`, the real cpal
path), headless and as a window under Xvfb at the same time, sampling every 10 s each
process's RSS, open file descriptors and threads. Reports dropped samples (goal 0), RSS at
start, middle and end (goal flat within 5 %), descriptors and threads (flat) and latency
p95 per 10 minutes, as Markdown on stdout and in OUT/soak.md.

    bash scripts/virtual-mic.sh start   # prints exports; eval them, or let this script do it
    python3 scripts/soak.py --headless-seconds 3600 --window-seconds 1800 --out runs/soak

Needs: a release build (cargo build --release), PulseAudio (scripts/virtual-mic.sh), Xvfb,
python3 with soundfile and numpy, the corpora in ../shared/data.
"""
import argparse, json, os, signal, subprocess, sys, threading, time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/emoscope"
CLIPS = [
    "ravdess/Actor_01/03-01-05-01-01-01-01.flac",  # angry
    "ravdess/Actor_02/03-01-03-02-02-02-02.flac",  # happy
    "ravdess/Actor_01/03-01-04-01-02-01-01.flac",  # sad
]


def start_virtual_mic():
    out = subprocess.run(["bash", str(ROOT / "scripts/virtual-mic.sh"), "start"],
                         check=True, capture_output=True, text=True).stdout
    for part in out.replace("export", "").split():
        k, v = part.split("=", 1)
        os.environ[k] = v
    return os.environ["EMOSCOPE_VIRTUAL_MIC"]


def writer(fifo, pcm, stop):
    """The clips and 2 s of silence, looped, at real-time pace in 10 ms blocks."""
    fd = os.open(fifo, os.O_WRONLY)
    t0, i = time.monotonic(), 0
    n = len(pcm)
    while not stop.is_set():
        block = pcm[np.arange(i, i + 160) % n]
        os.write(fd, block.tobytes())
        i += 160
        d = t0 + i / 16000 - time.monotonic()
        if d > 0:
            time.sleep(d)
    os.close(fd)


def proc_stats(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1])
        threads = int(next(l for l in status.splitlines() if l.startswith("Threads")).split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds, threads
    except (FileNotFoundError, StopIteration, ProcessLookupError):
        return None


def sampler(procs, rows, stop, t0, stats_file):
    while not stop.wait(10):
        t = time.monotonic() - t0
        for name, p in procs.items():
            if p.poll() is None and (s := proc_stats(p.pid)):
                extra = {}
                if name == "window" and stats_file.exists():
                    try:
                        extra = json.loads(stats_file.read_text())
                    except json.JSONDecodeError:
                        pass
                rows.append({"t": t, "proc": name, "rss_kib": s[0], "fds": s[1], "threads": s[2], **extra})


def flat(series):
    """start, middle and end of a list, and the largest change from the start in %."""
    if not series:
        return None
    a, m, b = series[0], series[len(series) // 2], series[-1]
    worst = max(abs(x - a) for x in series[len(series) // 10:]) / a * 100 if a else 0
    return a, m, b, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headless-seconds", type=float, default=3600)
    ap.add_argument("--window-seconds", type=float, default=1800)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--out", default=str(ROOT / "runs/soak"))
    ap.add_argument("--display", default=":78")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite OUT/soak.md from the samples and JSON lines of an earlier run")
    a = ap.parse_args()
    out = Path(a.out)
    if a.report_only:
        return report(out, json.loads((out / "samples.json").read_text()), a.headless_seconds, a.window_seconds)
    out.mkdir(parents=True, exist_ok=True)
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release first")
    sil = np.zeros(32000, dtype=np.int16)
    parts = []
    for c in CLIPS:
        x, sr = sf.read(Path(a.data) / c, dtype="float32")
        assert sr == 16000, f"{c}: {sr} Hz, expected 16 kHz"
        parts += [np.round(np.clip(x, -1, 1) * 32767).astype("<i2"), sil]
    pcm = np.concatenate(parts)
    fifo = os.environ.get("EMOSCOPE_VIRTUAL_MIC") or start_virtual_mic()
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(fifo, pcm, stop), daemon=True)
    w.start()
    time.sleep(0.5)
    procs, rows, t0 = {}, [], time.monotonic()
    jsonl = out / "headless.jsonl"
    procs["headless"] = subprocess.Popen(
        [str(BIN), "monitor", "--headless", "--duration", str(a.headless_seconds), "--jsonl", str(jsonl)],
        stderr=open(out / "headless.stderr", "w"), cwd=ROOT)
    stats_file = out / "window_stats.json"
    xvfb = None
    if a.window_seconds > 0:
        xvfb = subprocess.Popen(["Xvfb", a.display, "-screen", "0", "1280x800x24"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        env = dict(os.environ, DISPLAY=a.display, EMOSCOPE_FRAME_STATS=str(stats_file))
        procs["window"] = subprocess.Popen([str(BIN), "monitor"], env=env, cwd=ROOT,
                                           stdout=subprocess.DEVNULL, stderr=open(out / "window.stderr", "w"))
    st = threading.Event()
    s = threading.Thread(target=sampler, args=(procs, rows, st, t0, stats_file), daemon=True)
    s.start()
    last_print = 0
    while procs["headless"].poll() is None:
        el = time.monotonic() - t0
        if "window" in procs and procs["window"].poll() is None and el >= a.window_seconds:
            procs["window"].send_signal(signal.SIGTERM)
        if el - last_print >= 300:
            print(f"soak: {el / 60:.0f} min", file=sys.stderr, flush=True)
            last_print = el
        time.sleep(1)
    if "window" in procs and procs["window"].poll() is None:
        procs["window"].send_signal(signal.SIGTERM)
        procs["window"].wait(10)
    st.set(); s.join()
    stop.set()
    if xvfb:
        xvfb.terminate()
    (out / "samples.json").write_text(json.dumps(rows))

    report(out, rows, a.headless_seconds, a.window_seconds)


def report(out, rows, headless_seconds, window_seconds):
    """Writes OUT/soak.md from the samples and the headless JSON lines."""
    jsonl = out / "headless.jsonl"
    procs = sorted({x["proc"] for x in rows})
    a = argparse.Namespace(headless_seconds=headless_seconds, window_seconds=window_seconds)
    lines = [json.loads(l) for l in jsonl.read_text().splitlines() if l.strip()]
    summary = lines[-1]["summary"]
    wins = lines[:-1]
    md = [f"# Soak: {a.headless_seconds / 60:.0f} min headless, {a.window_seconds / 60:.0f} min window (at once), "
          f"looped RAVDESS clips through the virtual microphone\n",
          "| process | dropped samples | dropped windows | RSS MiB start / middle / end (max change) | RSS after the first 2 min: start / end (max change) | fds start / end | threads start / end |",
          "|---|---|---|---|---|---|---|"]
    for name in procs:
        r = [x for x in rows if x["proc"] == name]
        if not r:
            continue
        rss = flat([x["rss_kib"] / 1024 for x in r])
        warm = flat([x["rss_kib"] / 1024 for x in r if x["t"] >= 120])
        if name == "headless":
            dropped, dw = summary["dropped_samples"], summary["dropped_windows"]
        else:
            dropped, dw = r[-1].get("dropped_samples", "?"), r[-1].get("dropped_windows", "?")
        md.append(f"| {name} | {dropped} | {dw} | {rss[0]:.1f} / {rss[1]:.1f} / {rss[2]:.1f} ({rss[3]:.1f} %) | "
                  f"{warm[0]:.1f} / {warm[2]:.1f} ({warm[3]:.1f} %) | "
                  f"{r[0]['fds']} / {r[-1]['fds']} | {r[0]['threads']} / {r[-1]['threads']} |")
    md += ["", "Latency p95 per 10 minutes (ms): headless from its JSON lines; window from its frame stats "
           "(p95 over its latest 4800 windows) at each 10-minute mark.", "",
           "| minutes | headless windows | headless p95 | window p95 | window frame build p95 |", "|---|---|---|---|---|"]
    span = int(np.ceil(a.headless_seconds / 600))
    for k in range(span):
        lat = [w["latency_ms"] for w in wins if k * 600 <= w["t_start"] < (k + 1) * 600]
        wr = [x for x in rows if x["proc"] == "window" and x["t"] <= (k + 1) * 600 + 5 and "latency_ms_p95" in x]
        wp = f"{wr[-1]['latency_ms_p95']:.1f}" if wr and wr[-1]["t"] > k * 600 else "-"
        wb = f"{wr[-1]['ui_build_ms_p95']:.1f}" if wr and wr[-1]["t"] > k * 600 else "-"
        md.append(f"| {k * 10}-{k * 10 + 10} | {len(lat)} | {np.percentile(lat, 95) if lat else float('nan'):.1f} | {wp} | {wb} |")
    md.append(f"\nHeadless summary: {json.dumps(summary)}")
    text = "\n".join(md) + "\n"
    (out / "soak.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
