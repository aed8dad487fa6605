"""Image scan speed and memory: JPEG bytes in -> Report out, ONNX Runtime against PyTorch eager.

    python benchmarks/bench_image.py [--repeats 15] [--warmup 2] [--threads 2] [--photo PATH]

Input: scikit-image's astronaut (512 px) upscaled to 1024x1024 and saved as JPEG quality 90 in
memory, or ``--photo`` (any image, read in place and upscaled the same way; never copied). Prints
tables of medians over ``--repeats`` warm runs after ``--warmup`` runs, and never asserts:

- ``deepfakescan.scan(bytes)`` per stage: the report's own ``timings_ms`` (sniff, decode, detect,
  total) and, inside ``detect``, face detection, detector (align + network + calibration), family
  classifier (only for faces judged fake) and heatmap, each network's own share beside them;
- the ``image`` detector and ``image-family`` classifier alone (batch 1, the same aligned crop),
  ONNX Runtime against the same networks in PyTorch eager (``torch.inference_mode``,
  ``--threads`` threads); ratio = PyTorch / ONNX Runtime;
- the same scan with every network swapped for PyTorch eager (``ModelBundle.run`` is patched,
  so pyramid, preprocessing, calibration and heatmap are identical); also with the two trained
  networks only (MTCNN on ONNX Runtime in both columns, as earlier versions measured);
- face detection alone (``detect_photo_faces``, as a scan searches a photo) on the 1024x1024
  photo, ONNX Runtime against eager MTCNN, since it dominates;
- the peak RSS of a fresh interpreter that imports deepfakescan and scans the photo once;
- the bars of the image card (scan <= 100 ms, ONNX Runtime >= 2x faster, peak RSS <= 400 MB),
  met or not.

Every PyTorch network is rebuilt from the shipped ``.onnx`` by ``eager_onnx.py`` (same layers,
same weights, PyTorch's kernels), so the ratios come from a fresh clone. Each rebuild must match
ONNX Runtime on this photo's own inputs (the aligned face crop; the pyramid level and candidate
boxes MTCNN really sees) before it is timed; the maximum difference is printed. Without torch
the eager columns say so.

ONNX Runtime and PyTorch runs alternate, so a change in machine load hits both columns alike;
the load average is printed before and after. A missing ``image-family`` bundle is reported,
not an error.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    PEAK_RSS_MB,
    Eager,
    eager_rebuild,
    interleaved,
    load_average,
    median,
    print_table,
    spread,
)
from PIL import Image

SIDE = 1024
JPEG_QUALITY = 90
BAR_SCAN_MS = 100.0
BAR_SPEEDUP = 2.0
BAR_RSS_MB = 400.0
STEPS = ("detect_photo_faces", "score_faces", "face_family", "heatmap_overlay")
"""Functions of ``deepfakescan.detectors.image`` that a scan's breakdown times."""
ROWS = {
    "sniff": "sniff (report)",
    "decode": "decode (report)",
    "detect": "detect (report)",
    "detect_photo_faces": "  faces: detect_photo_faces (MTCNN)",
    "network mtcnn_pnet": "    network mtcnn_pnet",
    "network mtcnn_rnet": "    network mtcnn_rnet",
    "network mtcnn_onet": "    network mtcnn_onet",
    "score_faces": "  detector: align + network + calibrate",
    "network image": "    network image",
    "face_family": "  family: align + network + calibrate",
    "network image-family": "    network image-family",
    "heatmap_overlay": "  heatmap overlay + JPEG",
    "total": "total (report)",
    "wall": "scan() call, wall",
}
"""Breakdown rows in display order (keys of one run's timings) with their labels."""
EAGER_BACKENDS = {"torch": "every network", "torch, mtcnn ort": "MTCNN on ORT"}
"""Scan backends that run networks in PyTorch eager, with their labels."""


def photo_bytes(path: Path | None) -> bytes:
    """The test photo as 1024x1024 JPEG bytes (astronaut unless ``path`` is given)."""
    if path is None:
        import skimage.data

        image = Image.fromarray(skimage.data.astronaut())
    else:
        with Image.open(path) as im:
            image = im.convert("RGB")
    image = image.resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class Probe:
    """Times the image detector's steps inside ``scan`` and can run its networks in PyTorch.

    ``backends`` maps a backend name to the bundles it runs in PyTorch eager (through
    ``eager[name]``, array in -> outputs by name); every other bundle runs on ONNX Runtime (its
    own ``run``). Everything else in the scan is untouched. ``inputs`` keeps the first input
    each network received (the real inputs the eager rebuilds are checked on).
    """

    def __init__(self, eager: dict[str, Callable], backends: dict[str, set[str]]) -> None:
        self.eager = eager
        self.backends = backends
        self.backend = "ort"
        self.times: dict[str, float] = {}
        self.runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
        self.reports: dict[str, Any] = {}
        self.inputs: dict[str, np.ndarray] = {}

    def _add(self, key: str, start: float) -> None:
        self.times[key] = self.times.get(key, 0.0) + (time.perf_counter() - start) * 1000.0

    def _timed(self, name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name, start)

        return wrapper

    def _run(self, original_run: Callable) -> Callable:
        """``ModelBundle.run`` timed, and in PyTorch eager for the current backend's bundles."""
        probe = self

        def run(bundle, feeds):
            start = time.perf_counter()
            try:
                x = feeds[bundle.input_names[0]] if isinstance(feeds, dict) else feeds
                probe.inputs.setdefault(bundle.name, x)
                if bundle.name not in probe.backends[probe.backend]:
                    return original_run(bundle, feeds)
                out = probe.eager[bundle.name](x)
                return {name: out[name] for name in bundle.output_names}
            finally:
                probe._add(f"network {bundle.name}", start)

        return run

    @contextmanager
    def installed(self) -> Iterator[Probe]:
        from deepfakescan.detectors import image as detector
        from deepfakescan.detectors.bundle import ModelBundle

        saved = {name: getattr(detector, name) for name in STEPS}
        original_run = ModelBundle.run
        for name, fn in saved.items():
            setattr(detector, name, self._timed(name, fn))
        ModelBundle.run = self._run(original_run)
        try:
            yield self
        finally:
            ModelBundle.run = original_run
            for name, fn in saved.items():
                setattr(detector, name, fn)

    def scan(self, data: bytes, settings, backend: str) -> None:
        """One ``scan(data)`` with ``backend``; its timings join ``runs[backend]``."""
        import deepfakescan

        self.backend, self.times = backend, {}
        start = time.perf_counter()
        report = deepfakescan.scan(data, settings=settings)
        wall = (time.perf_counter() - start) * 1000.0
        self.runs[backend].append({**report.timings_ms, **self.times, "wall": wall})
        self.reports[backend] = report

    def call(self, backend: str, fn: Callable, *args) -> Any:
        """``fn(*args)`` with ``backend``'s networks (outside a scan: no timings kept)."""
        self.backend, self.times = backend, {}
        return fn(*args)

    def drop(self, n: int) -> None:
        """Forget the first ``n`` runs of each backend (the warm-ups)."""
        for runs in self.runs.values():
            del runs[:n]


@dataclass
class Bench:
    """What every measurement of one run shares."""

    settings: Any
    data: bytes
    rgb: np.ndarray
    bundles: dict[str, Any]
    """Installed bundles by name: the two trained networks, then MTCNN's three stages."""
    faces: list
    repeats: int
    warmup: int
    threads: int


def prepare(args: argparse.Namespace) -> Bench:
    """Settings, the photo, the installed bundles and the photo's faces."""
    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import load_model, optional_model
    from deepfakescan.detectors.image import FAMILY_MODEL, IMAGE_MODEL
    from deepfakescan.faces import ONET, PNET, RNET, detect_photo_faces

    settings = Settings.from_env(threads=args.threads)
    data = photo_bytes(args.photo)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    source = args.photo or "skimage astronaut"
    print(f"photo: {source}, {SIDE}x{SIDE} JPEG q{JPEG_QUALITY}, {len(data) / 1024:.0f} KiB")
    print(f"medians of {args.repeats} warm runs after {args.warmup} warm-ups")
    bundles = {}
    for name in (IMAGE_MODEL, FAMILY_MODEL):
        bundle, why = optional_model(name, settings)
        if bundle is not None:
            bundles[name] = bundle
        elif name == IMAGE_MODEL:
            sys.exit(f"no image bundle installed: nothing to measure ({why})")
        else:
            print(f"note: no {name} bundle; the family classifier is not measured ({why})")
    bundles |= {name: load_model(name, settings) for name in (PNET, RNET, ONET)}
    faces = detect_photo_faces(rgb, settings)
    print(f"faces found: {len(faces)}")
    return Bench(settings, data, rgb, bundles, faces, args.repeats, args.warmup, args.threads)


def crop_batch(bench: Bench, bundle) -> np.ndarray:
    """The photo's first face aligned as ``bundle`` wants it (the whole photo without faces)."""
    from deepfakescan.detectors.bundle import to_batch
    from deepfakescan.detectors.image import crop_spec
    from deepfakescan.faces import align_face

    side, margin = crop_spec(bundle)
    if bench.faces:
        crop = align_face(bench.rgb, bench.faces[0], size=side, margin=margin).image
    else:  # still compare the networks, on the whole photo
        crop = np.asarray(Image.fromarray(bench.rgb).resize((side, side)))
    return to_batch([crop], bundle.card["inputs"][0])


def rebuild_networks(bench: Bench) -> dict[str, Eager]:
    """Every network in PyTorch eager, checked on the input it gets from this photo."""
    from deepfakescan.faces import detect_photo_faces

    probe = Probe({}, {"ort": set()})
    with probe.installed():  # records the first input of each MTCNN stage
        probe.call("ort", detect_photo_faces, bench.rgb, bench.settings)
    eager = {}
    for name, bundle in bench.bundles.items():
        x = probe.inputs.get(name)
        if x is None and name.startswith("mtcnn"):
            eager[name] = Eager(None, "did not run on this photo")
            continue
        x = crop_batch(bench, bundle) if x is None else x
        eager[name] = eager_rebuild(bundle.path, bundle.run, x, bench.threads)
    return eager


def time_networks(bench: Bench, eager: dict[str, Eager]) -> tuple[list[list], dict[str, float]]:
    """Table rows for the trained networks alone (batch 1), and their PyTorch / ORT ratios."""
    rows, ratios = [], {}
    for name, bundle in bench.bundles.items():
        if name.startswith("mtcnn"):
            continue
        x = crop_batch(bench, bundle)
        feeds = {bundle.input_names[0]: x}
        fns = {"ort": lambda b=bundle, f=feeds: b.session.run(b.output_names, f)}
        if eager[name].run is not None:
            fns["torch"] = lambda run=eager[name].run, x=x: run(x)
        times = interleaved(fns, bench.repeats, bench.warmup)
        ort_ms, torch_ms = median(times["ort"]), median(times.get("torch", []))
        if "torch" in times:
            ratios[name] = torch_ms / ort_ms
        note = (
            eager[name].note + "; range " + ", ".join(f"{b} {spread(v)}" for b, v in times.items())
        )
        ratio = f"{ratios[name]:.2f}x" if name in ratios else "-"
        torch_cell = f"{torch_ms:.2f}" if name in ratios else "-"
        rows.append([f"{name}, {x.shape}", f"{ort_ms:.2f}", torch_cell, ratio, note])
    return rows, ratios


def time_parts(bench: Bench, eager: dict[str, Eager]) -> list[list]:
    """Rows for face detection alone (ORT and eager MTCNN) and the family step alone."""
    from deepfakescan.detectors.image import FAMILY_MODEL, face_family
    from deepfakescan.faces import detect_photo_faces

    mtcnn = {n: e.run for n, e in eager.items() if n.startswith("mtcnn") and e.run is not None}
    probe = Probe(mtcnn, {"ort": set(), "torch": set(mtcnn)})
    detect = {"ort": lambda: probe.call("ort", detect_photo_faces, bench.rgb, bench.settings)}
    if mtcnn:
        detect["torch"] = lambda: probe.call("torch", detect_photo_faces, bench.rgb, bench.settings)
    with probe.installed():
        parts = interleaved(detect, bench.repeats, 1)
    ort = parts["ort"]
    rows = [["detect_photo_faces, 1024x1024, ONNX Runtime", f"{median(ort):.1f}", spread(ort)]]
    if "torch" in parts:
        ratio = median(parts["torch"]) / median(ort)
        label = f"detect_photo_faces, 1024x1024, PyTorch eager ({', '.join(sorted(mtcnn))})"
        note = f"ratio {ratio:.2f}x; range {spread(parts['torch'])}"
        rows.append([label, f"{median(parts['torch']):.1f}", note])
    else:
        note = "; ".join(f"{n}: {e.note}" for n, e in eager.items() if n.startswith("mtcnn"))
        rows.append(["detect_photo_faces, PyTorch eager", "-", note])
    family = bench.bundles.get(FAMILY_MODEL)
    if family is not None and bench.faces:
        fam = interleaved(
            {"f": lambda: face_family(family, bench.rgb, bench.faces[0])}, bench.repeats
        )
        rows.append(
            ["face_family on face 1 (fake faces only)", f"{median(fam['f']):.1f}", spread(fam["f"])]
        )
    return rows


def time_scans(bench: Bench, eager: dict[str, Eager]) -> Probe:
    """``scan()`` end to end: ONNX Runtime; every network eager; the trained ones eager only."""
    from deepfakescan.detectors.image import IMAGE_MODEL

    runs = {name: e.run for name, e in eager.items() if e.run is not None}
    backends: dict[str, set[str]] = {"ort": set()}
    if IMAGE_MODEL in runs:
        trained = {n for n in runs if not n.startswith("mtcnn")}
        backends |= {"torch": set(runs), "torch, mtcnn ort": trained}
    probe = Probe(runs, backends)
    scans = {b: lambda b=b: probe.scan(bench.data, bench.settings, b) for b in backends}
    with probe.installed():
        interleaved(scans, bench.repeats, bench.warmup)
    probe.drop(bench.warmup)
    return probe


def peak_rss(data: bytes, threads: int) -> dict[str, float]:
    """Peak memory (MB) and cold timings (ms) of a fresh interpreter scanning ``data`` once."""
    code = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "import deepfakescan\n"
        "t1 = time.perf_counter()\n"
        "report = deepfakescan.scan(sys.stdin.buffer.read())\n"
        "t2 = time.perf_counter()\n"
        f"print({PEAK_RSS_MB}, 1000 * (t1 - t0), 1000 * (t2 - t1))\n"
    )
    env = {**os.environ, "DEEPFAKESCAN_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, env=env, check=False
    )
    if out.returncode != 0:
        print(out.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
        return {}
    rss_mb, import_ms, scan_ms = map(float, out.stdout.split()[-3:])
    return {"rss_mb": rss_mb, "import_ms": import_ms, "scan_ms": scan_ms}


def threads_line(settings) -> str:
    threads = f"ONNX Runtime intra-op threads {settings.threads}"
    torch = sys.modules.get("torch")  # imported only when an eager rebuild was made
    if torch is not None:
        threads += f", torch threads {torch.get_num_threads()}"
    return threads


def print_breakdown(probe: Probe) -> None:
    """Per-stage medians of each backend's scans, with how many runs had the stage."""
    backends = list(probe.runs)
    seen = {k for runs in probe.runs.values() for run in runs for k in run}
    keys = [k for k in ROWS if k in seen] + sorted(seen - set(ROWS))
    header = ["stage (median over runs where it ran)"]
    for b in backends:
        header += [f"{b} ms", "runs"]
    rows = []
    for key in keys:
        row = [ROWS.get(key, key)]
        for b in backends:
            values = [run[key] for run in probe.runs[b] if key in run]
            row += [f"{median(values):.1f}", f"{len(values)}/{len(probe.runs[b])}"]
        rows.append(row)
    print("scan(bytes) -> Report, per stage")
    print_table(header, rows, "<" + ">" * (len(header) - 1))
    report = probe.reports["ort"]
    ran_family = any(f.family is not None for f in report.faces)
    print(
        f"report: verdict {report.verdict}, p(fake) {report.fake_probability}, "
        f"{len(report.faces)} face(s), artifacts {[a.name for a in report.artifacts]}, "
        f"family classifier {'ran' if ran_family else 'not run (no face judged fake)'}"
    )
    if "torch" in probe.reports:
        other = probe.reports["torch"]
        print(f"report with PyTorch networks: verdict {other.verdict}, p {other.fake_probability}")


def end_to_end_rows(probe: Probe, eager: dict[str, Eager]) -> tuple[list[list], float]:
    """Rows for ``scan()`` per backend, and the every-network-eager / ORT ratio (NaN: none)."""
    walls = {b: [run["wall"] for run in runs] for b, runs in probe.runs.items()}
    ort = median(walls["ort"])
    rows = [["scan(), ONNX Runtime networks", f"{ort:.1f}", f"range {spread(walls['ort'])}"]]
    for b, label in EAGER_BACKENDS.items():
        if b in walls:
            ms = median(walls[b])
            note = f"ratio {ms / ort:.2f}x (eager: {', '.join(sorted(probe.backends[b]))})"
            rows.append(
                [
                    f"scan(), PyTorch eager: {label}",
                    f"{ms:.1f}",
                    f"{note}; range {spread(walls[b])}",
                ]
            )
    if "torch" not in walls:
        from deepfakescan.detectors.image import IMAGE_MODEL

        rows.append(["scan(), PyTorch eager networks", "-", f"skipped: {eager[IMAGE_MODEL].note}"])
    ratio = median(walls["torch"]) / ort if "torch" in walls else float("nan")
    return rows, ratio


def verdict(value: float, bar: float, *, at_most: bool) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    return "met" if (value <= bar if at_most else value >= bar) else "not met"


def print_bars(scan_ms: float, det_ratio: float, e2e_ratio: float, rss_mb: float) -> None:
    bars = [
        ("scan() end to end, median (ms)", scan_ms, BAR_SCAN_MS, True),
        ("ORT speed-up, detector network alone", det_ratio, BAR_SPEEDUP, False),
        ("ORT speed-up, scan() end to end", e2e_ratio, BAR_SPEEDUP, False),
        ("peak RSS, fresh process (MB, VmHWM)", rss_mb, BAR_RSS_MB, True),
    ]
    rows = []
    for label, value, limit, at_most in bars:
        target = f"<= {limit:.0f}" if at_most else f">= {limit:.0f}x"
        rows.append([label, f"{value:.2f}", target, verdict(value, limit, at_most=at_most)])
    print("bars")
    print_table(["bar", "value", "target", "result"], rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="warm runs per median")
    ap.add_argument("--warmup", type=int, default=2, help="runs before timing")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime and torch threads")
    ap.add_argument("--photo", type=Path, help="another photo (read in place, upscaled)")
    args = ap.parse_args(argv)

    from deepfakescan.detectors.image import IMAGE_MODEL

    print(f"before: {load_average()}")
    bench = prepare(args)
    eager = rebuild_networks(bench)
    net_rows, net_ratios = time_networks(bench, eager)
    part_rows = time_parts(bench, eager)
    probe = time_scans(bench, eager)
    rss = peak_rss(bench.data, args.threads)

    print(f"\n{threads_line(bench.settings)}")
    print_breakdown(probe)
    print("\nnetworks alone, batch 1, same input (ratio = PyTorch / ONNX Runtime)")
    print_table(["network", "ORT ms", "torch ms", "ratio", "note"], net_rows)
    print("\nend to end and parts")
    e2e_rows, e2e_ratio = end_to_end_rows(probe, eager)
    rows = e2e_rows + part_rows
    rows += [[f"{name} eager vs ORT", "-", e.note] for name, e in eager.items()]
    if rss:
        rows.append(["fresh process: import deepfakescan", f"{rss['import_ms']:.1f}", ""])
        rows.append(["fresh process: first scan (cold)", f"{rss['scan_ms']:.1f}", ""])
    print_table(["case", "ms", "note"], rows)
    print()
    scan_ms = median([run["wall"] for run in probe.runs["ort"]])
    det_ratio = net_ratios.get(IMAGE_MODEL, float("nan"))
    print_bars(scan_ms, det_ratio, e2e_ratio, rss.get("rss_mb", float("nan")))
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
