"""The heatmap artifact: heat is drawn where the face crop lies, and nowhere else."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from deepfakescan.detectors.explain import heatmap_overlay


def _overlay(heat_value: float) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((400, 600, 3), 100, np.uint8)
    before = rgb.copy()
    # a 160 px crop whose pixels map 1:1 onto the image at (200, 100)
    crop_to_image = np.array([[1.0, 0.0, 200.0], [0.0, 1.0, 100.0]])
    grid = np.full((5, 5), heat_value, np.float32)
    jpeg = heatmap_overlay(rgb, [(grid, crop_to_image, 160)], [])
    np.testing.assert_array_equal(rgb, before)  # the caller's image is never drawn on
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.int16), before


def test_hot_face_turns_red_inside_the_crop_only():
    picture, before = _overlay(1.0)
    inside = picture[120:240, 220:340]
    assert inside[..., 0].mean() > 180 and inside[..., 2].mean() < 60, "the face is red"
    outside = np.concatenate([picture[:90].reshape(-1, 3), picture[:, :190].reshape(-1, 3)])
    assert np.abs(outside - before[0, 0]).max() <= 3, "the rest of the photo is untouched"


def test_cold_face_leaves_the_photo_as_it_was():
    picture, before = _overlay(0.0)
    assert np.abs(picture - before.astype(np.int16)).max() <= 3
