"""Shared fixtures: every report a test produces is validated against docs/report.schema.json,
and tiny ONNX bundles built in code stand in for trained models where a test needs one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import deepfakescan
from deepfakescan import pipeline
from deepfakescan.config import Settings

ROOT = Path(__file__).resolve().parents[1]
REPORT_SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


def validate_report(report_dict: dict) -> None:
    """Fail the test if a report does not match the published JSON Schema."""
    import jsonschema

    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report_dict)


@pytest.fixture(autouse=True)
def _validate_every_report(monkeypatch):
    """Wrap ``scan`` so that each report produced anywhere in a test is schema-checked."""
    original = pipeline.scan

    def checked_scan(*args, **kwargs):
        report = original(*args, **kwargs)
        validate_report(json.loads(report.to_json()))
        return report

    monkeypatch.setattr(pipeline, "scan", checked_scan)
    monkeypatch.setattr(deepfakescan, "scan", checked_scan)


def write_bundle(directory: Path, name: str, model, card: dict) -> Path:
    """Save an ONNX model and its card (with the graph's sha256) as a bundle."""
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = directory / f"{name}.onnx"
    onnx.save(model, onnx_path)
    card = dict(card, name=name, sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest())
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2))
    return onnx_path


def brightness_model():
    """A face "detector" that scores brightness: logit = mean of a class-activation map
    cam = 20 * (local mean pixel - 0.5) on a 8x8 grid. Bright faces score fake, dark ones real."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    logit = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])
    cam = helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["N", 8, 8])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["grey"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["grey"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Sub", ["pooled", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["cam4"]),
        helper.make_node("Squeeze", ["cam4", "axis1"], ["cam"]),
        helper.make_node("ReduceMean", ["cam4"], ["logit"], axes=[2, 3], keepdims=0),
    ]
    inits = [
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(nodes, "brightness", [x], [logit, cam], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def image_card(**overrides) -> dict:
    card = {
        "name": "image",
        "version": "test-1",
        "task": "image-detector",
        "description": "Test stand-in: scores brightness, not manipulation.",
        "inputs": [
            {
                "name": "input",
                "layout": "NCHW",
                "shape": [None, 3, 32, 32],
                "dtype": "float32",
                "preprocessing": {"size": 32, "margin": 1.3, "mean": [0, 0, 0], "std": [1, 1, 1]},
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}, {"name": "cam", "kind": "map"}],
        "labels": ["real", "fake"],
        "calibration": {"method": "none"},
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "training": {"sources": [], "command": "built in tests/conftest.py"},
        "metrics": {},
        "licence": "Apache-2.0",
        "sha256": "",
    }
    card.update(overrides)
    return card


def audio_card(**overrides) -> dict:
    """Card of a stand-in ``audio`` bundle: feature parameters as the shipped model's."""
    from deepfakescan import features

    card = {
        "name": "audio",
        "version": "test-1",
        "task": "audio-detector",
        "description": "Test stand-in, not a detector.",
        "inputs": [
            {
                "name": "features",
                "layout": "NCHW",
                "shape": [None, *features.feature_shape()],
                "dtype": "float32",
                "preprocessing": features.feature_params(),
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": {"method": "none"},
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "training": {"sources": [], "command": "built in tests"},
        "metrics": {},
        "licence": "Apache-2.0",
        "sha256": "",
    }
    card.update(overrides)
    return card


@pytest.fixture
def brightness_model_dir(tmp_path, monkeypatch) -> Path:
    """A model directory holding a tiny ``image`` bundle; DEEPFAKESCAN_MODEL_DIR points at it.

    The shipped whole-image model is hidden: these tests pin the face model's verdicts on
    stubbed scores, and a real network judging the same grey test pictures would decide some
    of them (tests of the combined verdict install their own whole-image bundle)."""
    hide_shipped(tmp_path, monkeypatch, "image-synthetic")
    directory = tmp_path / "models"
    write_bundle(directory, "image", brightness_model(), image_card())
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(directory))
    return directory


def hide_shipped(tmp_path: Path, monkeypatch, *names: str) -> Path:
    """Point the shipped-model folder at a copy (symlinks) without the bundles ``names``."""
    from deepfakescan.detectors import bundle as bundles

    shipped = tmp_path / "shipped-models"
    shipped.mkdir(exist_ok=True)
    for path in bundles.SHIPPED_DIR.iterdir():
        if path.name.split(".")[0] not in names and not (shipped / path.name).exists():
            (shipped / path.name).symlink_to(path)
    monkeypatch.setattr(bundles, "SHIPPED_DIR", shipped)
    bundles.clear_cache()
    return shipped


@pytest.fixture
def settings_with_brightness(brightness_model_dir) -> Settings:
    return Settings.from_env()


def solid_jpeg(value: int, size=(64, 48)) -> bytes:
    """A JPEG of one grey level: the brightness model scores it by that level."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def face_jpeg(tone: str) -> bytes:
    """scikit-image's astronaut (public domain), toned so the brightness model calls its face
    "fake" (``bright``) or "real" (``dark``)."""
    import io

    from PIL import Image
    from skimage import data

    rgb = data.astronaut().astype(np.float32)
    toned = rgb * 0.35 + (150.0 if tone == "bright" else 0.0)
    buf = io.BytesIO()
    Image.fromarray(np.clip(toned, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="session")
def pg_url():
    """``postgresql://...`` of a PostgreSQL server started for this test session (skipped
    where PostgreSQL is not installed, failed under CI). Tests take a database of their own
    with ``services.fresh_database(pg_url)``."""
    from .services import postgres_server

    with postgres_server() as url:
        yield url
