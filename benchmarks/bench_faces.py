"""Face detector quality and speed: one face per portrait, none on face-free photos, time per image.

    python benchmarks/bench_faces.py --data ../shared/data [--threads 2] [--runs 20]

Prints one table:

- ``ffhq-real``, ``portraits-real``: share of images (one person each) where exactly one face
  is found, with the counts of none and of two or more;
- ``face-free``: scikit-image photos without a person (coffee, chelsea, rocket, ...), each also
  mirrored and turned by 90/180/270 degrees: share of images with at least one detection;
- time: median wall time of ``detect_photo_faces`` (faces searched as a photo scan does) on
  a 1024x1024 photo (scikit-image's astronaut, upscaled), warm, with ``--threads`` ONNX
  Runtime threads.

The data under ``--data`` is read in place and never copied. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import interleaved, load_average, median, print_table
from PIL import Image

from deepfakescan.config import Settings
from deepfakescan.faces import detect_photo_faces

FACE_SETS = ("ffhq-real", "portraits-real")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FACE_FREE = (
    "coffee",
    "chelsea",
    "cat",
    "rocket",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "text",
    "horse",
    "brick",
    "grass",
    "gravel",
    "logo",
    "colorwheel",
    "retina",
    "clock",
    "checkerboard",
    "cell",
    "microaneurysms",
    "binary_blobs",
)
"""scikit-image photos with no human face (astronaut and camera show people, so are left out)."""


def face_free_images() -> dict[str, np.ndarray]:
    """Each face-free scikit-image photo as uint8 RGB, with mirrored and rotated copies."""
    import skimage.data

    images = {}
    for name in FACE_FREE:
        try:
            image = np.asarray(getattr(skimage.data, name)())
        except Exception as e:  # some are downloaded on first use; skip when offline
            print(f"skipping {name}: {type(e).__name__}", file=sys.stderr)
            continue
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        image = np.ascontiguousarray(image[:, :, :3])
        images[name] = image
        images[f"{name}/mirrored"] = image[:, ::-1]
        for k in (1, 2, 3):
            images[f"{name}/rot{90 * k}"] = np.rot90(image, k)
    return images


def count_faces(paths: list[Path], settings: Settings) -> list[int]:
    counts = []
    for path in paths:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        counts.append(len(detect_photo_faces(rgb, settings)))
    return counts


def time_detection(settings: Settings, runs: int) -> float:
    """Median milliseconds for one 1024x1024 photo with a face, after one warm-up run."""
    import skimage.data

    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1024, 1024)))
    times = interleaved({"detect": lambda: detect_photo_faces(photo, settings)}, runs)
    return median(times["detect"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="name every miss")
    args = parser.parse_args(argv)
    settings = Settings.from_env(threads=args.threads)

    rows = []
    for name in FACE_SETS:
        folder = args.data / "faces" / name
        paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            print(f"no images in {folder}", file=sys.stderr)
            continue
        counts = count_faces(paths, settings)
        one = sum(c == 1 for c in counts)
        none = sum(c == 0 for c in counts)
        rows.append(
            (
                f"{name}: exactly one face",
                len(paths),
                one,
                f"none {none}, 2+ {len(paths) - one - none}",
            )
        )
        if args.verbose:
            for path, c in zip(paths, counts, strict=True):
                if c != 1:
                    print(f"  {path.name}: {c} faces", file=sys.stderr)

    free = face_free_images()
    hits = {name: len(detect_photo_faces(image, settings)) for name, image in free.items()}
    false = [name for name, c in hits.items() if c]
    originals = [n for n in free if "/" not in n]
    rows.append(
        (
            "face-free photos: >= 1 detection",
            len(originals),
            sum(hits[n] > 0 for n in originals),
            "originals",
        )
    )
    rows.append(
        ("face-free + mirrored/rotated: >= 1", len(free), len(false), ", ".join(false) or "-")
    )

    ms = time_detection(settings, args.runs)

    cells = [[label, n, count, f"{100 * count / n:.1f}%", notes] for label, n, count, notes in rows]
    print_table(["set", "n", "count", "share", "notes"], cells)
    print(
        f"detection time, 1024x1024 photo: median {ms:.0f} ms over {args.runs} runs, "
        f"{args.threads} threads; {load_average()}"
    )


if __name__ == "__main__":
    main()
