"""Detectors: image, audio and video evidence, fusion, and the one loader they share.

Every model is a bundle (``name.onnx`` + ``name.json``, its card) loaded by ``load_model`` in
``bundle.py``; detectors ask for the model they need with ``require_model`` so a missing one is
a ``ModelMissing`` (503) that says how to install it, never a made-up score.
"""

from __future__ import annotations

from .bundle import (
    ModelBundle,
    ModelInfo,
    clear_cache,
    file_sha256,
    find_model,
    list_models,
    load_model,
    optional_model,
    require_model,
)
from .card import check_card, read_card

__all__ = [
    "ModelBundle",
    "ModelInfo",
    "check_card",
    "clear_cache",
    "file_sha256",
    "find_model",
    "list_models",
    "load_model",
    "optional_model",
    "read_card",
    "require_model",
]
