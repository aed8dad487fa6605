"""detectors/audio.py through scan(): windows, voice gate, timeline, and the bad inputs.

A tiny ONNX stand-in (``logit = mean of the input``) replaces the shipped model where a test is
about plumbing; the shipped ``audio`` bundle is exercised where it is installed.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
import soundfile as sf

import deepfakescan
from deepfakescan import features as F
from deepfakescan.config import Settings
from deepfakescan.detectors import audio as A
from deepfakescan.detectors import bundle
from deepfakescan.errors import ModelMissing
from deepfakescan.training.audio import data as D

from .conftest import audio_card, write_bundle
from .fixtures import corrupt, encode_audio, tone

PLATT = {"method": "platt", "a": 1.0, "b": 0.0}


def mean_model():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, *F.feature_shape()])
    y = helper.make_tensor_value_info("logit", TensorProto.FLOAT, [None])
    node = helper.make_node("ReduceMean", ["features"], ["logit"], axes=[1, 2, 3], keepdims=0)
    graph = helper.make_graph([node], "mean", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Settings:
    pytest.importorskip("onnx")
    write_bundle(tmp_path / "models", "audio", mean_model(), audio_card(calibration=PLATT))
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(tmp_path / "models"))
    bundle.clear_cache()
    yield Settings.from_env()
    bundle.clear_cache()


def speechlike(seconds: float, seed: int = 0, sr: int = F.SAMPLE_RATE) -> np.ndarray:
    """Syllable-rate modulated harmonics with a gliding pitch: loud enough to be voiced."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * y * env + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def wav(y: np.ndarray, sr: int = F.SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ------------------------------------------------------------------------------- file rule


def test_file_rule_is_the_mean_of_the_top_half_of_smoothed_logits():
    z = np.array([0.0, 0.0, 0.0, 9.0, 9.0, 9.0])
    s = A.smooth(z)
    assert s.tolist() == [0.0, 0.0, 3.0, 6.0, 9.0, 9.0]
    assert A.file_logit(z) == pytest.approx(8.0)
    assert A.file_logit(np.array([2.5])) == 2.5


# ----------------------------------------------------------------------------- via scan()


def test_scan_gives_probability_timeline_and_model_ref(stand_in):
    report = deepfakescan.scan(wav(speechlike(6.5)), settings=stand_in)
    assert report.media.type == "audio"
    assert report.fake_probability is not None and 0 <= report.fake_probability <= 1
    starts = [s.start_s for s in report.segments]
    assert starts == [0.0, 1.0, 2.0, 3.0, 4.0, 4.5]
    assert all(
        s.modality == "audio" and s.end_s - s.start_s == F.WINDOW_SECONDS for s in report.segments
    )
    assert report.models and report.models[0].name == "audio"


def test_training_dataset_and_scan_feed_the_model_the_same_tensor(stand_in, tmp_path, monkeypatch):
    path = tmp_path / "clip.flac"
    sf.write(
        path, speechlike(4.2, seed=3, sr=22050), 22050
    )  # not 16 kHz: the resampler is shared too
    seen = []
    original = A._score_batch
    monkeypatch.setattr(A, "_score_batch", lambda m, b: (seen.append(b.copy()), original(m, b))[1])
    deepfakescan.scan(path, settings=stand_in)
    scanned = np.concatenate(seen)
    # the training code path for validation files: window cache (as scanned), then features
    row = D.Row("clip.flac", "real", "real", "test", "s1")
    cache = D.build_split_cache([row], tmp_path, "val", n_aug_real=0, n_aug_fake=0, jobs=1)
    trained = D.featurise(cache, jobs=1)["x"]
    assert scanned.shape == trained.shape == (4, *F.feature_shape())
    # the cache stores features as float16: equal to that precision, and nothing else differs
    assert np.array_equal(scanned.astype(np.float16), trained)


def test_silence_is_uncertain_because_there_is_no_speech(stand_in):
    report = deepfakescan.scan(wav(np.zeros(3 * F.SAMPLE_RATE, np.float32)), settings=stand_in)
    assert report.verdict == "uncertain"
    assert report.fake_probability is None
    assert "no speech" in report.reasons[0].lower()
    assert report.segments == []


def test_a_tenth_of_a_second_is_uncertain_because_too_short(stand_in):
    report = deepfakescan.scan(wav(speechlike(0.1)), settings=stand_in)
    assert report.verdict == "uncertain"
    assert "too short" in report.reasons[0].lower()


def _long_u8_wav(seconds: int, sr: int = 8000) -> bytes:
    """A WAV of ``seconds`` of 8-bit tone, built by tiling one second (3 h = 86 MB, fast)."""
    one = (128 + 60 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)).astype(np.uint8).tobytes()
    data = one * seconds
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += (
        struct.pack("<IHHIIHH", 16, 1, 1, sr, sr, 1, 8) + b"data" + struct.pack("<I", len(data))
    )
    return header + data


def test_three_hour_file_is_cut_to_the_first_minutes_and_the_report_says_so(stand_in):
    settings = Settings.from_env(max_audio_seconds=20.0)
    report = deepfakescan.scan(_long_u8_wav(3 * 3600), settings=settings)
    assert report.media.analysed_duration_s == pytest.approx(20.0, abs=0.1)
    assert report.media.duration_s == pytest.approx(3 * 3600, rel=1e-3)
    assert any("first 20 s" in r for r in report.reasons)
    assert report.segments[-1].end_s <= 20.0 + 1e-6


def test_a_wav_cut_at_ten_percent_is_judged_on_what_is_left_and_the_report_says_so(stand_in):
    whole = wav(speechlike(6.0))
    report = deepfakescan.scan(whole[: len(whole) // 10], settings=stand_in)
    assert report.media.duration_s == pytest.approx(6.0, abs=0.01)  # what the header declares
    assert report.media.analysed_duration_s == pytest.approx(0.6, abs=0.01)
    assert any(w.startswith("the file is truncated: 0.60 s of the 6.00 s") for w in report.warnings)
    assert not deepfakescan.scan(whole, settings=stand_in).warnings


def test_seven_one_channel_96k_file_is_downmixed_and_scanned(stand_in):
    data = encode_audio(tone(3.0, sr=96000, channels=8), 96000, "wav")
    report = deepfakescan.scan(data, settings=stand_in)
    assert report.media.channels == 8 and report.media.sample_rate == 96000
    assert report.fake_probability is not None
    assert len(report.segments) == 2


def test_mp3_with_a_corrupt_frame_is_scanned_with_a_warning(stand_in):
    data = corrupt(encode_audio(speechlike(8.0), F.SAMPLE_RATE, "mp3"), 0.5, 600)
    report = deepfakescan.scan(data, settings=stand_in)
    assert report.fake_probability is not None
    assert report.warnings


def test_mp4_holding_only_audio_is_scanned_as_audio(stand_in):
    report = deepfakescan.scan(
        encode_audio(speechlike(3.0), F.SAMPLE_RATE, "m4a"), settings=stand_in
    )
    assert report.media.type == "audio"
    assert report.fake_probability is not None


# ----------------------------------------------------------------------- the shipped model


def _espeak(text: str) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout


@pytest.fixture
def shipped(monkeypatch) -> Settings:
    monkeypatch.delenv("DEEPFAKESCAN_MODEL_DIR", raising=False)
    bundle.clear_cache()
    settings = Settings.from_env()
    if "audio" not in {m.name for m in bundle.list_models(settings)}:
        pytest.skip("no shipped audio model")
    return settings


def test_shipped_model_calls_espeak_speech_fake(shipped):
    text = "The quick brown fox jumps over the lazy dog, and then it runs into the forest."
    report = deepfakescan.scan(_espeak(text), settings=shipped)
    assert report.verdict == "fake", report.reasons
    assert report.segments and max(s.fake_probability for s in report.segments) > 0.5
    assert "suspicious" in " ".join(report.reasons)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_fft": 1024}, "n_fft"),  # same kind, other parameters
        ({"features": "chroma"}, "reads features 'chroma'"),  # a kind we do not compute
        ({"features": None}, "reads features None"),  # a v0.1 card, before kinds were named
    ],
)
def test_a_plugged_in_model_asking_for_other_features_is_refused(
    tmp_path, monkeypatch, change, message
):
    pytest.importorskip("onnx")
    card = audio_card()
    card["inputs"][0]["preprocessing"] = {**F.feature_params(), **change}
    write_bundle(tmp_path / "models", "audio", mean_model(), card)
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(tmp_path / "models"))
    bundle.clear_cache()
    with pytest.raises(ModelMissing, match=re.escape(message)):
        deepfakescan.scan(wav(speechlike(3.0)), settings=Settings.from_env())
    bundle.clear_cache()
