"""Audio to canonical mono float32 at 16 kHz, streamed in bounded blocks.

Decoders: soundfile for WAV and FLAC (exact, fast; PyAV is the fallback for WAV codecs
libsndfile lacks), PyAV for everything else (MP3, Ogg Vorbis, Opus, M4A/AAC, and the audio
track of a video container). Channels are downmixed by averaging, so any layout (7.1
included) works; the rate is converted with ``soxr.ResampleStream``, one resampler per file,
so block edges are seamless. Nothing decodes a whole file at once: memory is a few blocks.

Rules (documented because the scan reports follow them):

- Only the first ``max_seconds`` (``Settings.max_audio_seconds``) are read; when the file is
  longer, ``AudioStream.truncated`` is set and a warning says so.
- A damaged packet in the middle (e.g. a corrupt MP3 frame) is skipped; decoding goes on and a
  warning counts the skipped packets. A file that ends before the duration its header
  declares is analysed as far as it goes, with a warning ("the file is truncated: N s of the
  M s its header declares were analysed"). A WAV's ``data`` chunk declares its length in bytes,
  exactly, and libsndfile sizes a cut WAV from the bytes present, so the RIFF header is read
  here (``wav_declared_seconds``); other formats rely on the duration their container
  declares, which may be an estimate, so only a shortfall over 10 % is reported there.
- A file from which no sample at all can be decoded is ``CorruptMedia`` (422), with the
  decoder's message. A well-formed file holding zero samples (a 0-second WAV) is also
  ``CorruptMedia``, with the message "contains no audio samples": there is nothing to judge,
  and 400 (``EmptyInput``) is reserved for a zero-byte upload.
- No ``av`` or soundfile exception escapes: all are wrapped once, with the library's message.
- Samples are numbers within reach of full scale: a float WAV (or a damaged compressed frame)
  can hold NaN, infinities or 1e30, which would pass through the resampler and the features
  into the score (NaN is not JSON) or overflow the power spectrum. Such samples (not finite,
  or beyond :data:`MAX_SAMPLE`) are damage: read as silence, and a warning counts them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf
import soxr

from ..config import Settings
from ..errors import CorruptMedia, UnsupportedMedia
from .sniff import Sniffed, av_duration, decodable, open_av, sniff
from .source import MediaSource

SAMPLE_RATE = 16000
"""Canonical rate (Hz) of every array this module returns."""
READ_SECONDS = 1.0
"""Native-rate chunk read from soundfile per step: bounds memory whatever the block size."""
TRUNCATION_TOLERANCE = 0.9
"""Below this fraction of the declared duration we warn that the file looks truncated."""
TRUNCATION_SLACK = SAMPLE_RATE // 100
"""Samples (10 ms) past ``max_seconds`` that do not count as "the file was longer"."""
SOUNDFILE_FORMATS = frozenset({"wav", "flac"})
RIFF_CHUNKS = 64
"""RIFF chunks walked at most looking for a WAV's ``fmt `` and ``data`` chunks."""
RIFF_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})
"""``data`` sizes that mean "not known" (a WAV written to a pipe, RF64's placeholder)."""
MAX_SAMPLE = 16.0
"""Largest sample magnitude taken as sound (24 dB over full scale, far past any decoder's
overshoot of a loud master); beyond it, or not finite, a sample is damage."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header says, before decoding. ``duration_s`` is ``None`` when unknown."""

    format: str
    sample_rate: int
    channels: int
    duration_s: float | None
    codec: str
    duration_exact: bool = False
    """``duration_s`` is exact (a WAV's byte count), not a container's estimate."""


@dataclass
class DecodedAudio:
    """A whole clip (at most ``max_seconds``) as one array, for short inputs."""

    samples: np.ndarray
    """``(n,)`` float32 mono at :data:`SAMPLE_RATE`."""
    info: AudioInfo
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _sniff_audio(source: MediaSource, sniffed: Sniffed | None) -> Sniffed:
    sniffed = sniffed or sniff(source)
    if sniffed.kind == "image":
        raise UnsupportedMedia(f"{source.name}: this is an image ({sniffed.format}), not audio")
    return sniffed


def _sf_info(source: MediaSource):
    """soundfile's header info, or ``None`` when libsndfile cannot read it (PyAV may)."""
    try:
        with source.open() as f:
            return sf.info(f)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None


def wav_declared_seconds(source: MediaSource) -> float | None:
    """Seconds a RIFF/WAVE file's ``data`` chunk declares, or ``None`` when unknown."""
    with source.open() as f:
        found = riff_data_chunk(f)
    if found is None:
        return None
    byte_rate, declared, _ = found
    return declared / byte_rate


def riff_data_chunk(f: BinaryIO) -> tuple[int, int, int] | None:
    """``(byte_rate, declared data bytes, data offset)`` of a RIFF/WAVE file, read by walking
    its chunks from the start; ``None`` for RF64, an unknown size or a header we cannot walk."""
    f.seek(0)
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    for _ in range(RIFF_CHUNKS):
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return None
        chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk_id == b"fmt ":
            fmt = f.read(16)
            byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) == 16 else 0
        elif chunk_id == b"data":
            ok = byte_rate > 0 and size not in RIFF_UNKNOWN_SIZES
            return (byte_rate, size, pos + 8) if ok else None
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


def _short_of_header(info: AudioInfo, emitted: int) -> bool:
    """True when fewer samples came out than the header declares (beyond its precision)."""
    if not info.duration_s:
        return False
    declared = info.duration_s * SAMPLE_RATE
    if info.duration_exact:
        return emitted < declared - TRUNCATION_SLACK
    return emitted < TRUNCATION_TOLERANCE * declared


def _best_audio(container: av.container.InputContainer, source: MediaSource):
    """The first decodable audio stream (a video's main audio track is listed first)."""
    streams = [s for s in container.streams.audio if decodable(s)]
    if not streams:
        raise CorruptMedia(f"{source.name}: no audio stream we can decode")
    return streams[0]


def probe_audio(source: MediaSource, *, sniffed: Sniffed | None = None) -> AudioInfo:
    """Read the header: format, native rate, channels, declared duration.

    Raises ``CorruptMedia`` if the header cannot be read or holds no decodable audio.
    """
    sniffed = _sniff_audio(source, sniffed)
    info = _sf_info(source) if sniffed.format in SOUNDFILE_FORMATS else None
    if info is not None:
        duration = info.frames / info.samplerate if info.samplerate else None
        declared = wav_declared_seconds(source) if sniffed.format == "wav" else None
        if declared is not None and duration is not None and declared > duration:
            duration = declared  # the data chunk is cut short: say what the header declares
        exact = declared is not None
        return AudioInfo(
            sniffed.format, info.samplerate, info.channels, duration, info.subtype, exact
        )
    with open_av(source, sniffed.format) as container:
        stream = _best_audio(container, source)
        ctx = stream.codec_context
        return AudioInfo(
            format=sniffed.format,
            sample_rate=int(ctx.sample_rate or 0),
            channels=int(ctx.channels or 0),
            duration_s=av_duration(container, stream),
            codec=ctx.name,
        )


class AudioStream:
    """Iterate to get mono float32 16 kHz blocks; read ``warnings`` and ``truncated`` after.

    Blocks are ``block_seconds`` long (the last one shorter). Iterating twice decodes twice.
    ``warnings``, ``truncated`` and ``seconds_read`` are complete once iteration ends
    (or is abandoned: closing the iterator finalises them).
    """

    def __init__(
        self,
        source: MediaSource,
        settings: Settings,
        *,
        block_seconds: float | None = None,
        max_seconds: float | None = None,
        sniffed: Sniffed | None = None,
    ) -> None:
        self.source = source
        self.sniffed = _sniff_audio(source, sniffed)
        self.info = probe_audio(source, sniffed=self.sniffed)
        if self.info.duration_s == 0:
            # refuse before any model is asked: a 0-second file is bad input, not a scan
            raise CorruptMedia(f"{source.name}: contains no audio samples")
        self.block_seconds = float(block_seconds or settings.audio_block_seconds)
        self.max_seconds = float(
            max_seconds if max_seconds is not None else settings.max_audio_seconds
        )
        self.warnings: list[str] = []
        self.truncated = False
        self.seconds_read = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        self.warnings, self.truncated, self.seconds_read = [], False, 0.0
        block = max(1, int(round(self.block_seconds * SAMPLE_RATE)))
        limit = int(round(self.max_seconds * SAMPLE_RATE))
        pending: list[np.ndarray] = []
        n_pending = 0
        emitted = 0
        cut = False
        for mono16k in self._resampled():
            room = limit - emitted - n_pending
            if len(mono16k) > room:
                # a few samples over are the resampler's flush, not more audio
                self.truncated = len(mono16k) - room > TRUNCATION_SLACK
                mono16k, cut = mono16k[: max(0, room)], True
            pending.append(mono16k)
            n_pending += len(mono16k)
            while n_pending >= block:
                joined = np.concatenate(pending)
                out, rest = joined[:block], joined[block:]
                pending, n_pending = [rest], len(rest)
                emitted += len(out)
                self.seconds_read = emitted / SAMPLE_RATE
                yield out
            if cut:
                break
        if n_pending:
            out = np.concatenate(pending)
            emitted += len(out)
            self.seconds_read = emitted / SAMPLE_RATE
            yield out
        if self.truncated:
            self.warnings.append(
                f"only the first {self.max_seconds:g} s of audio were analysed"
                " (DEEPFAKESCAN_MAX_AUDIO_SECONDS)"
            )
        elif _short_of_header(self.info, emitted):
            self.warnings.append(
                f"the file is truncated: {emitted / SAMPLE_RATE:.2f} s of the"
                f" {self.info.duration_s:.2f} s its header declares were analysed"
            )

    def _resampled(self) -> Iterator[np.ndarray]:
        """Mono float32 at 16 kHz, in whatever chunk sizes the decoder gives."""
        resampler: soxr.ResampleStream | None = None
        rate = 0
        for mono, sr in self._decoded():
            if sr != rate:
                if resampler is not None:
                    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                    self.warnings.append(f"the sample rate changes mid-stream ({rate} -> {sr} Hz)")
                resampler = (
                    None
                    if sr == SAMPLE_RATE
                    else soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                )
                rate = sr
            out = mono if resampler is None else resampler.resample_chunk(mono, last=False)
            if len(out):
                yield out
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail

    def _decoded(self) -> Iterator[tuple[np.ndarray, int]]:
        """(mono float32 at native rate, native rate) chunks; ``CorruptMedia`` if none."""
        use_soundfile = self.sniffed.format in SOUNDFILE_FORMATS and _sf_info(self.source)
        chunks = self._soundfile_chunks() if use_soundfile else self._av_chunks()
        got = damaged = 0
        try:
            for mono, sr in chunks:
                got += len(mono)
                bad = ~(np.abs(mono) <= MAX_SAMPLE)  # NaN compares false: counted here too
                if bad.any():
                    damaged += int(np.count_nonzero(bad))
                    mono = np.where(bad, np.float32(0.0), mono)
                yield mono, sr
        finally:  # also when the reader stops early (max_seconds)
            if damaged:
                self.warnings.append(
                    f"{damaged} audio sample(s) were not numbers or far beyond full scale"
                    " (damaged data) and were read as silence"
                )
        if got == 0:
            raise CorruptMedia(f"{self.source.name}: contains no audio samples")

    def _soundfile_chunks(self) -> Iterator[tuple[np.ndarray, int]]:
        with self.source.open() as f:
            try:
                snd = sf.SoundFile(f)
            except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                raise CorruptMedia(
                    f"{self.source.name}: cannot read this {self.sniffed.format}: {e}"
                ) from e
            with snd:
                step = max(1, int(snd.samplerate * READ_SECONDS))
                limit = int(np.ceil(self.max_seconds * snd.samplerate)) + step
                read = 0
                while read < limit:
                    try:
                        data = snd.read(step, dtype="float32", always_2d=True)
                    except (sf.LibsndfileError, RuntimeError) as e:
                        self.warnings.append(
                            f"stopped at a damaged block after {read / snd.samplerate:.2f} s: {e}"
                        )
                        break
                    if not len(data):
                        break
                    read += len(data)
                    with np.errstate(over="ignore", invalid="ignore"):  # damage: see _decoded
                        mono = data.mean(axis=1, dtype=np.float32)
                    yield mono, snd.samplerate

    def _av_chunks(self) -> Iterator[tuple[np.ndarray, int]]:
        bad_packets = 0
        first_error = ""
        read = 0.0
        with open_av(self.source, self.sniffed.format) as container:
            stream = _best_audio(container, self.source)
            packets = container.demux(stream)
            while read <= self.max_seconds + READ_SECONDS:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as e:
                    self.warnings.append(f"stopped reading at {read:.2f} s: {e}")
                    break
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError) as e:
                    bad_packets += 1
                    first_error = first_error or f"{e} (at {read:.2f} s)"
                    continue
                for frame in frames:
                    mono = _frame_to_mono(frame)
                    if len(mono) and frame.sample_rate:
                        read += len(mono) / frame.sample_rate
                        yield mono, int(frame.sample_rate)
        if bad_packets:
            if read == 0:
                raise CorruptMedia(f"{self.source.name}: no audio could be decoded: {first_error}")
            self.warnings.append(
                f"skipped {bad_packets} damaged audio packet(s); first: {first_error}"
            )


_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9.223372036854776e18}


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Average the channels of one decoded frame into float32 in [-1, 1]."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels) or 1
    name = frame.format.name.rstrip("p")
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    arr = arr.astype(np.float32)
    if name == "u8":
        arr -= 128.0
    if name in _SCALE:
        arr /= _SCALE[name]
    if arr.shape[0] == 1:
        return arr[0]
    with np.errstate(over="ignore", invalid="ignore"):  # damaged float samples: see _decoded
        return arr.mean(axis=0, dtype=np.float32)


def open_audio_stream(
    source: MediaSource,
    settings: Settings,
    *,
    block_seconds: float | None = None,
    max_seconds: float | None = None,
    sniffed: Sniffed | None = None,
) -> AudioStream:
    """An :class:`AudioStream` over ``source`` (an audio file or a video's audio track).

    The header is read now (``CorruptMedia`` if unreadable or without audio); samples are
    decoded lazily as the stream is iterated.
    """
    return AudioStream(
        source, settings, block_seconds=block_seconds, max_seconds=max_seconds, sniffed=sniffed
    )


def load_audio(
    source: MediaSource, settings: Settings, *, max_seconds: float | None = None
) -> DecodedAudio:
    """The whole clip (up to ``max_seconds``) as one array; for short inputs and tests."""
    stream = open_audio_stream(source, settings, max_seconds=max_seconds)
    blocks = list(stream)
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return DecodedAudio(samples, stream.info, list(stream.warnings), stream.truncated)
