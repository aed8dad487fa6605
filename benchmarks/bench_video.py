"""Video scan speed and memory: end-to-end time with a decode/faces/model/audio breakdown.

    python benchmarks/bench_video.py --data ../shared/data [--runs 3] [--cache DIR]

Clips are built at run time (once; they are cached outside the repository, default
``/work/cache/bench-video``) with fixed settings: H.264 via libx264, preset medium, keyframe
interval 250, 30 fps, yuv420p, AAC audio, from the frames and sound of the evaluation clips
(read in place, never copied into the project):

- ``720p-30s``: ``WDA_KatieHill_000.mp4`` (512x512, one talking face) scaled to 720 px high,
  centred on a 1280x720 canvas filled with a blurred, stretched copy, played forwards then
  backwards until 30 s; its own speech looped under it.
- ``1080p-10min``: ``video.mp4`` (1920x1080, a street scene) played forwards then backwards,
  each frame held for 0.5 s (see ``HOLD_LONG``), until 10 minutes; its own sound looped.

Each clip is scanned in a fresh process (``deepfakescan.scan`` with default settings): one cold
scan (imports and model loading included), then ``--runs`` warm scans. The table gives the
median warm time, the cold time, the per-stage medians from ``report.timings_ms`` and the
process's peak RSS. Targets (2-core CPU): 720p-30s <= 4 s, 1080p-10min <= 12 s, RSS <= 600 MB.
No timing is asserted anywhere; the load average is printed because model training often
shares this machine.

Models: the installed ``image`` and ``audio`` bundles. ``--stand-in`` instead installs
untrained stand-ins with the shipped architectures' cost (EfficientNet-Lite0 CAM net at 224 px
for faces; the shipped audio bundle, else an untrained audio ResNet; torch needed), so speed can be
measured before training ends; their verdicts mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from memory import PEAK_RSS_MB
from PIL import Image, ImageFilter

FPS = 30
GOP = 250
HOLD_LONG = 15
"""The 10-minute clip shows each source frame for 15 output frames (0.5 s): encoding 18000
full-motion 1080p frames at preset medium takes about 1.5 hours on two shared cores, held
frames about 30 minutes. Held frames decode faster than full motion, which flatters only the
forward decoding from a keyframe (at most 60 frames per sample) - not the keyframes, faces,
model or audio that make up most of the scan."""
PRESET = "medium"
CLIPS = {
    "720p-30s": ("WDA_KatieHill_000.mp4", (1280, 720), 30.0, 1),
    "1080p-10min": ("video.mp4", (1920, 1080), 600.0, HOLD_LONG),
}
"""name -> (source clip, size, seconds, output frames each source frame is held for)."""
STAGES = ("decode", "faces", "model", "audio", "fusion", "total")
TARGETS_S = {"720p-30s": 4.0, "1080p-10min": 12.0}
RSS_TARGET_MB = 600


# ---------------------------------------------------------------------------- clips


def _compose(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit a frame to ``size`` by height, centred, over a blurred stretched copy of itself."""
    width, height = size
    img = Image.fromarray(rgb)
    if img.size == size:
        return rgb
    scale = height / img.height
    fitted = img.resize((round(img.width * scale), height), Image.Resampling.BICUBIC)
    back = img.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(24))
    back.paste(fitted, ((width - fitted.width) // 2, 0))
    return np.asarray(back)


def _source_frames(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """Every frame of the source as yuv420p planes at ``size`` (1.5 bytes a pixel)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = _compose(frame.to_ndarray(format="rgb24"), size)
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frames.append(yuv.to_ndarray())
    return frames


def _source_audio(path: Path) -> tuple[np.ndarray, int]:
    """The source's first audio track, mono float32, at its own rate."""
    chunks, rate = [], 48000
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32), rate


def build_clip(
    source: Path, dest: Path, size: tuple[int, int], seconds: float, hold: int = 1
) -> Path:
    """Encode the benchmark clip (ping-pong looped frames, looped sound) with fixed settings."""
    frames = _source_frames(source, size)
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    audio, rate = _source_audio(source)
    n = int(round(seconds * FPS))
    total = int(round(seconds * rate))
    sound = np.tile(audio, total // len(audio) + 1)[:total]
    tmp = dest.with_suffix(".part")
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.codec_context.gop_size = GOP
        vs.codec_context.options = {"preset": PRESET, "keyint": str(GOP), "crf": "23"}
        aus = out.add_stream("aac", rate=rate, layout="mono")
        audio_pts = 0
        block = rate // FPS
        for i in range(n):
            picture = frames[order[(i // hold) % len(order)]]
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in vs.encode(frame):
                out.mux(packet)
            # interleave sound with pictures so the file is muxed as a player expects
            end = min(total, (i + 1) * block) if i < n - 1 else total
            while audio_pts < end:
                chunk = sound[audio_pts : min(end, audio_pts + 1024)]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                af.sample_rate = rate
                af.pts = audio_pts
                af.time_base = Fraction(1, rate)
                for packet in aus.encode(af):
                    out.mux(packet)
                audio_pts += len(chunk)
        for packet in vs.encode(None):
            out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
    tmp.rename(dest)
    return dest


def clip_path(cache: Path, name: str) -> Path:
    hold = CLIPS[name][3]
    return cache / f"{name}-x264-{PRESET}-g{GOP}-{FPS}fps{f'-hold{hold}' if hold > 1 else ''}.mp4"


def ensure_clips(data: Path, cache: Path, names: list[str]) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        source, size, seconds, hold = CLIPS[name]
        path = clip_path(cache, name)
        if not path.exists():
            print(f"building {path.name} (once; cached) ...", file=sys.stderr, flush=True)
            build_clip(data / "video" / "real" / source, path, size, seconds, hold)
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------- stand-ins


def install_stand_ins(directory: Path) -> list[str]:
    """Untrained bundles with the real models' cost; returns what was installed."""
    import shutil

    from deepfakescan.detectors.bundle import SHIPPED_DIR

    done = []
    directory.mkdir(parents=True, exist_ok=True)
    try:
        done.append(_lite0_stand_in(directory))
    except ImportError as e:  # no torch: the visual stand-in needs the [train] extra
        print(f"no image stand-in ({e})", file=sys.stderr)
    if (SHIPPED_DIR / "audio.onnx").exists():
        for suffix in (".onnx", ".json"):
            shutil.copy(SHIPPED_DIR / f"audio{suffix}", directory / f"audio{suffix}")
        done.append("audio (shipped)")
    else:
        try:
            done.append(_audio_stand_in(directory))
        except ImportError as e:
            print(f"no audio stand-in ({e})", file=sys.stderr)
    return done


def _audio_stand_in(directory: Path) -> str:
    import hashlib

    import torch

    from deepfakescan import features as AF
    from deepfakescan.training.export import export_onnx
    from deepfakescan.training.nets import AudioResNet

    torch.manual_seed(0)
    path = export_onnx(
        AudioResNet().eval(),
        torch.randn(2, *AF.feature_shape()),
        directory / "audio.onnx",
        input_name="features",
        output_name="logit",
    )
    card = {
        "name": "audio",
        "version": "stand-in",
        "task": "audio-detector",
        "description": "Untrained audio ResNet: speed stand-in, scores mean nothing.",
        "inputs": [
            {
                "name": "features",
                "layout": "NCHW",
                "shape": [None, *AF.feature_shape()],
                "dtype": "float32",
                "preprocessing": AF.feature_params(),
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": {"method": "none"},
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "training": {"sources": [], "command": "benchmarks/bench_video.py --stand-in"},
        "metrics": {},
        "licence": "Apache-2.0",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    (directory / "audio.json").write_text(json.dumps(card, indent=2))
    return "audio (untrained ResNet stand-in)"


def _lite0_stand_in(directory: Path) -> str:
    import hashlib

    import torch

    from deepfakescan.training.export_image import export_onnx
    from deepfakescan.training.image_nets import CamNet, cam_size

    size = 224
    torch.manual_seed(0)
    net = CamNet(pretrained=False).eval()
    path = export_onnx(net, size, directory / "image.onnx")
    card = {
        "name": "image",
        "version": "stand-in",
        "task": "image-detector",
        "description": "Untrained EfficientNet-Lite0 CAM net: speed stand-in, scores mean nothing.",
        "inputs": [
            {
                "name": "image",
                "layout": "NCHW",
                "shape": [None, 3, size, size],
                "dtype": "float32",
                "preprocessing": {
                    "size": size,
                    "margin": 1.3,
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                },
            }
        ],
        "outputs": [{"name": "logits", "kind": "logit"}, {"name": "cam", "kind": "map"}],
        "labels": ["real", "fake"],
        "calibration": {"method": "none"},
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "training": {"sources": [], "command": "benchmarks/bench_video.py --stand-in"},
        "metrics": {"cam_size": cam_size(size)},
        "licence": "Apache-2.0",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    (directory / "image.json").write_text(json.dumps(card, indent=2))
    return "image (untrained Lite0 stand-in)"


# ---------------------------------------------------------------------------- measuring

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import deepfakescan
runs = []
for i in range(int(sys.argv[2]) + 1):
    start = time.perf_counter()
    report = deepfakescan.scan(sys.argv[1])
    wall = time.perf_counter() - start
    runs.append({"wall_s": wall, "cold_s": time.perf_counter() - t0 if i == 0 else None,
                 "timings_ms": report.timings_ms, "verdict": report.verdict,
                 "frames": report.media.frames_sampled, "faces": len(report.faces),
                 "tracks": len(report.tracks), "warnings": report.warnings})
rss_mb = PEAK_RSS_MB
print(json.dumps({"runs": runs, "rss_mb": rss_mb}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)


def measure(path: Path, runs: int, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(runs)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"scan of {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("/work/cache/bench-video"))
    parser.add_argument("--runs", type=int, default=3, help="warm scans per clip (default 3)")
    parser.add_argument("--clips", default=",".join(CLIPS), help=f"subset of {list(CLIPS)}")
    parser.add_argument("--stand-in", action="store_true", help="untrained same-cost models")
    parser.add_argument("--build-only", action="store_true", help="build the clips and stop")
    args = parser.parse_args(argv)

    names = [n for n in args.clips.split(",") if n]
    unknown = set(names) - set(CLIPS)
    if unknown:
        parser.error(f"unknown clips {sorted(unknown)}; available = {list(CLIPS)}")
    paths = ensure_clips(args.data, args.cache, names)
    if args.build_only:
        return 0
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if args.stand_in:
            installed = install_stand_ins(Path(tmp))
            env["DEEPFAKESCAN_MODEL_DIR"] = tmp
            print(f"stand-in models: {', '.join(installed) or 'none'}")
        rows = []
        for name in names:
            result = measure(paths[name], args.runs, env)
            warm = result["runs"][1:] or result["runs"]
            row = {"clip": name, "runs": len(warm)}
            row["total_s"] = statistics.median(r["wall_s"] for r in warm)
            row["cold_s"] = result["runs"][0]["cold_s"]
            for stage in STAGES[:-1]:
                row[stage] = statistics.median(r["timings_ms"].get(stage, 0.0) for r in warm)
            row["rss_mb"] = result["rss_mb"]
            last = warm[-1]
            row["verdict"] = last["verdict"]
            row["detail"] = (
                f"{last['frames']} frames, {last['faces']} faces, {last['tracks']} tracks"
            )
            rows.append(row)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    head = ["clip", "total s", "target", "cold s"] + [f"{s} ms" for s in STAGES[:-1]]
    head += ["peak RSS MB", "verdict", "detail"]
    print(" | ".join(head))
    for r in rows:
        cells = [
            r["clip"],
            f"{r['total_s']:.2f}",
            f"<= {TARGETS_S[r['clip']]:g}",
            f"{r['cold_s']:.2f}",
        ]
        cells += [f"{r[s]:.0f}" for s in STAGES[:-1]]
        cells += [f"{r['rss_mb']:.0f} (<= {RSS_TARGET_MB})", r["verdict"], r["detail"]]
        print(" | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
