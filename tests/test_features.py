"""features.py: the one place where samples become the audio model's input."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan import features as F


def _noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    n = int(seconds * F.SAMPLE_RATE)
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


KINDS = list(F.FEATURE_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_window_features_shape_dtype_and_per_window_normalisation(kind):
    feats = F.window_features(_noise(F.WINDOW_SECONDS), kind)
    assert feats.shape == F.feature_shape(kind)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # every row is centred over the window: a fixed channel colouring cancels
    assert np.abs(feats.mean(axis=2)).max() < 1e-3
    if kind == "spectrogram":  # one scale for the whole window
        assert abs(feats.std() - 1.0) < 1e-2
    else:  # rows with variance come out at unit std (a constant row would stay at 0)
        assert np.allclose(feats.std(axis=2)[feats.std(axis=2) > 0.5], 1.0, atol=1e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_window_features_ignore_gain_so_loudness_is_not_a_cue(kind):
    x = _noise(F.WINDOW_SECONDS)
    assert np.allclose(F.window_features(x, kind), F.window_features(0.05 * x, kind), atol=2e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_digital_silence_gives_finite_features(kind):
    assert np.isfinite(F.window_features(np.zeros(F.WINDOW_SAMPLES, np.float32), kind)).all()


def test_unknown_feature_kind_is_refused():
    with pytest.raises(ValueError, match="feature kind"):
        F.window_features(np.zeros(F.WINDOW_SAMPLES, np.float32), "chroma")


def test_window_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="samples"):
        F.window_features(np.zeros(100, np.float32))


def test_linear_filterbank_covers_the_whole_band_evenly():
    fb = F.linear_filterbank()
    assert fb.shape == (F.N_LINEAR, F.N_FFT // 2 + 1)
    # neighbouring triangles sum to one between the first and last centre: no band is favoured
    centre = slice(4, F.N_FFT // 2 - 4)
    assert np.allclose(fb[:, centre].sum(axis=0), 1.0, atol=1e-5)


def test_lfcc_sees_the_upper_band_that_mfcc_smears():
    """Two windows that differ only above 6 kHz differ more in LFCC than in MFCC."""
    rng = np.random.default_rng(0)
    t = np.arange(F.WINDOW_SAMPLES) / F.SAMPLE_RATE
    base = sum(np.sin(2 * np.pi * f * t) for f in (150, 300, 450, 900, 1800)) * 0.05
    hiss = np.sin(2 * np.pi * 7000 * t) * 0.01 * (1 + np.sin(2 * np.pi * 3 * t))
    a = F.window_features(
        (base + 1e-4 * rng.standard_normal(len(t))).astype(np.float32), "mfcc+lfcc"
    )
    b = F.window_features(
        (base + hiss + 1e-4 * rng.standard_normal(len(t))).astype(np.float32), "mfcc+lfcc"
    )
    mfcc_change = np.abs(a[:3] - b[:3]).mean()
    lfcc_change = np.abs(a[3:] - b[3:]).mean()
    assert lfcc_change > mfcc_change


def test_mel_filterbank_matches_librosa_slaney():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(
        sr=F.SAMPLE_RATE, n_fft=F.N_FFT, n_mels=F.N_MELS, fmin=F.F_MIN, fmax=F.F_MAX
    )
    assert np.allclose(F.mel_filterbank(), ref, atol=1e-6)


@pytest.mark.parametrize("block", [1000, 7777, 16000, 48000, 10**6])
def test_streamed_windows_equal_whole_clip_windows_whatever_the_block_size(block):
    x = _noise(10.3)
    w = F.Windower()
    streamed = []
    for i in range(0, len(x), block):
        streamed += list(w.push(x[i : i + block]))
    streamed += list(w.finish())
    whole = F.clip_windows(x)
    assert [(a.start_s, a.end_s) for a in streamed] == [(b.start_s, b.end_s) for b in whole]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(streamed, whole, strict=True))


def test_windows_overlap_and_the_tail_is_covered():
    wins = F.clip_windows(_noise(10.5))
    starts = [w.start_s for w in wins]
    assert starts[:3] == [0.0, F.WINDOW_HOP_SECONDS, 2 * F.WINDOW_HOP_SECONDS]
    assert wins[-1].end_s == pytest.approx(10.5)


def test_short_clip_is_padded_by_repetition_never_zeros():
    x = _noise(0.4)
    (win,) = F.clip_windows(x)
    assert win.samples.shape == (F.WINDOW_SAMPLES,)
    assert np.array_equal(win.samples[len(x) : 2 * len(x)], x)
    assert win.end_s == pytest.approx(0.4)
    assert win.real_samples == len(x)


def test_voice_activity_gate_rejects_silence_and_faint_hiss_but_passes_loud_sound():
    assert not F.has_speech(np.zeros(F.WINDOW_SAMPLES, np.float32), F.WINDOW_SAMPLES)
    assert not F.has_speech(_noise(F.WINDOW_SECONDS, level=1e-4), F.WINDOW_SAMPLES)
    assert F.has_speech(_noise(F.WINDOW_SECONDS, level=0.1), F.WINDOW_SAMPLES)


def test_voice_gate_measures_only_the_real_part_of_a_padded_clip():
    tiny = F.pad_by_repetition(_noise(0.05))  # 50 ms of sound repeated: not enough speech
    assert not F.has_speech(tiny, int(0.05 * F.SAMPLE_RATE))
