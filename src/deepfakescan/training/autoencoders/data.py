"""The whole-image model's split manifests, its images, and the autoencoders' training patches.

Manifests (``data/manifests/synthetic_{train,val,test}.csv``, written by
``tools/make_synthetic_manifests.py`` through :mod:`..manifest`) list files relative to the
data root, columns ``path,label,source,frame`` (``frame``: the index of one of the
``FRAMES_PER_CLIP`` frames a scan samples from a training clip, empty for stills). Sources:

- ``photo-real`` and ``sd-fake`` (``images/``): split here, by file, seeded (70/15/15).
- ``ffhq-real``, ``ciplab-real``, ``stylegan2-fake`` and ``video-real``: the splits of the face
  model's manifests (``image_*.csv``) are reused row for row, so no face and no clip is in
  training for one image model and in test for the other. ``ciplab-edited-fake`` is left out
  (hand edits of a face are not a whole-image generator's trace).

The autoencoders train on random patches of the *train* split's reals, every real source drawn
equally often, so each real source's reconstructions look alike whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image.data import (
    FRAMES_PER_CLIP,
    IMAGE_SUFFIXES,
    SPLITS,
    ManifestRow,
    _split_groups,
    video_frames,
)
from ..manifest import FrameKey, read_manifest, write_manifest

MANIFEST = "synthetic_{split}.csv"
"""File name of a split's manifest in the manifest directory."""
OWN_SOURCES = {"images/photo-real": 0, "images/sd-fake": 1}
"""Folders split here (relative to the data root) and their label."""
SHARED_SOURCES = ("ffhq-real", "ciplab-real", "stylegan2-fake", "video-real")
"""Sources taken with their split from the face model's manifests."""
REAL, FAKE = 0, 1


@dataclass(frozen=True)
class SyntheticRow(FrameKey):
    """One file (or one video frame) of a split."""

    path: str
    """Relative to the data root, with forward slashes."""
    label: int
    source: str
    frame: int | None = None


def plan_manifests(
    data_root: Path, face_splits: Mapping[str, Sequence[ManifestRow]], *, seed: int = 0
) -> dict[str, list[SyntheticRow]]:
    """Seeded train/val/test rows: ``images/`` split by file, face sources as ``face_splits``.

    Lists only names (no file is decoded), so the result depends on the folder listing, the
    face manifests and the seed alone.
    """
    splits: dict[str, list[SyntheticRow]] = {name: [] for name in SPLITS}
    for folder, label in OWN_SOURCES.items():
        files = sorted(
            p.relative_to(data_root).as_posix()
            for p in (Path(data_root) / folder).iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise FileNotFoundError(f"no images in {Path(data_root) / folder}")
        source = folder.split("/", 1)[1]
        for path, split in _split_groups(files, seed, folder).items():
            splits[split].append(SyntheticRow(path, label, source))
    for split in SPLITS:
        splits[split] += [
            SyntheticRow(r.path, r.label, r.source, r.frame)
            for r in face_splits[split]
            if r.source in SHARED_SOURCES
        ]
        splits[split].sort(key=SyntheticRow.sort_key)
    return splits


def manifest_path(manifest_dir: Path, split: str) -> Path:
    return Path(manifest_dir) / MANIFEST.format(split=split)


def write_splits(manifest_dir: Path, splits: Mapping[str, Sequence[SyntheticRow]]) -> list[Path]:
    """Write every split's manifest (rows in the committed order)."""
    return [
        write_manifest(
            manifest_path(manifest_dir, split),
            sorted(splits[split], key=SyntheticRow.sort_key),
            SyntheticRow,
        )
        for split in SPLITS
    ]


def read_split(manifest_dir: Path, split: str) -> list[SyntheticRow]:
    return read_manifest(manifest_path(manifest_dir, split), SyntheticRow)


def reals(rows: Iterable[SyntheticRow]) -> list[SyntheticRow]:
    return [r for r in rows if r.label == REAL]


# ---------------------------------------------------------------------------- images


def read_still(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) after EXIF orientation, as a scan decodes it."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def iter_images(rows: Sequence[SyntheticRow], data_root: Path):
    """``(row, rgb)`` for every row, each clip decoded once (frames as a scan samples them)."""
    by_clip: dict[str, list[SyntheticRow]] = defaultdict(list)
    for r in rows:
        if r.frame is None:
            yield r, read_still(Path(data_root) / r.path)
        else:
            by_clip[r.path].append(r)
    for clip, clip_rows in by_clip.items():
        frames = video_frames(Path(data_root) / clip, {r.frame for r in clip_rows}, FRAMES_PER_CLIP)
        for r in clip_rows:
            if r.frame in frames:
                yield r, frames[r.frame]


def load_by_source(rows: Sequence[SyntheticRow], data_root: Path) -> dict[str, list[np.ndarray]]:
    """Every row's image, grouped by source (sources in sorted order)."""
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for r, rgb in iter_images(rows, data_root):
        out[r.source].append(rgb)
    return {k: out[k] for k in sorted(out)}


# ---------------------------------------------------------------------------- tensors


def to_unit(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], the nets' input and output range."""
    return (np.transpose(rgb, (2, 0, 1)).astype(np.float32) / 127.5) - 1.0


def to_rgb(chw: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8, rounded and clipped."""
    x = np.clip((np.asarray(chw, dtype=np.float32) + 1.0) * 127.5, 0, 255)
    return np.transpose(np.rint(x).astype(np.uint8), (1, 2, 0))


def random_patch(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` px square at native pixels (reflect-padded when the image is smaller),
    flipped left-right half of the time."""
    h, w = rgb.shape[:2]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        rgb = np.pad(
            rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge"
        )
        h, w = rgb.shape[:2]
    y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    patch = rgb[y : y + size, x : x + size]
    return patch[:, ::-1] if rng.random() < 0.5 else patch


def patch_batch(
    images: Mapping[str, Sequence[np.ndarray]], batch: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """(batch, 3, size, size) float32 patches: source uniform, then image, then position."""
    sources = [s for s in images if images[s]]
    out = np.empty((batch, 3, size, size), np.float32)
    for i in range(batch):
        pool = images[sources[int(rng.integers(len(sources)))]]
        out[i] = to_unit(random_patch(pool[int(rng.integers(len(pool)))], size, rng))
    return out


def center_patch(rgb: np.ndarray, size: int, multiple: int) -> np.ndarray:
    """The central ``size`` px square (or the whole side when shorter), both sides cut down to
    a multiple of ``multiple`` (the validation crops)."""
    h, w = rgb.shape[:2]
    ch, cw = (min(size, s) // multiple * multiple for s in (h, w))
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y : y + ch, x : x + cw]


__all__ = [
    "MANIFEST",
    "OWN_SOURCES",
    "SHARED_SOURCES",
    "SyntheticRow",
    "center_patch",
    "iter_images",
    "load_by_source",
    "manifest_path",
    "patch_batch",
    "plan_manifests",
    "random_patch",
    "read_split",
    "read_still",
    "reals",
    "to_rgb",
    "to_unit",
    "write_splits",
]
