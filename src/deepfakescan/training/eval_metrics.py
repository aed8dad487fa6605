"""Test metrics as a model card holds them: its intervals, and ``deepfakescan eval``'s files.

Every exported card writes an AUC as :func:`auc_entry` (value, 95 % bootstrap interval, counts)
and a share as :func:`rate_entry` (95 % Wilson interval), rounded for JSON, so the
face, whole-image and baseline figures read alike. The maths lives in
:mod:`deepfakescan.evaluation.metrics` (one bootstrap); this module only shapes it for a card.

A card's test figures can also come from the shipped pipeline (``deepfakescan eval MANIFEST
--out DIR`` writes ``DIR/metrics.json``); ``deepfakescan train MODEL --metrics [NAME=]FILE`` puts
them into the card on export. This module reads those files and keeps what a card needs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..evaluation.metrics import bootstrap_ci, roc_auc, wilson_interval

CARD_METRICS = ("auc", "eer", "accuracy", "recall", "fpr", "ece")
DEFAULT_NAME = "test"
"""The name of a ``--metrics FILE`` given without ``NAME=``."""


BOOTSTRAP_RESAMPLES = 1000
DIGITS = 4
"""Decimals a card keeps: more would claim a precision the intervals do not have."""


def bootstrap_interval(
    fn: Callable[..., float], labels: ArrayLike, scores: ArrayLike, seed: int = 0
) -> list[float | None]:
    """A card's 95 % bootstrap interval ``[low, high]`` of ``fn(labels, scores)`` (stratified,
    :func:`~deepfakescan.evaluation.metrics.bootstrap_ci`); ``None`` where it is undefined."""
    lo, hi = bootstrap_ci(fn, labels, scores, n=BOOTSTRAP_RESAMPLES, seed=seed)
    return [round(float(v), DIGITS) if math.isfinite(v) else None for v in (lo, hi)]


def auc_entry(labels: ArrayLike, scores: ArrayLike, seed: int = 0) -> dict[str, Any]:
    """A card's AUC: ``{"value", "ci95", "n_fake", "n_real"}`` (labels 1 = fake)."""
    y = np.asarray(labels)
    return {
        "value": round(roc_auc(y, scores), DIGITS),
        "ci95": bootstrap_interval(roc_auc, y, scores, seed),
        "n_fake": int(y.sum()),
        "n_real": int((1 - y).sum()),
    }


def rate_entry(hits: ArrayLike, name: str) -> dict[str, Any]:
    """A card's share of ``hits`` (files called fake: ``name`` is ``recall`` or ``fpr``; right
    calls: ``value``), its 95 % Wilson interval (a bootstrap of a proportion adds nothing) and
    its count."""
    hits = np.asarray(hits, dtype=bool)
    k, n = int(hits.sum()), int(hits.size)
    ci = [round(v, DIGITS) for v in wilson_interval(k, n)]
    return {name: round(k / n, DIGITS) if n else None, "ci95": ci, "n": n}


def slim_eval_metrics(metrics: dict, command: str) -> dict:
    """The card's view of ``deepfakescan eval``'s metrics.json: every group with its counts and
    the main metrics with 95 % bootstrap intervals; file paths (local) are left out."""
    groups = {}
    for g in metrics["groups"]:
        key = g["kind"] if g["kind"] == "overall" else f"{g['kind']}:{g['name']}"
        groups[key] = {
            "n_real": g["n_real"],
            "n_fake": g["n_fake"],
            "n_unscored": g["n_unscored"] + g["n_errors"],
            **{m: g["metrics"][m] for m in CARD_METRICS if m in g["metrics"]},
        }
    return {
        "command": command,
        "threshold": metrics.get("threshold", {}).get("used"),
        "bootstrap": metrics.get("bootstrap"),
        "groups": groups,
        "unscored_files": len(metrics.get("problems", [])),
    }


def parse_metrics_option(item: str) -> tuple[str, Path]:
    """``NAME=FILE`` -> (NAME, FILE); a bare ``FILE`` is named :data:`DEFAULT_NAME`."""
    name, sep, path = item.partition("=")
    if not sep or "/" in name or not name:
        return DEFAULT_NAME, Path(item)
    return name, Path(path)


def read_metrics_options(items: list[str]) -> dict[str, tuple[Path, dict]]:
    """``--metrics`` values -> {name: (file, the file's JSON)}; a name given twice is refused."""
    out: dict[str, tuple[Path, dict]] = {}
    for item in items:
        name, path = parse_metrics_option(item)
        if name in out:
            raise ValueError(f"--metrics {name} given twice")
        out[name] = (path, json.loads(path.read_text(encoding="utf-8")))
    return out


__all__ = [
    "CARD_METRICS",
    "auc_entry",
    "bootstrap_interval",
    "parse_metrics_option",
    "rate_entry",
    "read_metrics_options",
    "slim_eval_metrics",
]
