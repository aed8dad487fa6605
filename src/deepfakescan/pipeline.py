"""sniff -> decode -> detectors -> Report: the only place that routes.

``scan()`` is the one entry point behind the CLI, the web API and the Python API; ``check()``
runs its first checks alone, so the web layer refuses a bad upload before queueing it. A scan
reports progress through ``progress(fraction, stage)`` and polls ``cancel()`` between stages, so
a job runner can show progress and stop a scan. Every failure we can explain is a
``DeepfakescanError`` with an HTTP status; nothing here formats output.

Every scan also reads what the file declares about itself (``provenance``) from the same
``MediaSource``; a record that declares AI generation decides the verdict
(``provenance.verdict``), and a record that cannot be read is a warning, never a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .config import Settings
from .errors import BadInput, ScanCancelled
from .media.source import MediaSource
from .report import MEDIA_KINDS, Evidence, MediaInfo, Report

if TYPE_CHECKING:
    from .media.sniff import Sniffed
    from .provenance import Provenance

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
Source = str | os.PathLike | bytes | bytearray | memoryview


class _Stages:
    """Progress reporting, cancellation and per-stage timings for one scan."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self._progress = progress
        self._cancel = cancel
        self.timings_ms: dict[str, float] = {}

    def check(self) -> None:
        if self._cancel is not None and self._cancel():
            raise ScanCancelled("the scan was cancelled")

    def report(self, fraction: float, stage: str) -> None:
        if self._progress is not None:
            self._progress(min(max(fraction, 0.0), 1.0), stage)

    @contextmanager
    def stage(self, name: str, fraction: float) -> Iterator[None]:
        """Time a stage, check for cancellation before it and report progress at its start."""
        self.check()
        self.report(fraction, name)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - start) * 1000.0
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + elapsed


def check(
    source: Source,
    kind: str | None = None,
    *,
    settings: Settings | None = None,
    name: str | None = None,
) -> Sniffed:
    """The checks a scan starts with, alone: what an upload must pass before it is queued.

    Refuses, with the error a scan would raise: an unknown ``kind`` (400), a missing, empty
    (400) or over-limit (413) input, content that is not a format we decode (415) or is a
    damaged container (422), content that differs from the declared ``kind`` (400), and an
    image whose header declares more than ``max_image_pixels`` (413). No pixel or sample is
    decoded. Returns what the content is.
    """
    from .media.image import check_image_header

    settings = settings or Settings.from_env()
    check_kind(kind)
    src = MediaSource.from_any(source, settings, name)
    sniffed = _sniff(src, kind)
    if sniffed.kind == "image":
        check_image_header(src, sniffed.format, settings)
    return sniffed


def scan(
    source: Source,
    *,
    kind: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    settings: Settings | None = None,
    name: str | None = None,
) -> Report:
    """Scan one image, audio or video file (a path or its bytes) and return a Report.

    Parameters
    ----------
    source
        Path to a file, or the file's bytes. The type is sniffed from the bytes, never the name.
    kind
        Optional expected media type ("image", "audio", "video"); a mismatch with the sniffed
        type is a ``BadInput`` error (the prototype's ``fileType`` form field).
    progress, cancel
        ``progress(fraction, stage)`` is called as work goes on; ``cancel()`` is polled between
        stages and a true answer raises ``ScanCancelled``.
    settings
        Limits and model locations; ``Settings.from_env()`` when omitted.
    name
        Display name for the report (e.g. the uploaded file name); never used as a path.
    """
    settings = settings or Settings.from_env()
    check_kind(kind)
    stages = _Stages(progress, cancel)
    total_start = time.perf_counter()
    with stages.stage("sniff", 0.0):
        src = MediaSource.from_any(source, settings, name)
        sniffed = _sniff(src, kind)
    with stages.stage("provenance", 0.02):
        found = _provenance(src, sniffed.format, settings)
    media, evidence = _ROUTES[sniffed.kind](src, sniffed.format, settings, stages)
    stages.report(1.0, "done")
    timings = dict(stages.timings_ms)
    timings["total"] = (time.perf_counter() - total_start) * 1000.0
    return _report(evidence, media, timings, src.name, found)


def check_kind(kind: str | None) -> None:
    """Refuse a declared media type that is not one of ``MEDIA_KINDS`` (400): the first of
    ``check()``'s checks, alone for a caller that can refuse before it reads the input."""
    if kind is not None and kind not in MEDIA_KINDS:
        raise BadInput(f"unknown media type {kind!r}; expected one of {list(MEDIA_KINDS)}")


def _sniff(src: MediaSource, kind: str | None) -> Sniffed:
    """What the content is, refused when it is not what the caller declared."""
    from .media.sniff import sniff

    sniffed = sniff(src)
    if kind is not None and kind != sniffed.kind:
        raise BadInput(
            f"{src.name}: declared as {kind} but its content is {sniffed.kind} ({sniffed.format})"
        )
    return sniffed


def _provenance(src: MediaSource, fmt: str, settings: Settings) -> Provenance:
    """The file's own records, read from the source the scan holds (no second size check).

    ``read_provenance`` already turns a damaged record into a warning; this guard is for
    anything else (a library bug, a missing system library), so provenance never fails a scan.
    """
    from .provenance import Provenance, read_provenance

    try:
        return read_provenance(src, fmt, settings=settings)
    except Exception as e:  # noqa: BLE001 - evidence on the side must not stop the scan
        return Provenance(warnings=(f"provenance: not read ({type(e).__name__}: {e})",))


def _report(
    evidence: Evidence,
    media: MediaInfo,
    timings: dict[str, float],
    source_name: str,
    found: Provenance,
) -> Report:
    from .provenance import provenance_judgement
    from .provenance.verdict import decide, section

    judgement = provenance_judgement(found)
    decision = decide(evidence.verdict, evidence.reasons, judgement)
    report = Report(
        verdict=decision.verdict,
        fake_probability=evidence.fake_probability,
        threshold=evidence.threshold,
        uncertain_band=evidence.uncertain_band,
        reasons=list(decision.reasons),
        media=media,
        models=evidence.models,
        faces=evidence.faces,
        segments=evidence.segments,
        tracks=evidence.tracks,
        whole_image=evidence.whole_image,
        provenance=section(found, judgement, decision, evidence.verdict),
        timings_ms=timings,
        warnings=evidence.warnings,
        source_name=source_name,
    )
    for artifact, data in evidence.artifacts:
        report.add_artifact(artifact, data)
    return report


def _scan_image(
    src: MediaSource, fmt: str, settings: Settings, stages: _Stages
) -> tuple[MediaInfo, Evidence]:
    from .detectors.image import analyse_image
    from .media.image import load_image

    with stages.stage("decode", 0.05):
        image = load_image(src, settings)
    media = MediaInfo(
        type="image", format=fmt, size_bytes=src.size, width=image.width, height=image.height
    )
    with stages.stage("detect", 0.3):
        evidence = analyse_image(image, settings, check=stages.check)
    evidence.warnings[:0] = image.warnings  # a reduced decode, said before the detectors' notes
    return media, evidence


def _scan_audio(
    src: MediaSource, fmt: str, settings: Settings, stages: _Stages
) -> tuple[MediaInfo, Evidence]:
    from .detectors.audio import analyse_audio
    from .media.audio import open_audio_stream

    with stages.stage("decode", 0.05):
        stream = open_audio_stream(src, settings)
    with stages.stage("detect", 0.1):
        evidence = analyse_audio(
            stream,
            settings,
            progress=lambda f, s: stages.report(0.1 + 0.85 * f, s),
            cancel=stages.check,
        )
    info = stream.info
    media = MediaInfo(
        type="audio",
        format=fmt,
        size_bytes=src.size,
        duration_s=info.duration_s,
        analysed_duration_s=round(stream.seconds_read, 3),
        sample_rate=info.sample_rate,
        channels=info.channels,
    )
    evidence.warnings.extend(w for w in stream.warnings if w not in evidence.warnings)
    return media, evidence


def _scan_video(
    src: MediaSource, fmt: str, settings: Settings, stages: _Stages
) -> tuple[MediaInfo, Evidence]:
    from .detectors.video import analyse_video

    result = analyse_video(
        src, settings, stage=stages.stage, progress=stages.report, check=stages.check
    )
    info = result.info
    media = MediaInfo(
        type="video",
        format=fmt,
        size_bytes=src.size,
        width=info.width,
        height=info.height,
        duration_s=None if info.duration_s is None else round(info.duration_s, 3),
        analysed_duration_s=result.analysed_duration_s,
        sample_rate=result.sample_rate,
        channels=result.channels,
        frame_rate=None if info.frame_rate is None else round(info.frame_rate, 3),
        frames_sampled=result.frames_sampled,
    )
    return media, result.evidence


_ROUTES = {"image": _scan_image, "audio": _scan_audio, "video": _scan_video}
