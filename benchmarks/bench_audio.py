"""Audio detector speed and memory: bytes in -> Report out through ``deepfakescan.scan``.

Prints a table of medians (never asserts): a 10 s clip, a 10-minute MP3 (with the peak RSS of
a fresh process scanning it), and the same network in PyTorch eager (``torch.inference_mode``,
2 threads, same features, same windows) against ONNX Runtime in this same run, the two taking
turns so that machine load hits both alike.

    python benchmarks/bench_audio.py [--repeats 7]

Input speech: LibriSpeech recordings from ../shared/data when present (concatenated for the
long file), otherwise a synthetic harmonic signal. The PyTorch network is the shipped
``audio.onnx`` rebuilt by ``eager_onnx.py`` (same layers, same weights, PyTorch's kernels) and
checked against ONNX Runtime on the clip's own feature windows before it is timed; without
torch its rows say so.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from common import PEAK_RSS_MB, Eager, eager_rebuild, interleaved, load_average, median, print_table

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "speech" / "librispeech-real"
SR = 16000
THREADS = 2
BARS = {"10 s WAV": "bar <= 100 ms", "10 min MP3 64 kb/s": "bar <= 4000 ms"}
"""The audio card's speed bars for ``scan()`` on ONNX Runtime, by clip."""
BAR_RSS = "bar <= 400 MB"


def speech(seconds: float) -> np.ndarray:
    files = sorted(DATA.glob("*.flac")) if DATA.is_dir() else []
    out, n = [], int(seconds * SR)
    for f in files:
        y, sr = sf.read(f, dtype="float32")
        if sr == SR:
            out.append(y)
        if sum(map(len, out)) >= n:
            break
    if out:
        y = np.concatenate(out)
        return np.tile(y, -(-n // len(y)))[:n]
    t = np.arange(n) / SR
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.7 * t)) / SR
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 12))).astype(np.float32)


def wav_bytes(y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def mp3_bytes(y: np.ndarray, bitrate: int = 64000) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        st = out.add_stream("libmp3lame", rate=SR, layout="mono")
        st.bit_rate = bitrate
        for i in range(0, len(y), 1152):
            chunk = np.ascontiguousarray(y[i : i + 1152][None])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SR, i, Fraction(1, SR)
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return buf.getvalue()


def peak_rss_mb(path: Path) -> float:
    """Scan ``path`` in a fresh interpreter and return its peak resident memory."""
    code = f"import sys, deepfakescan; deepfakescan.scan(sys.argv[1]); print({PEAK_RSS_MB})"
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def feature_batches(long_mp3: bytes) -> list[np.ndarray]:
    """The long clip's voiced windows as the scan batches them (features computed once)."""
    from deepfakescan import features as F
    from deepfakescan.config import Settings
    from deepfakescan.detectors import audio as A
    from deepfakescan.media.audio import load_audio
    from deepfakescan.media.source import MediaSource

    settings = Settings.from_env()
    y = load_audio(MediaSource.from_any(long_mp3, settings), settings).samples
    feats = F.batch_features(w.samples for w in F.clip_windows(y) if w.voiced)
    return [feats[i : i + A.BATCH] for i in range(0, len(feats), A.BATCH)]


def eager_scorer(eager: Eager):
    """A stand-in for ``detectors.audio._score_batch`` running the eager rebuild."""

    def score(model, batch: np.ndarray) -> np.ndarray:
        out = eager.run(batch)
        return np.asarray(out[model.output_names[0]], np.float64).reshape(-1)

    return score


def time_networks(model, batches: list[np.ndarray], eager: Eager, repeats: int) -> list[list]:
    """Rows for the network alone on every window of the long clip, ORT and eager."""
    from deepfakescan.detectors import audio as A

    windows = sum(len(b) for b in batches)
    fns = {"ort": lambda: [A._score_batch(model, b) for b in batches]}
    if eager.run is not None:
        score = eager_scorer(eager)
        fns["torch"] = lambda: [score(model, b) for b in batches]
    times = interleaved(fns, repeats)
    ort = median(times["ort"])
    rows = [[f"network only, {windows} windows, ONNX Runtime", f"{ort:.1f}", ""]]
    if "torch" in times:
        ms = median(times["torch"])
        rows.append(
            [
                f"network only, {windows} windows, PyTorch eager",
                f"{ms:.1f}",
                f"ratio {ms / ort:.2f}x (bar >= 2x); {eager.note}",
            ]
        )
    else:
        rows.append(["network only, PyTorch eager", "-", f"skipped: {eager.note}"])
    return rows


def time_scans(clips: dict[str, tuple[bytes, int]], eager: Eager) -> list[list]:
    """Rows for ``scan()`` of each clip (label -> (bytes, repeats)), ORT and eager, in turns."""
    import deepfakescan
    from deepfakescan.detectors import audio as A

    original = A._score_batch
    backends = {"ort": original}
    if eager.run is not None:
        backends["torch"] = eager_scorer(eager)

    def scan(data: bytes, backend: str) -> None:
        A._score_batch = backends[backend]
        try:
            deepfakescan.scan(data)
        finally:
            A._score_batch = original

    rows = []
    for label, (data, repeats) in clips.items():
        fns = {b: lambda b=b, d=data: scan(d, b) for b in backends}
        times = interleaved(fns, repeats)
        ort = median(times["ort"])
        rows.append([f"{label}, scan()", f"{ort:.1f}", BARS.get(label, "")])
        if "torch" in times:
            ms = median(times["torch"])
            rows.append(
                [f"{label}, scan() with PyTorch eager", f"{ms:.1f}", f"ratio {ms / ort:.2f}x"]
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="warm runs per median (short clip)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import load_model

    clip10 = wav_bytes(speech(10.0))
    long_mp3 = mp3_bytes(speech(600.0))
    model = load_model("audio", Settings.from_env())
    batches = feature_batches(long_mp3)
    eager = eager_rebuild(model.path, model.run, batches[0], THREADS)
    long_repeats = max(3, args.repeats // 2)
    clips = {"10 s WAV": (clip10, args.repeats), "10 min MP3 64 kb/s": (long_mp3, long_repeats)}
    rows = time_scans(clips, eager)
    rows += time_networks(model, batches, eager, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp3"
        path.write_bytes(long_mp3)
        rss = peak_rss_mb(path)
    rows.append(["10 min MP3, peak RSS of a fresh process (MB)", f"{rss:.1f}", BAR_RSS])

    print(f"audio benchmark, {load_average()}, medians")
    print_table(["case", "ms", "note"], rows)


if __name__ == "__main__":
    main()
