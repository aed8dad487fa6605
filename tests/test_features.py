"""features.py: the one place where samples become the audio model's input."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan import features as F


def _noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    n = int(seconds * F.SAMPLE_RATE)
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


def test_window_features_shape_dtype_and_per_window_normalisation():
    feats = F.window_features(_noise(F.WINDOW_SECONDS))
    assert feats.shape == (3, F.N_MFCC, F.N_FRAMES)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert np.abs(feats.mean(axis=2)).max() < 1e-3
    # rows with variance come out at unit std (a constant row would stay at 0)
    assert np.allclose(feats.std(axis=2)[feats.std(axis=2) > 0.5], 1.0, atol=1e-2)


def test_window_features_ignore_gain_so_loudness_is_not_a_cue():
    x = _noise(F.WINDOW_SECONDS)
    assert np.allclose(F.window_features(x), F.window_features(0.05 * x), atol=2e-3)


def test_exact_digital_silence_gives_finite_features():
    assert np.isfinite(F.window_features(np.zeros(F.WINDOW_SAMPLES, np.float32))).all()


def test_window_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="samples"):
        F.window_features(np.zeros(100, np.float32))


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
