"""Whole-image training data: manifest rows, epoch plans and the chain every sample goes through.

Rows are files with at least ``path``, ``label`` (0 real, 1 fake), ``source`` and a split
(a column, or the manifest's name): the committed ``synthetic_<split>.csv`` (paths relative to
the data root; video rows name a clip and a ``frame``, cached once as a PNG by
:func:`cache_frames`) and the autoencoders' ``fakes/<instance>/fakes.csv`` (paths relative to
``fakes/``; ``real_source`` names the real source a reconstruction was made from, so that its
validation AUC is measured against the reals it came from).

The pitfall this module exists for: our real and fake sources differ in content (photos vs
art), format (JPEG/PNG vs WebP) and resolution, and a detector left alone learns those. So every
training sample of every class goes through the same random chain (:func:`draw_chain` never
sees the image or its label): a crop at native pixels taken by the serving sampler
(:func:`deepfakescan.detectors.synthetic.sample_crops`), a random resize of 0.5-1.5x, light blur
and noise, a JPEG or WebP re-encode at quality 60-100, a flip, then a final native crop of
:data:`CROP` px (reflect-padded when smaller). Every sample is a pure function of
``(seed, epoch, index)``, so a cut run resumes on exactly the samples it would have seen.

Validation and test images are scored as served: ``n`` crops of the decoded file from
``sample_crops`` with :data:`SERVE_SEED`, no chain, mean logit over the crops (``n`` is
:data:`SERVE_CROPS`, the scan's number, for calibration and test metrics; fewer for the
per-epoch validation).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ...detectors.synthetic import CROP, N_CROPS, sample_crops
from ..image.data import to_tensor_layout

SERVE_CROPS = N_CROPS
"""Crops per image when an image is scored as a scan scores it (calibration, test metrics)."""
SERVE_SEED = 0
"""Seed of :func:`sample_crops` when scoring as served."""
REQUIRED_COLUMNS = ("path", "label", "source")
SPLITS = ("train", "val", "test")
RESAMPLERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
CODECS = ("JPEG", "WEBP")
FIXED_PAIRS = {"sd-fake": ("photo-real",), "stylegan2-fake": ("ffhq-real",)}
"""Validation pairs of collected fakes: each against the reals of its kind (photos, portraits),
so that neither art vs photo nor the file format can score."""
RECONSTRUCTION_PREFIX = "ae-"
"""Sources of autoencoder reconstructions (``ae-<decoder>[-<instance>]``)."""


@dataclass(frozen=True)
class ImageRow:
    """One file (or one video frame) of a split."""

    path: str
    label: int
    source: str
    split: str
    origin: str = ""
    """For a reconstruction: the real source it was made from (empty otherwise)."""
    frame: int | None = None
    """A video frame's index (as a scan samples :data:`FRAMES_PER_CLIP` frames); None: a still."""


def read_rows(path: Path, split: str | None = None) -> list[ImageRow]:
    """Rows of a manifest CSV with at least ``path``, ``label`` and ``source`` (others ignored).

    The split is the ``split`` column or, for the committed ``synthetic_<split>.csv`` that have
    none, ``split``; the origin is the ``origin`` or ``real_source`` column (the fakes' manifests
    of ``training/autoencoders``).
    """
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames or ()
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing or ("split" not in names and split is None):
            raise ValueError(f"{path}: missing columns {missing or ['split']}")
        return [
            ImageRow(
                r["path"],
                int(r["label"]),
                r["source"],
                r.get("split") or split or "",
                r.get("origin") or r.get("real_source") or "",
                # a reconstruction's ``frame`` is its real's; its own file is a still
                int(r["frame"]) if r.get("frame") and "real" not in names else None,
            )
            for r in reader
        ]


def matches(source: str, pattern: str | None) -> bool:
    """Whether ``source`` is ``pattern`` or matches it as a glob (``ae-vae*``)."""
    return pattern is not None and fnmatch.fnmatchcase(source, pattern)


def split_rows(rows: Sequence, leave_out: str | None = None) -> dict[str, list]:
    """Rows by split; with ``leave_out`` (a source or a glob), its rows leave train and val and
    *all* of them (never seen in training) join the test reals in test."""
    out: dict[str, list] = {name: [r for r in rows if r.split == name] for name in SPLITS}
    if leave_out is None:
        return out
    held = [r for r in rows if matches(r.source, leave_out)]
    if not held:
        raise ValueError(f"no rows of source {leave_out!r}")
    return {
        "train": [r for r in out["train"] if not matches(r.source, leave_out)],
        "val": [r for r in out["val"] if not matches(r.source, leave_out)],
        "test": [r for r in out["test"] if r.label == 0 and not matches(r.source, leave_out)]
        + held,
    }


def frame_file(row, frames_dir: Path) -> Path:
    """Where a video row's frame is cached as a lossless PNG (see :func:`cache_frames`)."""
    return Path(frames_dir) / f"{row.path.replace('/', '__')}_f{row.frame}.png"


def cache_frames(rows: Sequence, data_root: Path, frames_dir: Path) -> int:
    """Decode the video rows' frames (sampled as a scan samples them) into ``frames_dir`` once;
    returns how many were written. A training sample then reads a PNG, not a clip."""
    from ..image.data import FRAMES_PER_CLIP, video_frames

    todo = defaultdict(set)
    for r in rows:
        if r.frame is not None and not frame_file(r, frames_dir).is_file():
            todo[r.path].add(r.frame)
    written = 0
    for clip, wanted in sorted(todo.items()):
        for index, rgb in video_frames(Path(data_root) / clip, wanted, FRAMES_PER_CLIP).items():
            out = frame_file(ImageRow(clip, 0, "", "", frame=index), frames_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(out.with_suffix(".tmp.png"))
            out.with_suffix(".tmp.png").replace(out)
            written += 1
    return written


def resolve_paths(rows: Sequence, roots: Sequence[Path], frames_dir: Path | None = None) -> list:
    """Each row's file: a video row's cached frame, an absolute path as given, else the path
    under the first root that holds it."""
    found, missing = [], []
    for r in rows:
        if getattr(r, "frame", None) is not None and frames_dir is not None:
            candidates = [frame_file(r, frames_dir)]
        elif Path(r.path).is_absolute():
            candidates = [Path(r.path)]
        else:
            candidates = [Path(d) / r.path for d in roots]
        hit = next((p for p in candidates if p.is_file()), None)
        (found.append(hit) if hit is not None else missing.append(str(candidates[0])))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} files not found (roots {[str(d) for d in roots]}), e.g. "
            f"{missing[:3]}; video frames are cached by --prepare-only"
        )
    return found


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8, decoded exactly as a scan decodes it (EXIF turn, alpha on white)."""
    from ...config import Settings
    from ...media.image import load_image
    from ...media.source import MediaSource

    settings = Settings.from_env()
    return load_image(MediaSource.from_any(Path(path), settings), settings).rgb


# ---------------------------------------------------------------------------- epoch plans


def source_shares(weights: dict[str, float], sources: Sequence[str]) -> dict[str, float]:
    """Share of each present source: a key names a source or a glob (``ae-*``) whose share is
    split evenly over the present sources it matches (an exact name takes precedence)."""
    present = sorted(set(sources))
    owner = {}
    for s in present:
        keys = [k for k in weights if k == s] or [k for k in weights if matches(s, k)]
        if keys and weights[keys[0]] > 0:
            owner[s] = keys[0]
    per_key = defaultdict(int)
    for key in owner.values():
        per_key[key] += 1
    return {s: weights[k] / per_key[k] for s, k in owner.items()}


def balance_classes(shares: dict[str, float], label_of: dict[str, int]) -> dict[str, float]:
    """``shares`` rescaled so that each label present gets the same total: a source missing
    (a held-out one, reconstructions not made yet) does not tilt the classes."""
    totals = defaultdict(float)
    for s, w in shares.items():
        totals[label_of[s]] += w
    return {s: w / totals[label_of[s]] / len(totals) for s, w in shares.items()}


def plan_epoch(
    sources: Sequence[str],
    weights: dict[str, float],
    n: int,
    rng: np.random.Generator,
    labels: Sequence[int] | None = None,
) -> list[int]:
    """``n`` row indices drawn with replacement so that each source gets its share
    (:func:`source_shares`; with ``labels``, rescaled so the classes weigh the same); a
    source without a share is not drawn."""
    shares = source_shares(weights, sources)
    if labels is not None and shares:
        shares = balance_classes(shares, dict(zip(sources, labels, strict=True)))
    if not shares:
        raise ValueError(f"none of the sources {sorted(weights)} has rows")
    pools: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sources):
        pools[s].append(i)
    names = sorted(shares)
    share = np.array([shares[s] for s in names], dtype=np.float64)
    counts = rng.multinomial(n, share / share.sum())
    plan: list[int] = []
    for name, count in zip(names, counts, strict=True):
        pool = pools[name]
        plan += [pool[j] for j in rng.integers(len(pool), size=count)]
    return [plan[j] for j in rng.permutation(len(plan))]


# ---------------------------------------------------------------------------- the random chain


@dataclass(frozen=True)
class ChainConfig:
    """Strength of the random chain (probabilities are per sample, the same for every class)."""

    scale: tuple[float, float] = (0.5, 1.5)
    p_rescale: float = 0.8
    quality: tuple[int, int] = (60, 100)
    p_reencode: float = 0.9
    """Re-encode as JPEG or WebP (even odds): every source's own compression is overwritten."""
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.2, 1.0)
    p_noise: float = 0.2
    noise_sigma: tuple[float, float] = (0.5, 3.0)
    p_flip: float = 0.5


TRAIN_CHAIN = ChainConfig()


@dataclass(frozen=True)
class ChainDraw:
    """Every random choice of one sample, drawn before the image is looked at."""

    crop_seed: int
    scale: float | None
    resample: int
    codec: str | None
    quality: int
    subsampling: int
    blur: float | None
    noise: float | None
    noise_seed: int
    flip: bool
    final_seed: int


def draw_chain(rng: np.random.Generator, config: ChainConfig = TRAIN_CHAIN) -> ChainDraw:
    """The sample's choices: a function of the generator alone (never of the image or label)."""

    def maybe(p: float, value: float) -> float | None:
        return value if rng.random() < p else None

    seeds = rng.integers(2**31, size=3)
    return ChainDraw(
        crop_seed=int(seeds[0]),
        scale=maybe(config.p_rescale, float(rng.uniform(*config.scale))),
        resample=int(rng.integers(len(RESAMPLERS))),
        codec=CODECS[int(rng.integers(len(CODECS)))] if rng.random() < config.p_reencode else None,
        quality=int(rng.integers(config.quality[0], config.quality[1] + 1)),
        subsampling=int(rng.integers(3)),
        blur=maybe(config.p_blur, float(rng.uniform(*config.blur_sigma))),
        noise=maybe(config.p_noise, float(rng.uniform(*config.noise_sigma))),
        noise_seed=int(seeds[1]),
        flip=bool(rng.random() < config.p_flip),
        final_seed=int(seeds[2]),
    )


def reencode(img: Image.Image, codec: str, quality: int, subsampling: int = 2) -> Image.Image:
    """Lossy round trip through ``codec`` (``JPEG`` with 4:4:4/4:2:2/4:2:0 chroma, or ``WEBP``)."""
    buf = io.BytesIO()
    extra = {"subsampling": subsampling} if codec == "JPEG" else {}
    img.save(buf, format=codec, quality=int(quality), **extra)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def apply_chain(rgb: np.ndarray, draw: ChainDraw, size: int = CROP) -> np.ndarray:
    """(H, W, 3) uint8 image -> (size, size, 3) uint8 sample, as ``draw`` says.

    The first crop is ``size / scale`` px so that the resize brings it to about ``size``; the
    final crop then works at the resized image's own pixels (no resize to the model size).
    """
    side = size if draw.scale is None else math.ceil(size / draw.scale)
    crop = sample_crops(rgb, 1, side, seed=draw.crop_seed)[0][0]
    img = Image.fromarray(crop)
    if draw.scale is not None:
        new = max(1, round(side * draw.scale))
        img = img.resize((new, new), RESAMPLERS[draw.resample], reducing_gap=3.0)
    if draw.blur is not None:
        img = img.filter(ImageFilter.GaussianBlur(draw.blur))
    if draw.noise is not None:
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + np.random.default_rng(draw.noise_seed).normal(0.0, draw.noise, arr.shape)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if draw.codec is not None:
        img = reencode(img, draw.codec, draw.quality, draw.subsampling)
    out = np.asarray(img)
    if draw.flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(
        sample_crops(np.ascontiguousarray(out), 1, size, draw.final_seed)[0][0]
    )


def render_sample(
    rgb: np.ndarray, rng: np.random.Generator, config: ChainConfig = TRAIN_CHAIN, size: int = CROP
) -> np.ndarray:
    """One training sample of an image: :func:`draw_chain` then :func:`apply_chain`."""
    return apply_chain(rgb, draw_chain(rng, config), size)


# ---------------------------------------------------------------------------- datasets


class TrainDataset:
    """A map-style dataset over an epoch plan: ``(image, label, index)`` per sample.

    Sample ``i`` is rendered with a generator seeded by ``(seed, epoch, i)``; the label only
    passes through (the chain never sees it).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int],
        plan: Sequence[int],
        *,
        seed: int,
        epoch: int,
        mean: Sequence[float],
        std: Sequence[float],
        chain: ChainConfig = TRAIN_CHAIN,
        size: int = CROP,
    ) -> None:
        self.paths, self.labels, self.plan = list(paths), list(labels), list(plan)
        self.seed, self.epoch, self.chain, self.size = seed, epoch, chain, size
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        j = self.plan[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        rgb = render_sample(read_rgb(self.paths[j]), rng, self.chain, self.size)
        return to_tensor_layout(rgb, self.mean, self.std), int(self.labels[j]), i


class ServedDataset:
    """Each file once, as a scan crops it: ``(n_crops, 3, size, size)`` per image, no chain."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        n_crops: int,
        mean: Sequence[float],
        std: Sequence[float],
        size: int = CROP,
    ) -> None:
        self.paths, self.n_crops, self.size = list(paths), n_crops, size
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        crops, _ = sample_crops(read_rgb(self.paths[i]), self.n_crops, self.size, SERVE_SEED)
        return np.stack([to_tensor_layout(c, self.mean, self.std) for c in crops])


# ---------------------------------------------------------------------------- validation pairs


def auc_pairs(rows: Sequence) -> dict[str, tuple[str, ...]]:
    """Each fake source present -> the real sources it is judged against.

    Collected fakes against their kind (:data:`FIXED_PAIRS`); a reconstruction against the
    reals it came from (``origin``), or every real source when the rows do not say; any other
    fake source against every real source.
    """
    reals = sorted({r.source for r in rows if r.label == 0})
    fakes = sorted({r.source for r in rows if r.label == 1})
    pairs = {}
    for fake in fakes:
        if fake in FIXED_PAIRS:
            against = tuple(s for s in FIXED_PAIRS[fake] if s in reals)
        else:
            origins = {r.origin for r in rows if r.source == fake and r.origin}
            against = tuple(s for s in reals if s in origins) if origins else tuple(reals)
        if against:
            pairs[fake] = against
    return pairs


__all__ = [
    "CROP",
    "SERVE_CROPS",
    "SERVE_SEED",
    "TRAIN_CHAIN",
    "ChainConfig",
    "ChainDraw",
    "ImageRow",
    "ServedDataset",
    "TrainDataset",
    "apply_chain",
    "auc_pairs",
    "balance_classes",
    "cache_frames",
    "draw_chain",
    "frame_file",
    "matches",
    "plan_epoch",
    "read_rgb",
    "read_rows",
    "reencode",
    "render_sample",
    "resolve_paths",
    "source_shares",
    "split_rows",
]
