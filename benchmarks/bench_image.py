"""Image scan speed and memory: JPEG bytes in -> Report out, ONNX Runtime against PyTorch eager.

    python benchmarks/bench_image.py [--repeats 15] [--warmup 2] [--threads 2] [--photo PATH]
        [--detector-weights RUN/best.pt] [--family-weights RUN/best.pt]

Input: scikit-image's astronaut (512 px) upscaled to 1024x1024 and saved as JPEG quality 90 in
memory, or ``--photo`` (any image, read in place and upscaled the same way; never copied). Prints
tables of medians over ``--repeats`` warm runs after ``--warmup`` runs, and never asserts:

- ``deepfakescan.scan(bytes)`` per stage: the report's own ``timings_ms`` (sniff, decode, detect,
  total) and, inside ``detect``, face detection, detector (align + network + calibration), family
  classifier (only for faces judged fake) and heatmap, each network's own share beside them;
- the ``image`` detector and ``image-family`` classifier alone (batch 1, the same aligned crop),
  ONNX Runtime against the same networks in PyTorch eager (``torch.inference_mode``,
  ``--threads`` threads) rebuilt from the training checkpoints; ratio = PyTorch / ONNX Runtime;
- the same scan with every network swapped for PyTorch eager: the two above, and MTCNN's three
  stages rebuilt from their ONNX weights by ``eager_onnx.py`` (``ModelBundle.run`` is patched,
  so pyramid, preprocessing, calibration and heatmap are identical); also with the two trained
  networks only (MTCNN on ONNX Runtime in both columns, as earlier versions measured);
- face detection alone (``detect_photo_faces``, as a scan searches a photo) on the 1024x1024
  photo, ONNX Runtime against eager MTCNN, since it dominates;
- the peak RSS of a fresh interpreter that imports deepfakescan and scans the photo once;
- the issue's bars (scan <= 100 ms, ONNX Runtime >= 2x faster, peak RSS <= 400 MB), met or not.

The eager MTCNN must match ONNX Runtime (the maximum difference is printed): the comparison is
of runtimes, not of networks.

ONNX Runtime and PyTorch runs alternate, so a change in machine load hits both columns alike;
the load average is printed before and after. A missing checkpoint skips its PyTorch column;
a missing ``image-family`` bundle is reported, not an error.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from eager_onnx import EagerGraph, max_abs_diff
from memory import PEAK_RSS_MB
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO.parent / "cache" / "image" / "runs"
DEFAULT_DETECTOR = RUNS / "image" / "best.pt"
DEFAULT_FAMILY = RUNS / "image-family" / "best.pt"
SIDE = 1024
JPEG_QUALITY = 90
BAR_SCAN_MS = 100.0
BAR_SPEEDUP = 2.0
BAR_RSS_MB = 400.0
MTCNN_CHECK_SHAPES = ((1, 3, 67, 101), (5, 3, 24, 24), (3, 3, 48, 48))
"""Random inputs of these shapes (P-, R-, O-Net) on which each eager MTCNN stage must match
ONNX Runtime (the difference is printed)."""
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


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list]:
    """Milliseconds per call of each function, the functions taking turns within each round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    """``min-max`` of the runs, to show how steady the machine was."""
    return f"{min(values):.1f}-{max(values):.1f} ms" if values else "-"


def load_torch_net(path: Path, threads: int):
    """The checkpoint's network in eval mode, or ``None`` (with a message) when it is missing."""
    if not path.is_file():
        print(f"no checkpoint {path}: its PyTorch column is skipped", file=sys.stderr)
        return None
    import torch

    from deepfakescan.training.export_image import model_from_checkpoint

    torch.set_num_threads(threads)
    net, _ = model_from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    return net.eval()


def torch_forward(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, cam)`` of a float32 NCHW batch in PyTorch eager."""
    import torch

    with torch.inference_mode():
        logits, cam = net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return logits.numpy(), cam.numpy()


def detector_outputs(net) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A trained detector/classifier in eager, returning outputs by name like its bundle."""

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        logits, cam = torch_forward(net, x)
        return {"logits": logits, "cam": cam}

    return run


class Probe:
    """Times the image detector's steps inside ``scan`` and can run its networks in PyTorch.

    ``backends`` maps a backend name to the bundles it runs in PyTorch eager (through
    ``eager[name]``, array in -> outputs by name); every other bundle runs on ONNX Runtime (its
    own ``run``). Everything else in the scan is untouched.
    """

    def __init__(self, eager: dict[str, Callable], backends: dict[str, set[str]]) -> None:
        self.eager = eager
        self.backends = backends
        self.backend = "ort"
        self.times: dict[str, float] = {}
        self.runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
        self.reports: dict[str, Any] = {}

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

    @contextmanager
    def installed(self) -> Iterator[Probe]:
        from deepfakescan.detectors import image as detector
        from deepfakescan.detectors.bundle import ModelBundle

        saved = {name: getattr(detector, name) for name in STEPS}
        original_run = ModelBundle.run
        probe = self

        def run(bundle, feeds):
            start = time.perf_counter()
            try:
                if bundle.name not in probe.backends[probe.backend]:
                    return original_run(bundle, feeds)
                if isinstance(feeds, dict):
                    feeds = feeds[bundle.input_names[0]]
                out = probe.eager[bundle.name](feeds)
                return {name: out[name] for name in bundle.output_names}
            finally:
                probe._add(f"network {bundle.name}", start)

        for name, fn in saved.items():
            setattr(detector, name, self._timed(name, fn))
        ModelBundle.run = run
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


def breakdown_table(probe: Probe, backends: list[str]) -> None:
    keys = list(ROWS) + sorted(
        {k for runs in probe.runs.values() for run in runs for k in run} - set(ROWS)
    )
    head = "".join(f" {b + ' ms':>10} {'runs':>5}" for b in backends)
    print(f"{'stage (median over runs where it ran)':<44}{head}")
    for key in keys:
        cells, seen = "", False
        for b in backends:
            values = [run[key] for run in probe.runs[b] if key in run]
            seen = seen or bool(values)
            cells += f" {median(values):>10.1f} {len(values):>2d}/{len(probe.runs[b]):<2d}"
        if seen:
            print(f"{ROWS.get(key, key):<44}{cells}")


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


def conditions(settings, label: str) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = f"ONNX Runtime intra-op threads {settings.threads}"
    if "torch" in sys.modules:
        threads += f", torch threads {sys.modules['torch'].get_num_threads()}"
    return f"{label}: load average {load}; {cpus} CPUs usable; {threads}"


def verdict(value: float, bar: float, *, at_most: bool) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    return "met" if (value <= bar if at_most else value >= bar) else "not met"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="warm runs per median")
    ap.add_argument("--warmup", type=int, default=2, help="runs before timing")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime and torch threads")
    ap.add_argument("--photo", type=Path, help="another photo (read in place, upscaled)")
    ap.add_argument("--detector-weights", type=Path, default=DEFAULT_DETECTOR)
    ap.add_argument("--family-weights", type=Path, default=DEFAULT_FAMILY)
    args = ap.parse_args(argv)

    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import load_model
    from deepfakescan.detectors.image import (
        FAMILY_MODEL,
        IMAGE_MODEL,
        crop_spec,
        face_family,
        optional_model,
        to_batch,
    )
    from deepfakescan.faces import ONET, PNET, RNET, align_face, detect_photo_faces

    settings = Settings.from_env(threads=args.threads)
    print(conditions(settings, "before"))
    data = photo_bytes(args.photo)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    source = args.photo or "skimage astronaut"
    print(f"photo: {source}, {SIDE}x{SIDE} JPEG q{JPEG_QUALITY}, {len(data) / 1024:.0f} KiB")
    print(f"medians of {args.repeats} warm runs after {args.warmup} warm-ups")

    bundles = {name: optional_model(name, settings) for name in (IMAGE_MODEL, FAMILY_MODEL)}
    if bundles[IMAGE_MODEL] is None:
        sys.exit("no image bundle installed: nothing to measure")
    if bundles[FAMILY_MODEL] is None:
        print(f"note: no {FAMILY_MODEL} bundle installed; the family classifier is not measured")
    weights = {IMAGE_MODEL: args.detector_weights, FAMILY_MODEL: args.family_weights}
    torch_nets = {}
    for name, path in weights.items():
        if bundles[name] is not None:
            net = load_torch_net(path, args.threads)
            if net is not None:
                torch_nets[name] = net

    # 2a. networks alone, batch 1, the same aligned crop of the photo's first face
    faces = detect_photo_faces(rgb, settings)
    print(f"faces found: {len(faces)}")
    net_rows, net_ratio = [], {}
    for name, bundle in bundles.items():
        if bundle is None:
            continue
        side, margin = crop_spec(bundle)
        if faces:
            crop = align_face(rgb, faces[0], size=side, margin=margin).image
        else:  # still compare the networks, on the whole photo
            crop = np.asarray(Image.fromarray(rgb).resize((side, side)))
        x = to_batch([crop], bundle.card["inputs"][0])
        feeds = {bundle.input_names[0]: x}
        fns = {"ort": lambda b=bundle, f=feeds: b.session.run(b.output_names, f)}
        net = torch_nets.get(name)
        if net is not None:
            fns["torch"] = lambda n=net, x=x: torch_forward(n, x)
        times = interleaved(fns, args.repeats, args.warmup)
        ort_ms, torch_ms = median(times["ort"]), median(times.get("torch", []))
        note = f"PyTorch skipped: no {weights[name]}"
        if net is not None:
            ort_logits = bundle.session.run(bundle.output_names[:1], feeds)[0]
            diff = float(np.max(np.abs(torch_forward(net, x)[0] - ort_logits)))
            note = f"max |logit diff| {diff:.2g}" + (
                "  (checkpoint is not the shipped graph?)" if diff > 1e-3 else ""
            )
            net_ratio[name] = torch_ms / ort_ms
        note += "; range " + ", ".join(f"{b} {spread(v)}" for b, v in times.items())
        net_rows.append((f"{name}, 1x3x{side}x{side}", ort_ms, torch_ms, net_ratio.get(name), note))

    # PyTorch eager versions of every network a scan runs: the two trained here from their
    # checkpoints, the three MTCNN stages rebuilt from their ONNX weights (eager_onnx.py)
    eager = {name: detector_outputs(net) for name, net in torch_nets.items()}
    mtcnn, mtcnn_rows = (PNET, RNET, ONET), []
    check = np.random.default_rng(0)
    for name, shape in zip(mtcnn, MTCNN_CHECK_SHAPES, strict=True):
        bundle = load_model(name, settings)
        eager[name] = EagerGraph(bundle.path)
        x = check.uniform(-1, 1, shape).astype(np.float32)
        mtcnn_rows.append((name, max_abs_diff(eager[name], bundle.run, x)))

    # 4. face detection alone (ORT and eager), the family step alone (fake faces only)
    probe = Probe(eager, {"ort": set(), "torch": set(mtcnn)})
    with probe.installed():
        parts = interleaved(
            {
                "ort": lambda: probe.call("ort", detect_photo_faces, rgb, settings),
                "torch": lambda: probe.call("torch", detect_photo_faces, rgb, settings),
            },
            args.repeats,
            1,
        )
    face_ratio = median(parts["torch"]) / median(parts["ort"])
    part_rows = [
        ("detect_photo_faces, 1024x1024, ONNX Runtime", parts["ort"], ""),
        ("detect_photo_faces, 1024x1024, PyTorch eager", parts["torch"], f"{face_ratio:.2f}x"),
    ]
    if bundles[FAMILY_MODEL] is not None and faces:
        family = bundles[FAMILY_MODEL]
        fam = interleaved({"f": lambda: face_family(family, rgb, faces[0])}, args.repeats, 1)
        part_rows.append(("face_family on face 1 (fake faces only)", fam["f"], ""))

    # 1 and 2b. scan() end to end: every network on ONNX Runtime; every network in PyTorch
    # eager (the bar's baseline); and only the two trained networks in eager, MTCNN on ONNX
    # Runtime (the comparison earlier versions of this benchmark printed)
    backends = {"ort": set()}
    if IMAGE_MODEL in torch_nets:
        backends |= {"torch": set(eager), "torch, mtcnn ort": set(torch_nets)}
    probe = Probe(eager, backends)
    with probe.installed():
        interleaved(
            {b: lambda b=b: probe.scan(data, settings, b) for b in backends},
            args.repeats,
            args.warmup,
        )
    probe.drop(args.warmup)
    walls = {b: [run["wall"] for run in probe.runs[b]] for b in backends}
    scan_ms = {b: median(walls[b]) for b in backends}

    # 3. a fresh process: peak memory
    rss = peak_rss(data, args.threads)

    print()
    print("scan(bytes) -> Report, per stage")
    breakdown_table(probe, backends)
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

    print()
    print("networks alone, batch 1, same input (ratio = PyTorch / ONNX Runtime)")
    print(f"{'network':<28} {'ORT ms':>9} {'torch ms':>9} {'ratio':>7}  note")
    for label, ort_ms, torch_ms, ratio, note in net_rows:
        r = f"{ratio:.2f}x" if ratio is not None else "-"
        t = f"{torch_ms:.2f}" if ratio is not None else "-"
        print(f"{label:<28} {ort_ms:>9.2f} {t:>9} {r:>7}  {note}")

    print()
    print("end to end and parts")
    print(f"{'case':<44} {'ms':>9}  note")
    label = "scan(), ONNX Runtime networks"
    print(f"{label:<44} {scan_ms['ort']:>9.1f}  range {spread(walls['ort'])}")
    e2e_ratio = float("nan")
    if "torch" in scan_ms:
        e2e_ratio = scan_ms["torch"] / scan_ms["ort"]
        for b, label in (("torch", "every network"), ("torch, mtcnn ort", "MTCNN on ORT")):
            print(
                f"{'scan(), PyTorch eager: ' + label:<44} {scan_ms[b]:>9.1f}  "
                f"ratio {scan_ms[b] / scan_ms['ort']:.2f}x (eager: "
                f"{', '.join(sorted(backends[b]))}); range {spread(walls[b])}"
            )
    else:
        print(f"{'scan(), PyTorch eager networks':<44} {'-':>9}  skipped: no detector weights")
    for label, values, note in part_rows:
        ratio = f"ratio {note}; " if note else ""
        print(f"{label:<44} {median(values):>9.1f}  {ratio}range {spread(values)}")
    for name, diff in mtcnn_rows:
        print(f"{name + ' eager vs ORT, max |diff|':<44} {diff:>9.1g}")
    if rss:
        print(f"{'fresh process: import deepfakescan':<44} {rss['import_ms']:>9.1f}")
        print(f"{'fresh process: first scan (cold)':<44} {rss['scan_ms']:>9.1f}")

    print()
    rss_mb = rss.get("rss_mb", float("nan"))
    det_ratio = net_ratio.get(IMAGE_MODEL, float("nan"))
    bars = [
        ("scan() end to end, median (ms)", scan_ms["ort"], BAR_SCAN_MS, True),
        ("ORT speed-up, detector network alone", det_ratio, BAR_SPEEDUP, False),
        ("ORT speed-up, scan() end to end", e2e_ratio, BAR_SPEEDUP, False),
        ("peak RSS, fresh process (MB, VmHWM)", rss_mb, BAR_RSS_MB, True),
    ]
    print("bars")
    print(f"{'bar':<40} {'value':>9} {'target':>8}  result")
    for label, value, limit, at_most in bars:
        target = f"<= {limit:.0f}" if at_most else f">= {limit:.0f}x"
        print(f"{label:<40} {value:>9.2f} {target:>8}  {verdict(value, limit, at_most=at_most)}")
    print(conditions(settings, "after"))


if __name__ == "__main__":
    main()
