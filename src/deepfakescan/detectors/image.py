"""Image evidence: score a decoded image with the installed image model.

This release scores the whole image with the bundle named ``image`` using the preprocessing
its card declares (size, mean/std, layout), which is how a model trained elsewhere plugs in.
With no ``image`` bundle installed the scan fails with ``ModelMissing`` (HTTP 503): we never
make up a score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from ..config import Settings
from ..media.image import DecodedImage
from ..report import Evidence, verdict_for
from .bundle import require_model

IMAGE_MODEL = "image"


def to_input_tensor(rgb: np.ndarray, spec: dict) -> np.ndarray:
    """Resize and normalise an RGB uint8 image into a batch of one, as the card asks.

    ``spec`` is the card's first input: ``layout`` ("NCHW" or "NHWC") and ``preprocessing``
    with ``size`` (int or [height, width]), ``mean`` and ``std`` (per channel, applied after
    scaling to [0, 1]). Returns float32 of shape (1, 3, H, W) or (1, H, W, 3).
    """
    pre = spec.get("preprocessing", {})
    size = pre.get("size", 224)
    height, width = (size, size) if isinstance(size, int) else size
    resized = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
    x = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.asarray(pre.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    std = np.asarray(pre.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
    x = (x - mean) / std
    if spec.get("layout", "NCHW") == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def analyse_image(
    image: DecodedImage, settings: Settings, *, check: Callable[[], None] | None = None
) -> Evidence:
    """Calibrated probability that the image is manipulated, with the model's verdict."""
    bundle = require_model(IMAGE_MODEL, settings, what="images")
    if check is not None:
        check()
    x = to_input_tensor(image.rgb, bundle.card["inputs"][0])
    probability = float(np.ravel(bundle.predict({bundle.input_names[0]: x}))[0])
    band = tuple(bundle.uncertain_band)
    verdict = verdict_for(probability, band)
    reasons = [
        f"The whole image was scored by model {bundle.name} {bundle.version}: "
        f"{probability:.0%} likely manipulated (threshold {bundle.threshold:.0%})."
    ]
    return Evidence(
        verdict=verdict,
        fake_probability=probability,
        threshold=bundle.threshold,
        uncertain_band=band,
        reasons=reasons,
        models=[bundle.ref("image-detector")],
    )
