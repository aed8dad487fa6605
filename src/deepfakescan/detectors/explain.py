"""Pictures of the evidence: class-activation heatmaps laid over the image, and a preview.

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
HEAT_COLOUR = (255, 32, 0)
MAX_ALPHA = 0.6


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def warp_heat(
    heat: np.ndarray, crop_to_image: np.ndarray, crop_size: int, scale: float, out_size: tuple
) -> tuple[Image.Image, tuple[int, int]]:
    """Map one crop's (h, w) heat grid into preview pixels, over the crop's bounding region, as
    8-bit blend weights (``255 * MAX_ALPHA`` where the heat is 1).

    ``crop_to_image`` is the (2, 3) affine from crop to original-image coordinates and
    ``scale`` the preview's size over the original's. Returns the heat over the region the
    crop covers and that region's top-left corner (only that region is warped and blended,
    which keeps a large photo with a small face cheap). Pillow's AFFINE transform wants the
    inverse map (output pixel -> input pixel), built here from the two.
    """
    corners = np.array([[0, 0, 1], [crop_size, 0, 1], [0, crop_size, 1], [crop_size, crop_size, 1]])
    mapped = corners @ crop_to_image.T * scale
    x0, y0 = np.clip(np.floor(mapped.min(axis=0)).astype(int), 0, None)
    x1 = int(min(out_size[0], np.ceil(mapped[:, 0].max())))
    y1 = int(min(out_size[1], np.ceil(mapped[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return Image.new("L", (0, 0)), (0, 0)
    # 8-bit blend weights (heat x MAX_ALPHA): Pillow warps and blends them in C, several times
    # faster than float arrays on a face that fills a large photo
    weights = np.clip(heat, 0.0, 1.0) * (255.0 * MAX_ALPHA)
    grid = Image.fromarray(weights.round().astype(np.uint8), mode="L").resize(
        (crop_size, crop_size), Image.Resampling.BILINEAR
    )
    full = np.vstack([crop_to_image, [0.0, 0.0, 1.0]])
    region_to_image = np.array([[1 / scale, 0, x0 / scale], [0, 1 / scale, y0 / scale], [0, 0, 1]])
    inverse = np.linalg.inv(full) @ region_to_image
    warped = grid.transform(
        (x1 - x0, y1 - y0), Image.Transform.AFFINE, inverse[:2].ravel(), Image.Resampling.BILINEAR
    )
    return warped, (int(x0), int(y0))


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
    picture = Image.fromarray(rgb)  # Pillow's own RGB storage: pasting never touches ``rgb``
    if scale < 1:
        picture = picture.resize(size, Image.Resampling.BOX)
    for grid, matrix, crop_size in heats:
        weights, (x0, y0) = warp_heat(grid, matrix, crop_size, scale, size)
        if weights.width and weights.height:
            # pasting a colour through a mask is alpha blending: colour * w + pixel * (1 - w)
            picture.paste(HEAT_COLOUR, (x0, y0, x0 + weights.width, y0 + weights.height), weights)
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


def preview_jpeg(rgb: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """JPEG of the image alone, its longer side at most ``max_side``: what the web page draws
    the report's face boxes on."""
    picture = Image.fromarray(rgb)
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=85)
    return buf.getvalue()
