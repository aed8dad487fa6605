"""``tinynsf``: a small neural source-filter vocoder of our own, used only to make training fakes.

The collected NSF fakes are 4 speakers x 3 sentences, and no neural vocoder runs offline here,
so the detector had almost no example of what a *trained* waveform generator gets wrong. This
module trains one, after the hn-NSF recipe (Wang & Yamagishi, 2019): a sine source at the F0
harmonics plus noise, merged by a learned layer, then dilated-convolution filter blocks
conditioned on a log-mel spectrogram, trained only on multi-resolution STFT *magnitudes*, so the
phase is whatever the network makes of the source (as in the NSF family). It learns from the
train split's real speakers only (LibriSpeech, LJSpeech), so the copies it makes of validation
and test speakers are of voices it never heard, like a deployed vocoder's.

It is small (about 60 k parameters) and trained for minutes on the CPU: its output is clearly
buzzier than a published NSF model's. That is acceptable for its job (one more *family* of
neural artefacts, next to the DSP vocoders), and the leave-one-out run measures whether it
transfers to the real NSF fakes.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...features import SAMPLE_RATE
from ..audio.synth import match_level, mel_basis
from ..checkpoint import save_atomic
from .nets import HOP, N_FFT, N_MELS, TinyNSF, spectral_loss

SEGMENT_FRAMES = 50  # 0.5 s training segments
STEPS = 2000
"""Training steps of the shipped recipe; the spectral loss still falls at the end (1.50 at 1000,
1.36 at 1500, 1.29 at 2000)."""
SAVE_EVERY = 250
"""Steps between checkpoints (``.part``) and loss log lines."""


def analyse(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log-mel (frames, 80), F0 in Hz (frames,), 0 = unvoiced)`` on a 10 ms grid."""
    import librosa
    import pyworld

    x = y.astype(np.float64)
    f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=1000 * HOP / SAMPLE_RATE)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    mag = np.abs(librosa.stft(y.astype(np.float32), n_fft=N_FFT, hop_length=HOP, win_length=640))
    mel = np.log(mel_basis(N_FFT, N_MELS)[0] @ mag + 1e-5).T
    n = min(len(mel), len(f0), len(y) // HOP)
    return mel[:n].astype(np.float32), f0[:n].astype(np.float32)


Clip = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(log-mel, F0, samples) of one training clip, frame-aligned."""


def train_vocoder(
    clips: list[np.ndarray],
    out: Path,
    *,
    steps: int = STEPS,
    batch: int = 8,
    seed: int = 0,
    log=print,
) -> Path:
    """Train on random 0.5 s segments of ``clips`` (16 kHz float32); checkpoint and resume.

    ``out`` is written when training ends; ``out.with_suffix(".part")`` holds the model, the
    optimiser and the step every :data:`SAVE_EVERY` steps, so an interrupted run continues
    where it stopped. (The vocoder has no epochs and no validation, so it keeps this step loop
    rather than the shared epoch loop; a resumed run reseeds by step, as the shipped fakes were
    made.)
    """
    out = Path(out)
    if out.is_file():
        return out
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _analysed(clips)
    model = TinyNSF()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    part = out.with_suffix(".part")
    step = 0
    if part.is_file():
        step = _resume(part, model, opt)
        rng = np.random.default_rng([seed, step])
        torch.manual_seed(seed + step)
    g = torch.Generator().manual_seed(seed + step)
    model.train()
    _train_steps(model, opt, data, (rng, g), (step, steps), batch, part, log)
    torch.save(model.state_dict(), out)
    part.unlink(missing_ok=True)
    return out


def _analysed(clips: list[np.ndarray]) -> list[Clip]:
    """Every clip longer than one segment, analysed once."""
    data = []
    for y in clips:
        mel, f0 = analyse(y)
        if len(mel) > SEGMENT_FRAMES:
            data.append((mel, f0, y[: len(mel) * HOP]))
    if not data:
        raise ValueError("no clip is long enough to train the vocoder")
    return data


def _resume(part: Path, model: TinyNSF, opt: torch.optim.Optimizer) -> int:
    state = torch.load(part, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return state["step"]


def _segments(data: list[Clip], rng: np.random.Generator, batch: int) -> list[torch.Tensor]:
    """A batch of random 0.5 s segments: log-mel, F0 and the target samples."""
    mels, f0s, wavs = [], [], []
    for _ in range(batch):
        mel, f0, y = data[int(rng.integers(len(data)))]
        s = int(rng.integers(len(mel) - SEGMENT_FRAMES))
        mels.append(mel[s : s + SEGMENT_FRAMES])
        f0s.append(f0[s : s + SEGMENT_FRAMES])
        wavs.append(y[s * HOP : (s + SEGMENT_FRAMES) * HOP])
    return [torch.from_numpy(np.stack(a)) for a in (mels, f0s, wavs)]


def _train_steps(model, opt, data, rngs, span: tuple[int, int], batch: int, part: Path, log):
    """Steps ``span[0]`` to ``span[1]``, saving ``part`` every :data:`SAVE_EVERY` and at the end."""
    (rng, g), (step, steps) = rngs, span
    t0, running, since = time.time(), 0.0, 0
    while step < steps:
        mel, f0, wav = _segments(data, rng, batch)
        loss = spectral_loss(model(mel, f0, g), wav)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        running, since = running + loss.item(), since + 1
        if step % SAVE_EVERY == 0 or step == steps:
            elapsed = time.time() - t0
            log(f"vocoder step {step}/{steps}: loss {running / since:.3f} ({elapsed:.0f} s)")
            running, since = 0.0, 0
            part.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(part, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step})


@lru_cache(maxsize=1)
def load_vocoder(path: str) -> TinyNSF:
    model = TinyNSF()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


@torch.inference_mode()
def vocode(model: TinyNSF, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy-synthesis of ``y`` through ``model``: same length, matched level."""
    mel, f0 = analyse(y)
    if len(mel) == 0:
        return y.copy()
    g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    out = model(torch.from_numpy(mel)[None], torch.from_numpy(f0)[None], g)[0].numpy()
    out = np.pad(out, (0, max(0, len(y) - len(out))))[: len(y)]
    return match_level(np.nan_to_num(out).astype(np.float32), y)


__all__ = ["SEGMENT_FRAMES", "STEPS", "analyse", "load_vocoder", "train_vocoder", "vocode"]
