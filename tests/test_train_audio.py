"""Training end to end on a trivially separable generated set, then ONNX export and reload.

Needs the ``[train]`` extra (torch); skipped without it. Seconds, not minutes.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from deepfakescan import features as F  # noqa: E402
from deepfakescan.config import Settings  # noqa: E402
from deepfakescan.detectors import bundle  # noqa: E402
from deepfakescan.evaluation.metrics import roc_auc  # noqa: E402
from deepfakescan.training import export, train_audio  # noqa: E402

from .conftest import audio_card  # noqa: E402


def clip(kind: str, seed: int) -> np.ndarray:
    """'real': gliding harmonics; 'fake': noise bursts, both under the same syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(F.WINDOW_SAMPLES) / F.SAMPLE_RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
    if kind == "real":
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / F.SAMPLE_RATE
        y = sum(np.sin(k * phase) / k for k in range(1, 10))
    else:
        y = rng.standard_normal(len(t))
    return (0.1 * y * env).astype(np.float32)


def dataset(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i in range(n):
        for label, kind in ((0, "real"), (1, "fake")):
            (w,) = F.clip_windows(clip(kind, offset + i))
            xs.append(F.window_features(w.samples))
            ys.append(label)
    return np.stack(xs), np.array(ys)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(2)
    x, y = dataset(24, 0)
    return train_audio.fit_arrays(x, y, epochs=4, lr=5e-3, batch_size=16, channels=(8, 16, 24))


def test_tiny_training_run_separates_a_trivially_separable_set(trained):
    x, y = dataset(12, 1000)
    z = train_audio.predict_windows(trained, x)
    assert roc_auc(y, z) > 0.95


def test_export_and_reload_through_the_bundle_loader_matches_pytorch(
    trained, tmp_path, monkeypatch
):
    x, _ = dataset(3, 2000)
    onnx_path = export.export_onnx(
        trained, torch.from_numpy(x[:2]), tmp_path / "audio.onnx", input_name="features"
    )
    assert export.check_against_torch(trained, onnx_path, x) < 1e-4
    card = audio_card(calibration={"method": "platt", "a": 1.0, "b": 0.0})
    export.write_card(onnx_path, card)
    bundle.clear_cache()
    model = bundle.load_model("audio", Settings(model_dir=tmp_path))
    got = model.run(x)["logit"].reshape(-1)
    with torch.inference_mode():
        want = trained(torch.from_numpy(x)).numpy()
    assert np.allclose(got, want, atol=1e-4)
    bundle.clear_cache()


def test_training_run_is_seeded():
    x, y = dataset(4, 0)
    a = train_audio.fit_arrays(x, y, epochs=1, channels=(4, 8), seed=7)
    b = train_audio.fit_arrays(x, y, epochs=1, channels=(4, 8), seed=7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
