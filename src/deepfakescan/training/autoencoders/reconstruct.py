"""Write every real image's reconstruction through a trained instance: the aligned fakes.

Layout under ``$DEEPFAKESCAN_CACHE_DIR/autoencoders`` (outside git, never committed or shipped)::

    runs/<run>/<arch>-<seed>/        last.pt, best.pt, history.jsonl, psnr.json (one instance)
    runs/<run>/psnr.json             every instance's validation PSNR, by instance name
    fakes/<arch>-<seed>/<split>/<real source>/<stem>.png           a still's reconstruction
    fakes/<arch>-<seed>/<split>/video-real/<clip stem>_f<frame>.png   a video frame's
    fakes/<arch>-<seed>/fakes.csv    the instance's fakes manifest (:class:`FakeRow`)

Each fake is the whole real image at its native size (tiled with overlap when larger than a
tile: every output pixel comes from a tile where it lies at least ``MARGIN`` pixels from the
tile's edge, so there are no seams), as lossless PNG; its split is the real's split in
``synthetic_*.csv``, so a detector never trains on the reconstruction of a test image.
:func:`read_fakes` reads every instance's manifest (the detector trainer's input): ``path``
is relative to the ``fakes/`` folder, ``real`` (and ``frame``) name the real file it came from,
relative to the data root, ``source`` is ``ae-<arch>``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import BEST, load_checkpoint
from ..manifest import read_manifest, write_manifest
from .data import SyntheticRow, iter_images, reals, to_rgb, to_unit
from .nets import build
from .train import TrainConfig

FAKES = "fakes"
FAKES_MANIFEST = "fakes.csv"
TILE = 1024
"""Side of the square tiles a large image is reconstructed in (a multiple of 8). Our reals
are at most about 1024 px a side, so nearly all go through in one pass: tiles of 512 with
their overlap cost 3x the time on a 700 px video frame (measured on 2 cores)."""
MARGIN = 32
"""Overlap kept on each side of a tile and thrown away (larger than the nets' receptive field
at the tile's edge matters)."""


@dataclass(frozen=True)
class FakeRow:
    """One reconstruction: where it is, and the real it was made from."""

    path: str
    """Relative to the ``fakes/`` folder."""
    label: int
    source: str
    """``ae-<arch>``."""
    split: str
    real: str
    """The real file, relative to the data root."""
    frame: int | None
    """The real's video frame (None for a still)."""
    real_source: str
    instance: str
    """``<arch>-<seed>``."""


def load_instance(run_dir: Path) -> tuple[torch.nn.Module, TrainConfig]:
    """The best weights of a trained instance and its config, ready for inference."""
    state = load_checkpoint(Path(run_dir) / BEST)
    config = TrainConfig(**state["config"])
    model = build(config.arch)
    model.load_state_dict(state["model"])
    return model.eval(), config


@torch.no_grad()
def _run(model: torch.nn.Module, rgb: np.ndarray, factor: int) -> np.ndarray:
    """One pass over ``rgb``, reflect-padded at the bottom and right to a multiple of ``factor``."""
    h, w = rgb.shape[:2]
    ph, pw = -h % factor, -w % factor
    padded = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb
    y = model(torch.from_numpy(to_unit(padded))[None])[0].numpy()
    return to_rgb(y)[:h, :w]


def reconstruct_image(
    model: torch.nn.Module, rgb: np.ndarray, *, tile: int = TILE, margin: int = MARGIN
) -> np.ndarray:
    """(H, W, 3) uint8 -> its reconstruction, same shape; tiled when a side exceeds ``tile``."""
    factor = model.factor
    h, w = rgb.shape[:2]
    if h <= tile and w <= tile:
        return _run(model, rgb, factor)
    cell = tile - 2 * margin
    if cell <= 0 or tile % factor:
        raise ValueError(f"tile {tile} must be a multiple of {factor} and more than 2 x {margin}")
    ny, nx = math.ceil(h / cell), math.ceil(w / cell)
    padded = np.pad(
        rgb, ((margin, ny * cell - h + margin), (margin, nx * cell - w + margin), (0, 0)), "reflect"
    )
    out = np.empty((ny * cell, nx * cell, 3), np.uint8)
    for i in range(ny):
        for j in range(nx):
            window = padded[i * cell : i * cell + tile, j * cell : j * cell + tile]
            y = _run(model, window, factor)
            out[i * cell : (i + 1) * cell, j * cell : (j + 1) * cell] = y[
                margin : margin + cell, margin : margin + cell
            ]
    return out[:h, :w]


def assigned_instances(real: str, instances: Sequence[str], n: int) -> list[str]:
    """The ``n`` instances that reconstruct the real file ``real`` (its key), out of ``instances``.

    Reconstructing every real through every instance costs CPU time that grows with both (a
    full pass of one decoder over our reals is minutes on 2 cores), while the detector needs
    each decoder's fingerprint on every kind of real, not on every file. Rendezvous hashing:
    each (real, instance) pair gets a stable pseudo-random rank and the ``n`` best win, so the
    choice is the same in every session, spreads reals evenly over the instances, and adding an
    instance moves only the reals it wins. ``n <= 0`` or ``n >= len(instances)``: all of them.
    """
    if n <= 0 or n >= len(instances):
        return list(instances)
    rank = {i: hashlib.sha256(f"{real}|{i}".encode()).digest() for i in instances}
    return sorted(instances, key=rank.__getitem__)[:n]


def fake_name(row: SyntheticRow) -> str:
    """``<real source>/<stem>.png``, or ``<stem>_f<frame>.png`` for a video frame."""
    stem = Path(row.path).stem
    return f"{row.source}/{stem if row.frame is None else f'{stem}_f{row.frame:03d}'}.png"


def write_fakes(
    model: torch.nn.Module,
    config: TrainConfig,
    splits: Mapping[str, Sequence[SyntheticRow]],
    data_root: Path,
    fakes_root: Path,
    *,
    tile: int = TILE,
    margin: int = MARGIN,
    keep: Callable[[SyntheticRow], bool] | None = None,
) -> list[FakeRow]:
    """Reconstruct every real of every split (those ``keep`` accepts; default all) into
    ``fakes_root/<instance>/`` and write its ``fakes.csv``; files already there are kept (an
    interrupted call resumes)."""
    from PIL import Image

    out_rows = []
    for split, rows in splits.items():
        todo = []
        for r in reals(rows):
            if keep is not None and not keep(r):
                continue
            rel = f"{config.name}/{split}/{fake_name(r)}"
            out_rows.append(
                FakeRow(rel, 1, f"ae-{config.arch}", split, r.path, r.frame, r.source, config.name)
            )
            if not (Path(fakes_root) / rel).is_file():
                todo.append((r, Path(fakes_root) / rel))
        targets = {r.key: path for r, path in todo}
        for r, rgb in iter_images([r for r, _ in todo], data_root):
            path = targets[r.key]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(reconstruct_image(model, rgb, tile=tile, margin=margin)).save(
                tmp, format="PNG"
            )
            tmp.replace(path)
    # a frame the clip no longer yields has no fake: list only what was written
    out_rows = [r for r in out_rows if (Path(fakes_root) / r.path).is_file()]
    write_manifest(Path(fakes_root) / config.name / FAKES_MANIFEST, out_rows, FakeRow)
    return out_rows


def read_fakes(fakes_root: Path, instances: Iterable[str] | None = None) -> list[FakeRow]:
    """Every instance's fakes (or those of ``instances``), in instance-name order."""
    root = Path(fakes_root)
    names = (
        sorted(instances)
        if instances is not None
        else sorted(p.parent.name for p in root.glob(f"*/{FAKES_MANIFEST}"))
    )
    return [row for name in names for row in read_manifest(root / name / FAKES_MANIFEST, FakeRow)]


__all__ = [
    "FAKES",
    "FAKES_MANIFEST",
    "MARGIN",
    "TILE",
    "FakeRow",
    "assigned_instances",
    "fake_name",
    "load_instance",
    "read_fakes",
    "reconstruct_image",
    "write_fakes",
]
