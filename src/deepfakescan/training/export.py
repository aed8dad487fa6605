"""Export a trained PyTorch network to ONNX and write its model card beside it.

Generic (any single-input, single-output classifier); the audio specifics (feature parameters,
calibration, metrics) come in as arguments. Files are written to temporary names and renamed
at the end, so a model directory never holds a half-written bundle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str = "input",
    output_name: str = "logit",
    opset: int = 17,
) -> Path:
    """Trace ``model`` (eval mode) to ``path`` with a dynamic batch axis; returns ``path``."""
    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    tmp.replace(path)
    return path


def check_against_torch(
    model: nn.Module, onnx_path: Path, example: np.ndarray, atol: float = 1e-4
) -> float:
    """Largest |ONNX Runtime - PyTorch| on ``example``; raises if above ``atol``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: example.astype(np.float32)})[0]
    with torch.inference_mode():
        want = model.eval()(torch.from_numpy(example.astype(np.float32))).numpy()
    diff = float(np.max(np.abs(got.reshape(-1) - want.reshape(-1)))) if want.size else 0.0
    if diff > atol:
        raise RuntimeError(f"ONNX and PyTorch disagree by {diff:.2e} (> {atol:.0e})")
    return diff


def write_card(onnx_path: Path, card: dict[str, Any]) -> Path:
    """Write ``name.json`` beside ``onnx_path`` with the graph's sha256 filled in."""
    onnx_path = Path(onnx_path)
    card = {**card, "sha256": sha256_of(onnx_path)}
    out = onnx_path.with_suffix(".json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def install_bundle(
    onnx_tmp: Path, card: dict[str, Any], dest_dir: Path, name: str
) -> tuple[Path, Path]:
    """Move a finished graph into ``dest_dir/name.onnx`` and write its card, graph first.

    The card is written last: a loader that finds a graph without a card skips it, whereas a
    card naming a graph that is not there yet would fail its sha256 check.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = dest_dir / f"{name}.onnx"
    Path(onnx_tmp).replace(onnx_path)
    return onnx_path, write_card(onnx_path, card)


# ------------------------------------------------------------------------------- audio card

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

TEST_COMMAND = (
    "deepfakescan eval ../cache/deepfakescan-audio/audio_test.csv --out ../cache/eval-test"
)
LOO_COMMAND = (
    "deepfakescan train audio --leave-out nsf-vocoded-fake && "
    "deepfakescan train export --run loo-nsf-vocoded-fake --models-dir ../cache/loo-model && "
    "DEEPFAKESCAN_MODEL_DIR=../cache/loo-model deepfakescan eval "
    "../cache/deepfakescan-audio/audio_loo_test.csv --out ../cache/eval-loo"
)
CARD_METRICS = ("auc", "eer", "accuracy", "recall", "fpr", "ece")


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
    from .. import features as F
    from ..detectors import audio as A
    from .nets import AudioResNet, count_parameters

    run_dir = Path(run_dir)
    cal = json.loads((run_dir / "calibration.json").read_text())
    channels = tuple(cal["config"]["channels"])
    # runs from before feature kinds (v0.1) recorded neither features nor a balance: MFCC, 0
    cfg = {"balance": 0.0, "features": "mfcc", **cal["config"]}
    kind = cfg["features"]
    model = AudioResNet(channels, kind=kind)
    model.load_state_dict(torch.load(run_dir / "final.pt"))
    model.eval()
    example = torch.randn(2, *F.feature_shape(kind))
    tmp = run_dir / f"{name}.onnx"
    export_onnx(model, example, tmp, input_name="features", output_name="logit")
    check = np.random.default_rng(0).standard_normal((4, *F.feature_shape(kind))).astype(np.float32)
    diff = check_against_torch(model, tmp, check)
    counts = cal.get("train_counts", {})
    command = (
        "deepfakescan train audio --seed {seed} --epochs {epochs} --threads {threads} "
        "--channels {ch} --balance {balance} --features {features} "
        "--n-aug-real {n_aug_real} --n-aug-fake {n_aug_fake}".format(
            ch=",".join(map(str, cfg["channels"])), **cfg
        )
    )
    card = {
        "name": name,
        "version": AUDIO_VERSION,
        "task": "audio-detector",
        "description": (
            f"Synthetic-speech detector: a residual 2D CNN ({count_parameters(model)} "
            f"parameters) over {F.WINDOW_SECONDS:g} s windows of {KIND_WORDS[kind]} "
            f"(hop {F.WINDOW_HOP_SECONDS:g} s); file "
            f"score = mean of the top {A.TOP_FRACTION:.0%} of {A.SMOOTH_WINDOWS}-window-smoothed "
            "window logits, Platt-calibrated. Trained on real speech against vocoded "
            "(Griffin-Lim, WORLD, LPC, harmonic-plus-noise, a small NSF vocoder of our own, "
            "collected NSF) and TTS (espeak-ng, festival) speech."
        ),
        "inputs": [
            {
                "name": "features",
                "layout": "NCHW",
                "shape": [None, *F.feature_shape(kind)],
                "dtype": "float32",
                "preprocessing": {
                    **F.feature_params(kind),
                    "function": "deepfakescan.features.window_features",
                    "file_rule": (
                        f"mean of top {A.TOP_FRACTION} of "
                        f"{A.SMOOTH_WINDOWS}-window moving-average logits"
                    ),
                },
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": cal["calibration"],
        "threshold": cal["threshold"],
        "uncertain_band": cal["uncertain_band"],
        "training": {
            "sources": [
                {
                    "name": src,
                    "licence": SOURCE_LICENCES.get(
                        src.split("/")[-1], SOURCE_LICENCES.get(src, "generated")
                    ),
                    "count": n,
                }
                for src, n in sorted(counts.items())
            ],
            "command": command,
            "notes": (
                "Splits by speaker (committed manifests data/manifests/audio_*.csv; LJSpeech, one "
                "speaker, split by file; festival, one voice, by sentence). Calibration (Platt) "
                "and "
                f"threshold ({cal['threshold_rule']}) fitted on validation files scored as scan() "
                f"scores them. Best epoch {cal['best_epoch']} by validation file EER "
                f"{cal['best_val_eer']:.4f}. ONNX vs PyTorch max |diff| {diff:.1e}."
            ),
        },
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
    return install_bundle(tmp, card, Path(models_dir), name)
