"""Video detector quality: evaluation clips and self-blended fakes of them, scored end to end.

    python benchmarks/video_quality.py --data ../shared/data [--out ../cache/video-eval]

1. Every evaluation clip of ``video/real`` (``video.mp4`` and ``WDA_*.mp4``, never used in
   training) is decoded frame by frame. Its **real** version is re-encoded as is; its **fake**
   version has every detected face self-blended (``training/image/synth.self_blend``: the face
   pasted onto a colour-shifted, slightly warped copy of itself, inside a soft landmark mask),
   with the same random draws in every frame, so the manipulation is consistent over time as a
   face swap's is. Both versions go through the same chain (H.264 libx264 preset medium, CRF
   23, the source frame rate; AAC sound re-encoded), so compression cannot tell them apart.
2. A manifest (``path,label,family,source``) is written beside them, and
   ``deepfakescan eval`` scores it with the installed models: video-level ROC AUC, and the
   real clips' false-positive rate at the model's threshold, with counts and bootstrap
   intervals. Clips where the scan found nothing to judge are counted as unscored.

Everything is written under ``--out`` (outside the repository: these are frames of real people
and must never be committed). Clips already built are reused; ``--rebuild`` makes them again.
Needs the ``image`` bundle (self-blends are judged by faces); without it the script builds the
clips and says the scores are pending.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av

from deepfakescan.training.paths import cache_dir

CRF = "23"
PRESET = "medium"


def clip_names(data: Path) -> list[Path]:
    folder = data / "video" / "real"
    return [folder / "video.mp4", *sorted(folder.glob("WDA_*.mp4"))]


def rebuild(source: Path, dest: Path, *, fake: bool, seed: int) -> int:
    """Re-encode ``source`` to ``dest`` (self-blending faces when ``fake``); returns faces done."""
    from deepfakescan.config import Settings
    from deepfakescan.faces import detect_faces
    from deepfakescan.training.image.synth import self_blend_faces

    settings = Settings.from_env()
    blended = 0
    tmp = dest.with_suffix(".part")
    with av.open(str(source)) as src, av.open(str(tmp), "w", format="mp4") as out:
        vin = src.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = (
            vin.codec_context.width,
            vin.codec_context.height,
            "yuv420p",
        )
        vs.codec_context.options = {"preset": PRESET, "crf": CRF}
        ain = src.streams.audio[0] if src.streams.audio else None
        aus = None
        if ain is not None:
            aus = out.add_stream("aac", rate=ain.codec_context.sample_rate, layout="mono")
            resampler = av.AudioResampler(
                format="fltp", layout="mono", rate=ain.codec_context.sample_rate
            )
        for i, frame in enumerate(src.decode(vin)):
            rgb = frame.to_ndarray(format="rgb24")
            if fake:
                faces = detect_faces(rgb, settings=settings)
                blended += len(faces)
                rgb = self_blend_faces(rgb, faces, seed)
            new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            new.pts = i
            new.time_base = 1 / Fraction(rate)
            for packet in vs.encode(new):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if ain is not None:
            src.seek(0)
            for frame in src.decode(ain):
                frame.pts = None
                for resampled in resampler.resample(frame):
                    for packet in aus.encode(resampled):
                        out.mux(packet)
            for packet in aus.encode(None):
                out.mux(packet)
    tmp.rename(dest)
    return blended


def build(data: Path, out: Path, rebuild_all: bool) -> Path:
    rows = []
    for source in clip_names(data):
        seed = zlib.crc32(source.name.encode())
        for label in ("real", "fake"):
            dest = out / label / source.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if rebuild_all or not dest.exists():
                faces = rebuild(source, dest, fake=label == "fake", seed=seed)
                done = f", {faces} face crops blended" if label == "fake" else ""
                print(f"built {label}/{source.name}{done}", file=sys.stderr, flush=True)
            family = "self_blend" if label == "fake" else "real"
            rows.append((f"{label}/{source.name}", label, family, source.stem))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "family", "source"])
        writer.writerows(rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=cache_dir() / "video-eval")
    parser.add_argument("--rebuild", action="store_true", help="make the clips again")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)

    from deepfakescan.config import Settings
    from deepfakescan.detectors.bundle import list_models

    manifest = build(args.data, args.out, args.rebuild)
    print(f"manifest: {manifest}")
    installed = {m.name for m in list_models(Settings.from_env()) if m.valid}
    if "image" not in installed:
        print("image bundle not installed: scores pending (the clips and manifest are ready)")
        return 0
    command = [
        sys.executable,
        "-c",
        "from deepfakescan.cli import main; raise SystemExit(main())",
        "eval",
        str(manifest),
        "--out",
        str(args.out / "results"),
        "--bootstrap",
        str(args.bootstrap),
    ]
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
