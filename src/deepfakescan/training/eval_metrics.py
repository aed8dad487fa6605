"""Test metrics measured by ``deepfakescan eval``, as a model card holds them.

A card's test figures come from the shipped pipeline (``deepfakescan eval MANIFEST --out DIR``
writes ``DIR/metrics.json``), not from the training loop; ``deepfakescan train MODEL --metrics
[NAME=]FILE`` puts them into the card on export. This module reads those files and keeps what a
card needs.
"""

from __future__ import annotations

import json
from pathlib import Path

CARD_METRICS = ("auc", "eer", "accuracy", "recall", "fpr", "ece")
DEFAULT_NAME = "test"
"""The name of a ``--metrics FILE`` given without ``NAME=``."""


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
    "parse_metrics_option",
    "read_metrics_options",
    "slim_eval_metrics",
]
