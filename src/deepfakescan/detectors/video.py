"""Video evidence: sampled frames -> faces -> per-person tracks -> visual score; audio track ->
audio score; both fused into one verdict with a per-second timeline.

Flow, streaming (one decoded frame in memory at a time, whatever the video's length or size):

1. ``sample_frames`` picks ``Settings.video_frames`` frames evenly in time (see
   ``media/video.py`` for the rule and how damage and lying headers are handled); a frame
   over ``Settings.decode_pixels`` (8K) comes decoded reduced, and the faces found in it are
   reported in the file's pixels (``Frame.to_file``).
2. Each frame is downscaled to ``Settings.video_detection_max_side`` for MTCNN, searching faces
   of at least ``Settings.video_min_face`` of the shorter side (never under 20 px): an 8K
   frame costs what a 640 px one does, a fraction of what a 1280 px photo costs.
3. The :data:`MAX_FACES` largest faces of the frame are aligned from the frame as decoded
   and scored by the ``image`` bundle, as a photo's faces are (``detectors/image.py``); faces
   judged fake are also given a manipulation family when the ``image-family`` bundle is
   installed. Only the :data:`N_THUMBNAILS` most suspicious frames are kept, downscaled.
4. After the last frame, faces are grouped into per-person tracks, each person gets a score by
   the DFDC "confident frames" rule, and the most suspicious person seen in enough frames gives
   the visual score (rules in ``detectors/fusion.py``).
   When an ``image-synthetic`` bundle is installed, every sampled frame is also scored whole
   (``detectors.synthetic``, :data:`~deepfakescan.detectors.synthetic.N_CROPS_PER_FRAME`
   crops a frame), faces or not; the median over the frames is that model's say, combined
   with the faces' by ``verdict.combine`` (either one seeing a fake is enough) into the
   visual judgement. A video without faces then still gets a visual verdict.
5. The audio track goes through the audio detector (its voice-activity gate decides whether
   there is speech to judge); its windows share the container clock with the frames.
6. ``fusion.fuse``: fake if either modality is fake, real only if every judged modality is
   real; ``uncertain`` when neither a face nor speech was found.

The report holds per-second visual and audio segments, the tracks with their frame times,
every face with its frame time and track, and the most suspicious frames as JPEG thumbnails
with face boxes and the detector's heatmap; with the whole-image model, ``whole_image`` holds
its verdict and every sampled frame's score (the page draws them on the visual timeline).
Models: with only one of the image and audio detectors installed, the other modality is
skipped with a warning; with neither the scan is ``ModelMissing`` (503). The whole-image model
adds to the visual analysis, so it runs only beside the image (face) detector.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..config import Settings
from ..errors import CorruptMedia, ModelMissing, UnsupportedMedia
from ..faces import DetectedFace, detect_faces, relative_min_face
from ..media.audio import AudioStream
from ..media.source import MediaSource
from ..media.video import Frame, VideoInfo, probe_video, sample_frames
from ..report import (
    Artifact,
    Box,
    Evidence,
    Face,
    ModelRef,
    Segment,
    Track,
    WholeImage,
    percent,
    verdict_for,
)
from . import fusion as F
from . import synthetic
from .bundle import ModelBundle, optional_model
from .explain import heatmap_overlay, sigmoid
from .image import FAMILY_MODEL, FAMILY_PHRASES, IMAGE_MODEL, face_family, score_faces
from .verdict import Judgement, combine

AUDIO_MODEL = "audio"
MAX_FACES = 4
"""Faces scored per frame, largest first: a swapped face is a subject of the video, and the
small faces of a crowd behind it would multiply the model's work without being judgeable."""
N_THUMBNAILS = 3
"""The most suspicious frames kept as pictures."""
THUMB_MAX_SIDE = 640
"""Longer side of a thumbnail; frames are downscaled to it as soon as they qualify."""
N_SPANS = 3
"""How many suspicious voice spans a reason names."""

StageFn = Callable[[str, float], AbstractContextManager]
"""``stage(name, fraction)``: a context that times one stage (the pipeline's ``_Stages``)."""


@dataclass
class VideoAnalysis:
    """What ``analyse_video`` found: the evidence and the facts the pipeline reports as media."""

    evidence: Evidence
    info: VideoInfo
    frames_sampled: int
    analysed_duration_s: float | None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass
class _FaceSeen:
    pos: int
    """Position of the frame among the frames sampled."""
    time_s: float
    face: DetectedFace
    probability: float
    family: str | None = None
    family_table: dict[str, float] | None = None
    track: int = -1
    to_file: tuple[float, float] = (1.0, 1.0)
    """File pixels per frame pixel along x and y (``Frame.to_file``): ``face`` is in the
    frame's pixels, the report gives it in the file's."""


@dataclass(order=True)
class _Shot:
    """A candidate thumbnail: a downscaled frame and what to draw on it."""

    score: float
    pos: int
    time_s: float = field(compare=False)
    rgb: np.ndarray = field(compare=False, repr=False)
    scale: float = field(compare=False)
    faces: list[int] = field(compare=False)
    heats: list[tuple[np.ndarray, np.ndarray, int]] = field(compare=False, repr=False)


@dataclass
class _FrameScan:
    """What the sampled frames gave: their times, every face seen, the thumbnail candidates."""

    times: list[float] = field(default_factory=list)
    seen: list[_FaceSeen] = field(default_factory=list)
    shots: list[_Shot] = field(default_factory=list)
    """A min-heap on score: the ``N_THUMBNAILS`` most suspicious frames so far."""
    family_refs: list[ModelRef] = field(default_factory=list)
    whole_model: ModelBundle | None = None
    """The whole-image model, when installed; ``whole`` then holds every frame's score."""
    whole: list[float] = field(default_factory=list)
    _family: ModelBundle | None = None
    _family_tried: bool = False

    def family_model(self, settings: Settings) -> ModelBundle | None:
        """The family classifier, loaded on the first fake face (``None`` if not installed)."""
        if not self._family_tried:
            self._family_tried = True
            self._family, _ = optional_model(FAMILY_MODEL, settings)
            if self._family is not None:
                self.family_refs.append(self._family.ref("manipulation-classifier"))
        return self._family

    def offer_shot(self, score: float, make: Callable[[], _Shot]) -> None:
        """Keep the frame as a thumbnail if it is among the most suspicious so far."""
        if len(self.shots) < N_THUMBNAILS:
            heapq.heappush(self.shots, make())
        elif score > self.shots[0].score:
            heapq.heapreplace(self.shots, make())


@dataclass
class _Judged:
    """One modality's part of the conclusion."""

    judgement: F.Judgement
    reasons: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    whole_image: WholeImage | None = None


def min_face_pixels(width: int, height: int, settings: Settings) -> float:
    """Smallest face side searched, in pixels of the detection image for a frame this size."""
    return relative_min_face(
        width, height, settings.video_min_face, settings.video_detection_max_side
    )


def analyse_video(
    source: MediaSource,
    settings: Settings,
    *,
    stage: StageFn | None = None,
    progress: Callable[[float, str], None] | None = None,
    check: Callable[[], None] | None = None,
) -> VideoAnalysis:
    """Judge a video's faces and voice and fuse them (rules in the module docstrings).

    Parameters
    ----------
    source
        The video (a sniffed video container).
    stage, progress, check
        The pipeline's hooks: ``stage(name, fraction)`` times the stages "decode", "faces",
        "model", "audio" and "fusion" (each may be entered many times; times add up);
        ``progress(fraction, stage)`` reports progress inside the audio stage; ``check()``
        raises ``ScanCancelled`` when the caller gave up.
    """
    stage = stage or (lambda name, fraction: nullcontext())
    with stage("decode", 0.05):
        info = probe_video(source)  # damaged input is CorruptMedia whatever is installed
    detector, no_visual = optional_model(IMAGE_MODEL, settings)
    audio_model, no_audio = optional_model(AUDIO_MODEL, settings)
    if detector is None and audio_model is None:
        raise ModelMissing(
            "no model installed for video: it needs the image detector or the audio detector"
            f" (image: {no_visual}; audio: {no_audio})"
        )
    warnings: list[str] = []
    models: list[ModelRef] = []
    frames = _FrameScan()
    if detector is not None:
        models += [detector.ref("image-detector"), ModelRef("mtcnn", "1.0.0", "face-detector")]
        whole_model, _ = optional_model(synthetic.MODEL_NAME, settings)
        frames = _scan_frames(source, settings, (detector, whole_model), stage, warnings)
        models += frames.family_refs
        models += [whole_model.ref(synthetic.ROLE)] if whole_model is not None else []
    else:
        warnings.append(f"visual analysis unavailable: {no_visual}")
    audio_ev, stream = None, None
    if info.has_audio and audio_model is None:
        warnings.append(f"audio analysis unavailable: {no_audio}")
    elif info.has_audio:
        audio_ev, stream = _scan_audio(
            source, settings, audio_model, stage, progress, check, warnings
        )
        models += audio_ev.models if audio_ev is not None else []
    with stage("fusion", 0.97):
        heard = None if stream is None else stream.seconds_read
        evidence = _conclude(settings, info, detector, (audio_model, audio_ev, heard), frames)
        evidence.warnings = warnings + evidence.warnings
    evidence.models = models
    return _analysis(evidence, info, frames.times, stream, settings)


def _analysis(
    evidence: Evidence,
    info: VideoInfo,
    frame_times: list[float],
    stream: AudioStream | None,
    settings: Settings,
) -> VideoAnalysis:
    """The evidence with the facts about the video that the report's ``media`` holds."""
    span = info.duration_s if info.duration_s else (frame_times[-1] if frame_times else None)
    analysed = None if span is None else round(min(span, settings.max_video_seconds), 3)
    sample_rate = None if stream is None else stream.info.sample_rate
    channels = None if stream is None else stream.info.channels
    return VideoAnalysis(evidence, info, len(frame_times), analysed, sample_rate, channels)


# ---------------------------------------------------------------------------- frames


def _scan_frames(
    source: MediaSource,
    settings: Settings,
    models: tuple[ModelBundle, ModelBundle | None],
    stage: StageFn,
    warnings: list[str],
) -> _FrameScan:
    """Decode, detect and score the sampled frames one at a time; ``models`` is the face
    detector and the whole-image model (``None`` when not installed)."""
    detector, whole_model = models
    with stage("decode", 0.05):
        sampler = sample_frames(source, settings.video_frames, settings)
    frames = iter(sampler)
    scan = _FrameScan(whole_model=whole_model)
    try:
        while True:
            fraction = 0.05 + 0.6 * len(scan.times) / sampler.n
            with stage("decode", fraction):
                frame = next(frames, None)
            if frame is None:
                break
            scan.times.append(max(0.0, frame.time_s))
            with stage("faces", fraction):
                found = _frame_faces(frame.rgb, settings)
            if found:
                with stage("model", fraction):
                    _score_frame(scan, frame, found, detector, settings)
            if whole_model is not None:
                with stage("whole-image", fraction):
                    pos = len(scan.times) - 1
                    scan.whole.append(synthetic.score_frame(frame.rgb, whole_model, pos))
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    warnings.extend(w for w in sampler.warnings if w not in warnings)
    return scan


def _frame_faces(rgb: np.ndarray, settings: Settings) -> list[DetectedFace]:
    """The ``MAX_FACES`` largest faces of a frame, searched on a downscaled copy."""
    height, width = rgb.shape[:2]
    found = detect_faces(
        rgb,
        max_side=settings.video_detection_max_side,
        min_face=min_face_pixels(width, height, settings),
        settings=settings,
    )
    return sorted(found, key=lambda f: -f.box[2] * f.box[3])[:MAX_FACES]


def _score_frame(
    scan: _FrameScan,
    frame: Frame,
    found: list[DetectedFace],
    detector: ModelBundle,
    settings: Settings,
) -> None:
    """Score the latest frame's faces (a family for the fake ones), offer it as a thumbnail."""
    pos, time_s, rgb = len(scan.times) - 1, scan.times[-1], frame.rgb
    aligned, probabilities, maps = score_faces(detector, rgb, found)
    first = len(scan.seen)
    for face, p in zip(found, probabilities, strict=True):
        record = _FaceSeen(pos, time_s, face, float(p), to_file=frame.to_file)
        if verdict_for(record.probability, detector.uncertain_band) == "fake":
            family_model = scan.family_model(settings)
            if family_model is not None:
                record.family, record.family_table = face_family(family_model, rgb, face)
        scan.seen.append(record)
    score = float(np.max(probabilities))
    scan.offer_shot(score, lambda: _shot(rgb, score, pos, time_s, first, aligned, maps))


def _shot(
    rgb: np.ndarray, score: float, pos: int, time_s: float, first: int, aligned, maps
) -> _Shot:
    """Downscale a frame for its thumbnail and keep its heat grids in thumbnail pixels."""
    height, width = rgb.shape[:2]
    scale = min(1.0, THUMB_MAX_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(rgb)
    if scale < 1.0:
        small = small.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    # the crop->image maps scale with the image: one factor per axis after rounding the size
    sx, sy = size[0] / width, size[1] / height
    heats = []
    if maps is not None:
        for grid, face in zip(maps, aligned, strict=True):
            matrix = face.matrix * np.array([[sx], [sy]])
            heats.append((sigmoid(grid), matrix, face.image.shape[0]))
    faces = list(range(first, first + len(aligned)))
    return _Shot(score, pos, time_s, np.asarray(small), sx, faces, heats)


def _scan_audio(
    source: MediaSource,
    settings: Settings,
    model: ModelBundle,
    stage: StageFn,
    progress: Callable[[float, str], None] | None,
    check: Callable[[], None] | None,
    warnings: list[str],
) -> tuple[Evidence | None, AudioStream | None]:
    """The audio detector on the video's audio track; damage there is a warning, not a failure."""
    from ..media.audio import open_audio_stream
    from .audio import analyse_audio

    with stage("audio", 0.65):
        try:
            stream = open_audio_stream(source, settings)
        except (CorruptMedia, UnsupportedMedia) as e:
            warnings.append(f"the audio track could not be decoded: {e.message}")
            return None, None

        def on_progress(fraction: float, name: str) -> None:
            if progress is not None:
                progress(0.65 + 0.3 * fraction, "audio")

        try:
            evidence = analyse_audio(
                stream, settings, progress=on_progress, cancel=check, model=model
            )
        except CorruptMedia as e:
            warnings.append(f"the audio track could not be decoded: {e.message}")
            return None, None
    warnings.extend(w for w in evidence.warnings if w not in warnings)
    return evidence, stream


# ---------------------------------------------------------------------------- conclusion


def _conclude(
    settings: Settings,
    info: VideoInfo,
    detector: ModelBundle | None,
    audio: tuple[ModelBundle | None, Evidence | None, float | None],
    frames: _FrameScan,
) -> Evidence:
    """Tracks, per-person and visual scores, fusion, timeline, reasons and thumbnails.

    ``audio`` is (audio model, its evidence, seconds of audio decoded); warnings found here
    are returned in the evidence.
    """
    audio_model, audio_ev, audio_seconds = audio
    visual = _with_whole_image(_judge_visual(settings, detector, frames), frames, detector)
    voice = _judge_audio(info, audio_model, audio_ev, audio_seconds)
    fused = F.fuse([visual.judgement, voice.judgement])
    first, second = (voice, visual) if fused.deciding == "audio" else (visual, voice)
    reasons = first.reasons + second.reasons
    if fused.probability is None:
        reasons.insert(0, _nothing_judged(detector is not None, audio_model, audio_ev, info))
    faces, artifacts = _faces_and_thumbnails(frames.seen, frames.shots, visual.tracks, detector)
    segments = sorted(
        visual.segments + voice.segments, key=lambda s: (s.modality != "visual", s.start_s)
    )
    return Evidence(
        verdict=fused.verdict,
        fake_probability=fused.probability,
        threshold=fused.threshold,
        uncertain_band=fused.band,
        reasons=reasons,
        faces=faces,
        segments=segments,
        tracks=visual.tracks,
        warnings=visual.warnings,
        artifacts=artifacts,
        whole_image=visual.whole_image,
    )


def _judge_visual(settings: Settings, detector: ModelBundle | None, frames: _FrameScan) -> _Judged:
    """The picture's judgement: the most suspicious person seen in enough frames decides."""
    if detector is None:
        return _Judged(F.Judgement("visual", None, "uncertain", None, None))
    band = detector.uncertain_band
    n_frames = len(frames.times)
    tracks = _tracks(settings, frames.seen, n_frames, band)
    if not tracks:
        return _Judged(
            F.Judgement("visual", None, "uncertain", detector.threshold, band),
            reasons=[
                f"No face was found in the {n_frames} sampled frames, so the picture was not"
                " judged (this release judges faces)."
            ],
        )
    chosen, enough = F.deciding_track(
        [t.fake_probability for t in tracks], [len(t.frame_times_s) for t in tracks], n_frames
    )
    track = tracks[chosen]
    judged = _Judged(
        F.Judgement("visual", track.fake_probability, track.verdict, detector.threshold, band),
        reasons=_visual_reasons(tracks, chosen, band, enough, n_frames),
        segments=_visual_segments(frames),
        tracks=tracks,
    )
    if not enough:
        judged.warnings.append(
            f"faces were seen in at most {len(track.frame_times_s)} of the {n_frames}"
            " sampled frames: thin evidence for the visual verdict"
        )
    return judged


def _with_whole_image(visual: _Judged, frames: _FrameScan, detector: ModelBundle | None) -> _Judged:
    """The faces' judgement combined with the whole-image model's (``verdict.combine``, as for
    a photo); unchanged when that model is not installed or no frame was decoded."""
    if frames.whole_model is None or not frames.whole or detector is None:
        return visual
    n_frames = len(frames.times)
    faces = visual.judgement.probability is not None
    n_tracks = len(visual.tracks)
    looked_at = (
        f"{n_tracks} face{'s' if n_tracks > 1 else ''} followed across {n_frames} frames"
        if faces
        else f"no face was found in the {n_frames} sampled frames"
    )
    face = Judgement(
        detector.name,
        visual.judgement.probability,
        detector.threshold,
        detector.uncertain_band,
        synthetic.FACE_LABEL,
        looked_at,
        tuple(visual.reasons) if faces else (),
    )
    mine, whole_image = synthetic.frames_judgement(frames.times, frames.whole, frames.whole_model)
    combined = combine([face, mine])
    visual.judgement = F.Judgement(
        "visual", combined.probability, combined.verdict, combined.threshold, combined.band
    )
    visual.reasons = combined.reasons
    visual.whole_image = whole_image
    return visual


def _tracks(
    settings: Settings, seen: list[_FaceSeen], n_frames: int, band: tuple[float, float]
) -> list[Track]:
    """Faces grouped into people across frames; each record learns its track."""
    boxes: list[list[F.BoxXYWH]] = [[] for _ in range(n_frames)]
    index: list[list[int]] = [[] for _ in range(n_frames)]
    for i, record in enumerate(seen):
        boxes[record.pos].append(record.face.box)
        index[record.pos].append(i)
    family_threshold = 0.5
    if any(r.family_table for r in seen):
        family_model, _ = optional_model(FAMILY_MODEL, settings)
        family_threshold = family_model.threshold if family_model is not None else 0.5
    tracks = []
    for track_id, members in enumerate(F.group_tracks(boxes)):
        records = [seen[index[pos][f]] for pos, f in members]
        for record in records:
            record.track = track_id
        tracks.append(_track(track_id, records, band, family_threshold))
    return tracks


def _visual_segments(frames: _FrameScan) -> list[Segment]:
    """Per-second visual timeline: each frame counts with its most suspicious face."""
    by_pos: dict[int, float] = {}
    for record in frames.seen:
        by_pos[record.pos] = max(by_pos.get(record.pos, 0.0), record.probability)
    times = [frames.times[pos] for pos in by_pos]
    return [Segment(a, b, p, "visual") for a, b, p in F.bin_points(times, list(by_pos.values()))]


def _judge_audio(
    info: VideoInfo,
    audio_model: ModelBundle | None,
    audio_ev: Evidence | None,
    audio_seconds: float | None,
) -> _Judged:
    """The voice's judgement, its timeline cut to the audio actually heard."""
    if audio_ev is None:
        reasons = []
        if audio_model is not None and not info.has_audio:
            reasons = ["The video has no audio track, so only the picture was judged."]
        return _Judged(F.Judgement("audio", None, "uncertain", None, None), reasons)
    band = audio_ev.uncertain_band or audio_model.uncertain_band
    heard = audio_seconds if audio_seconds else float("inf")
    kept = [s for s in audio_ev.segments if s.start_s < heard]
    bins = F.bin_intervals(
        [s.start_s for s in kept],
        [min(s.end_s, heard) for s in kept],
        [s.fake_probability for s in kept],
    )
    return _Judged(
        F.Judgement("audio", audio_ev.fake_probability, audio_ev.verdict, audio_ev.threshold, band),
        reasons=_audio_reasons(audio_ev, bins, band),
        segments=[Segment(a, b, p, "audio") for a, b, p in bins],
    )


def _nothing_judged(
    visual: bool, audio_model: ModelBundle | None, audio_ev: Evidence | None, info: VideoInfo
) -> str:
    """The first reason of an uncertain video: what was missing, in plain words."""
    missing = ["no face was found" if visual else "visual analysis is unavailable"]
    if audio_model is None:
        missing.append("audio analysis is unavailable")
    elif not info.has_audio:
        missing.append("there is no audio track")
    elif audio_ev is None:
        missing.append("the audio track could not be decoded")
    else:
        missing.append("no speech was found")
    if missing == ["no face was found", "no speech was found"]:
        return (
            "Neither a face nor speech was found, so this video cannot be judged:"
            " this release judges faces and voices."
        )
    return f"This video cannot be judged: {missing[0]} and {missing[1]}."


def _track(
    track_id: int,
    records: list[_FaceSeen],
    band: tuple[float, float],
    family_threshold: float,
) -> Track:
    probabilities = [r.probability for r in records]
    score = F.track_score(probabilities)
    verdict = verdict_for(score, band)
    judged_fake = sum(verdict_for(p, band) == "fake" for p in probabilities)
    family = None
    tables = [r.family_table for r in records if r.family_table]
    if verdict == "fake" and tables:
        labels = list(tables[0])
        mean = {label: float(np.mean([t.get(label, 0.0) for t in tables])) for label in labels}
        best = max(mean, key=mean.get)
        family = best if mean[best] >= family_threshold else "other"
    return Track(
        track_id=track_id,
        frame_times_s=[round(r.time_s, 3) for r in records],
        fake_probability=score,
        verdict=verdict,
        frames_judged_fake=int(judged_fake),
        family=family,
    )


def _visual_reasons(
    tracks: list[Track], chosen: int, band: tuple[float, float], enough: bool, n_frames: int
) -> list[str]:
    """Plain sentences: the deciding person first, then the others worth naming."""
    track = tracks[chosen]
    who = f"Face {track.track_id + 1}"
    n = len(track.frame_times_s)
    seen_in = f"in {track.frames_judged_fake} of {n} frames"
    when = f" ({F.clock(track.frame_times_s[0])} to {F.clock(track.frame_times_s[-1])})"
    p = track.fake_probability
    # a frame counts as "judged manipulated" only at or above the fake band's edge, so the
    # person's score can sit in the uncertain band with no such frame: say which edge
    per_frame = f"single frames reached {band[1]:.0%} {seen_in}{when}"
    if track.verdict == "fake":
        first = (
            f"{who} judged manipulated {seen_in}{when}; its score is {percent(p)}"
            f" (we call it fake from {band[1]:.0%})."
        )
    elif track.verdict == "real":
        subject = "Every face" if len(tracks) > 1 else who
        first = (
            f"{subject} looks authentic: {who.lower()} scores {percent(p)} (below"
            f" {band[0]:.0%} counts as real); {per_frame}."
        )
    else:
        first = (
            f"{who} is in the uncertain band: it scores {percent(p)} (between {band[0]:.0%}"
            f" and {band[1]:.0%} we do not decide); {per_frame}."
        )
    reasons = [first]
    if track.family is not None:
        phrase = FAMILY_PHRASES.get(track.family, track.family.replace("_", " "))
        reasons.append(f"{who} most resembles {phrase}.")
    for other in tracks:
        if other.track_id != track.track_id and other.verdict == "fake":
            reasons.append(
                f"Face {other.track_id + 1} was also judged manipulated in"
                f" {other.frames_judged_fake} of {len(other.frame_times_s)} frames."
            )
    if len(tracks) > 1:
        reasons.append(
            f"{len(tracks)} faces were followed across {n_frames} sampled frames; the most"
            " suspicious one seen in enough frames decides the picture's verdict."
        )
    if not enough:
        reasons.append(f"Faces were seen in only {n} of {n_frames} frames: thin evidence.")
    return reasons


def _audio_reasons(
    evidence: Evidence, bins: list[tuple[float, float, float]], band: tuple[float, float]
) -> list[str]:
    p = evidence.fake_probability
    if p is None:
        # the audio detector's own words: no speech, or too short
        return [evidence.reasons[0]] if evidence.reasons else ["No speech was found."]
    if evidence.verdict == "fake":
        spans = F.runs(bins, band[1])
        if spans:
            shown = ", ".join(f"from {F.clock(a)} to {F.clock(b)}" for a, b in spans[:N_SPANS])
            more = f" and {len(spans) - N_SPANS} more span(s)" if len(spans) > N_SPANS else ""
            return [
                f"Voice synthetic {shown}{more}; its score is {percent(p)}"
                f" (we call it fake from {band[1]:.0%})."
            ]
        return [f"Voice judged synthetic: score {percent(p)} (we call it fake from {band[1]:.0%})."]
    if evidence.verdict == "real":
        return [f"Voice sounds natural: score {percent(p)} (below {band[0]:.0%} counts as real)."]
    return [
        f"Voice is in the uncertain band: score {percent(p)} (between {band[0]:.0%} and"
        f" {band[1]:.0%} we do not decide)."
    ]


def _faces_and_thumbnails(
    seen: list[_FaceSeen],
    shots: list[_Shot],
    tracks: list[Track],
    detector: ModelBundle | None,
) -> tuple[list[Face], list[tuple[Artifact, bytes]]]:
    """Every face for the report, and the most suspicious frames as pictures."""
    if detector is None:
        return [], []
    band = detector.uncertain_band
    names: dict[int, str] = {}
    artifacts: list[tuple[Artifact, bytes]] = []
    for rank, shot in enumerate(sorted(shots, reverse=True), start=1):
        name = f"frame-{rank}.jpg"
        labels = []
        for i in shot.faces:
            record = seen[i]
            names[i] = name
            x, y, w, h = record.face.box
            box = (x * shot.scale, y * shot.scale, w * shot.scale, h * shot.scale)
            labels.append((box, f"face {record.track + 1}: {percent(record.probability)}"))
        picture = heatmap_overlay(shot.rgb, shot.heats, labels, max_side=THUMB_MAX_SIDE)
        description = (
            f"Frame at {F.clock(shot.time_s)} ({shot.time_s:.2f} s), suspicious rank {rank}:"
            " face boxes with their scores"
            + (", and where the detector saw evidence of manipulation (red)" if shot.heats else "")
        )
        artifacts.append((Artifact(name, "thumbnail", "image/jpeg", description), picture))
    faces = []
    for i, record in enumerate(seen):
        sx, sy = record.to_file
        x, y, w, h = record.face.box
        faces.append(
            Face(
                box=Box(round(x * sx), round(y * sy), round(w * sx), round(h * sy)),
                fake_probability=record.probability,
                verdict=verdict_for(record.probability, band),
                detection_confidence=round(float(record.face.confidence), 4),
                landmarks=[
                    [round(float(a) * sx, 1), round(float(b) * sy, 1)]
                    for a, b in record.face.landmarks
                ],
                family=record.family,
                family_probabilities=record.family_table,
                heatmap=names.get(i),
                time_s=round(record.time_s, 3),
                track_id=record.track,
            )
        )
    return faces, artifacts


__all__ = ["AUDIO_MODEL", "VideoAnalysis", "analyse_video", "min_face_pixels"]
