"""Audio features shared by training and inference: windows, a voice-activity gate, MFCC.

Whatever the model sees at serve time must be exactly what it saw in training, so every step
from 16 kHz mono samples to the network's input tensor lives here, in NumPy only (no librosa
at run time): :class:`Windower` cuts a stream of blocks into overlapping windows (short clips
padded by repetition, never zeros), :func:`voiced_fraction` gates windows without speech,
and :func:`window_features` turns one window into MFCC + delta + delta-delta, normalised per
window. ``detectors/audio.py`` and ``training/audio_data.py`` both call these and nothing else.

Shapes: a window is float32 ``(WINDOW_SAMPLES,)``; its features are float32
``(3, N_MFCC, N_FRAMES)`` — channels (static, delta, delta-delta) x cepstral coefficient x time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
"""Hz; every input is resampled to this and downmixed to mono before features."""
N_FFT = 512
WIN_LENGTH = 400
"""25 ms analysis frames."""
HOP_LENGTH = 160
"""10 ms between frames."""
N_MELS = 64
N_MFCC = 32
F_MIN = 20.0
F_MAX = 8000.0
DELTA_WIDTH = 2
"""Regression half-width of the delta filter, in frames."""
LOG_FLOOR = 1e-8
"""Power floor before the log, so exact-zero (TTS) silence does not produce -inf."""

WINDOW_SECONDS = 2.0
WINDOW_HOP_SECONDS = 1.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
WINDOW_HOP = int(WINDOW_HOP_SECONDS * SAMPLE_RATE)
N_FRAMES = 1 + (WINDOW_SAMPLES - WIN_LENGTH) // HOP_LENGTH
assert WINDOW_SAMPLES % HOP_LENGTH == 0 and WINDOW_HOP % HOP_LENGTH == 0

MIN_SPEECH_SECONDS = 0.15
"""A file with less audio than this is too short to judge."""
SPEECH_FRAME_DBFS = -55.0
"""A 25 ms frame louder than this (RMS, dB re full scale) counts as active."""
MIN_VOICED_FRACTION = 0.2
"""A window is scored only if at least this share of its frames is active."""
MIN_VOICE_SECONDS = 0.1
"""... and at least this much of it is active (matters for padded short clips)."""

FEATURE_PARAMS = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "win_length": WIN_LENGTH,
    "hop_length": HOP_LENGTH,
    "window": "hann",
    "n_mels": N_MELS,
    "n_mfcc": N_MFCC,
    "f_min": F_MIN,
    "f_max": F_MAX,
    "mel_scale": "slaney",
    "log": "10*log10(max(mel_power, 1e-8))",
    "dct": "type-II, orthonormal",
    "deltas": f"regression, width {DELTA_WIDTH}, edges repeated",
    "normalisation": "per window: each coefficient row minus its mean, over its std (+1e-5)",
    "window_s": WINDOW_SECONDS,
    "hop_s": WINDOW_HOP_SECONDS,
    "short_clip": "padded by repetition to one window",
    "vad": {
        "frame_dbfs": SPEECH_FRAME_DBFS,
        "min_voiced_fraction": MIN_VOICED_FRACTION,
        "min_voice_seconds": MIN_VOICE_SECONDS,
    },
}
"""What the model card records under ``inputs[0].preprocessing``."""


# ------------------------------------------------------------------------------ filter banks


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, log above), as librosa's default."""
    f = np.asarray(f, np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mels
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Slaney-normalised triangular filters, float32 ``(N_MELS, N_FFT // 2 + 1)``."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2)
    hz_pts = _mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2 : N_MELS + 2] - hz_pts[:N_MELS]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _sparse_filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The filter bank as (bin, weight) runs per filter: each FFT bin feeds at most two filters."""
    fb = mel_filterbank()
    bins, weights, starts, nonempty = [], [], [], []
    for j in range(N_MELS):
        nz = np.nonzero(fb[j])[0]
        nonempty.append(len(nz) > 0)
        if len(nz):
            starts.append(len(bins))
            bins.extend(nz.tolist())
            weights.extend(fb[j, nz].tolist())
    return (
        np.asarray(bins, np.intp),
        np.asarray(weights, np.float32),
        np.asarray(starts, np.intp),
        np.asarray(nonempty, bool),
    )


def _apply_filterbank(power: np.ndarray) -> np.ndarray:
    """``power @ mel_filterbank().T`` without BLAS.

    The bank is ~2 % non-zero, and a multi-threaded BLAS call on such a small product is 50x
    slower on a busy 2-core machine (its threads spin against the other processes). Sums run
    in a fixed order, so the result does not depend on how many windows are processed at once.
    """
    bins, weights, starts, nonempty = _sparse_filterbank()
    contrib = power[:, bins] * weights
    out = np.zeros((power.shape[0], N_MELS), np.float32)
    out[:, nonempty] = np.add.reduceat(contrib, starts, axis=1)
    return out


@lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II, float32 ``(N_MFCC, N_MELS)``."""
    n = np.arange(N_MELS)
    k = np.arange(N_MFCC)[:, None]
    basis = np.cos(np.pi / N_MELS * (n + 0.5) * k) * np.sqrt(2.0 / N_MELS)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    # periodic Hann of WIN_LENGTH, zero-padded (centred) to N_FFT as librosa does
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)
    pad = (N_FFT - WIN_LENGTH) // 2
    return np.pad(win, (pad, N_FFT - WIN_LENGTH - pad)).astype(np.float32)


# -------------------------------------------------------------------------------- features


def frame_signal(samples: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Strided view of ``samples`` as ``(n_frames, frame)``, no padding (frames fully inside)."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    n = 1 + (len(samples) - frame) // hop
    if n <= 0:
        return np.zeros((0, frame), np.float32)
    return np.lib.stride_tricks.as_strided(
        samples, shape=(n, frame), strides=(samples.strides[0] * hop, samples.strides[0])
    )


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Log-mel power in dB, float32 ``(N_MELS, frames)`` for 16 kHz mono float32 samples."""
    frames = frame_signal(samples, N_FFT, HOP_LENGTH)
    # frames of N_FFT samples centred like a WIN_LENGTH window: the Hann taper zeroes the edges
    spec = np.fft.rfft(frames * _hann(), n=N_FFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = _apply_filterbank(power)
    return (10.0 * np.log10(np.maximum(mel, LOG_FLOOR))).T.astype(np.float32)


def deltas(x: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """Regression deltas along the last axis (time), edges repeated; same shape as ``x``."""
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(width, width)], mode="edge")
    t = x.shape[-1]
    num = np.zeros_like(x)
    for k in range(1, width + 1):
        num += k * (padded[..., width + k : width + k + t] - padded[..., width - k : width - k + t])
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def window_features(window: np.ndarray) -> np.ndarray:
    """Model input for one window: float32 ``(3, N_MFCC, N_FRAMES)``.

    MFCC, delta and delta-delta, each coefficient row normalised over the window's frames
    (mean 0, std 1). Per-window normalisation removes the fixed channel colouring (microphone,
    codec EQ, gain) so the network cannot learn "this source sounds like that room".
    """
    window = np.asarray(window, np.float32)
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"a window is {WINDOW_SAMPLES} samples, got shape {window.shape}")
    # N_FFT-long frames at HOP_LENGTH: pad so the frame count matches WIN_LENGTH framing
    pad = (N_FFT - WIN_LENGTH) // 2
    padded = np.pad(window, (pad, N_FFT - WIN_LENGTH - pad), mode="reflect")
    mfcc = np.einsum("cm,mt->ct", dct_matrix(), log_mel(padded), optimize=False)
    mfcc = mfcc[:, :N_FRAMES]
    d1 = deltas(mfcc)
    d2 = deltas(d1)
    feats = np.stack([mfcc, d1, d2])
    mean = feats.mean(axis=2, keepdims=True)
    std = feats.std(axis=2, keepdims=True)
    return ((feats - mean) / (std + 1e-5)).astype(np.float32)


def batch_features(windows: Iterable[np.ndarray]) -> np.ndarray:
    """Stack :func:`window_features` of several windows: float32 ``(N, 3, N_MFCC, N_FRAMES)``."""
    feats = [window_features(w) for w in windows]
    if not feats:
        return np.zeros((0, 3, N_MFCC, N_FRAMES), np.float32)
    return np.stack(feats)


# ------------------------------------------------------------------------- voice activity


def frame_dbfs(samples: np.ndarray) -> np.ndarray:
    """RMS level of each 25 ms frame (10 ms hop) in dB re full scale, float32 ``(frames,)``."""
    frames = frame_signal(samples, WIN_LENGTH, HOP_LENGTH)
    if len(frames) == 0:
        return np.zeros(0, np.float32)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return (20 * np.log10(np.maximum(rms, 1e-10))).astype(np.float32)


def voiced_fraction(samples: np.ndarray) -> float:
    """Share of frames above :data:`SPEECH_FRAME_DBFS`: a deliberately simple energy gate.

    It rejects digital silence, hiss and very quiet room tone; it does not tell speech from
    music or tones (the report's reasons say "no speech" only when nothing is loud enough).
    """
    levels = frame_dbfs(samples)
    if len(levels) == 0:
        return 0.0
    return float(np.mean(levels > SPEECH_FRAME_DBFS))


def has_speech(window: np.ndarray, real_samples: int) -> bool:
    """Whether a window passes the voice-activity gate.

    ``real_samples`` is how much of the window is original audio (less than the window for
    a short clip padded by repetition): the active time must be measured on that part only.
    """
    frac = voiced_fraction(window[: max(real_samples, WIN_LENGTH)])
    return frac >= MIN_VOICED_FRACTION and frac * real_samples / SAMPLE_RATE >= MIN_VOICE_SECONDS


# ----------------------------------------------------------------------------- windowing


@dataclass
class Window:
    """One analysis window; ``start_s``/``end_s`` cover the original audio it holds."""

    start_s: float
    end_s: float
    samples: np.ndarray
    real_samples: int

    @property
    def voiced(self) -> bool:
        return has_speech(self.samples, self.real_samples)


def pad_by_repetition(samples: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """Tile ``samples`` until ``length``: zeros would be a tell (TTS has exact silence)."""
    samples = np.asarray(samples, np.float32)
    if len(samples) == 0:
        raise ValueError("cannot pad an empty clip")
    reps = -(-length // len(samples))
    return np.tile(samples, reps)[:length]


class Windower:
    """Cut a stream of sample blocks into overlapping windows, holding at most one window.

    Windows start every :data:`WINDOW_HOP` samples; when the stream ends, a last window is
    aligned to the end so the tail is covered, and a stream shorter than one window becomes
    one window padded by repetition. Feed blocks with :meth:`push`, then call :meth:`finish`.
    Training calls this on a whole clip; inference on decoder blocks: same windows either way.
    """

    def __init__(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self._offset = 0  # absolute sample index of _buf[0]
        self._next_start = 0
        self._last_end = 0
        self.total = 0

    def push(self, block: np.ndarray) -> Iterator[Window]:
        block = np.asarray(block, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, block])
        self.total += len(block)
        while self._next_start + WINDOW_SAMPLES <= self._offset + len(self._buf):
            i = self._next_start - self._offset
            yield self._window(
                self._next_start, self._buf[i : i + WINDOW_SAMPLES].copy(), WINDOW_SAMPLES
            )
            self._last_end = self._next_start + WINDOW_SAMPLES
            self._next_start += WINDOW_HOP
        # keep only what a future window can still need
        keep_from = min(self._next_start, max(0, self.total - WINDOW_SAMPLES))
        drop = keep_from - self._offset
        if drop > 0:
            self._buf = self._buf[drop:]
            self._offset = keep_from

    def finish(self) -> Iterator[Window]:
        if self.total == 0:
            return
        if self.total < WINDOW_SAMPLES:
            yield self._window(0, pad_by_repetition(self._buf), self.total)
        elif self._last_end < self.total:
            start = self.total - WINDOW_SAMPLES
            i = start - self._offset
            yield self._window(start, self._buf[i : i + WINDOW_SAMPLES].copy(), WINDOW_SAMPLES)

    @staticmethod
    def _window(start: int, samples: np.ndarray, real: int) -> Window:
        return Window(start / SAMPLE_RATE, (start + real) / SAMPLE_RATE, samples, real)


def clip_windows(samples: np.ndarray) -> list[Window]:
    """All windows of a clip held in memory (what :class:`Windower` yields for one block)."""
    w = Windower()
    return list(w.push(samples)) + list(w.finish())
