"""sniff -> decode -> detectors -> Report: the only place that routes.

``scan()`` is the one entry point behind the CLI, the web API and the Python API. It reports
progress through ``progress(fraction, stage)`` and polls ``cancel()`` between stages, so a job
runner can show progress and stop a scan. Every failure we can explain is a
``DeepfakescanError`` with an HTTP status; nothing here formats output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .config import Settings
from .errors import BadInput, ScanCancelled
from .media.source import MediaSource
from .report import Evidence, MediaInfo, Report

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
Source = str | os.PathLike | bytes | bytearray | memoryview

MEDIA_KINDS = ("image", "audio", "video")


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
    from .media.sniff import sniff

    settings = settings or Settings.from_env()
    if kind is not None and kind not in MEDIA_KINDS:
        raise BadInput(f"unknown media type {kind!r}; expected one of {list(MEDIA_KINDS)}")
    stages = _Stages(progress, cancel)
    total_start = time.perf_counter()
    with stages.stage("sniff", 0.0):
        src = MediaSource.from_any(source, settings, name)
        sniffed = sniff(src)
    if kind is not None and kind != sniffed.kind:
        raise BadInput(f"{src.name}: declared as {kind} but its content is {sniffed.kind}")

    media, evidence = _ROUTES[sniffed.kind](src, sniffed.format, settings, stages)

    stages.report(1.0, "done")
    timings = dict(stages.timings_ms)
    timings["total"] = (time.perf_counter() - total_start) * 1000.0
    report = Report(
        verdict=evidence.verdict,
        fake_probability=evidence.fake_probability,
        threshold=evidence.threshold,
        uncertain_band=evidence.uncertain_band,
        reasons=evidence.reasons,
        media=media,
        models=evidence.models,
        faces=evidence.faces,
        segments=evidence.segments,
        tracks=evidence.tracks,
        timings_ms=timings,
        warnings=evidence.warnings,
        source_name=src.name,
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
