"""Video: probe the header, then sample a few frames by time, never holding the whole video.

Sampling rule (and its cost)
----------------------------
``n`` target times are the centres of ``n`` equal slices of the first
``min(duration, Settings.max_video_seconds)`` seconds (centres, so no target falls on the very
end, where there may be no frame). For each target ``t``:

1. If the decoder already sits before ``t`` and within ``MAX_FORWARD_S`` of it (the usual case
   when targets are close together), keep decoding from there; otherwise seek to the keyframe
   at or before ``t`` (``container.seek(..., backward=True)`` on the video stream, in its
   time base) and decode forward.
2. Take the first frame whose pts (in seconds) reaches ``t`` minus half a frame.
3. If reaching ``t`` would cost more than ``MAX_FORWARD_S`` of video or ``MAX_FORWARD_FRAMES``
   decoded frames (long GOPs: some encoders put a keyframe every 10 s), take the first frame
   after the keyframe instead. Cost per sample is therefore at most one seek plus
   ``MAX_FORWARD_FRAMES`` decoded frames, whatever the video length; the price is that on
   long-GOP video a sample may sit up to one GOP before its target (``Frame.time_s`` says
   where it really is).
4. Frames come out with strictly increasing ``time_s``: a target whose chosen frame is not
   later than the previous one (two targets falling back onto the same keyframe, or damage
   hiding frames) is dropped with a warning, so fewer than ``n`` frames may come back and
   ``Frame.index`` (the target's index) may skip values.

All times are pts seconds, never frame indices, so variable frame rate is handled. Rotation
metadata (the display matrix phones write) is applied, so ``rgb`` is upright and
``VideoInfo.width``/``height`` are the displayed size. Frames are never refused for their size:
a frame over ``Settings.decode_pixels`` is converted to RGB reduced by a whole factor on each
side (``image.reduction_factor``, as stills are) in the same libswscale pass that converts it
from YUV, so its full-size RGB copy never exists (an 8K frame: 100 MB). ``Frame.to_file``
maps its pixels back to the file's, and ``FrameSampler.warnings`` says it happened; the
detector downscales frames further for face detection anyway.

Damage: a packet the decoder rejects is skipped and counted in ``FrameSampler.warnings``; a
header that claims more duration than the stream holds ends sampling early with the frames
found and a warning. A video from which no frame decodes at all is ``CorruptMedia`` (422).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from ..config import Settings
from ..errors import CorruptMedia, UnsupportedMedia
from .image import reduction_factor
from .sniff import Sniffed, av_duration, decodable, open_av, sniff
from .source import MediaSource

MAX_FORWARD_S = 2.0
"""Most video (seconds) decoded forward from a keyframe to reach a target."""
MAX_FORWARD_FRAMES = 60
"""Most frames decoded forward from a keyframe to reach a target."""


@dataclass(frozen=True)
class VideoInfo:
    """Header facts. ``width``/``height`` are as displayed (after ``rotation``).

    ``frame_count`` and ``duration_s`` come from the header and may be missing or wrong;
    sampling copes with both.
    """

    format: str
    codec: str
    width: int
    height: int
    duration_s: float | None
    frame_rate: float | None
    frame_count: int | None
    rotation: int
    """Degrees counter-clockwise applied to decoded frames to display them (0/90/180/270)."""
    has_audio: bool


@dataclass
class Frame:
    """One sampled frame: ``rgb`` is ``(H, W, 3)`` uint8, upright; ``time_s`` is its pts."""

    index: int
    time_s: float
    rgb: np.ndarray
    to_file: tuple[float, float] = (1.0, 1.0)
    """File pixels per ``rgb`` pixel along x and y (upright): above 1 when the frame was over
    ``Settings.decode_pixels`` and converted reduced; multiply boxes in ``rgb`` by it."""


def _sniff_video(source: MediaSource, sniffed: Sniffed | None) -> Sniffed:
    sniffed = sniffed or sniff(source)
    if sniffed.kind != "video":
        raise UnsupportedMedia(
            f"{source.name}: this is {sniffed.kind} ({sniffed.format}), not video"
        )
    return sniffed


def _video_stream(container, source: MediaSource):
    streams = [s for s in container.streams.video if decodable(s)]
    if not streams:
        raise CorruptMedia(f"{source.name}: no video stream we can decode")
    # Slice threads, as PyAV's default: with frame threads ("FRAME"/"AUTO") the first decode
    # hung (PyAV 18.1), and each thread would hold a frame in flight. How many slice threads
    # made no measurable difference to an 8K scan's peak (1, auto or 16: within 6 MB).
    streams[0].thread_type = "SLICE"
    return streams[0]


def _rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation from the frame's display matrix, snapped to 90."""
    try:
        degrees = frame.rotation or 0
    except (AttributeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def _to_rgb(frame: av.VideoFrame, rotation: int, budget: int) -> tuple[np.ndarray, int]:
    """(upright RGB, the whole factor it was reduced by to fit ``budget`` pixels).

    Reduction happens inside the YUV->RGB conversion (libswscale, area averaging as the
    stills' box reduction), so no full-size RGB copy of a large frame is ever made.
    """
    factor = reduction_factor((frame.width, frame.height), budget)
    if factor == 1:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        width, height = -(-frame.width // factor), -(-frame.height // factor)
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    return np.ascontiguousarray(rgb), factor


def _to_file(frame: av.VideoFrame, rotation: int, rgb: np.ndarray) -> tuple[float, float]:
    """File pixels per pixel of the upright ``rgb`` made from ``frame``, along x and y."""
    width, height = frame.width, frame.height
    if rotation in (90, 270):
        width, height = height, width
    return width / rgb.shape[1], height / rgb.shape[0]


def _first_frame(container, stream, source: MediaSource) -> av.VideoFrame:
    """Decode the first frame (for rotation, and to refuse undecodable video early)."""
    error = ""
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except (av.error.FFmpegError, ValueError) as e:
                error = error or str(e)
    except av.error.FFmpegError as e:
        error = error or str(e)
    raise CorruptMedia(f"{source.name}: no video frame could be decoded {error}".strip())


def probe_video(source: MediaSource, *, sniffed: Sniffed | None = None) -> VideoInfo:
    """Header facts plus the first frame's rotation; ``CorruptMedia`` if no frame decodes."""
    sniffed = _sniff_video(source, sniffed)
    with open_av(source, sniffed.format) as container:
        stream = _video_stream(container, source)
        first = _first_frame(container, stream, source)
        rotation = _rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            format=sniffed.format,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            duration_s=av_duration(container, stream),
            frame_rate=float(rate) if rate else None,
            frame_count=int(stream.frames) or None,
            rotation=rotation,
            has_audio=any(decodable(s) for s in container.streams.audio),
        )


@dataclass
class _Cursor:
    """Where the decoder stands while sampling, and what it met on the way."""

    decoder: Iterator[av.VideoFrame] | None = None
    position: float = -1.0
    """pts (s) of the last frame the decoder gave."""
    skipped: list = field(default_factory=lambda: [0, ""])
    """Damaged packets, and the first one's message."""
    fallbacks: int = 0
    """Targets that took the frame after the keyframe because the target was too far."""

    def decode_to(
        self, target: float, half_frame: float
    ) -> tuple[av.VideoFrame | None, av.VideoFrame | None]:
        """Decode forward to ``target``: (the frame chosen or ``None``, the last frame seen).

        Falls back to the first frame decoded when reaching ``target`` would cost more than
        ``MAX_FORWARD_S`` or ``MAX_FORWARD_FRAMES``; the decoder is then mid-GOP, so the next
        target seeks.
        """
        first = last = None
        count = 0
        for frame in self.decoder:
            if frame.time is None:
                continue
            self.position = float(frame.time)
            first, last = first or frame, frame
            count += 1
            if self.position >= target - half_frame:
                return frame, last
            if target - float(first.time) > MAX_FORWARD_S or count > MAX_FORWARD_FRAMES:
                self.fallbacks += 1
                self.decoder = None
                return first, last
        return None, last


class FrameSampler:
    """Iterate to get up to ``n`` :class:`Frame` objects at increasing target times.

    ``warnings`` is complete once iteration ends (or is abandoned). ``targets_s`` holds the
    target times; each frame's ``time_s`` is where the chosen frame really is.
    """

    def __init__(
        self, source: MediaSource, n: int, settings: Settings, *, sniffed: Sniffed | None = None
    ) -> None:
        self.source = source
        self.sniffed = _sniff_video(source, sniffed)
        self.info = probe_video(source, sniffed=self.sniffed)
        self.n = max(1, min(int(n), settings.max_video_frames))
        self.max_seconds = settings.max_video_seconds
        self.decode_pixels = settings.decode_pixels
        self.reduced: tuple[int, tuple[int, ...]] | None = None
        """(factor, upright rgb shape) of the first frame converted reduced, if any."""
        self.warnings: list[str] = []
        self.targets_s: list[float] = []

    def __iter__(self) -> Iterator[Frame]:
        self.warnings = []
        with open_av(self.source, self.sniffed.format) as container:
            stream = _video_stream(container, self.source)
            # B-frames no other frame refers to are never decoded: ~40% less decoding, and a
            # sample may land a frame or two later (the times reported are the real ones).
            stream.codec_context.skip_frame = "NONREF"
            start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            duration = self.info.duration_s or self._scan_duration(container, stream, start)
            span = min(duration, self.max_seconds)
            if duration > self.max_seconds:
                self.warnings.append(
                    f"frames were sampled from the first {self.max_seconds:g} s only"
                    " (DEEPFAKESCAN_MAX_VIDEO_SECONDS)"
                )
            self.targets_s = [start + (i + 0.5) * span / self.n for i in range(self.n)]
            yield from self._sample(container, stream)

    def _scan_duration(self, container, stream, start: float) -> float:
        """No duration in the header: demux (without decoding) to find the last pts."""
        last = start
        try:
            for packet in container.demux(stream):
                if packet.pts is not None:
                    last = max(last, float(packet.pts * stream.time_base))
                if last - start > self.max_seconds:
                    break
        except av.error.FFmpegError:
            pass
        container.seek(0)
        return max(last - start, 0.0)

    def _sample(self, container, stream) -> Iterator[Frame]:
        rate = stream.average_rate or stream.guessed_rate
        half_frame = 0.5 / float(rate) if rate else 0.02
        cursor = _Cursor()
        repeats = got = 0
        last_yielded = -float("inf")
        for index, target in enumerate(self.targets_s):
            chosen = self._frame_at(container, stream, cursor, target, half_frame, got)
            if chosen is None:
                break
            if chosen.time <= last_yielded:
                repeats += 1  # long GOP or damage: this target fell back onto a frame we gave
                continue
            last_yielded = float(chosen.time)
            got += 1
            frame = self._frame(index, chosen)
            del chosen  # not held while the caller works: sampling 8K peaked 100 MB lower
            yield frame
        self._note_sampling(cursor, repeats)
        if got == 0:
            raise CorruptMedia(f"{self.source.name}: no video frame could be decoded")

    def _frame(self, index: int, chosen: av.VideoFrame) -> Frame:
        """The chosen frame as RGB, within ``decode_pixels``; the first reduction is noted."""
        rotation = _rotation(chosen)
        rgb, factor = _to_rgb(chosen, rotation, self.decode_pixels)
        if factor > 1 and self.reduced is None:
            self.reduced = (factor, rgb.shape)
        return Frame(index, float(chosen.time), rgb, _to_file(chosen, rotation, rgb))

    def _frame_at(
        self, container, stream, cursor: _Cursor, target: float, half_frame: float, got: int
    ) -> av.VideoFrame | None:
        """The frame for ``target`` (rule in the module docstring), or ``None`` when sampling
        must stop there; a warning then says why."""
        if cursor.decoder is None or not (
            cursor.position < target <= cursor.position + MAX_FORWARD_S
        ):
            try:
                container.seek(
                    int(target / stream.time_base), stream=stream, backward=True, any_frame=False
                )
            except (av.error.FFmpegError, ValueError, OverflowError) as e:
                self.warnings.append(f"could not seek to {target:.2f} s: {e}; stopped there")
                return None
            cursor.decoder = self._decode(container, stream, cursor.skipped)
        chosen, last = cursor.decode_to(target, half_frame)
        if chosen is not None:
            return chosen
        if last is not None and target - cursor.position <= 2 * half_frame + 1e-6:
            return last  # the stream ends a hair before the target
        declared = self.info.duration_s or 0.0
        self.warnings.append(
            f"the file is truncated: the video stream ends near {max(cursor.position, 0.0):.2f} s"
            f" of the {declared:.2f} s its header declares; {got} of {self.n} frames were sampled"
        )
        return None

    def _note_sampling(self, cursor: _Cursor, repeats: int) -> None:
        """Warnings for what sampling met: damage, far keyframes, samples that repeated,
        frames analysed reduced."""
        if self.reduced is not None:
            self.warnings.append(self._reduced_note(*self.reduced))
        skipped = cursor.skipped
        if skipped[0]:
            self.warnings.append(
                f"skipped {skipped[0]} damaged video packet(s); first: {skipped[1]}"
            )
        if cursor.fallbacks:
            self.warnings.append(
                f"{cursor.fallbacks} frame(s) were taken at the keyframe before their target time"
                " (keyframes are far apart in this video)"
            )
        if repeats:
            self.warnings.append(
                f"{repeats} sample(s) were dropped because they landed on a frame already taken"
            )

    def _reduced_note(self, factor: int, shape: tuple[int, ...]) -> str:
        """The report's words for frames analysed reduced (as ``image._decoded`` says it)."""
        width, height = self.info.width, self.info.height
        return (
            f"The video is {width}x{height} ({width * height / 1e6:.3g} MP a frame); its frames"
            f" were analysed at {shape[1]}x{shape[0]} ({shape[0] * shape[1] / 1e6:.3g} MP,"
            f" reduced by {factor} on each side when decoding) to keep memory bounded"
            " (DEEPFAKESCAN_DECODE_PIXELS). Face boxes are given in the file's pixels."
        )

    @staticmethod
    def _decode(container, stream, skipped: list) -> Iterator[av.VideoFrame]:
        """Frames from the current position; damaged packets are skipped and counted."""
        packets = container.demux(stream)
        packet = None
        while True:
            # FFmpeg often conceals damage (it logs, raises nothing): capture its log to see it
            with av.logging.Capture() as logs:
                try:
                    packet = next(packets)
                    frames = packet.decode()
                except StopIteration:
                    return
                except av.error.FFmpegError as e:
                    # a demuxer error ends the stream; a decoder error loses one packet
                    logs.append((av.logging.ERROR, "", str(e)))
                    frames = []
                    if packet is None:
                        _note(skipped, logs)
                        return
                except ValueError as e:
                    logs.append((av.logging.ERROR, "", str(e)))
                    frames = []
            packet = None
            _note(skipped, logs)
            yield from frames


def _note(skipped: list, logs) -> None:
    """Count one damaged packet if FFmpeg logged an error while reading or decoding it."""
    errors = [msg.strip() for level, _, msg in logs if level <= av.logging.ERROR]
    if errors:
        skipped[0] += 1
        skipped[1] = skipped[1] or errors[0]


def sample_frames(source: MediaSource, n: int, settings: Settings) -> FrameSampler:
    """Up to ``n`` frames evenly spaced in time (see the module docstring for the rule).

    Returns a :class:`FrameSampler`: iterate it for :class:`Frame` objects, then read its
    ``warnings``. ``n`` is capped at ``settings.max_video_frames``.
    """
    return FrameSampler(source, n, settings)
