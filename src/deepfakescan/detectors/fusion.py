"""The rules that turn per-frame faces and per-window speech scores into one video verdict.

Everything here is a small pure function over plain numbers, so each rule can be checked by
hand. ``detectors/video.py`` calls them in this order:

Track grouping (:func:`group_tracks`)
    Sampled frames are visited in time order and every face is given to a track, greedily:
    a face joins the track whose *last* box it matches best, where a match is an overlap
    (IoU) of at least :data:`IOU_MATCH`, or, for faces that moved between two samples (they
    may be seconds apart), a centre distance of at most :data:`CENTRE_MATCH` times the larger
    box side with box sides within a factor :data:`SIZE_RATIO_MAX`. Candidate pairs are taken
    best first (overlapping pairs by IoU, then the rest by centre distance); each track and
    each face is used once per frame; an unmatched face starts a new track. Tracks are never
    closed, so a person who leaves and comes back to the same place keeps their number.

Per-person score (:func:`track_score`)
    The "confident frames" rule of the DFDC winning entry (Seferbekov, 2020): if more than
    :data:`CONFIDENT_FAKE_SHARE` of a person's frames score above :data:`CONFIDENT_FAKE`,
    the person's score is the mean of those frames (a swap that shows in many frames is not
    diluted by frames where the face turned away); else if more than
    :data:`CONFIDENT_REAL_SHARE` score below :data:`CONFIDENT_REAL`, the mean of those;
    otherwise the mean of all frames. The mean of calibrated per-frame probabilities is a
    score, not a calibrated video-level probability: the video threshold is the image
    model's.

Visual score (:func:`deciding_track`)
    The most suspicious person decides (one swapped face makes the video a fake), among the
    persons seen in "enough" frames: at least :data:`MIN_TRACK_FRAMES` and at least
    :data:`MIN_TRACK_SHARE` of the frames sampled. A face seen once is more likely a false
    detection than a person. When no person is seen that often, the longest tracks compete
    instead (and the video module warns that the evidence is thin).

Fusion (:func:`fuse`)
    Each modality is judged with its own model's uncertain band. The video is ``fake`` if
    either modality is fake (a swapped face with a real voice, or a cloned voice over a real
    face, are both deepfakes); ``real`` only if every modality that was judged is real;
    otherwise ``uncertain``. The fused probability is the highest modality probability, and
    the threshold and band shown are those of the modality that decided (the most severe
    verdict, ties broken by the higher probability).

Uncertain
    A modality that found nothing to judge (no face in any sampled frame, no speech, no audio
    track, or no model installed) gives no probability and takes no part in the fusion. With
    neither a face nor speech the video is ``uncertain`` with no probability.

Timeline (:func:`bin_points`, :func:`bin_intervals`)
    Per-second segments ``[k, k + 1)``. Visual: the highest face probability among the
    sampled frames falling in that second (seconds without a sampled frame have no segment).
    Audio: the overlap-weighted mean of the speech windows (2 s long, 1 s apart) covering that
    second (window ends clipped to the audio actually decoded, since the detector pads its
    last window; a final sliver under :data:`MIN_LAST_BIN_S` is dropped). :func:`runs` merges
    consecutive seconds at or above a threshold into the spans the reasons name ("voice
    synthetic from 0:12 to 0:20").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..report import Verdict

IOU_MATCH = 0.3
"""Boxes overlapping this much (intersection over union) are the same person."""
CENTRE_MATCH = 0.5
"""...or centres at most this many (larger) box sides apart..."""
SIZE_RATIO_MAX = 1.5
"""...with box sides within this factor of each other."""

CONFIDENT_FAKE = 0.8
CONFIDENT_REAL = 0.2
CONFIDENT_FAKE_SHARE = 0.4
"""DFDC's rule asked for more than 32 / 2.5 (and more than 11) of 32 frames: 40 %."""
CONFIDENT_REAL_SHARE = 0.9

MIN_LAST_BIN_S = 0.25
"""A last audio second shorter than this is codec padding, not a second of speech."""

MIN_TRACK_FRAMES = 2
MIN_TRACK_SHARE = 0.15

SEVERITY = {"fake": 2, "uncertain": 1, "real": 0}

BoxXYWH = tuple[float, float, float, float]


@dataclass(frozen=True)
class Judgement:
    """One modality's conclusion: ``probability`` is ``None`` when it found nothing to judge."""

    modality: str
    probability: float | None
    verdict: Verdict
    threshold: float | None
    band: tuple[float, float] | None


@dataclass(frozen=True)
class Fused:
    verdict: Verdict
    probability: float | None
    threshold: float | None
    band: tuple[float, float] | None
    deciding: str | None
    """The modality whose verdict and band the fused result shows; ``None`` when none judged."""


# ---------------------------------------------------------------------------- tracks


def box_iou(a: BoxXYWH, b: BoxXYWH) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either is empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: BoxXYWH, b: BoxXYWH) -> float:
    """Distance between box centres in units of the larger box side."""
    side = max(a[2], a[3], b[2], b[3], 1e-9)
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return math.hypot(dx, dy) / side


def _same_person(a: BoxXYWH, b: BoxXYWH) -> tuple[bool, float, float]:
    """(match?, IoU, centre distance) by the grouping rule of the module docstring."""
    overlap = box_iou(a, b)
    distance = centre_distance(a, b)
    side_a, side_b = max(a[2], a[3], 1e-9), max(b[2], b[3], 1e-9)
    close = distance <= CENTRE_MATCH and max(side_a, side_b) / min(side_a, side_b) <= SIZE_RATIO_MAX
    return overlap >= IOU_MATCH or close, overlap, distance


def group_tracks(frames: Sequence[Sequence[BoxXYWH]]) -> list[list[tuple[int, int]]]:
    """Group the faces of successive sampled frames into per-person tracks.

    Parameters
    ----------
    frames
        For each sampled frame in time order, the ``(x, y, w, h)`` boxes of its faces (an
        empty list for a frame without a face).

    Returns
    -------
    list of tracks in order of first appearance; each track is a list of
    ``(frame position, face index within that frame)``, one entry per frame at most.
    """
    tracks: list[list[tuple[int, int]]] = []
    last: list[BoxXYWH] = []
    for pos, boxes in enumerate(frames):
        pairs = []
        for t, previous in enumerate(last):
            for f, box in enumerate(boxes):
                match, overlap, distance = _same_person(previous, box)
                if match:
                    pairs.append((overlap < IOU_MATCH, -overlap, distance, t, f))
        pairs.sort()
        used_tracks: set[int] = set()
        used_faces: set[int] = set()
        for *_, t, f in pairs:
            if t in used_tracks or f in used_faces:
                continue
            used_tracks.add(t)
            used_faces.add(f)
            tracks[t].append((pos, f))
            last[t] = boxes[f]
        for f, box in enumerate(boxes):
            if f not in used_faces:
                tracks.append([(pos, f)])
                last.append(box)
    return tracks


# ---------------------------------------------------------------------------- scores


def track_score(probabilities: Sequence[float]) -> float:
    """One person's score from their per-frame probabilities (DFDC "confident frames" rule)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size == 0:
        raise ValueError("a track has at least one frame")
    fakes = p > CONFIDENT_FAKE
    if fakes.sum() > CONFIDENT_FAKE_SHARE * p.size:
        return float(p[fakes].mean())
    reals = p < CONFIDENT_REAL
    if reals.sum() > CONFIDENT_REAL_SHARE * p.size:
        return float(p[reals].mean())
    return float(p.mean())


def min_track_frames(frames_sampled: int) -> int:
    """Frames a person must be seen in to count for the visual score."""
    return max(MIN_TRACK_FRAMES, math.ceil(MIN_TRACK_SHARE * frames_sampled))


def deciding_track(
    scores: Sequence[float], lengths: Sequence[int], frames_sampled: int
) -> tuple[int | None, bool]:
    """(index of the most suspicious eligible track, whether it was seen in enough frames).

    ``None`` when there is no track. When no track has ``min_track_frames`` frames, the
    longest tracks are eligible and the flag is ``False``.
    """
    if not scores:
        return None, False
    needed = min_track_frames(frames_sampled)
    eligible = [i for i, n in enumerate(lengths) if n >= needed]
    enough = bool(eligible)
    if not enough:
        longest = max(lengths)
        eligible = [i for i, n in enumerate(lengths) if n == longest]
    return max(eligible, key=lambda i: (scores[i], lengths[i])), enough


# ---------------------------------------------------------------------------- fusion


def fuse(judgements: Sequence[Judgement]) -> Fused:
    """Fused verdict of the modalities (see the module docstring for the rule)."""
    judged = [j for j in judgements if j.probability is not None]
    if not judged:
        first = next((j for j in judgements if j.band is not None), None)
        return Fused(
            "uncertain",
            None,
            first.threshold if first else None,
            first.band if first else None,
            None,
        )
    deciding = max(judged, key=lambda j: (SEVERITY[j.verdict], j.probability))
    verdicts = {j.verdict for j in judged}
    if "fake" in verdicts:
        verdict: Verdict = "fake"
    elif verdicts == {"real"}:
        verdict = "real"
    else:
        verdict = "uncertain"
    probability = max(float(j.probability) for j in judged)
    return Fused(verdict, probability, deciding.threshold, deciding.band, deciding.modality)


# ---------------------------------------------------------------------------- timeline


def bin_points(
    times_s: Sequence[float], probabilities: Sequence[float]
) -> list[tuple[float, float, float]]:
    """Per-second ``(start, end, probability)``: the highest probability in each second."""
    best: dict[int, float] = {}
    for t, p in zip(times_s, probabilities, strict=True):
        k = max(0, math.floor(t))
        best[k] = max(best.get(k, 0.0), float(p))
    return [(float(k), float(k + 1), best[k]) for k in sorted(best)]


def bin_intervals(
    starts_s: Sequence[float], ends_s: Sequence[float], probabilities: Sequence[float]
) -> list[tuple[float, float, float]]:
    """Per-second ``(start, end, probability)``: overlap-weighted mean of covering intervals.

    The last second ends where the intervals end (``(3.0, 3.5, p)`` for audio 3.5 s long); a
    last second holding less than :data:`MIN_LAST_BIN_S` (codec padding) is dropped.
    """
    weight: dict[int, float] = {}
    total: dict[int, float] = {}
    reach: dict[int, float] = {}
    for a, b, p in zip(starts_s, ends_s, probabilities, strict=True):
        for k in range(max(0, math.floor(a)), math.ceil(b)):
            overlap = min(b, k + 1) - max(a, k)
            if overlap > 0:
                weight[k] = weight.get(k, 0.0) + overlap
                total[k] = total.get(k, 0.0) + overlap * float(p)
                reach[k] = max(reach.get(k, 0.0), min(float(b), k + 1.0))
    keys = sorted(weight)
    if len(keys) > 1 and reach[keys[-1]] - keys[-1] < MIN_LAST_BIN_S:
        keys.pop()
    return [(float(k), reach[k], total[k] / weight[k]) for k in keys]


def runs(bins: Sequence[tuple[float, float, float]], threshold: float) -> list[tuple[float, float]]:
    """Spans ``(start, end)`` of consecutive bins whose probability is at least ``threshold``."""
    spans: list[list[float]] = []
    for start, end, p in bins:
        if p < threshold:
            continue
        if spans and abs(spans[-1][1] - start) < 1e-9:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(a, b) for a, b in spans]


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on), for reasons people read."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = [
    "Fused",
    "Judgement",
    "bin_intervals",
    "bin_points",
    "box_iou",
    "centre_distance",
    "clock",
    "deciding_track",
    "fuse",
    "group_tracks",
    "min_track_frames",
    "runs",
    "track_score",
]
