"""Where training reads its data and writes its caches, runs and bundles.

Three settings, each an environment variable with a default relative to the current directory
(the checkout): training never computes a path from the installed package or the source tree,
so a model is written into ``src/deepfakescan/models`` only when someone asks for it with
``--out``.

- ``DEEPFAKESCAN_DATA_ROOT`` (``../shared/data``): the corpora; read, never copied.
- ``DEEPFAKESCAN_CACHE_DIR`` (``../cache``): one folder per model (``audio/``, ``image/``,
  ``image-family/``) with what training makes (generated fakes, crops, features) and its runs
  (``<model>/runs/<name>``); a run exports into ``<run>/export`` by default.
- ``DEEPFAKESCAN_MANIFEST_DIR`` (``data/manifests``): the committed split manifests.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "DEEPFAKESCAN_DATA_ROOT"
CACHE_DIR_ENV = "DEEPFAKESCAN_CACHE_DIR"
MANIFEST_DIR_ENV = "DEEPFAKESCAN_MANIFEST_DIR"
DEFAULT_DATA_ROOT = "../shared/data"
DEFAULT_CACHE_DIR = "../cache"
DEFAULT_MANIFEST_DIR = "data/manifests"
DEFAULT_RUN = "main"
EXPORT_DIR = "export"


def data_root() -> Path:
    """The corpora (``speech/``, ``faces/``, ``video/``...)."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def cache_dir() -> Path:
    """Everything training makes, one folder per model."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def manifest_dir() -> Path:
    """The committed manifests (``audio_*.csv``, ``image_*.csv``)."""
    return Path(os.environ.get(MANIFEST_DIR_ENV) or DEFAULT_MANIFEST_DIR)


def model_cache(model: str) -> Path:
    """``CACHE/<model>``: a model's generated data and its runs."""
    return cache_dir() / model


def run_dir(model: str, run: str = DEFAULT_RUN) -> Path:
    """``CACHE/<model>/runs/<run>``: checkpoints, logs and the run's export."""
    return model_cache(model) / "runs" / run


def export_dir(run: Path) -> Path:
    """Where a run's bundle goes unless ``--out`` says otherwise: ``<run>/export``."""
    return Path(run) / EXPORT_DIR


__all__ = [
    "cache_dir",
    "data_root",
    "export_dir",
    "manifest_dir",
    "model_cache",
    "run_dir",
]
