"""Peak memory of one scan in a fresh process, with every model loaded, for the largest inputs
the limits let in: does a scan stay within its budget whatever the input?

Each input is scanned by a new interpreter that first opens every model session (as a server
does at start), notes its resident memory, scans the file once and prints its own high-water
mark (``VmHWM``, ``common.PEAK_RSS_MB``). The bars (issue #23): <= 500 MB for any image within
the limits, <= 600 MB for any video. Inputs are made here, under a temporary directory:

    png-8k      7999 x 7999 RGB PNG of one colour (~0.2 MB on disk, 64 MP decoded: bomb-like)
    png-rgba-8k 7999 x 7999 RGBA PNG of one colour (64 MP; alpha is composited on white)
    webp-4k     4000 x 4000 noisy WebP (16 MP: WebP's limit is a quarter of the pixel limit)
    jpeg-8k     7999 x 7999 noisy JPEG (64 MP)
    jpeg-50mp   8160 x 6120 noisy JPEG (50 MP, a large phone photo; analysed at 12.5 MP)
    jpeg-24mp   6000 x 4000 noisy JPEG (24 MP: the largest analysed at native pixels)
    jpeg-4k     4000 x 3000 noisy JPEG (12 MP, a phone photo)
    video-1080  1920 x 1080 H.264, 10 s
    video-4k    3840 x 2160 H.264, 4 s
    video-8k    7680 x 4320 H.264, 2 s (33 MP frames: decoded reduced by 2, DECODE_PIXELS)

    python benchmarks/bench_memory.py                    # all of them
    python benchmarks/bench_memory.py --only png-8k video-1080
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import PEAK_RSS_MB, load_average, print_table

ROOT = Path(__file__).resolve().parents[1]
IMAGE_BAR_MB, VIDEO_BAR_MB = 500, 600

CHILD = f"""
import sys, time
import deepfakescan
from deepfakescan.config import Settings
from deepfakescan.jobs.service import warm_models
settings = Settings.from_env()
warm_models(settings)
loaded = {PEAK_RSS_MB}
t0 = time.perf_counter()
report = deepfakescan.scan(sys.argv[1], settings=settings)
print(loaded, {PEAK_RSS_MB}, time.perf_counter() - t0, report.verdict)
"""


def _image(path: Path, size: tuple[int, int], fmt: str, noisy: bool, mode: str = "RGB") -> None:
    import numpy as np
    from PIL import Image

    if noisy:
        rng = np.random.default_rng(0)
        rows = [rng.integers(0, 256, (256, size[0], 3), dtype=np.uint8)]
        tile = np.concatenate(rows * (size[1] // 256 + 1))[: size[1]]
        img = Image.fromarray(tile)
    else:
        img = Image.new(mode, size, (120, 90, 60, 200)[: len(mode)])
    img.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def _video(path: Path, size: tuple[int, int], seconds: float) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import make_video

    make_video(path, seconds, 25, size)


INPUTS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "png-8k": ("png", lambda p: _image(p, (7999, 7999), "PNG", False)),
    "png-rgba-8k": ("png", lambda p: _image(p, (7999, 7999), "PNG", False, "RGBA")),
    "webp-4k": ("webp", lambda p: _image(p, (4000, 4000), "WEBP", True)),
    "jpeg-8k": ("jpg", lambda p: _image(p, (7999, 7999), "JPEG", True)),
    "jpeg-50mp": ("jpg", lambda p: _image(p, (8160, 6120), "JPEG", True)),
    "jpeg-24mp": ("jpg", lambda p: _image(p, (6000, 4000), "JPEG", True)),
    "jpeg-4k": ("jpg", lambda p: _image(p, (4000, 3000), "JPEG", True)),
    "video-1080": ("mp4", lambda p: _video(p, (1920, 1080), 10.0)),
    "video-4k": ("mp4", lambda p: _video(p, (3840, 2160), 4.0)),
    "video-8k": ("mp4", lambda p: _video(p, (7680, 4320), 2.0)),
}


def measure(path: Path) -> tuple[float, float, float, str]:
    """(MB after loading the models, peak MB, scan seconds, verdict) of a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"scan of {path.name} failed:\n{out.stderr[-2000:]}")
    loaded, peak, seconds, verdict = out.stdout.split()[-4:]
    return float(loaded), float(peak), float(seconds), verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(INPUTS), default=list(INPUTS))
    args = parser.parse_args()
    rows = []
    print(load_average())
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for name in args.only:
            ext, make = INPUTS[name]
            path = Path(tmp) / f"{name}.{ext}"
            started = time.perf_counter()
            make(path)
            made_s = time.perf_counter() - started
            loaded, peak, seconds, verdict = measure(path)
            bar = VIDEO_BAR_MB if name.startswith("video") else IMAGE_BAR_MB
            met = "met" if peak <= bar else "NOT met"
            rows.append(
                [name, f"{path.stat().st_size / 1e6:.1f}", f"{loaded:.0f}", f"{peak:.0f}"]
                + [f"{peak - loaded:.0f}", f"{seconds:.1f}", verdict, f"<= {bar}: {met}"]
            )
            print(f"  {name}: made in {made_s:.1f} s", flush=True)
    print(load_average())
    header = ["input", "file MB", "models loaded MB", "peak MB", "scan adds MB", "scan s"]
    print_table(header + ["verdict", "bar"], rows)


if __name__ == "__main__":
    main()
