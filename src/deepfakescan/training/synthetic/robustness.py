"""The robustness conditions of ``image-synthetic``'s card: what a file may meet before a scan.

A picture is often re-saved or shrunk on its way to a user (a messenger's JPEG, a thumbnail),
and both wipe out some of the high frequencies a generator leaves. The card measures the test
AUC again after each of :data:`CONDITIONS`, applied in memory to the decoded image before the
served crop sampler, so the figures say how much of the detection survives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .data import reencode

JPEG_QUALITY = 75
RESIZE_FACTOR = 0.5
ROBUSTNESS_CROPS = 8
"""Crops per image under each condition (the clean figures use the served 16): each condition
costs a full scoring pass of the test split on the CPU, and 8 crops cover the image's quarters."""


def jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """(H, W, 3) uint8 -> the same size after a JPEG round trip at ``quality`` (4:2:0)."""
    return np.asarray(reencode(Image.fromarray(rgb), "JPEG", quality, subsampling=2))


def resize(rgb: np.ndarray, factor: float = RESIZE_FACTOR) -> np.ndarray:
    """(H, W, 3) uint8 -> each side times ``factor`` (at least 1 px), bicubic with the filter
    widened to the reduction (Pillow's default, so it averages like an area filter)."""
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    f"jpeg{JPEG_QUALITY}": jpeg,
    f"resize{RESIZE_FACTOR}": resize,
}
"""Card key -> transform of a decoded image (``jpeg75``, ``resize0.5``)."""


__all__ = ["CONDITIONS", "JPEG_QUALITY", "RESIZE_FACTOR", "ROBUSTNESS_CROPS", "jpeg", "resize"]
