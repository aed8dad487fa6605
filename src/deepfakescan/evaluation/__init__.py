"""Evaluation: list labelled corpora, score them, and report metrics with bootstrap intervals.

``metrics`` holds the pure-numpy metric and calibration functions (also used by training to set
thresholds and calibrate), ``datasets`` the corpus adapters, ``runner`` the aggregation and its
table, ``outputs`` the files ``--out`` writes, ``plots`` the figures (matplotlib, the ``[eval]``
extra), ``reencode`` the in-memory re-encoding of ``--reencode`` and ``command`` the
``deepfakescan eval`` subcommand.
"""

from .datasets import LabelledItem, detect_layout, load_dataset, sample_per_class
from .metrics import (
    average_precision,
    bootstrap_ci,
    eer,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    pick_threshold_at_fpr,
    ranking_metrics,
    roc_auc,
    roc_curve,
    threshold_metrics,
)
from .outputs import write_outputs
from .runner import EvalResult, ScoredItem, evaluate, format_table

__all__ = [
    "EvalResult",
    "LabelledItem",
    "ScoredItem",
    "average_precision",
    "bootstrap_ci",
    "detect_layout",
    "eer",
    "evaluate",
    "expected_calibration_error",
    "fit_platt",
    "fit_temperature",
    "format_table",
    "load_dataset",
    "pick_threshold_at_fpr",
    "ranking_metrics",
    "roc_auc",
    "roc_curve",
    "sample_per_class",
    "threshold_metrics",
    "write_outputs",
]
