"""Pictures of the evidence: class-activation heatmaps laid over the image.

The detector's second output is a class-activation map per face crop: a small grid of logits
whose mean is the face's logit, so each cell says how much that part of the crop pushed the
score towards "fake". We show ``sigmoid(cell)`` warped back through the alignment transform
onto a downscaled copy of the original image, so a reader sees *where* on the photo the
evidence is, with the face boxes and their scores drawn on top.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

PREVIEW_MAX_SIDE = 1024
HEAT_COLOUR = np.array([255.0, 32.0, 0.0], dtype=np.float32)
MAX_ALPHA = 0.6


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def warp_heat(
    heat: np.ndarray, crop_to_image: np.ndarray, crop_size: int, scale: float, out_size: tuple
) -> np.ndarray:
    """Map one crop's (h, w) heat grid into preview pixels; zero outside the crop.

    ``crop_to_image`` is the (2, 3) affine from crop to original-image coordinates and
    ``scale`` the preview's size over the original's. Pillow's AFFINE transform wants the
    inverse map (output pixel -> input pixel), built here from the two.
    """
    grid = Image.fromarray(heat.astype(np.float32), mode="F").resize(
        (crop_size, crop_size), Image.Resampling.BILINEAR
    )
    full = np.vstack([crop_to_image, [0.0, 0.0, 1.0]])
    preview_to_image = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    inverse = np.linalg.inv(full) @ preview_to_image
    warped = grid.transform(
        out_size, Image.Transform.AFFINE, inverse[:2].ravel(), Image.Resampling.BILINEAR
    )
    return np.asarray(warped, dtype=np.float32)


def heatmap_overlay(
    rgb: np.ndarray,
    heats: Sequence[tuple[np.ndarray, np.ndarray, int]],
    boxes: Sequence[tuple[tuple[float, float, float, float], str]],
    *,
    max_side: int = PREVIEW_MAX_SIDE,
) -> bytes:
    """JPEG of the image (longer side at most ``max_side``) with heat and labelled boxes.

    Parameters
    ----------
    rgb
        Original image, (H, W, 3) uint8.
    heats
        Per face: (heat grid of probabilities in [0, 1], crop->image affine, crop size).
    boxes
        Per face: ((x, y, w, h) in original pixels, label such as "face 1: 93%").
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    base = (
        Image.fromarray(rgb).resize(size, Image.Resampling.BOX)
        if scale < 1
        else Image.fromarray(rgb)
    )
    heat = np.zeros((size[1], size[0]), dtype=np.float32)
    for grid, matrix, crop_size in heats:
        heat = np.maximum(heat, warp_heat(grid, matrix, crop_size, scale, size))
    alpha = (MAX_ALPHA * np.clip(heat, 0.0, 1.0))[..., None]
    blended = np.asarray(base, dtype=np.float32) * (1 - alpha) + HEAT_COLOUR * alpha
    picture = Image.fromarray(blended.round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    line = max(2, round(max(size) / 300))
    for (x, y, w, h), label in boxes:
        x0, y0, x1, y1 = (v * scale for v in (x, y, x + w, y + h))
        draw.rectangle((x0, y0, x1, y1), outline=(255, 255, 0), width=line)
        text_y = max(0.0, y0 - 12 - line)
        draw.rectangle(draw.textbbox((x0, text_y), label), fill=(0, 0, 0))
        draw.text((x0, text_y), label, fill=(255, 255, 0))
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=85)
    return buf.getvalue()
