"""Audio detector speed and memory: bytes in -> Report out through ``deepfakescan.scan``.

Prints a table of medians (never asserts): a 10 s clip, a 10-minute MP3 (with the peak RSS of
a fresh process scanning it), and the same network in PyTorch eager (``torch.inference_mode``,
2 threads, same features, same windows) against ONNX Runtime in this same run.

    python benchmarks/bench_audio.py [--repeats 7] [--torch-weights RUN/final.pt]

Input speech: LibriSpeech recordings from ../shared/data when present (concatenated for the
long file), otherwise a synthetic harmonic signal. The PyTorch column needs the training
run's weights (``--torch-weights``, default ../cache/deepfakescan-audio/runs/main/final.pt).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from memory import PEAK_RSS_MB

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "speech" / "librispeech-real"
DEFAULT_WEIGHTS = REPO / ".." / "cache" / "deepfakescan-audio" / "runs" / "main" / "final.pt"
SR = 16000


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


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: sessions load, caches fill
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def peak_rss_mb(path: Path) -> float:
    """Scan ``path`` in a fresh interpreter and return its peak resident memory."""
    code = f"import sys, deepfakescan; deepfakescan.scan(sys.argv[1]); print({PEAK_RSS_MB})"
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def torch_backend(weights: Path):
    """A stand-in for the ONNX bundle running the same network in PyTorch eager."""
    import torch

    from deepfakescan.training.nets import AudioResNet

    torch.set_num_threads(2)
    cal = json.loads((weights.parent / "calibration.json").read_text())

    kind = cal["config"].get("features", "mfcc")
    net = AudioResNet(tuple(cal["config"]["channels"]), kind=kind).eval()
    net.load_state_dict(torch.load(weights))

    def score(model, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(batch)).numpy().astype(np.float64)

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--torch-weights", type=Path, default=DEFAULT_WEIGHTS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    import deepfakescan
    from deepfakescan.detectors import audio as A

    clip10 = wav_bytes(speech(10.0))
    long_mp3 = mp3_bytes(speech(600.0))
    rows = []
    ort10 = median_ms(lambda: deepfakescan.scan(clip10), args.repeats)
    ort600 = median_ms(lambda: deepfakescan.scan(long_mp3), max(3, args.repeats // 2))
    rows.append(("10 s WAV, scan()", ort10, "<= 100 ms"))
    rows.append(("10 min MP3 64 kb/s, scan()", ort600, "<= 4000 ms"))

    # network only, same windows: features once, then each backend
    from deepfakescan import features as F
    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import load_model
    from deepfakescan.media.audio import load_audio
    from deepfakescan.media.source import MediaSource

    settings = Settings.from_env()
    model = load_model("audio", settings)
    y = load_audio(MediaSource.from_any(long_mp3, settings), settings).samples
    feats = F.batch_features(w.samples for w in F.clip_windows(y) if w.voiced)
    batches = [feats[i : i + A.BATCH] for i in range(0, len(feats), A.BATCH)]
    ort_net = median_ms(lambda: [A._score_batch(model, b) for b in batches], 3)
    rows.append((f"network only, {len(feats)} windows, ONNX Runtime", ort_net, ""))

    if args.torch_weights.is_file():
        score = torch_backend(args.torch_weights)
        eager_net = median_ms(lambda: [score(None, b) for b in batches], 3)
        rows.append(
            (
                f"network only, {len(feats)} windows, PyTorch eager",
                eager_net,
                f"ratio {eager_net / ort_net:.2f}x",
            )
        )
        original = A._score_batch
        A._score_batch = score
        try:
            eager10 = median_ms(lambda: deepfakescan.scan(clip10), args.repeats)
            eager600 = median_ms(lambda: deepfakescan.scan(long_mp3), max(3, args.repeats // 2))
        finally:
            A._score_batch = original
        rows.append(
            ("10 s WAV, scan() with PyTorch eager", eager10, f"ratio {eager10 / ort10:.2f}x")
        )
        rows.append(
            ("10 min MP3, scan() with PyTorch eager", eager600, f"ratio {eager600 / ort600:.2f}x")
        )
    else:
        rows.append(("PyTorch eager", float("nan"), f"skipped: no {args.torch_weights}"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp3"
        path.write_bytes(long_mp3)
        rss = peak_rss_mb(path)

    print(f"audio benchmark, {os.cpu_count()} CPUs visible, medians")
    print(f"{'case':<48} {'ms':>10}  note")
    for name, ms, note in rows:
        print(f"{name:<48} {ms:>10.1f}  {note}")
    print(f"{'10 min MP3, peak RSS of a fresh process (MB)':<48} {rss:>10.1f}  <= 400 MB")


if __name__ == "__main__":
    main()
