"""Export an audio training run to ``audio.onnx`` + ``audio.json`` (the model card).

The run directory holds ``final.pt`` (the best epoch's weights) and ``calibration.json``
(calibration, threshold, validation figures and the run's config, written by ``train.py``);
the graph goes through the shared export (:mod:`..onnx_export`), and the card adds the feature
parameters, the file rule of ``detectors/audio.py`` and, when given, the test metrics that
``deepfakescan eval`` measured on the shipped pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import features as F
from ...detectors import audio as A
from ..eval_metrics import slim_eval_metrics
from ..onnx_export import check_round_trip, export_onnx, install_bundle, part_path
from .nets import AudioResNet, count_parameters

AUDIO_LICENCE = (
    "Weights: research and evaluation use. Trained on LibriSpeech (CC BY 4.0), LJSpeech (public "
    "domain), FSDD (CC BY-SA 4.0) and CMU ARCTIC NSF-vocoded speech (BSD-3), plus fakes generated "
    "from them with espeak-ng (GPL-3.0 program; its output is not restricted) and festival."
)
SOURCE_LICENCES = {
    "librispeech-real": "CC BY 4.0",
    "ljspeech-real": "public domain",
    "fsdd-real": "CC BY-SA 4.0",
    "nsf-vocoded-fake": "BSD-3-Clause",
    "espeak": "generated (espeak-ng)",
    "festival": "generated (festival kal_diphone)",
}


AUDIO_VERSION = "0.3.0"
"""The shipped audio model's version (0.2: log spectrogram; 0.3: + the hnm and tinynsf fake
families and the stricter validation false-positive budget)."""

TEST_COMMAND = "deepfakescan eval ../cache/audio/audio_test.csv --out ../cache/eval-test"
LOO_COMMAND = (
    "deepfakescan train audio --leave-out nsf-vocoded-fake && "
    "DEEPFAKESCAN_MODEL_DIR=../cache/audio/runs/loo-nsf-vocoded-fake/export deepfakescan eval "
    "../cache/audio/audio_loo_test.csv --out ../cache/eval-loo"
)
"""How the card's ``test`` and ``leave_one_out_nsf`` figures were measured (default paths)."""
ROUND_TRIP_ATOL = 1e-4
KIND_WORDS = {
    "mfcc": "MFCC + deltas",
    "mfcc+lfcc": "MFCC + LFCC + deltas",
    "spectrogram": "log-power spectrogram (257 bins)",
}


def export_audio(
    run_dir: Path,
    models_dir: Path,
    *,
    metrics: dict | None = None,
    loo_metrics: dict | None = None,
    name: str = "audio",
) -> tuple[Path, Path]:
    """``run_dir/final.pt`` + ``calibration.json`` -> ``models_dir/audio.onnx`` + ``audio.json``.

    ``metrics`` is the ``metrics.json`` of ``deepfakescan eval`` on the test manifest (the card's
    numbers come from the shipped pipeline, not from the training loop); ``loo_metrics`` the
    same for the leave-one-source-out model.
    """
    run_dir = Path(run_dir)
    cal = json.loads((run_dir / "calibration.json").read_text())
    # runs from before feature kinds (v0.1) recorded neither features nor a balance: MFCC, 0
    cfg = {"balance": 0.0, "features": "mfcc", **cal["config"]}
    model = AudioResNet(tuple(cal["config"]["channels"]), kind=cfg["features"])
    model.load_state_dict(torch.load(run_dir / "final.pt"))
    model.eval()
    graph, diff = export_checked(model, cfg["features"], part_path(models_dir, name))
    card = audio_card(name, model, cal, cfg, diff, metrics=metrics, loo_metrics=loo_metrics)
    return install_bundle(graph, card, Path(models_dir), name)


def export_checked(model: AudioResNet, kind: str, path: Path) -> tuple[Path, float]:
    """The graph at ``path`` and its largest |ONNX Runtime - PyTorch| on four random windows."""
    example = torch.randn(2, *F.feature_shape(kind))
    export_onnx(model, example, path, input_name="features", output_names=("logit",))
    check = np.random.default_rng(0).standard_normal((4, *F.feature_shape(kind)))
    errors = check_round_trip(model, path, check.astype(np.float32), atol=ROUND_TRIP_ATOL)
    return path, max(errors.values())


def audio_card(
    name: str,
    model: AudioResNet,
    cal: dict,
    cfg: dict,
    diff: float,
    *,
    metrics: dict | None = None,
    loo_metrics: dict | None = None,
) -> dict[str, Any]:
    """The model card (without its sha256, which :func:`install_bundle` adds)."""
    kind = cfg["features"]
    return {
        "name": name,
        "version": AUDIO_VERSION,
        "task": "audio-detector",
        "description": _description(kind, count_parameters(model)),
        "inputs": [_input_spec(kind)],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": cal["calibration"],
        "threshold": cal["threshold"],
        "uncertain_band": cal["uncertain_band"],
        "training": _training(cal, cfg, diff),
        "metrics": {
            **({"test": slim_eval_metrics(metrics, TEST_COMMAND)} if metrics else {}),
            **(
                {"leave_one_out_nsf": slim_eval_metrics(loo_metrics, LOO_COMMAND)}
                if loo_metrics
                else {}
            ),
            "validation": cal["val"],
        },
        "licence": AUDIO_LICENCE,
    }


def _description(kind: str, n_parameters: int) -> str:
    return (
        f"Synthetic-speech detector: a residual 2D CNN ({n_parameters} "
        f"parameters) over {F.WINDOW_SECONDS:g} s windows of {KIND_WORDS[kind]} "
        f"(hop {F.WINDOW_HOP_SECONDS:g} s); file "
        f"score = mean of the top {A.TOP_FRACTION:.0%} of {A.SMOOTH_WINDOWS}-window-smoothed "
        "window logits, Platt-calibrated. Trained on real speech against vocoded "
        "(Griffin-Lim, WORLD, LPC, harmonic-plus-noise, a small NSF vocoder of our own, "
        "collected NSF) and TTS (espeak-ng, festival) speech."
    )


def _input_spec(kind: str) -> dict[str, Any]:
    return {
        "name": "features",
        "layout": "NCHW",
        "shape": [None, *F.feature_shape(kind)],
        "dtype": "float32",
        "preprocessing": {
            **F.feature_params(kind),
            "function": "deepfakescan.features.window_features",
            "file_rule": (
                f"mean of top {A.TOP_FRACTION} of {A.SMOOTH_WINDOWS}-window moving-average logits"
            ),
        },
    }


def _training(cal: dict, cfg: dict, diff: float) -> dict[str, Any]:
    """Sources with licences and counts, the command that trains it, how it was fitted."""
    command = (
        "deepfakescan train audio --seed {seed} --epochs {epochs} --threads {threads} "
        "--channels {ch} --balance {balance} --features {features} "
        "--n-aug-real {n_aug_real} --n-aug-fake {n_aug_fake}".format(
            ch=",".join(map(str, cfg["channels"])), **cfg
        )
    )
    sources = [
        {
            "name": src,
            "licence": SOURCE_LICENCES.get(
                src.split("/")[-1], SOURCE_LICENCES.get(src, "generated")
            ),
            "count": n,
        }
        for src, n in sorted(cal.get("train_counts", {}).items())
    ]
    notes = (
        "Splits by speaker (committed manifests data/manifests/audio_*.csv; LJSpeech, one "
        "speaker, split by file; festival, one voice, by sentence). Calibration (Platt) "
        "and "
        f"threshold ({cal['threshold_rule']}) fitted on validation files scored as scan() "
        f"scores them. Best epoch {cal['best_epoch']} by validation file EER "
        f"{cal['best_val_eer']:.4f}. ONNX vs PyTorch max |diff| {diff:.1e}."
    )
    return {"sources": sources, "command": command, "notes": notes}


__all__ = ["AUDIO_VERSION", "audio_card", "export_audio", "export_checked"]
