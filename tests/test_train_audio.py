"""Training end to end on a trivially separable generated set, then ONNX export and reload;
the shared resumable loop and the ``train audio`` command's run and export directories.

Needs the ``[train]`` extra (torch); skipped without it. Seconds, not minutes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from deepfakescan import features as F  # noqa: E402
from deepfakescan.config import Settings  # noqa: E402
from deepfakescan.detectors import bundle  # noqa: E402
from deepfakescan.evaluation.metrics import roc_auc  # noqa: E402
from deepfakescan.training import checkpoint, onnx_export  # noqa: E402
from deepfakescan.training.audio import train as train_audio  # noqa: E402
from deepfakescan.training.audio.nets import AudioResNet  # noqa: E402

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
    onnx_path = onnx_export.export_onnx(
        trained, torch.from_numpy(x[:2]), tmp_path / "audio.onnx", input_name="features"
    )
    assert max(onnx_export.round_trip_error(trained, onnx_path, x).values()) < 1e-4
    card = audio_card(calibration={"method": "platt", "a": 1.0, "b": 0.0})
    onnx_export.write_card(onnx_path, card)
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


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_run_cut_mid_epoch_and_resumed_ends_with_the_weights_of_an_uncut_run(tmp_path):
    """Long CPU runs get cut; a resumed run must not be a different model than an uncut one."""
    x, y = dataset(10, 0)  # 20 windows: 3 steps an epoch of 8 (the last one short)
    recipe = dict(epochs=3, batch_size=8, channels=(4, 8), seed=5, lr=5e-3)
    uncut = _weights(train_audio.fit_arrays(x, y, **recipe))
    run = tmp_path / "run"
    cut = train_audio.fit_arrays(x, y, run_dir=run, max_steps=4, **recipe)  # epoch 1, step 1
    state = checkpoint.load_checkpoint(run / checkpoint.CHECKPOINT)
    assert (state["epoch"], state["index"], state["step"]) == (1, 8, 4)
    assert any(not torch.equal(v, uncut[k]) for k, v in _weights(cut).items())
    resumed = _weights(train_audio.fit_arrays(x, y, run_dir=run, **recipe))
    for name, value in uncut.items():
        assert torch.equal(resumed[name], value), name
    history = checkpoint.load_checkpoint(run / checkpoint.CHECKPOINT)["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]


def test_resuming_with_another_recipe_is_refused_naming_the_option(tmp_path):
    x, y = dataset(4, 0)
    train_audio.fit_arrays(x, y, epochs=1, channels=(4, 8), run_dir=tmp_path, max_steps=1)
    with pytest.raises(
        ValueError, match=r"another configuration \(lr: 0\.003 in the checkpoint, 0\.01 now\)"
    ):
        train_audio.fit_arrays(x, y, epochs=1, channels=(4, 8), run_dir=tmp_path, lr=0.01)


def _finished_run(run_dir, channels=(4, 8)):
    """What ``train`` leaves in a run directory: ``final.pt`` and ``calibration.json``."""
    run_dir.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(AudioResNet(channels).state_dict(), run_dir / "final.pt")
    cal = {
        "calibration": {"method": "platt", "a": 1.0, "b": 0.0},
        "threshold": 0.6,
        "threshold_rule": "test",
        "uncertain_band": [0.5, 0.7],
        "val": {"files": 2},
        "best_epoch": 0,
        "best_val_eer": 0.5,
        "config": {
            **{k: 0 for k in ("seed", "epochs", "threads", "n_aug_real", "n_aug_fake")},
            "channels": list(channels),
            "balance": 0.5,
            "features": F.FEATURE_KIND,
        },
    }
    (run_dir / "calibration.json").write_text(json.dumps(cal))


def test_export_lands_in_the_run_directory_unless_out_is_given(tmp_path, monkeypatch, capsys):
    """The package's model directory is written only through an explicit --out."""
    from deepfakescan.cli import main

    monkeypatch.setenv("DEEPFAKESCAN_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "cache" / "audio" / "runs" / "main"
    _finished_run(run)
    assert main(["train", "audio", "--export-only"]) == 0
    assert sorted(p.name for p in (run / "export").iterdir()) == ["audio.json", "audio.onnx"]
    assert main(["train", "audio", "--export-only", "--out", str(tmp_path / "models")]) == 0
    card = json.loads((tmp_path / "models" / "audio.json").read_text())
    assert card["sha256"] == bundle.file_sha256(tmp_path / "models" / "audio.onnx")
    assert str(tmp_path / "models" / "audio.onnx") in capsys.readouterr().out
