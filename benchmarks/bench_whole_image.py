"""Whole-image model speed and memory: scan() with and without ``image-synthetic``.

    python benchmarks/bench_whole_image.py [--repeats 9] [--warmup 2] [--threads 2]
                                           [--model-dir DIR | --random-bundle] [--faceless PATH]

Issue #20's bars, each through ``deepfakescan.scan(bytes)``, warm, on ``--threads`` ONNX
Runtime threads; medians over ``--repeats`` runs after ``--warmup``:

- (a) a 1024x1024 JPEG with one face (scikit-image's astronaut, as ``bench_image.py``), face
  and whole-image models, every artifact (face heatmap, whole-image map, preview): <= 150 ms;
- (b) a 4000x3000 JPEG without a face (scikit-image's coffee upscaled, with a little seeded
  sensor-like noise so the file has a photo's detail and size; or ``--faceless PATH``):
  <= 400 ms;
- (c) the peak RSS of a fresh interpreter that loads every installed model and scans a 12 MP
  photo (the photo of (b), and the same size with the astronaut pasted in, so that the face
  models, the family classifier and both heatmaps can run too): <= 500 MB. It is the child's
  own high-water mark (``VmHWM``, ``common.PEAK_RSS_MB``): ``ru_maxrss`` of a child carries the
  forking parent's over (a benchmark that has already loaded models).

The baseline is the same scan in the same process without the whole-image model (the image
route is told it is not installed), the two taking turns, so the ratio and the added
milliseconds are what ``image-synthetic`` costs. Also printed: the whole-image part alone
(crops + network, evidence map). Bars are printed beside the figures (PASS / OVER), never
asserted.

Models: the installed ones (shipped, then ``$DEEPFAKESCAN_MODEL_DIR``), or ``--model-dir DIR``.
Without an ``image-synthetic`` bundle the run stops and says so; ``--random-bundle`` then
exports an untrained ``SyntheticNet`` (``pretrained=False``, the training package's
``export_graph`` and card, so the same graph as a trained export) into a temporary folder:
the same speed and memory, meaningless verdicts, and the tables say so. It needs torch (the
``[train]`` extra) and is built in a child process, so torch never runs in the timed one.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bench_image import photo_bytes
from common import PEAK_RSS_MB, interleaved, load_average, median, print_table, spread
from PIL import Image

BIG = (4000, 3000)  # width, height: 12 MP
JPEG_QUALITY = 90
NOISE_SIGMA = 3.0
"""Grey levels of Gaussian noise added to the upscaled photo: an upscale alone is smoother than
any camera's output, and would make a small JPEG and an easy face search."""
BAR_FACE_MS = 150.0
BAR_BIG_MS = 400.0
BAR_RSS_MB = 500.0
MODEL_NAME = "image-synthetic"
RANDOM_NOTE = "UNTRAINED image-synthetic weights (--random-bundle): speed and memory only"
STEPS = {
    "add_whole_image": "whole-image model, all of it",
    "score_image": "  crops + network + calibration",
    "evidence_artifact": "  evidence map (JPEG)",
}
"""Functions of ``detectors.synthetic`` timed inside a scan, with their labels."""


def faceless_bytes(path: Path | None) -> bytes:
    """A 4000x3000 JPEG without a face: ``path`` or scikit-image's coffee, upscaled, noised."""
    if path is None:
        import skimage.data

        image = Image.fromarray(skimage.data.coffee())
    else:
        with Image.open(path) as im:
            image = im.convert("RGB")
    rgb = np.asarray(image.resize(BIG, Image.Resampling.BICUBIC), dtype=np.float32)
    rgb += np.random.default_rng(0).normal(0.0, NOISE_SIGMA, rgb.shape).astype(np.float32)
    return _jpeg(np.clip(rgb, 0, 255).astype(np.uint8))


def big_face_bytes(faceless: bytes) -> bytes:
    """The 12 MP photo with the astronaut (a face) pasted at 2048 px into its middle."""
    import skimage.data

    canvas = Image.open(io.BytesIO(faceless)).convert("RGB")
    side = 2048
    face = Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.Resampling.BICUBIC)
    canvas.paste(face, ((BIG[0] - side) // 2, (BIG[1] - side) // 2))
    return _jpeg(np.asarray(canvas))


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# ---------------------------------------------------------------------------- models


def build_random_bundle(dest: Path) -> None:
    """Export an untrained ``SyntheticNet`` as an ``image-synthetic`` bundle into ``dest``
    (run in a child process: it imports torch)."""
    import warnings
    from dataclasses import asdict

    from deepfakescan.training.onnx_export import install_bundle, part_path
    from deepfakescan.training.synthetic.export import export_graph, synthetic_card
    from deepfakescan.training.synthetic.train import TrainConfig, build_model

    warnings.filterwarnings("ignore", message="Constant folding")  # the exporter's chatter
    config = TrainConfig(pretrained=False)
    graph = export_graph(build_model(config), part_path(dest, MODEL_NAME), config.size)
    card = synthetic_card(
        MODEL_NAME,
        config,
        asdict(config),
        {"method": "none"},
        0.5,
        "benchmarks/bench_whole_image.py --random-bundle (untrained weights, speed only)",
    )
    card["description"] = "UNTRAINED weights, for speed and memory figures only. " + str(
        card["description"]
    )
    install_bundle(
        graph, {**card, "metrics": {}, "licence": "none (random weights)"}, dest, MODEL_NAME
    )


def random_bundle(dest: Path) -> None:
    """``build_random_bundle`` in a fresh interpreter; exits with its error if it fails."""
    print(f"building an untrained {MODEL_NAME} bundle in {dest} (torch, in a child process)...")
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=build_random_bundle, args=(dest,))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"could not build the untrained bundle (exit {child.exitcode}); needs torch")
    print(f"built in {time.perf_counter() - start:.0f} s")


def settings_for(model_dir: Path | None, threads: int) -> Any:
    """Settings with ``model_dir`` (or the environment's), after checking that an
    ``image-synthetic`` bundle loads; exits with what to do otherwise."""
    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import optional_model

    overrides: dict[str, Any] = {"threads": threads}
    if model_dir is not None:
        overrides["model_dir"] = model_dir
    settings = Settings.from_env(**overrides)
    bundle, why = optional_model(MODEL_NAME, settings)
    if bundle is None:
        sys.exit(
            f"no usable {MODEL_NAME} bundle: {why}\n"
            "  --model-dir DIR    use the bundle in DIR\n"
            "  --random-bundle    export an untrained one (torch) for speed-only figures"
        )
    print(f"{MODEL_NAME}: {bundle.path} (version {bundle.card.get('version')})")
    return settings


# ---------------------------------------------------------------------------- timing


@contextmanager
def without_whole_image() -> Iterator[None]:
    """The image route as if no ``image-synthetic`` bundle were installed (the baseline)."""
    from deepfakescan.detectors import image

    original = image.optional_model

    def optional_model(name, settings=None):
        if name == MODEL_NAME:
            return None, "left out: benchmark baseline"
        return original(name, settings)

    image.optional_model = optional_model
    try:
        yield
    finally:
        image.optional_model = original


@dataclass
class Runs:
    """Each variant's scans of one photo: timings per run (report stages, probes, wall)."""

    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)


class StepTimer:
    """Adds the time spent in ``detectors.synthetic``'s steps (:data:`STEPS`) to ``times``."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def _timed(self, name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = (time.perf_counter() - start) * 1000.0
                self.times[name] = self.times.get(name, 0.0) + elapsed

        return wrapper

    @contextmanager
    def installed(self) -> Iterator[StepTimer]:
        from deepfakescan.detectors import synthetic

        saved = {name: getattr(synthetic, name) for name in STEPS}
        for name, fn in saved.items():
            setattr(synthetic, name, self._timed(name, fn))
        try:
            yield self
        finally:
            for name, fn in saved.items():
                setattr(synthetic, name, fn)


def time_photo(data: bytes, settings: Any, repeats: int, warmup: int) -> Runs:
    """Scans of ``data`` with and without the whole-image model, taking turns."""
    import deepfakescan

    out, timer = Runs({"with": [], "without": []}), StepTimer()

    def scan(variant: str) -> None:
        timer.times = {}
        start = time.perf_counter()
        if variant == "with":
            report = deepfakescan.scan(data, settings=settings)
        else:
            with without_whole_image():
                report = deepfakescan.scan(data, settings=settings)
        wall = (time.perf_counter() - start) * 1000.0
        out.runs[variant].append({**report.timings_ms, **timer.times, "wall": wall})
        out.reports[variant] = report

    with timer.installed():
        interleaved({v: lambda v=v: scan(v) for v in out.runs}, repeats, warmup)
    for runs in out.runs.values():
        del runs[:warmup]
    check_reports(out.reports)
    return out


def check_reports(reports: dict[str, Any]) -> None:
    """The timed scans did what they claim: the whole-image model ran only in ``with``."""
    ran = {v: MODEL_NAME in [m.name for m in r.models] for v, r in reports.items()}
    if ran != {"with": True, "without": False}:
        sys.exit(f"benchmark broken: whole-image model ran in {ran}")


# ---------------------------------------------------------------------------- memory

CHILD = r"""
import sys
import deepfakescan
from deepfakescan.detectors.bundle import list_models, load_model
settings = deepfakescan.Settings.from_env()
names = [m.name for m in list_models(settings) if m.valid]
for name in names:
    load_model(name, settings)
report = deepfakescan.scan(sys.stdin.buffer.read(), settings=settings)
whole = int("image-synthetic" in [m.name for m in report.models])
print(PEAK_RSS_MB, len(names), len(report.faces), whole, len(report.artifacts))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)


def peak_rss(data: bytes, settings: Any) -> dict[str, float]:
    """Peak RSS (MB) of a fresh interpreter that loads every model and scans ``data``."""
    env = {**os.environ, "DEEPFAKESCAN_THREADS": str(settings.threads)}
    if settings.model_dir is not None:
        env["DEEPFAKESCAN_MODEL_DIR"] = str(settings.model_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], input=data, capture_output=True, env=env, check=False
    )
    if out.returncode != 0:
        print(out.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
        return {}
    keys = ("rss_mb", "models", "faces", "whole_image", "artifacts")
    return dict(zip(keys, map(float, out.stdout.split()[-5:]), strict=True))


# ---------------------------------------------------------------------------- tables


def bar(value: float, limit: float) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    return "PASS" if value <= limit else "OVER"


def speed_row(label: str, runs: Runs, limit: float) -> list[str]:
    with_ms = median([r["wall"] for r in runs.runs["with"]])
    base_ms = median([r["wall"] for r in runs.runs["without"]])
    report = runs.reports["with"]
    note = (
        f"{len(report.faces)} face(s), verdict {report.verdict}, "
        f"artifacts {[a.name for a in report.artifacts]}; range with "
        f"{spread([r['wall'] for r in runs.runs['with']])}"
    )
    return [
        label,
        f"{with_ms:.1f}",
        f"{base_ms:.1f}",
        f"{with_ms / base_ms:.2f}x",
        f"{with_ms - base_ms:+.1f}",
        f"<= {limit:.0f}",
        bar(with_ms, limit),
        note,
    ]


def stage_rows(label: str, runs: Runs) -> list[list[str]]:
    """Per-stage medians of one photo, with and without the whole-image model."""
    keys = ["sniff", "decode", "detect", *STEPS, "total", "wall"]
    rows = []
    for key in keys:
        cells = []
        for variant in ("with", "without"):
            values = [r[key] for r in runs.runs[variant] if key in r]
            cells.append(f"{median(values):.1f}" if values else "-")
        rows.append([f"{label}: {STEPS.get(key, key)}", *cells])
    return rows


def rss_row(label: str, rss: dict[str, float]) -> list[str]:
    if not rss:
        return [label, "-", f"<= {BAR_RSS_MB:.0f}", "n/a", "child failed (stderr above)"]
    note = (
        f"{rss['models']:.0f} models loaded, {rss['faces']:.0f} face(s), whole-image model "
        f"{'ran' if rss['whole_image'] else 'did NOT run'}, {rss['artifacts']:.0f} artifacts"
    )
    value = rss["rss_mb"]
    return [label, f"{value:.0f}", f"<= {BAR_RSS_MB:.0f}", bar(value, BAR_RSS_MB), note]


def print_tables(
    title: str, face: Runs, big: Runs, rss: dict[str, dict[str, float]], repeats: int
) -> None:
    print(f"\n{title}")
    print(f"scan(bytes) -> Report, warm, medians of {repeats} runs; baseline = same scan")
    print("without the whole-image model, same process, taking turns")
    header = ["case", "with ms", "without ms", "ratio", "added ms", "bar", "result", "note"]
    rows = [
        speed_row("(a) 1024x1024 JPEG, one face, all artifacts", face, BAR_FACE_MS),
        speed_row("(b) 4000x3000 JPEG, no face", big, BAR_BIG_MS),
    ]
    print_table(header, rows, "<" + ">" * 6 + "<")
    print("\nper stage (median ms)")
    stages = stage_rows("(a)", face) + stage_rows("(b)", big)
    print_table(["stage", "with", "without"], stages, "<>>")
    print("\n(c) fresh process: load every model, scan one 12 MP photo (VmHWM)")
    rows = [rss_row(label, value) for label, value in rss.items()]
    print_table(["photo", "peak RSS MB", "bar", "result", "note"], rows, "<>><<")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="warm runs per median")
    ap.add_argument("--warmup", type=int, default=2, help="runs before timing")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    ap.add_argument("--faceless", type=Path, help="another face-free photo (upscaled to 12 MP)")
    models = ap.add_mutually_exclusive_group()
    models.add_argument("--model-dir", type=Path, metavar="DIR", help="bundles to use")
    models.add_argument(
        "--random-bundle", action="store_true", help="untrained image-synthetic (speed only)"
    )
    args = ap.parse_args(argv)

    print(f"before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-whole-image-") as tmp:
        model_dir = args.model_dir
        if args.random_bundle:
            model_dir = Path(tmp)
            random_bundle(model_dir)
        settings = settings_for(model_dir, args.threads)
        face, big = photo_bytes(None), faceless_bytes(args.faceless)
        print(f"photos: 1024x1024 {len(face) / 1024:.0f} KiB, 4000x3000 {len(big) / 1024:.0f} KiB")
        face_runs = time_photo(face, settings, args.repeats, args.warmup)
        big_runs = time_photo(big, settings, args.repeats, args.warmup)
        rss = {
            "12 MP, no face": peak_rss(big, settings),
            "12 MP, astronaut pasted in": peak_rss(big_face_bytes(big), settings),
        }
    where = args.model_dir or "the installed models"
    title = RANDOM_NOTE if args.random_bundle else f"{MODEL_NAME} from {where}"
    print(f"ONNX Runtime intra-op threads {settings.threads}")
    print_tables(title, face_runs, big_runs, rss, args.repeats)
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
