"""Audio features shared by training and inference: windows, a voice-activity gate, features.

Whatever the model sees at serve time must be exactly what it saw in training, so every step
from 16 kHz mono samples to the network's input tensor lives here, in NumPy only (no librosa
at run time): :class:`Windower` cuts a stream of blocks into overlapping windows (short clips
padded by repetition, never zeros), :func:`voiced_fraction` gates windows without speech,
and :func:`window_features` turns one window into the network input of a *kind* (the model
card names it), normalised per window. ``detectors/audio.py`` and ``training/audio/data.py``
both call these and nothing else.

Why the shipped kind is the log spectrogram: 64-band cepstra truncated to 32 coefficients
keep the spectral envelope and drop the harmonic fine structure (a 100-250 Hz pitch puts
harmonics 3-8 FFT bins apart, finer than any 64-filter bank), and the fine structure is
where vocoders go wrong: Griffin-Lim smears phase, WORLD and LPC re-synthesise the
excitation. MFCC and MFCC+LFCC stay available for the ablation in the model card.

Shapes: a window is float32 ``(WINDOW_SAMPLES,)``; its features are float32
``feature_shape(kind)``: for "mfcc+lfcc" ``(6, N_CEPS, N_FRAMES)`` — channels (MFCC, delta,
delta-delta, LFCC, delta, delta-delta) x coefficient x time; for "spectrogram"
``(1, N_BINS, N_FRAMES)``.
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
N_LINEAR = 64
"""Linear-frequency triangular filters for LFCC (125 Hz apart over 0-8 kHz)."""
N_MFCC = 32
N_CEPS = N_MFCC
"""Cepstral coefficients kept, for MFCC and LFCC alike."""
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
assert N_LINEAR == N_MELS
N_BINS = N_FFT // 2 + 1

FEATURE_KINDS = {
    "mfcc": (3, N_CEPS, N_FRAMES),
    "mfcc+lfcc": (6, N_CEPS, N_FRAMES),
    "spectrogram": (1, N_BINS, N_FRAMES),
}
"""Feature kind -> tensor shape of one window. A model's card names the kind it was trained
on and the detector computes that kind; the model card's ablation compares them."""
FEATURE_KIND = "spectrogram"
"""The kind the shipped ``audio`` model reads (and the training default)."""

MIN_SPEECH_SECONDS = 0.15
"""A file with less audio than this is too short to judge."""
SPEECH_FRAME_DBFS = -55.0
"""A 25 ms frame louder than this (RMS, dB re full scale) counts as active."""
MIN_VOICED_FRACTION = 0.2
"""A window is scored only if at least this share of its frames is active."""
MIN_VOICE_SECONDS = 0.1
"""... and at least this much of it is active (matters for padded short clips)."""

COMMON_PARAMS = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "win_length": WIN_LENGTH,
    "hop_length": HOP_LENGTH,
    "window": "hann",
    "log": "10*log10(max(power, 1e-8))",
    "window_s": WINDOW_SECONDS,
    "hop_s": WINDOW_HOP_SECONDS,
    "short_clip": "padded by repetition to one window",
    "vad": {
        "frame_dbfs": SPEECH_FRAME_DBFS,
        "min_voiced_fraction": MIN_VOICED_FRACTION,
        "min_voice_seconds": MIN_VOICE_SECONDS,
    },
}
"""What every feature kind shares: framing, windows and the voice gate."""
_CEPSTRA = {
    "n_mels": N_MELS,
    "mel_scale": "slaney",
    "f_min": F_MIN,
    "f_max": F_MAX,
    "n_mfcc": N_MFCC,
    "dct": "type-II, orthonormal",
    "deltas": f"regression, width {DELTA_WIDTH}, edges repeated",
    "normalisation": "per window: each coefficient row minus its mean, over its std (+1e-5)",
}
_KIND_PARAMS = {
    "mfcc": {**_CEPSTRA, "channels": ["mfcc", "mfcc_d", "mfcc_dd"]},
    "mfcc+lfcc": {
        **_CEPSTRA,
        "n_linear": N_LINEAR,
        "linear_scale": "triangular, equally spaced 0 Hz-8 kHz, unit peak",
        "n_lfcc": N_CEPS,
        "channels": ["mfcc", "mfcc_d", "mfcc_dd", "lfcc", "lfcc_d", "lfcc_dd"],
    },
    "spectrogram": {
        "bins": N_BINS,
        "channels": ["log_power"],
        "normalisation": "per window: each frequency row minus its mean; all over the std (+1e-5)",
    },
}


def feature_shape(kind: str = FEATURE_KIND) -> tuple[int, int, int]:
    """Tensor shape of one window's features of ``kind``."""
    return FEATURE_KINDS[kind]


def feature_params(kind: str = FEATURE_KIND) -> dict:
    """What a model card records under ``inputs[0].preprocessing`` for a model of ``kind``."""
    return {"features": kind, **COMMON_PARAMS, **_KIND_PARAMS[kind]}


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
def linear_filterbank() -> np.ndarray:
    """Triangular filters equally spaced over 0 Hz-Nyquist, unit peak, ``(N_LINEAR, bins)``."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = np.linspace(0, SAMPLE_RATE / 2, N_LINEAR + 2)
    lower = (fft_freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - fft_freqs[None, :]) / np.diff(edges)[1:, None]
    return np.maximum(0, np.minimum(lower, upper)).astype(np.float32)


FILTERBANKS = {"mel": mel_filterbank, "linear": linear_filterbank}


@lru_cache(maxsize=2)
def _sparse_filterbank(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The filter bank as (bin, weight) runs per filter: each FFT bin feeds at most two filters."""
    fb = FILTERBANKS[kind]()
    bins, weights, starts, nonempty = [], [], [], []
    for j in range(len(fb)):
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


def _apply_filterbank(power: np.ndarray, kind: str) -> np.ndarray:
    """``power @ FILTERBANKS[kind]().T`` without BLAS.

    The bank is ~2 % non-zero, and a multi-threaded BLAS call on such a small product is 50x
    slower on a busy 2-core machine (its threads spin against the other processes). Sums run
    in a fixed order, so the result does not depend on how many windows are processed at once.
    """
    bins, weights, starts, nonempty = _sparse_filterbank(kind)
    contrib = power[:, bins] * weights
    out = np.zeros((power.shape[0], len(nonempty)), np.float32)
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


def power_spectrum(samples: np.ndarray) -> np.ndarray:
    """Power spectrum, float32 ``(frames, N_FFT // 2 + 1)``, of 16 kHz mono float32 samples."""
    frames = frame_signal(samples, N_FFT, HOP_LENGTH)
    # frames of N_FFT samples centred like a WIN_LENGTH window: the Hann taper zeroes the edges
    spec = np.fft.rfft(frames * _hann(), n=N_FFT, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def decibels(power: np.ndarray) -> np.ndarray:
    """``10 log10(power)`` above :data:`LOG_FLOOR`, float32: exact-zero TTS silence stays finite."""
    return (10.0 * np.log10(np.maximum(power, LOG_FLOOR))).astype(np.float32)


def log_filterbank(power: np.ndarray, kind: str) -> np.ndarray:
    """Log filter-bank power in dB, float32 ``(filters, frames)``; ``kind`` "mel" or "linear"."""
    return decibels(_apply_filterbank(power, kind)).T


def deltas(x: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """Regression deltas along the last axis (time), edges repeated; same shape as ``x``."""
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(width, width)], mode="edge")
    t = x.shape[-1]
    num = np.zeros_like(x)
    for k in range(1, width + 1):
        num += k * (padded[..., width + k : width + k + t] - padded[..., width - k : width - k + t])
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def window_features(window: np.ndarray, kind: str = FEATURE_KIND) -> np.ndarray:
    """Model input for one window: float32 :func:`feature_shape` of ``kind``.

    Cepstral kinds: MFCC (and LFCC), each with delta and delta-delta, every coefficient row
    normalised over the window's frames (mean 0, std 1). Spectrogram: the log power of every
    FFT bin, each bin's mean over the window removed, one scale for the whole window (so the
    relative dynamics of the bands survive).
    Removing per-row means takes out the fixed channel colouring (microphone, codec EQ, gain),
    so the network cannot learn "this source sounds like that room".
    """
    window = np.asarray(window, np.float32)
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"a window is {WINDOW_SAMPLES} samples, got shape {window.shape}")
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; known: {', '.join(FEATURE_KINDS)}")
    # N_FFT-long frames at HOP_LENGTH: pad so the frame count matches WIN_LENGTH framing
    pad = (N_FFT - WIN_LENGTH) // 2
    padded = np.pad(window, (pad, N_FFT - WIN_LENGTH - pad), mode="reflect")
    power = power_spectrum(padded)[:N_FRAMES]
    if kind == "spectrogram":
        logp = decibels(power.T)
        logp -= logp.mean(axis=1, keepdims=True)
        return (logp / (logp.std() + 1e-5))[None].astype(np.float32)
    stack = []
    banks = ("mel", "linear") if kind == "mfcc+lfcc" else ("mel",)
    for bank in banks:  # both banks have 64 filters: one DCT matrix serves both
        ceps = np.einsum("cm,mt->ct", dct_matrix(), log_filterbank(power, bank), optimize=False)
        d1 = deltas(ceps)
        stack += [ceps, d1, deltas(d1)]
    feats = np.stack(stack)
    mean = feats.mean(axis=2, keepdims=True)
    std = feats.std(axis=2, keepdims=True)
    return ((feats - mean) / (std + 1e-5)).astype(np.float32)


def batch_features(windows: Iterable[np.ndarray], kind: str = FEATURE_KIND) -> np.ndarray:
    """Stack :func:`window_features` of several windows: float32 ``(N, *feature_shape(kind))``."""
    feats = [window_features(w, kind) for w in windows]
    if not feats:
        return np.zeros((0, *feature_shape(kind)), np.float32)
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
