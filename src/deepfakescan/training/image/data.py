"""Image training data: split manifests, the face-crop cache, and the torch datasets.

Manifests (``data/manifests/image_{train,val,test}.csv``, read and written by
:mod:`..manifest`) list *files*, relative to the data root, with columns
``path,label,family,source,frame``: ``frame`` is
empty for still images and, for training videos, the index of one of ``FRAMES_PER_CLIP`` frames
sampled by :class:`deepfakescan.media.video.FrameSampler` (the same sampler as a scan). Splits
are seeded and by identity where the data allow: FFHQ and StyleGAN2 files are independent
people, so by file; video frames by clip (all frames of a clip in one split); CIPLAB names
carry no identity, so by file as well, and a person may appear in two splits there.

Self-blended fakes are not in the manifests: they are made on the fly from the real faces of the
same split, so train/val/test stay disjoint for them too.

Face crops are cached (``$DEEPFAKESCAN_CACHE_DIR/image/crops``, outside git, never committed):
each file is run once through :func:`deepfakescan.faces.detect_faces` and
:func:`deepfakescan.faces.align_face` with the margin a scan uses, so training and inference
crop identically. Files where no face is found are recorded as such and left out of training
(a scan calls them ``uncertain``); their count is logged per source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..manifest import FrameKey
from .synth import EVAL_CHAIN, TRAIN_CHAIN, ChainConfig, random_chain, self_blend

log = logging.getLogger(__name__)

CACHE_SIZE = 224
"""Side of the cached aligned crops; the random chain crops and resizes from these."""
FRAMES_PER_CLIP = 32
"""Frames sampled from each training clip (spread evenly over its duration)."""
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SPLITS = ("train", "val", "test")

REAL, BLEND, GAN, EDITED = "real", "blend", "gan", "hand-edited"
FAMILIES = (BLEND, GAN, EDITED)
"""Families the manipulation classifier names (columns of its output), in this order."""

SOURCES: dict[str, tuple[int, str]] = {
    "faces/ffhq-real": (0, REAL),
    "faces/ciplab-real": (0, REAL),
    "faces/stylegan2-fake": (1, GAN),
    "faces/ciplab-edited-fake": (1, EDITED),
}
"""Still-image folders (relative to the data root) used for training: label and family."""
VIDEO_FOLDER = "video/real"
TRAIN_CLIP_PATTERNS = ("[1-5].mp4", "d*.mp4")
"""Only these clips may be used for training; ``video.mp4`` and ``WDA_*`` are evaluation-only."""
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SBI_SOURCE = "self-blended"
"""Source name of the on-the-fly fakes in logs and metrics."""


@dataclass(frozen=True)
class ManifestRow(FrameKey):
    """One file (or one video frame) of a split."""

    path: str
    """Relative to the data root, with forward slashes."""
    label: int
    family: str
    source: str
    frame: int | None = None


# ---------------------------------------------------------------------------- manifests


def _split_groups(groups: Sequence[str], seed: int, salt: str) -> dict[str, str]:
    """Assign each group to train/val/test by a seeded shuffle, in ``SPLIT_FRACTIONS``."""
    groups = sorted(set(groups))
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    order = [groups[i] for i in rng.permutation(len(groups))]
    n = len(order)
    n_val = max(1, round(n * SPLIT_FRACTIONS[1])) if n >= 3 else 0
    n_test = max(1, round(n * SPLIT_FRACTIONS[2])) if n >= 3 else 0
    n_train = n - n_val - n_test
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(order, names, strict=True))


def make_manifests(
    data_root: Path, *, seed: int = 0, frames_per_clip: int = FRAMES_PER_CLIP
) -> dict[str, list[ManifestRow]]:
    """Seeded train/val/test rows for every training source under ``data_root``.

    Still images are split by file within each source; video frames by clip (only the clips
    matched by ``TRAIN_CLIP_PATTERNS``). Lists only names: no file is decoded.
    """
    splits: dict[str, list[ManifestRow]] = {name: [] for name in SPLITS}
    for folder, (label, family) in SOURCES.items():
        files = sorted(
            p.relative_to(data_root).as_posix()
            for p in (data_root / folder).iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise FileNotFoundError(f"no images in {data_root / folder}")
        assignment = _split_groups(files, seed, folder)
        source = folder.split("/", 1)[1]
        for path in files:
            splits[assignment[path]].append(ManifestRow(path, label, family, source))
    clips = sorted(
        {
            p.relative_to(data_root).as_posix()
            for pattern in TRAIN_CLIP_PATTERNS
            for p in (data_root / VIDEO_FOLDER).glob(pattern)
        }
    )
    assignment = _split_groups(clips, seed, VIDEO_FOLDER)
    for clip in clips:
        for frame in range(frames_per_clip):
            splits[assignment[clip]].append(ManifestRow(clip, 0, REAL, "video-real", frame))
    return splits


def leave_one_out(
    splits: dict[str, list[ManifestRow]], source: str
) -> dict[str, list[ManifestRow]]:
    """Splits for the leave-one-source-out run: ``source`` out of train and val, and *all* its
    files (never seen in training) plus the usual test reals in test."""
    held = [row for name in SPLITS for row in splits[name] if row.source == source]
    if not held:
        raise ValueError(f"no rows of source {source!r}")
    return {
        "train": [r for r in splits["train"] if r.source != source],
        "val": [r for r in splits["val"] if r.source != source],
        "test": [r for r in splits["test"] if r.label == 0] + held,
    }


# ---------------------------------------------------------------------------- crop cache


@dataclass(frozen=True)
class FaceCrop:
    """A cached aligned face crop with its manifest row."""

    row: ManifestRow
    image: np.ndarray
    """(CACHE_SIZE, CACHE_SIZE, 3) uint8 RGB, eyes level, margin 1.3 (as a scan crops)."""
    landmarks: np.ndarray
    """(5, 2) float32 landmarks in crop pixels (for the self-blend mask)."""


def _cache_file(cache_dir: Path, key: str, size: int) -> Path:
    digest = hashlib.sha1(key.encode()).hexdigest()
    return cache_dir / f"s{size}" / digest[:2] / f"{digest}.npz"


def _crop_one(rgb: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Largest-confident face of an image, aligned: (crop, landmarks in crop, confidence)."""
    from ...faces import align_face, detect_faces

    faces = detect_faces(rgb)
    if not faces:
        return None
    # the main subject: the biggest face among the confident ones
    face = max(faces, key=lambda f: (f.confidence > 0.9, f.box[2] * f.box[3]))
    aligned = align_face(rgb, face, size=size)
    return aligned.image, aligned.to_crop(face.landmarks).astype(np.float32), face.confidence


def _read_still(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def video_frames(path: Path, wanted: set[int], frames_per_clip: int) -> dict[int, np.ndarray]:
    """The ``wanted`` frames of a clip, sampled exactly as a scan of ``frames_per_clip`` would."""
    from ...config import Settings
    from ...media.source import MediaSource
    from ...media.video import FrameSampler

    settings = dataclasses.replace(Settings.from_env(), max_video_frames=max(frames_per_clip, 1))
    sampler = FrameSampler(MediaSource.from_any(path, settings), frames_per_clip, settings)
    return {f.index: f.rgb for f in sampler if f.index in wanted}


def build_crop_cache(
    rows: Sequence[ManifestRow],
    data_root: Path,
    cache_dir: Path,
    *,
    size: int = CACHE_SIZE,
    frames_per_clip: int = FRAMES_PER_CLIP,
    progress: bool = True,
) -> Counter:
    """Detect, align and cache every row's face (skipping rows already cached).

    Returns counts per ``(source, "face" | "no face")``. A cache entry with no face is kept, so a
    file is searched once.
    """
    counts: Counter = Counter()
    todo = [r for r in rows if not _cache_file(cache_dir, r.key, size).exists()]
    by_clip: dict[str, list[ManifestRow]] = defaultdict(list)
    stills = []
    for r in todo:
        (by_clip[r.path] if r.frame is not None else stills).append(r)

    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="crops", unit="face", disable=not progress)
    for r in stills:
        _store(cache_dir, r, size, _crop_one(_read_still(data_root / r.path), size))
        bar.update(1)
    for clip, clip_rows in by_clip.items():
        frames = video_frames(data_root / clip, {r.frame for r in clip_rows}, frames_per_clip)
        for r in clip_rows:
            rgb = frames.get(r.frame)
            _store(cache_dir, r, size, None if rgb is None else _crop_one(rgb, size))
            bar.update(1)
    bar.close()
    for r in rows:
        with np.load(_cache_file(cache_dir, r.key, size)) as z:
            counts[(r.source, "face" if bool(z["found"]) else "no face")] += 1
    return counts


def _store(cache_dir: Path, row: ManifestRow, size: int, found) -> None:
    path = _cache_file(cache_dir, row.key, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    if found is None:
        np.savez(tmp, found=False, key=row.key)
    else:
        image, landmarks, confidence = found
        np.savez(
            tmp, found=True, key=row.key, image=image, landmarks=landmarks, confidence=confidence
        )
    tmp.replace(path)  # atomic: an interrupted run never leaves a half-written entry


def load_crops(
    rows: Sequence[ManifestRow], cache_dir: Path, *, size: int = CACHE_SIZE
) -> tuple[list[FaceCrop], Counter]:
    """Cached crops of ``rows`` (faces only) and per-source counts of rows with no face.

    Raises ``FileNotFoundError`` naming the command to run when a row is not cached yet.
    """
    crops, missing = [], Counter()
    for r in rows:
        path = _cache_file(cache_dir, r.key, size)
        if not path.exists():
            raise FileNotFoundError(
                f"no cached crop for {r.key}; run `deepfakescan train image --prepare-only` first"
            )
        with np.load(path) as z:
            if not bool(z["found"]):
                missing[r.source] += 1
                continue
            crops.append(FaceCrop(r, z["image"].copy(), z["landmarks"].astype(np.float32)))
    return crops, missing


# ---------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Sample:
    """One planned training/evaluation sample: which crop, and whether to self-blend it."""

    crop: int
    """Index into the crop list."""
    blend: bool


def detector_target(crop: FaceCrop, blend: bool) -> int:
    """1 (fake) for self-blends and collected fakes, 0 for reals."""
    return 1 if blend else crop.row.label


def family_target(crop: FaceCrop, blend: bool) -> int:
    """Column of :data:`FAMILIES` for a fake sample (self-blends are ``blend``)."""
    return FAMILIES.index(BLEND if blend else crop.row.family)


def sample_source(crop: FaceCrop, blend: bool) -> str:
    """Source name used to balance and to report: ``self-blended`` for on-the-fly fakes."""
    return SBI_SOURCE if blend else crop.row.source


def plan_epoch(
    crops: Sequence[FaceCrop],
    weights: dict[str, float],
    n: int,
    rng: np.random.Generator,
    *,
    blend_from_real: bool = True,
) -> list[Sample]:
    """``n`` samples drawn so that each source gets its share ``weights[source]``.

    ``weights`` maps source names (``self-blended`` included) to relative shares; a source
    absent from ``weights`` is not drawn. Inside a source, crops are drawn uniformly with
    replacement. Self-blends are drawn from the real crops.
    """
    pools: dict[str, list[Sample]] = defaultdict(list)
    for i, c in enumerate(crops):
        pools[c.row.source].append(Sample(i, False))
        if blend_from_real and c.row.label == 0:
            pools[SBI_SOURCE].append(Sample(i, True))
    names = [s for s in sorted(weights) if pools.get(s) and weights[s] > 0]
    if not names:
        raise ValueError(f"none of the sources {sorted(weights)} has crops")
    share = np.array([weights[s] for s in names], dtype=np.float64)
    counts = rng.multinomial(n, share / share.sum())
    plan = []
    for name, count in zip(names, counts, strict=True):
        pool = pools[name]
        plan += [pool[j] for j in rng.integers(len(pool), size=count)]
    return [plan[j] for j in rng.permutation(len(plan))]


def fixed_eval_plan(crops: Sequence[FaceCrop], *, blend_from_real: bool = True) -> list[Sample]:
    """Every crop once, plus one self-blend of every real crop (for validation and test)."""
    plan = [Sample(i, False) for i in range(len(crops))]
    if blend_from_real:
        plan += [Sample(i, True) for i, c in enumerate(crops) if c.row.label == 0]
    return plan


def render_sample(
    crop: FaceCrop,
    blend: bool,
    size: int,
    rng: np.random.Generator,
    chain: ChainConfig = TRAIN_CHAIN,
) -> np.ndarray:
    """The model's input image for one sample: self-blend if asked, then the random chain."""
    image = crop.image
    if blend:
        image, _ = self_blend(image, crop.landmarks, rng)
    return random_chain(image, size, rng, chain)


def to_tensor_layout(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 normalised as the card says (scaled to [0, 1])."""
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class FaceDataset:
    """A map-style dataset over a plan: ``(image, target, index)`` per sample.

    Sample ``i`` of a plan is rendered with a generator seeded by ``(seed, epoch, i)``, so an
    epoch is reproducible whatever the number of workers, and a resumed run renders exactly
    the samples it would have. ``task`` picks the target: ``detector`` (0/1) or ``family``.
    """

    def __init__(
        self,
        crops: Sequence[FaceCrop],
        plan: Sequence[Sample],
        *,
        size: int,
        task: str,
        seed: int,
        epoch: int,
        chain: ChainConfig = TRAIN_CHAIN,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if task not in ("detector", "family"):
            raise ValueError(f"task must be 'detector' or 'family', got {task!r}")
        self.crops, self.plan = crops, list(plan)
        self.size, self.task, self.seed, self.epoch = size, task, seed, epoch
        self.chain, self.mean, self.std = chain, mean, std

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        s = self.plan[i]
        crop = self.crops[s.crop]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        rgb = render_sample(crop, s.blend, self.size, rng, self.chain)
        target = (
            detector_target(crop, s.blend)
            if self.task == "detector"
            else family_target(crop, s.blend)
        )
        return to_tensor_layout(rgb, self.mean, self.std), target, i


__all__ = [
    "CACHE_SIZE",
    "EVAL_CHAIN",
    "FAMILIES",
    "FRAMES_PER_CLIP",
    "SBI_SOURCE",
    "FaceCrop",
    "FaceDataset",
    "ManifestRow",
    "Sample",
    "build_crop_cache",
    "detector_target",
    "family_target",
    "fixed_eval_plan",
    "leave_one_out",
    "load_crops",
    "make_manifests",
    "plan_epoch",
    "render_sample",
    "sample_source",
    "to_tensor_layout",
]
