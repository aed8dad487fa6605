"""Audio detector: 16 kHz mono stream -> voiced windows -> MFCC CNN -> verdict and timeline.

The stream is consumed block by block; windows are featurised and scored in small batches
as they come, so memory stays a few windows however long the file (a 10-minute MP3 holds at
most ``BATCH`` windows of features at a time plus one score per window).

File score rule (also used in training to pick the epoch and fit calibration):
window logits are smoothed by a 3-window moving average, and the file logit is the mean of
the top half of the smoothed values (:func:`file_logit`). A fully fake file is high
everywhere; a file with a spliced fake passage is pulled up by its worst windows without one
odd window deciding alone. The card's Platt calibration maps that logit to a probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from .. import features as F
from ..config import Settings
from ..errors import ModelMissing, ScanCancelled
from ..report import Evidence, Segment, Verdict, verdict_for

MODEL_NAME = "audio"
BATCH = 32
"""Windows per model call: large enough to amortise the call, small enough to bound memory."""
SMOOTH_WINDOWS = 3
TOP_FRACTION = 0.5
N_SUSPICIOUS = 3
"""How many of the most suspicious segments the reasons name."""


def smooth(z: np.ndarray, width: int = SMOOTH_WINDOWS) -> np.ndarray:
    """Centred moving average; near the ends it averages the windows that exist."""
    z = np.asarray(z, np.float64)
    if len(z) <= 1 or width <= 1:
        return z
    half = width // 2
    c = np.concatenate([[0.0], np.cumsum(z)])
    lo = np.clip(np.arange(len(z)) - half, 0, len(z))
    hi = np.clip(np.arange(len(z)) + half + 1, 0, len(z))
    return (c[hi] - c[lo]) / (hi - lo)


def file_logit(window_logits: np.ndarray) -> float:
    """The documented file rule: mean of the top ``TOP_FRACTION`` of smoothed window logits."""
    s = np.sort(smooth(window_logits))[::-1]
    k = max(1, math.ceil(TOP_FRACTION * len(s)))
    return float(s[:k].mean())


def feature_kind(card: dict) -> str:
    """The feature kind a plugged-in audio model reads, from its card.

    Refuses (as a missing model, 503) a card whose preprocessing differs in any way from what
    ``features.py`` computes for that kind: a model fed other features would score nonsense.
    """
    pre = card["inputs"][0].get("preprocessing", {})
    kind = pre.get("features")
    if kind not in F.FEATURE_KINDS:
        raise ModelMissing(
            f"audio model {card['name']!r} reads features {kind!r}; "
            f"features.py computes {', '.join(F.FEATURE_KINDS)}"
        )
    want = F.feature_params(kind)
    wrong = [f"{k}={pre.get(k)!r} (we compute {v!r})" for k, v in want.items() if pre.get(k) != v]
    if wrong:
        raise ModelMissing(
            f"audio model {card['name']!r} expects other features than features.py computes: "
            + ", ".join(wrong)
        )
    return kind


def _score_batch(model, batch: np.ndarray) -> np.ndarray:
    """Raw logits for a batch of window features (one place, so tests can watch the tensor)."""
    out = model.run(batch)
    return np.asarray(out[model.output_names[0]], np.float64).reshape(-1)


def score_windows(
    blocks: Iterable[np.ndarray],
    model,
    *,
    cancel: Callable[[], bool] | None = None,
    on_block: Callable[[float], None] | None = None,
) -> tuple[list[F.Window], np.ndarray, int]:
    """Window the stream, gate by voice activity, score voiced windows in batches.

    Returns the voiced windows (their samples dropped to keep memory flat), their raw logits,
    and the total number of samples read.
    """
    kind = feature_kind(model.card)
    windower = F.Windower()
    voiced: list[F.Window] = []
    pending: list[np.ndarray] = []
    logits: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            logits.append(_score_batch(model, np.stack(pending)))
            pending.clear()

    def take(wins: Iterable[F.Window]) -> None:
        for w in wins:
            if w.voiced:
                pending.append(F.window_features(w.samples, kind))
                voiced.append(F.Window(w.start_s, w.end_s, np.zeros(0, np.float32), w.real_samples))
                if len(pending) >= BATCH:
                    flush()

    for block in blocks:
        if cancel is not None and cancel():
            raise ScanCancelled("the scan was cancelled")
        take(windower.push(block))
        if on_block is not None:
            on_block(windower.total / F.SAMPLE_RATE)
    take(windower.finish())
    flush()
    z = np.concatenate(logits) if logits else np.zeros(0)
    return voiced, z, windower.total


def analyse_audio(
    stream,
    settings: Settings,
    *,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    model=None,
) -> Evidence:
    """Judge an ``AudioStream`` (mono float32 16 kHz blocks) and return the audio ``Evidence``.

    Out of domain is said, not guessed: less than ``MIN_SPEECH_SECONDS`` of audio is
    "too short", no voiced window is "no speech"; both are ``uncertain`` with no probability.
    ``ModelMissing`` propagates when no audio bundle is installed.
    """
    from .bundle import require_model

    if model is None:
        model = require_model(MODEL_NAME, settings, what="audio")
    expected = _expected_seconds(stream, settings)

    def on_block(seconds: float) -> None:
        if progress is not None:
            progress(min(0.99, seconds / expected), "audio")

    windows, z, total = score_windows(stream, model, cancel=cancel, on_block=on_block)
    reasons: list[str] = []
    if getattr(stream, "truncated", False):
        reasons.append(
            f"Only the first {total / F.SAMPLE_RATE:.0f} s were analysed "
            f"(limit {settings.max_audio_seconds:.0f} s, DEEPFAKESCAN_MAX_AUDIO_SECONDS)."
        )
    evidence = _judge(model, windows, z, total / F.SAMPLE_RATE, reasons)
    evidence.warnings = list(getattr(stream, "warnings", []))
    if evidence.fake_probability is not None and progress is not None:
        progress(1.0, "audio")
    return evidence


def _expected_seconds(stream, settings: Settings) -> float:
    """Seconds the stream will give (header duration, capped by the limit): the progress scale."""
    expected = max(float(getattr(stream, "info", None) and stream.info.duration_s or 0.0), 1e-9)
    limit = float(getattr(stream, "max_seconds", settings.max_audio_seconds))
    return min(expected, limit) if expected > 1e-9 else limit


def _judge(
    model, windows: list[F.Window], z: np.ndarray, seconds: float, reasons: list[str]
) -> Evidence:
    """The file's verdict from its voiced windows' logits; ``reasons`` gets the head sentence
    first. Too little audio, or no speech, is ``uncertain`` without a probability."""
    refs = [model.ref("audio-detector")]
    band = tuple(model.uncertain_band)
    if seconds < F.MIN_SPEECH_SECONDS:
        reasons.insert(
            0,
            f"Too short to judge: {seconds:.2f} s of audio "
            f"(at least {F.MIN_SPEECH_SECONDS} s needed).",
        )
        return Evidence("uncertain", None, model.threshold, band, reasons, models=refs)
    if len(z) == 0:
        reasons.insert(0, "No speech found: no part of the audio is loud enough to be speech.")
        return Evidence("uncertain", None, model.threshold, band, reasons, models=refs)
    p_windows = np.asarray(model.calibrate(smooth(z))).reshape(-1)
    p_file = float(np.asarray(model.calibrate(np.array([file_logit(z)]))).reshape(-1)[0])
    segments = [
        Segment(round(w.start_s, 3), round(w.end_s, 3), float(p), "audio")
        for w, p in zip(windows, p_windows, strict=True)
    ]
    verdict = verdict_for(p_file, band)
    reasons[:0] = _verdict_reasons(verdict, p_file, model.threshold, band, segments)
    skipped = (
        int(math.ceil(max(0.0, seconds - F.WINDOW_SECONDS) / F.WINDOW_HOP_SECONDS))
        + 1
        - len(windows)
    )
    if skipped > 0:
        reasons.append(
            f"{len(windows)} windows with speech were scored; "
            f"{skipped} without speech were skipped."
        )
    return Evidence(verdict, p_file, model.threshold, band, reasons, segments=segments, models=refs)


def _verdict_reasons(
    verdict: Verdict,
    p_file: float,
    thr: float,
    band: tuple[float, float],
    segments: list[Segment],
) -> list[str]:
    """The head sentence, then (unless judged real) the most suspicious segments."""
    head = {
        "fake": f"Speech looks synthetic: probability {p_file:.2f}, threshold {thr:.2f}.",
        "real": f"Speech looks natural: probability {p_file:.2f}, threshold {thr:.2f}.",
        "uncertain": (
            f"Unsure: probability {p_file:.2f} is in the uncertain band "
            f"{band[0]:.2f}-{band[1]:.2f} around the threshold."
        ),
    }[verdict]
    if verdict == "real":
        return [head]
    top = sorted(segments, key=lambda s: -s.fake_probability)[:N_SUSPICIOUS]
    spans = ", ".join(f"{s.start_s:.1f}-{s.end_s:.1f} s ({s.fake_probability:.2f})" for s in top)
    return [head, f"Most suspicious segments: {spans}."]
