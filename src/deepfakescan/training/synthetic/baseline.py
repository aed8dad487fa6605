"""A sharpness-only baseline, printed beside every ``image-synthetic`` figure.

Our fakes and reals differ in more than the generator's fingerprint: a decoder's reconstruction
is a little softer than the photo it came from, a diffusion sample smoother than a camera's
noise. A detector could score well by learning "blurrier = fake", and fail on a sharp fake or a
soft photo. So beside each per-pair AUC the card holds the AUC of a logistic regression on
sharpness alone, fitted on the same training files and scored on the same test crops: where the
two are close, the model may have learned no more than sharpness.

Features (:data:`FEATURES`), each the mean over an image's native-pixel crops of a per-crop
value on the luma: the log variance of the 4-neighbour Laplacian, the log mean squared gradient,
and the log share of the spectrum's energy above half the Nyquist frequency (Hann window, so the
crop's borders add none). Logs, averaged per crop, so that the mean has the same expectation
for 4 crops or 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...detectors.synthetic import CROP, sample_crops
from ...evaluation.metrics import fit_logistic_regression
from .data import SERVE_SEED, read_rgb

FEATURES = ("log_laplacian_var", "log_gradient_energy", "log_high_frequency_share")
LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 weights: sharpness is judged on brightness, as the eye (and JPEG) does."""
VAR_FLOOR = 1e-2
"""Grey levels squared added before a log: below 8-bit rounding noise (1/12), so a flat crop
gives a finite, low value."""
SHARE_FLOOR = 1e-6
HIGH_FREQUENCY = 0.25
"""Cycles per pixel above which spectral energy counts as high (half the Nyquist's 0.5)."""
TRAIN_IMAGES = 400
"""Training files the baseline is fitted on at most, half of each class (drawn by seed)."""
TRAIN_CROPS = 4
"""Crops per training file. Four features' worth of logistic regression needs a few hundred
images, not thousands, and decoding every full-size training file again would add many CPU
minutes to an export; the test files keep the served number of crops."""


def crop_features(crops: np.ndarray) -> np.ndarray:
    """(n, s, s, 3) uint8 crops -> (n, 3) float64 sharpness features, one row per crop."""
    gray = np.asarray(crops, dtype=np.float64) @ LUMA
    lap = (
        4 * gray[:, 1:-1, 1:-1]
        - gray[:, :-2, 1:-1]
        - gray[:, 2:, 1:-1]
        - gray[:, 1:-1, :-2]
        - gray[:, 1:-1, 2:]
    )
    grad = (np.diff(gray, axis=1) ** 2).mean(axis=(1, 2)) + (np.diff(gray, axis=2) ** 2).mean(
        axis=(1, 2)
    )
    return np.column_stack(
        [
            np.log(lap.var(axis=(1, 2)) + VAR_FLOOR),
            np.log(grad + VAR_FLOOR),
            np.log(high_frequency_share(gray) + SHARE_FLOOR),
        ]
    )


def high_frequency_share(gray: np.ndarray) -> np.ndarray:
    """(n, h, w) luma -> (n,) share of the windowed spectrum's energy (DC left out) above
    :data:`HIGH_FREQUENCY` cycles per pixel; does not depend on the crop's contrast."""
    n, h, w = gray.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    centred = gray - gray.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(centred * window)) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    radius = np.hypot(fy, fx)
    total = power[:, radius > 0].sum(axis=1)
    high = power[:, radius > HIGH_FREQUENCY].sum(axis=1)
    return np.divide(high, total, out=np.zeros(n), where=total > 0)


def image_features(crops: np.ndarray) -> np.ndarray:
    """An image's (3,) features: the mean over its crops of :func:`crop_features`."""
    return crop_features(crops).mean(axis=0)


def file_features(path: Path, n_crops: int, size: int = CROP) -> np.ndarray:
    """Features of a file decoded as a scan decodes it, on its served crops (seed fixed)."""
    crops, _ = sample_crops(read_rgb(path), n_crops, size, SERVE_SEED)
    return image_features(crops)


def balanced_sample(labels: Sequence[int], limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit // 2`` files of each label, drawn by ``seed``, in order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        pool = np.flatnonzero(labels == label)
        picked.append(rng.choice(pool, size=min(pool.size, limit // 2), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class SharpnessBaseline:
    """Standardised features -> logistic regression; :meth:`score` is "how fake" (a logit)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    """One per feature, then the intercept."""
    n_real: int
    n_fake: int

    def score(self, features: np.ndarray) -> np.ndarray:
        """(n, 3) features -> (n,) logits of "fake"."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return z @ self.weights[:-1] + self.weights[-1]

    def card(self, n_crops: int) -> dict:
        """What the card says about the fit: features, weights on standardised features, data."""
        return {
            "features": list(FEATURES),
            "weights": {
                f: round(float(w), 4) for f, w in zip(FEATURES, self.weights[:-1], strict=True)
            },
            "intercept": round(float(self.weights[-1]), 4),
            "fitted_on": {"n_real": self.n_real, "n_fake": self.n_fake, "n_crops": n_crops},
        }


def fit_baseline(features: np.ndarray, labels: Sequence[int]) -> SharpnessBaseline:
    """Logistic regression on standardised sharpness features (needs both labels)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    weights = fit_logistic_regression((x - mean) / scale, y)
    return SharpnessBaseline(mean, scale, weights, int((y == 0).sum()), int((y == 1).sum()))


def fit_on_files(
    paths: Sequence[Path],
    labels: Sequence[int],
    *,
    seed: int,
    limit: int = TRAIN_IMAGES,
    n_crops: int = TRAIN_CROPS,
    size: int = CROP,
) -> SharpnessBaseline:
    """The baseline fitted on a class-balanced sample of training files (see
    :data:`TRAIN_CROPS` for why a sample)."""
    pick = balanced_sample(labels, limit, seed)
    x = np.stack([file_features(paths[i], n_crops, size) for i in pick])
    return fit_baseline(x, np.asarray(labels)[pick])


__all__ = [
    "FEATURES",
    "TRAIN_CROPS",
    "TRAIN_IMAGES",
    "SharpnessBaseline",
    "balanced_sample",
    "crop_features",
    "file_features",
    "fit_baseline",
    "fit_on_files",
    "high_frequency_share",
    "image_features",
]
