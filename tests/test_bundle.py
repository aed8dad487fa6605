"""The model loader: cards checked, graphs verified, calibration applied, sessions cached."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deepfakescan.config import Settings
from deepfakescan.detectors import bundle
from deepfakescan.detectors.bundle import (
    file_sha256,
    find_model,
    list_models,
    load_model,
    require_model,
)
from deepfakescan.detectors.card import check_card
from deepfakescan.errors import ModelMissing

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "model-card.schema.json").read_text())
SHIPPED = sorted(p.stem for p in (ROOT / "src" / "deepfakescan" / "models").glob("*.onnx"))

W = np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)
B = np.array([0.25], dtype=np.float32)


def linear_graph(w: np.ndarray = W, b: np.ndarray = B, output: str = "logit") -> bytes:
    """y = x @ w + b with a dynamic batch: the smallest model a card can describe."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0]])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, w.shape[1]])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], [output]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    graph = helper.make_graph(nodes, "linear", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.17
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_card(name: str, graph: bytes, **changes) -> dict:
    card = {
        "name": name,
        "version": "0.1.0",
        "task": "image-detector",
        "description": "A linear test model.",
        "inputs": [
            {
                "name": "x",
                "layout": "NC",
                "shape": [None, 3],
                "dtype": "float32",
                "preprocessing": {"mean": [0.5], "std": [0.5]},
            }
        ],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "labels": ["real", "fake"],
        "calibration": {"method": "none"},
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "training": {
            "sources": [{"name": "synthetic", "licence": "CC0", "count": 0}],
            "command": "-",
        },
        "metrics": {"test": {"roc_auc": 0.5, "n": 0}},
        "licence": "Apache-2.0",
        "sha256": hashlib.sha256(graph).hexdigest(),
    }
    card.update(changes)
    return card


def write_bundle(directory: Path, name: str, graph: bytes | None = None, **changes) -> dict:
    graph = linear_graph() if graph is None else graph
    card = make_card(name, graph, **changes)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.onnx").write_bytes(graph)
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2))
    return card


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No shipped bundles and no cached sessions leak between tests."""
    monkeypatch.setattr(bundle, "SHIPPED_DIR", tmp_path / "shipped")
    bundle.clear_cache()
    yield
    bundle.clear_cache()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(model_dir=tmp_path / "models", threads=1)


X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0], [4.0, 1.0, -1.0]], dtype=np.float32)
LOGITS = (X @ W + B)[:, 0].astype(np.float64)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_loads_and_runs_a_plugged_in_model(settings):
    write_bundle(settings.model_dir, "image")
    model = load_model("image", settings)
    out = model.run({"x": X})
    assert list(out) == ["logit"]
    np.testing.assert_allclose(out["logit"][:, 0], LOGITS, rtol=1e-6)
    assert model.name == "image" and model.version == "0.1.0"
    assert model.input_names == ["x"] and model.labels == ["real", "fake"]
    assert model.threshold == 0.5 and model.uncertain_band == (0.4, 0.6)
    assert model.ref("image-detector").role == "image-detector"
    # a bare float64 array feeds the first input, cast to the card's dtype
    np.testing.assert_allclose(model.predict(X.astype(np.float64)), sigmoid(LOGITS), rtol=1e-6)


@pytest.mark.parametrize(
    ("calibration", "expected"),
    [
        ({"method": "temperature", "temperature": 2.0}, sigmoid(LOGITS / 2.0)),
        ({"method": "platt", "a": 1.5, "b": -0.3}, sigmoid(1.5 * LOGITS - 0.3)),
    ],
)
def test_card_calibration_is_applied_to_logits(settings, calibration, expected):
    write_bundle(settings.model_dir, "image", calibration=calibration)
    np.testing.assert_allclose(load_model("image", settings).predict(X), expected, rtol=1e-6)


def test_probability_outputs_are_calibrated_on_their_logit_without_infinities(settings):
    write_bundle(
        settings.model_dir,
        "image",
        outputs=[{"name": "logit", "kind": "probability"}],
        calibration={"method": "platt", "a": 2.0, "b": 0.0},
    )
    model = load_model("image", settings)
    p = np.array([0.5, 0.8, 0.0, 1.0])
    got = model.calibrate(p)
    np.testing.assert_allclose(got[:2], [0.5, 0.8**2 / (0.8**2 + 0.2**2)], rtol=1e-9)
    assert np.all(np.isfinite(got)) and got[2] < 1e-6 and got[3] > 1 - 1e-6


def test_two_column_logits_use_the_fake_column_named_by_labels(settings):
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    b = np.zeros(2, dtype=np.float32)
    write_bundle(
        settings.model_dir,
        "image",
        graph=linear_graph(w, b),
        outputs=[{"name": "logit", "kind": "logits"}],
        labels=["fake", "real"],
        calibration={"method": "temperature", "temperature": 2.0},
    )
    got = load_model("image", settings).predict(X)
    np.testing.assert_allclose(got, sigmoid((X[:, 0] - X[:, 1]) / 2.0), rtol=1e-6)


def test_multiclass_logits_give_class_probabilities(settings):
    w = np.eye(3, dtype=np.float32)
    write_bundle(
        settings.model_dir,
        "family",
        graph=linear_graph(w, np.zeros(3, dtype=np.float32)),
        task="image-family",
        outputs=[{"name": "logit", "kind": "logits"}],
        labels=["gan", "diffusion", "faceswap"],
    )
    got = load_model("family", settings).predict(X)
    expected = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_model_dir_overrides_a_shipped_bundle_of_the_same_name(settings):
    write_bundle(bundle.SHIPPED_DIR, "image", version="shipped")
    write_bundle(bundle.SHIPPED_DIR, "audio", version="shipped", task="audio-detector")
    write_bundle(settings.model_dir, "image", version="mine")
    assert load_model("image", settings).version == "mine"
    assert load_model("image", Settings(model_dir=None)).version == "shipped"
    infos = {i.name: i for i in list_models(settings)}
    assert infos["image"].overridden and infos["image"].source == "model_dir"
    assert not infos["audio"].overridden and infos["audio"].source == "shipped"


def test_graph_that_does_not_match_its_sha256_is_refused(settings):
    write_bundle(settings.model_dir, "image")
    (settings.model_dir / "image.onnx").write_bytes(linear_graph(W * 2))
    with pytest.raises(ModelMissing, match="does not match its card: sha256"):
        load_model("image", settings)


def test_unknown_name_lists_the_available_models(settings):
    write_bundle(settings.model_dir, "image")
    write_bundle(settings.model_dir, "audio", task="audio-detector")
    (settings.model_dir / "broken.json").write_text("{}")
    with pytest.raises(ModelMissing) as e:
        load_model("imgae", settings)
    assert e.value.message == "no model named 'imgae'; available models = ['audio', 'image']"
    assert e.value.status == 503


def test_missing_model_for_a_task_says_how_to_install_one(settings):
    with pytest.raises(ModelMissing, match=r"no model installed for images: put image\.onnx"):
        require_model("image", settings, what="images")
    with pytest.raises(ModelMissing, match="no model installed for audio-detector"):
        find_model("audio-detector", settings)
    write_bundle(settings.model_dir, "speech", task="audio-detector")
    assert find_model("audio-detector", settings).name == "speech"


def test_card_missing_a_required_field_is_refused_naming_it(settings):
    card = write_bundle(settings.model_dir, "image")
    del card["threshold"]
    (settings.model_dir / "image.json").write_text(json.dumps(card))
    with pytest.raises(ModelMissing, match="missing required field 'threshold'"):
        load_model("image", settings)


def test_card_that_does_not_describe_the_graph_is_refused(settings):
    inputs = [{"name": "pixels", "layout": "NC", "shape": [None, 3], "dtype": "float32"}]
    write_bundle(settings.model_dir, "image", inputs=inputs)
    with pytest.raises(ModelMissing, match="card inputs \\['pixels'\\] but graph inputs \\['x'\\]"):
        load_model("image", settings)


def test_listing_reports_broken_bundles_without_raising(settings):
    write_bundle(settings.model_dir, "image")
    write_bundle(settings.model_dir, "tampered")
    (settings.model_dir / "tampered.onnx").write_bytes(b"not a graph")
    (settings.model_dir / "notjson.json").write_text("{")
    (settings.model_dir / "lonely.onnx").write_bytes(linear_graph())
    infos = {i.name: i for i in list_models(settings)}
    assert infos["image"].valid and infos["image"].summary["metrics"]["test"]["n"] == 0
    assert not infos["tampered"].valid and "sha256" in infos["tampered"].problem
    assert not infos["notjson"].valid and "not valid JSON" in infos["notjson"].problem
    assert not infos["lonely"].valid and "lonely.json is missing" in infos["lonely"].problem


def test_session_is_cached_per_process_and_reloaded_when_replaced(settings):
    write_bundle(settings.model_dir, "image")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(load_model("image", settings)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = load_model("image", settings)
    assert (
        all(r is first for r in results) and first.session is load_model("image", settings).session
    )
    write_bundle(settings.model_dir, "image", graph=linear_graph(W * 2), version="0.2.0")
    stat = (settings.model_dir / "image.onnx").stat()  # same-second writes: force a new mtime
    os.utime(settings.model_dir / "image.onnx", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_model("image", settings).version == "0.2.0"


BROKEN_CARDS = {
    "missing threshold": lambda c: c.pop("threshold"),
    "extra field": lambda c: c.update(weights="x"),
    "bad output kind": lambda c: c.update(outputs=[{"name": "logit", "kind": "score"}]),
    "platt without b": lambda c: c.update(calibration={"method": "platt", "a": 1.0}),
    "negative temperature": lambda c: c.update(
        calibration={"method": "temperature", "temperature": -1}
    ),
    "threshold above 1": lambda c: c.update(threshold=1.5),
    "short sha256": lambda c: c.update(sha256="abc"),
    "shape of zero": lambda c: c["inputs"][0].update(shape=[None, 0]),
    "source without licence": lambda c: c.update(
        training={"sources": [{"name": "x"}], "command": ""}
    ),
}


@pytest.mark.parametrize("breakage", list(BROKEN_CARDS), ids=list(BROKEN_CARDS))
def test_hand_written_check_and_json_schema_reject_the_same_broken_cards(breakage):
    card = make_card("image", b"")
    BROKEN_CARDS[breakage](card)
    assert check_card(card), f"check_card accepted a card with {breakage}"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(card, SCHEMA)


def test_band_must_contain_the_threshold():
    card = make_card("image", b"", threshold=0.7, uncertain_band=[0.4, 0.6])
    assert any("low <= threshold" in p for p in check_card(card))


def test_every_card_the_tests_write_validates_against_the_json_schema(tmp_path):
    variants = [
        make_card("a", b""),
        make_card("b", b"", calibration={"method": "platt", "a": 1.0, "b": 0.0}),
        make_card("c", b"", outputs=[{"name": "y", "kind": "logits"}], labels=["x", "y", "z"]),
    ]
    for card in variants:
        jsonschema.validate(card, SCHEMA)
        assert check_card(card) == []


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundle_is_valid_and_runs(name, monkeypatch):
    shipped = ROOT / "src" / "deepfakescan" / "models"
    card = json.loads((shipped / f"{name}.json").read_text())
    jsonschema.validate(card, SCHEMA)
    assert file_sha256(shipped / f"{name}.onnx") == card["sha256"]
    monkeypatch.setattr(bundle, "SHIPPED_DIR", shipped)
    model = load_model(name, Settings(model_dir=None, threads=1))
    feeds = {}
    for spec in card["inputs"]:
        # dynamic axes: batch of 1, any other (time, size) long enough for a conv stack
        shape = [d or (1 if i == 0 else 64) for i, d in enumerate(spec["shape"])]
        feeds[spec["name"]] = np.zeros(shape, dtype=spec["dtype"])
    outputs = model.run(feeds)
    assert all(np.all(np.isfinite(v)) for v in outputs.values() if v.dtype.kind == "f")
