"""The random chain every training clip goes through, real or fake alike.

Trim silence, random crop, gain, band-limit/resample, reverberation, noise at a random SNR,
lossy codec (MP3, Opus or AAC through PyAV), then a tiny noise floor. Fakes and reals share
the chain so that none of these conditions can become the cue; validation and test files are
never augmented (they are scored as ``scan()`` scores them).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from ... import features as F
from . import synth as S

TRAIN_CROP_SECONDS = 8.0
"""Training clips are cropped at random to this, so no long file dominates an epoch."""


def _codec_roundtrip(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Encode with MP3, Opus or AAC at a random bitrate through PyAV and decode back."""
    import av

    fmt, codec, rate = [
        ("mp3", "libmp3lame", 16000),
        ("ogg", "libopus", 16000),
        ("adts", "aac", 16000),
    ][int(rng.integers(3))]
    bitrate = int(rng.choice([16, 24, 32, 48, 64, 96, 128])) * 1000
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame_len = 960 if codec == "libopus" else 1152 if codec == "libmp3lame" else 1024
        pcm = np.clip(y, -1, 1).astype(np.float32)
        fmt_name = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        for i, start in enumerate(range(0, len(pcm), frame_len)):
            chunk = pcm[start : start + frame_len]
            if len(chunk) < frame_len:
                chunk = np.pad(chunk, (0, frame_len - len(chunk)))
            if fmt_name == "s16":
                frame = av.AudioFrame.from_ndarray(
                    (chunk * 32767).astype(np.int16)[None], format="s16", layout="mono"
                )
            else:
                frame = av.AudioFrame.from_ndarray(
                    chunk[None], format="fltp" if fmt_name == "fltp" else "flt", layout="mono"
                )
            frame.sample_rate = rate
            frame.pts = i * frame_len
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    blocks = []
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=F.SAMPLE_RATE)
        for frame in inp.decode(audio=0):
            for rf in resampler.resample(frame):
                blocks.append(rf.to_ndarray().reshape(-1))
    out_y = np.concatenate(blocks).astype(np.float32) if blocks else y
    # codecs add a delay: align roughly by cross-correlation of the first second
    n = min(len(y), F.SAMPLE_RATE)
    if len(out_y) > n:
        lag_max = min(2048, len(out_y) - n)
        corr = [float(np.dot(out_y[k : k + n], y[:n])) for k in range(0, lag_max, 8)]
        lag = 8 * int(np.argmax(corr))
        out_y = out_y[lag:]
    out_y = out_y[: len(y)]
    return np.pad(out_y, (0, len(y) - len(out_y))) if len(out_y) < len(y) else out_y


def _reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise as a room impulse response (RT60 0.15-0.7 s)."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * F.SAMPLE_RATE)
    t = np.arange(n) / F.SAMPLE_RATE
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 1.0 / rng.uniform(0.3, 1.0)
    wet = fftconvolve(y, rir)[: len(y)]
    return (wet / (np.abs(wet).max() + 1e-9) * np.abs(y).max()).astype(np.float32)


def _band_limit(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import soxr
    from scipy.signal import butter, sosfilt

    if rng.random() < 0.6:
        sr = int(rng.choice([8000, 11025, 12000]))
        down = soxr.resample(y, F.SAMPLE_RATE, sr)
        return soxr.resample(down, sr, F.SAMPLE_RATE)[: len(y)].astype(np.float32)
    lo = rng.uniform(50, 300)
    hi = rng.uniform(3400, 7500)
    sos = butter(4, [lo, hi], btype="band", fs=F.SAMPLE_RATE, output="sos")
    return sosfilt(sos, y).astype(np.float32)


def augment(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The random chain every training clip goes through, real or fake alike.

    Trim silence, random crop, gain, band-limit/resample, reverberation, noise at a random SNR,
    lossy codec, then a tiny noise floor (TTS has exact-zero silences; real rooms never do).
    """
    y = S.trim_silence(y)
    crop = int(TRAIN_CROP_SECONDS * F.SAMPLE_RATE)
    if len(y) > crop:
        start = int(rng.integers(0, len(y) - crop))
        y = y[start : start + crop]
    peak = np.abs(y).max(initial=0.0)
    if peak > 0:
        y = y / peak * 10 ** (rng.uniform(-24, -1) / 20)
    if rng.random() < 0.5:
        y = _band_limit(y, rng)
    if rng.random() < 0.3:
        y = _reverb(y, rng)
    if rng.random() < 0.5:
        snr = rng.uniform(5, 40)
        noise = rng.standard_normal(len(y))
        if rng.random() < 0.5:  # pinkish
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        p_sig = np.mean(y**2) + 1e-12
        noise *= np.sqrt(p_sig / 10 ** (snr / 10) / (np.mean(noise**2) + 1e-12))
        y = y + noise
    if rng.random() < 0.5:
        with contextlib.suppress(Exception):  # an encoder missing from a PyAV build: skip
            y = _codec_roundtrip(y, rng)
    y = y + rng.standard_normal(len(y)) * 10 ** (rng.uniform(-85, -65) / 20)
    return np.clip(y, -1, 1).astype(np.float32)


__all__ = ["TRAIN_CROP_SECONDS", "augment"]
