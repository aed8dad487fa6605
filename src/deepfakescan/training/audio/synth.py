"""Synthetic speech for training and evaluation: vocoder copy-synthesis and offline TTS.

Most fakes are made *from our own real recordings* (LibriSpeech, LJSpeech, FSDD) so that fake
and real share speakers, rooms and microphones and the only thing left to learn is the
synthesis. Families:

- ``griffinlim``: mel spectrogram -> pseudo-inverse -> Griffin-Lim phase (what early neural
  TTS sounded like without a neural vocoder);
- ``world``: WORLD analysis/synthesis (pyworld), sometimes through a coded (low-dimensional)
  spectral envelope as parametric TTS does;
- ``lpc``: a classic pulse/noise-excited LPC vocoder with WORLD's F0;
- ``hnm``: harmonic-plus-noise source-filter synthesis, the signal path of neural source-filter
  (NSF) vocoders without their network: a sine source at the F0 harmonics (random initial phase
  per harmonic) below a maximum voiced frequency, noise above it and in unvoiced frames, shaped
  frame by frame by WORLD's envelope in the STFT domain (magnitude only, so the harmonics keep the
  source's phase instead of a glottal pulse's; whether that transfers to real NSF output is
  measured in the audio model card, and on its own it did not);
- ``espeak``: espeak-ng formant TTS, voices x variants (split by variant, i.e. by "speaker");
- ``festival``: festival's kal_diphone voice (one voice: split by sentence).

Everything is seeded; the functions take and return float32 16 kHz mono.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from shutil import which

import numpy as np
import soundfile as sf
import soxr

from ...features import SAMPLE_RATE

VOCODER_FAMILIES = ("griffinlim", "world", "lpc", "hnm")
TTS_PROGRAMS = {"espeak": ("espeak-ng", "espeak-ng"), "festival": ("text2wave", "festival")}
"""family -> (program it runs, Debian package that provides it)."""
TTS_FAMILIES = tuple(TTS_PROGRAMS)


class MissingProgram(RuntimeError):
    """A TTS family's program is not installed."""


def require_programs(families: Iterable[str]) -> None:
    """Refuse to start when a TTS family's program is missing.

    Without it every file of the family fails to generate, and a run that went on would train
    (and calibrate, and be evaluated) without that family: a different model under the same
    recipe, with nothing but a log line to say so. This happened once (no ``festival`` on a
    fresh machine: 96 files skipped).
    """
    missing = sorted(
        {TTS_PROGRAMS[f] for f in families if f in TTS_PROGRAMS and not which(TTS_PROGRAMS[f][0])}
    )
    if missing:
        raise MissingProgram(
            "missing text-to-speech programs: "
            + ", ".join(f"{prog} (apt-get install {pkg})" for prog, pkg in missing)
        )


ESPEAK_VOICES = (
    "en-us",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
ESPEAK_VARIANTS = {
    "train": ("m1", "m2", "m3", "m4", "f1", "f2", "klatt", "klatt2", "Alex", "belinda", "john"),
    "val": ("m5", "f3", "klatt3", "edward"),
    "test": ("m6", "m7", "f4", "f5", "klatt4", "linda", "max"),
}
"""espeak-ng variants play the role of speakers: test variants are never heard in training."""

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet at the station at half past seven tomorrow morning.",
    "The committee has not yet decided whether the report should be published.",
    "A large part of the harvest was lost when the rain came early this year.",
    "She told me the museum would be closed for repairs until the spring.",
    "Numbers such as four hundred and twelve are hard to say quickly.",
    "The old lighthouse keeper wrote letters to his daughter every single week.",
    "Turn left at the second traffic light and follow the signs to the hospital.",
    "Our flight was delayed by three hours because of heavy fog over the airport.",
    "The library holds more than a million books and several thousand maps.",
    "He opened the window and listened to the sound of the distant trains.",
    "If the water boils too long, the vegetables lose most of their flavour.",
    "The children built a small boat out of wood and painted it bright red.",
    "Scientists measured the temperature of the lake at different depths.",
    "Every evening the baker sells the bread that is left at half price.",
    "The meeting was moved to Thursday so that everyone could attend.",
    "I cannot remember where I left the keys to the garden shed.",
    "The orchestra played the symphony with great energy and precision.",
    "Heavy snow closed the mountain pass for nearly two weeks in January.",
    "My grandfather grew tomatoes, beans and potatoes in his garden.",
    "The bank will transfer the money to your account within two days.",
    "Mind the gap between the train and the platform edge.",
    "The new bridge will connect the two halves of the city by next summer.",
    "Thank you for calling, all of our operators are busy at the moment.",
    "The price of coffee has risen sharply over the last twelve months.",
    "Please remember to switch off the lights when you leave the room.",
    "The river flooded the fields after three days of constant rain.",
    "He spoke slowly, choosing each word with unusual care.",
    "Seven hundred people attended the concert in the park on Saturday.",
    "The engineer checked every cable before switching the system back on.",
    "A cold wind blew across the harbour as the fishing boats returned.",
    "You can pay by card or in cash at the desk near the entrance.",
    "The professor asked the students to read the first three chapters.",
    "Our neighbours are painting their house a pale shade of yellow.",
    "It is important to drink enough water when the weather is hot.",
    "The detective noticed a small scratch on the surface of the table.",
    "Two cups of flour, one egg and a pinch of salt are all you need.",
    "The team won the final match after a long and difficult season.",
    "Do not open the door until the machine has stopped completely.",
)


def trim_silence(y: np.ndarray, top_db: float = 35.0) -> np.ndarray:
    """Cut leading/trailing audio ``top_db`` below the loudest frame (all sources alike)."""
    frame, hop = 400, 160
    if len(y) < frame:
        return y
    n = 1 + (len(y) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(y[idx].astype(np.float64) ** 2, axis=1) + 1e-20)
    db = 20 * np.log10(rms)
    active = np.nonzero(db > db.max() - top_db)[0]
    if len(active) == 0:
        return y
    return y[active[0] * hop : min(len(y), active[-1] * hop + frame)]


def match_level(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    gain = np.sqrt(np.mean(ref**2) + 1e-12) / np.sqrt(np.mean(y**2) + 1e-12)
    out = (y * gain).astype(np.float32)
    peak = np.abs(out).max(initial=0.0)
    return out / peak * 0.99 if peak > 0.99 else out


# ----------------------------------------------------------------------------- vocoders


@lru_cache(maxsize=4)
def mel_basis(n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels, fmax=SAMPLE_RATE / 2)
    return basis, np.linalg.pinv(basis)


def griffin_lim(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mel spectrogram (80 or 128 bands) -> pseudo-inverse magnitude -> Griffin-Lim."""
    import librosa

    n_fft = int(rng.choice([512, 1024]))
    hop = n_fft // 4
    n_mels = int(rng.choice([80, 128]))
    basis, inv = mel_basis(n_fft, n_mels)
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    mel = basis @ mag**2
    lin = np.sqrt(np.maximum(inv @ mel, 0.0))
    out = librosa.griffinlim(
        lin,
        n_iter=int(rng.integers(16, 48)),
        hop_length=hop,
        n_fft=n_fft,
        length=len(y),
        random_state=int(rng.integers(1 << 30)),
    )
    return match_level(out.astype(np.float32), y)


def _world_analysis(y: np.ndarray):
    import pyworld

    x = y.astype(np.float64)
    f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    return x, f0, t


def world(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """WORLD copy-synthesis; half the time through a coded envelope (24-60 dims), as in TTS."""
    import pyworld

    x, f0, t = _world_analysis(y)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    if rng.random() < 0.5:
        fft_size = pyworld.get_cheaptrick_fft_size(SAMPLE_RATE)
        dims = int(rng.integers(24, 61))
        coded = pyworld.code_spectral_envelope(sp, SAMPLE_RATE, dims)
        sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded), SAMPLE_RATE, fft_size)
        cap = pyworld.code_aperiodicity(ap, SAMPLE_RATE)
        ap = pyworld.decode_aperiodicity(np.ascontiguousarray(cap), SAMPLE_RATE, fft_size)
    out = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, 5.0)[: len(y)]
    out = np.pad(out, (0, len(y) - len(out)))
    return match_level(out.astype(np.float32), y)


def lpc_vocoder(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pulse/noise-excited LPC vocoder: order 12-20 all-pole filters, WORLD's F0, overlap-add."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    order = int(rng.integers(12, 21))
    frame, hop = 400, 200
    _, f0, t = _world_analysis(y)
    n = max(1, 1 + (len(y) - frame) // hop)
    win = np.hanning(frame + 2)[1:-1]  # sums to ~1 at 50 % overlap
    out = np.zeros(n * hop + frame)
    phase = 0.0
    for i in range(n):
        seg = y[i * hop : i * hop + frame].astype(np.float64)
        if len(seg) < frame:
            seg = np.pad(seg, (0, frame - len(seg)))
        seg = seg * np.hamming(frame)
        r = np.correlate(seg, seg, "full")[frame - 1 : frame + order]
        if r[0] <= 1e-10:
            continue
        r[0] *= 1.0 + 1e-6
        try:
            a = solve_toeplitz(r[:order], -r[1 : order + 1])
        except np.linalg.LinAlgError:
            continue
        err = max(r[0] + np.dot(a, r[1 : order + 1]), 1e-12)
        hz = f0[min(len(f0) - 1, int((i * hop + frame / 2) / SAMPLE_RATE / (t[1] - t[0])))]
        if hz > 0:
            exc = np.zeros(frame)
            period = SAMPLE_RATE / hz
            pos = phase
            while pos < frame:
                exc[int(pos)] = 1.0
                pos += period
            phase = (pos - hop) % period if pos - hop >= 0 else 0.0
            exc -= exc.mean()
        else:
            exc = rng.standard_normal(frame)
            phase = 0.0
        exc *= np.sqrt(err / frame) / (np.sqrt(np.mean(exc**2)) + 1e-12)
        out[i * hop : i * hop + frame] += lfilter([1.0], np.concatenate([[1.0], a]), exc) * win
    out = out[: len(y)]
    out = np.nan_to_num(np.pad(out, (0, len(y) - len(out))))
    return match_level(out.astype(np.float32), y)


def harmonic_noise(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sine-excited source-filter copy-synthesis (see the module docstring, ``hnm``).

    Random per file: the maximum voiced frequency (2.5-7 kHz), the F0 analyser, whether the
    envelope goes through a coded (24-60 dim) representation, and how much the envelope is
    smoothed over time, so the family covers a spread of NSF-like outputs, not one setting.
    """
    import librosa
    import pyworld

    hop = int(SAMPLE_RATE * 0.005)  # WORLD's 5 ms frame period
    if rng.random() < 0.5:
        x = y.astype(np.float64)
        f0, t = pyworld.harvest(x, SAMPLE_RATE, frame_period=5.0)
    else:
        x, f0, t = _world_analysis(y)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    fft_size = pyworld.get_cheaptrick_fft_size(SAMPLE_RATE)
    if rng.random() < 0.5:
        coded = pyworld.code_spectral_envelope(sp, SAMPLE_RATE, int(rng.integers(24, 61)))
        sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded), SAMPLE_RATE, fft_size)
    smooth = int(rng.integers(1, 4))  # frames: an acoustic model's over-smoothed envelope
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        sp = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, sp)

    # source: per-sample F0 -> phase -> harmonics below the maximum voiced frequency
    n = len(x)
    frame_pos = np.arange(len(f0)) * hop
    f0_s = np.interp(np.arange(n), frame_pos, f0)
    voiced = np.interp(np.arange(n), frame_pos, (f0 > 0).astype(float)) > 0.5
    f0_s = np.where(voiced, f0_s, 0.0)
    phase = 2 * np.pi * np.cumsum(f0_s) / SAMPLE_RATE
    mvf = float(rng.uniform(2500, 7000))
    harmonic = np.zeros(n)
    k_max = int(mvf / max(f0[f0 > 0].min(initial=mvf), 40.0))
    amp = np.sqrt(2 * f0_s / SAMPLE_RATE)  # flat power density whatever the pitch
    for k in range(1, k_max + 1):
        on = voiced & (k * f0_s < mvf)
        if not on.any():
            break
        harmonic += np.where(on, np.sin(k * phase + rng.uniform(0, 2 * np.pi)), 0.0)
    harmonic *= amp
    noise = rng.standard_normal(n) / np.sqrt(2)

    # filter: STFT frames on WORLD's 5 ms grid, harmonic part by sp*(1-ap), noise by sp*ap
    freqs = np.fft.rfftfreq(fft_size, 1 / SAMPLE_RATE)
    above_mvf = freqs[None, :] >= mvf
    ap_eff = np.where(above_mvf | (f0[:, None] == 0), 1.0, ap)

    def shaped(src: np.ndarray, gain: np.ndarray) -> np.ndarray:
        spec = librosa.stft(src, n_fft=fft_size, hop_length=hop)
        m = min(spec.shape[1], len(gain))
        spec = spec[:, :m] * gain[:m].T
        return librosa.istft(spec, hop_length=hop, n_fft=fft_size, length=n)

    out = shaped(harmonic, np.sqrt(sp * (1 - ap_eff))) + shaped(noise, np.sqrt(sp * ap_eff))
    return match_level(np.nan_to_num(out).astype(np.float32), y)


VOCODERS = {"griffinlim": griffin_lim, "world": world, "lpc": lpc_vocoder, "hnm": harmonic_noise}


# -------------------------------------------------------------------------------------- TTS


def espeak(text: str, voice: str, variant: str, rng: np.random.Generator) -> np.ndarray:
    """espeak-ng speaking ``text`` with ``voice+variant`` at a random rate and pitch."""
    cmd = [
        "espeak-ng",
        "-v",
        f"{voice}+{variant}",
        "-s",
        str(int(rng.integers(130, 200))),
        "-p",
        str(int(rng.integers(30, 71))),
        "--stdout",
        text,
    ]
    wav = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    y, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return soxr.resample(y, sr, SAMPLE_RATE).astype(np.float32) if sr != SAMPLE_RATE else y


def festival(text: str, rng: np.random.Generator) -> np.ndarray:
    """festival's default (kal_diphone) voice, with a random duration stretch."""
    stretch = float(rng.uniform(0.85, 1.2))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [
            "text2wave",
            "-o",
            str(out),
            "-eval",
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
        ]
        subprocess.run(cmd, input=text.encode(), capture_output=True, check=True, timeout=120)
        y, sr = sf.read(str(out), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return soxr.resample(y, sr, SAMPLE_RATE).astype(np.float32) if sr != SAMPLE_RATE else y


def save_wav(path: Path, y: np.ndarray) -> None:
    """16-bit PCM at 16 kHz: lossless, so the family, not the codec, is what differs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1, 1), SAMPLE_RATE, subtype="PCM_16")
