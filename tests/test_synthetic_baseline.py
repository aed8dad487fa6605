"""The checks printed beside ``image-synthetic``'s figures: a sharpness-only baseline, the
robustness conditions and the per-pair table. No torch needed; images are generated in code."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from deepfakescan.evaluation.metrics import roc_auc
from deepfakescan.training.eval_metrics import rate_entry
from deepfakescan.training.synthetic import baseline, robustness
from deepfakescan.training.synthetic.table import MISSING, card_table

SIZE = 64
"""Crop side for these tests (the shipped model: 256)."""


def _texture(seed: int, shape=(96, 128), tint=(0, 0, 0), blur: float = 0.0) -> np.ndarray:
    """A grey, lightly smoothed noise texture of random contrast, tinted, optionally blurred."""
    rng = np.random.default_rng(seed)
    grey = rng.normal(0, rng.uniform(15, 40), shape)
    img = Image.fromarray(np.clip(grey + 128, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    rgb = np.repeat(np.asarray(img, dtype=np.int16)[..., None], 3, axis=2) + np.array(tint)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _files(tmp_path, name: str, seeds, **kwargs) -> list:
    paths = []
    for seed in seeds:
        path = tmp_path / f"{name}_{seed}.png"
        Image.fromarray(_texture(seed, **kwargs)).save(path)
        paths.append(path)
    return paths


def _auc_of_fitted_baseline(tmp_path, real: dict, fake: dict) -> float:
    """Fit on 16 + 16 files, score 16 + 16 others: the baseline's test AUC."""
    train = _files(tmp_path, "r", range(16), **real) + _files(tmp_path, "f", range(16), **fake)
    test = _files(tmp_path, "rt", range(100, 116), **real)
    test += _files(tmp_path, "ft", range(100, 116), **fake)
    labels = [0] * 16 + [1] * 16
    fitted = baseline.fit_on_files(train, labels, seed=0, size=SIZE)
    x = np.stack([baseline.file_features(p, 4, SIZE) for p in test])
    return roc_auc(labels, fitted.score(x))


# ---------------------------------------------------------------------------- the baseline


def test_every_sharpness_feature_is_higher_for_a_sharp_image_than_its_blurred_copy():
    sharp = _texture(0, (SIZE, SIZE))[None]
    blurred = np.asarray(Image.fromarray(sharp[0]).filter(ImageFilter.GaussianBlur(1.5)))[None]
    a, b = baseline.crop_features(sharp)[0], baseline.crop_features(blurred)[0]
    assert a.shape == (len(baseline.FEATURES),)
    assert (a > b).all(), dict(zip(baseline.FEATURES, a - b, strict=True))


def test_a_flat_crop_has_finite_features():
    flat = np.full((2, SIZE, SIZE, 3), 90, np.uint8)
    assert np.isfinite(baseline.crop_features(flat)).all()


def test_the_baseline_separates_blurred_fakes_from_sharp_reals(tmp_path):
    assert _auc_of_fitted_baseline(tmp_path, {}, {"blur": 1.2}) > 0.9


def test_the_baseline_sees_nothing_in_colour_alone(tmp_path):
    auc = _auc_of_fitted_baseline(tmp_path, {"tint": (40, 0, -40)}, {"tint": (-40, 0, 40)})
    assert 0.3 < auc < 0.7


def test_the_training_sample_is_class_balanced_capped_and_seeded():
    labels = [0] * 500 + [1] * 120
    pick = baseline.balanced_sample(labels, 400, seed=3)
    assert np.bincount(np.asarray(labels)[pick]).tolist() == [200, 120]
    assert pick.tolist() == sorted(set(pick.tolist()))
    assert pick.tolist() == baseline.balanced_sample(labels, 400, seed=3).tolist()
    assert pick.tolist() != baseline.balanced_sample(labels, 400, seed=4).tolist()


def test_the_baseline_refuses_a_single_class():
    with pytest.raises(ValueError, match="both"):
        baseline.fit_baseline(np.zeros((4, 3)), [0, 0, 0, 0])


# ---------------------------------------------------------------------------- robustness


def test_jpeg75_keeps_the_size_and_changes_the_pixels():
    rgb = _texture(1, (90, 120), tint=(30, 0, -30))
    out = robustness.CONDITIONS["jpeg75"](rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() > 1


def test_resize_halves_both_sides():
    rgb = _texture(2, (90, 120))
    out = robustness.CONDITIONS["resize0.5"](rgb)
    assert out.shape == (45, 60, 3) and out.dtype == np.uint8
    assert robustness.resize(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)


# ---------------------------------------------------------------------------- card figures


def test_a_rate_entry_brackets_its_share_with_a_wilson_interval():
    entry = rate_entry([True] * 3 + [False] * 97, "fpr")
    assert entry["fpr"] == 0.03 and entry["n"] == 100
    assert entry["ci95"][0] < 0.03 < entry["ci95"][1] <= 1
    assert rate_entry([], "fpr") == {"fpr": None, "ci95": [0.0, 1.0], "n": 0}


def _auc(value: float, n_fake: int = 40, n_real: int = 50) -> dict:
    return {
        "value": value,
        "ci95": [value - 0.05, value + 0.03],
        "n_fake": n_fake,
        "n_real": n_real,
    }


def test_the_card_table_has_a_row_per_pair_with_every_check():
    pairs = ["sd-fake vs photo-real", "ae-vae-1 vs ffhq-real+photo-real"]
    card = {
        "name": "image-synthetic",
        "version": "0.1.0",
        "threshold": 0.7,
        "inputs": [{"preprocessing": {"n_crops": 16}}],
        "metrics": {
            "robustness_n_crops": 8,
            "test": {
                "auc": {p: _auc(0.9) for p in pairs},
                "sharpness_baseline": {pairs[0]: _auc(0.61)},
                "robustness": {"jpeg75": {p: _auc(0.8) for p in pairs}, "resize0.5": {}},
                "at_threshold": {
                    "sd-fake": {"recall": 0.8, "n": 40},
                    "photo-real": {"fpr": 0.02, "n": 50},
                    "ffhq-real": {"fpr": 0.04, "n": 50},
                },
            },
        },
    }
    lines = card_table(card).splitlines()
    header = next(line for line in lines if line.startswith("| pair"))
    assert "jpeg75 AUC" in header and "resize0.5 AUC" in header
    rows = [line for line in lines if line.startswith("| ") and line is not header]
    assert [r.split(" | ")[0][2:] for r in rows] == pairs
    assert all(r.count("|") == header.count("|") for r in rows)
    assert "0.900 [0.850, 0.930]" in rows[0] and "0.610 [0.560, 0.640]" in rows[0]
    assert f"| {MISSING} |" in rows[1]  # no baseline figure for that pair
    assert "ffhq-real 0.040 (n 50); photo-real 0.020 (n 50)" in rows[1]
    assert "robustness on 8 crops" in lines[0]
