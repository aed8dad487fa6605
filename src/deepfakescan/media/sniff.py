"""Decide what an input is from its bytes, never from its name.

Every upload is hostile: a file called ``photo.jpg`` may be an executable, an HTML page or a
zip bomb. :func:`sniff_bytes` reads magic numbers only (a pure function, tested directly);
:func:`sniff` adds what the magic cannot tell: for containers that may hold video or only
audio (MP4/MOV/M4A, Matroska/WebM, AVI, Ogg) it opens the container with PyAV *with the
demuxer forced to the sniffed format* and looks at the streams. Forcing the demuxer means
FFmpeg never guesses (no playlist or concat demuxer that would open other files) and data is
always fed through a Python file object, so no FFmpeg protocol (``http:``, ``concat:``, ...) is
ever reached.

Outcomes: ``Sniffed(kind, format)``, or ``UnsupportedMedia`` (415) for anything we do not
decode, or ``CorruptMedia`` (422) for a recognised container with no usable stream.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import av

from ..errors import CorruptMedia, UnsupportedMedia
from ..report import MediaType as Kind
from .source import MediaSource

ACCEPTED = (
    "images (JPEG, PNG, WebP, BMP, TIFF, GIF), audio (WAV, FLAC, MP3, Ogg Vorbis, Opus, M4A/AAC)"
    " and video (MP4, MOV, WebM, MKV, AVI)"
)

# short format name -> the FFmpeg demuxer we force when opening it with PyAV
AV_DEMUXER = {
    "mp4": "mov",
    "mov": "mov",
    "m4a": "mov",
    "webm": "matroska",
    "mkv": "matroska",
    "avi": "avi",
    "ogg": "ogg",
    "opus": "ogg",
    "mp3": "mp3",
    "wav": "wav",
    "flac": "flac",
}

# formats whose kind (audio or video) depends on the streams inside
CONTAINER_FORMATS = frozenset({"mp4", "mov", "m4a", "webm", "mkv", "avi", "ogg", "opus", "mp3"})

_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_QUICKTIME_TOP_BOXES = (b"moov", b"mdat", b"wide", b"pnot")
_ID3_HEADER = 10


def _quiet_av() -> None:
    """Route FFmpeg's log to Python at ERROR level and keep it off stderr.

    PyAV ignores FFmpeg's log by default, which leaves its exceptions without the useful
    "last error log" text; at ERROR level the messages reach the ``libav`` logger, and a
    NullHandler stops Python's last-resort handler from printing them on every bad upload.
    An application that wants them adds its own handler.
    """
    av.logging.set_level(av.logging.ERROR)
    logging.getLogger("libav").addHandler(logging.NullHandler())


_quiet_av()


@dataclass(frozen=True)
class Sniffed:
    """What the bytes are: ``kind`` routes the scan, ``format`` is a short display name."""

    kind: Kind
    format: str


_Found = tuple[Kind, str] | Literal[False] | None
"""What one signature says: the kind and format, ``None`` when the bytes are not its own, or
``False`` when they are (RIFF, EBML) but hold a type we do not decode: no later signature is
tried then."""


def sniff_bytes(head: bytes) -> tuple[Kind, str] | None:
    """Kind and format from the first bytes (magic numbers only), or ``None`` if unknown.

    For containers the kind is a first guess (``mp4`` -> video, ``m4a`` -> audio, ``ogg`` ->
    audio) that :func:`sniff` confirms from the streams. An ID3 tag gives ``("audio", "mp3")``
    here; :func:`sniff` looks past the tag.
    """
    for signature in _SIGNATURES:
        found = signature(head)
        if found is not None:
            return found or None
    return None


def _image_signature(head: bytes) -> _Found:
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and _dib_size(head) in _BMP_DIB_SIZES:
        return "image", "bmp"
    return None


def _riff_signature(head: bytes) -> _Found:
    """WAV (RIFF or RF64), WebP and AVI share the RIFF envelope; its type says which."""
    if head[:4] not in (b"RIFF", b"RF64") or len(head) < 12:
        return None
    riff_type = head[8:12]
    if riff_type == b"WAVE":
        return "audio", "wav"
    if riff_type == b"WEBP" and head[:4] == b"RIFF":
        return "image", "webp"
    if riff_type == b"AVI " and head[:4] == b"RIFF":
        return "video", "avi"
    return False


def _flac_or_ogg_signature(head: bytes) -> _Found:
    if head.startswith(b"fLaC"):
        return "audio", "flac"
    if head.startswith(b"OggS"):
        is_opus = _ogg_first_packet(head).startswith(b"OpusHead")
        return "audio", "opus" if is_opus else "ogg"
    return None


def _ebml_signature(head: bytes) -> _Found:
    """Matroska and WebM: the EBML header carries DocType in its first few dozen bytes."""
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    doc = head[:64]
    if b"webm" in doc:
        return "video", "webm"
    if b"matroska" in doc:
        return "video", "mkv"
    return False


def _iso_media_signature(head: bytes) -> _Found:
    """MP4, M4A and MOV (an ``ftyp`` box and its brand), or old QuickTime without one."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio", "m4a"
        if brand == b"qt  ":
            return "video", "mov"
        return "video", "mp4"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_TOP_BOXES:
        return "video", "mov"  # old QuickTime files start straight with a box, no ftyp
    return None


def _mp3_signature(head: bytes) -> _Found:
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return "audio", "mp3"
    return None


_SIGNATURES = (
    _image_signature,
    _riff_signature,
    _flac_or_ogg_signature,
    _ebml_signature,
    _iso_media_signature,
    _mp3_signature,
)
"""Tried in this order; the first that recognises the bytes decides."""


def _dib_size(head: bytes) -> int:
    """A BMP's DIB header size: "BM" alone is too weak (any text may start with it)."""
    return struct.unpack("<I", head[14:18])[0]


def _ogg_first_packet(head: bytes) -> bytes:
    """The start of the first packet of an Ogg page (after the 27-byte header + lacing table)."""
    if len(head) < 27:
        return b""
    start = 27 + head[26]
    return head[start : start + 8]


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a real layer, bitrate and sample rate.

    The extra field checks keep random bytes that happen to start with 0xFFE (and AAC ADTS,
    whose layer bits are 00) from being called MP3.
    """
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0 and bitrate not in (0, 0xF) and rate != 0b11


def _id3_size(head: bytes) -> int:
    """Total size of a leading ID3v2 tag (synchsafe size + header + optional footer)."""
    size = 0
    for b in head[6:10]:
        size = (size << 7) | (b & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return _ID3_HEADER + size + footer


def unsupported(name: str) -> UnsupportedMedia:
    """The one refusal for content we do not decode (415), naming the client's file."""
    return UnsupportedMedia(
        f"{name}: not a format we can analyse (the contents were checked, not the"
        f" file name); we accept {ACCEPTED}"
    )


def refuse_unknown_head(head: bytes, name: str) -> None:
    """Raise ``UnsupportedMedia`` when the first bytes already rule the content out.

    The same decision :func:`sniff` takes on the same bytes (``MediaSource.head()``), so an
    upload can be refused while it arrives, after a few KiB, rather than after the whole body.
    """
    if sniff_bytes(head) is None:
        raise unsupported(name)


def sniff(source: MediaSource) -> Sniffed:
    """Kind and format of ``source``, decided from its bytes.

    Raises
    ------
    UnsupportedMedia
        The bytes are not one of the formats we decode (the message lists those we do).
    CorruptMedia
        The container was recognised but holds no stream we can decode.
    """
    head = source.head()
    found = sniff_bytes(head)
    if found is not None and head.startswith(b"ID3") and len(head) >= _ID3_HEADER:
        # an ID3 tag may sit in front of FLAC (rare) as well as MP3: look past it
        skip = _id3_size(head)
        with source.open() as f:
            f.seek(skip)
            after = f.read(64)
        after_found = sniff_bytes(after)
        if after_found is not None and after_found[0] == "audio":
            found = after_found
    if found is None:
        raise unsupported(source.name)
    kind, fmt = found
    if fmt in CONTAINER_FORMATS:
        kind = _kind_from_streams(source, fmt)
    return Sniffed(kind=kind, format=fmt)


@contextlib.contextmanager
def open_av(source: MediaSource, fmt: str) -> Iterator[av.container.InputContainer]:
    """Open ``source`` with PyAV, the demuxer forced to the sniffed ``fmt``.

    Bytes always go through a Python file object, so FFmpeg's protocols are never used. Any
    PyAV error while opening becomes ``CorruptMedia`` with FFmpeg's message.
    """
    stream = source.open()
    try:
        try:
            container = av.open(stream, mode="r", format=AV_DEMUXER[fmt])
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise CorruptMedia(f"{source.name}: cannot read this {fmt} file: {e}") from e
        try:
            yield container
        finally:
            container.close()
    finally:
        stream.close()


def decodable(stream: av.stream.Stream) -> bool:
    """True for a stream FFmpeg has a decoder for and that is not cover art.

    MP3 and M4A files carry album art as a one-picture "video" stream flagged
    ``attached_pic``; it must not make an audio file count as video.
    """
    if stream.type not in ("audio", "video"):
        return False
    try:
        ctx = stream.codec_context
    except (av.error.FFmpegError, ValueError):
        return False
    if ctx is None:
        return False
    if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
        return False
    return not (stream.type == "video" and (not ctx.width or not ctx.height))


def av_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    """Seconds the header declares for ``stream`` (or the container), ``None`` when unknown."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _kind_from_streams(source: MediaSource, fmt: str) -> Kind:
    with open_av(source, fmt) as container:
        types = {s.type for s in container.streams if decodable(s)}
    if "video" in types:
        return "video"
    if "audio" in types:
        return "audio"
    raise CorruptMedia(
        f"{source.name}: this {fmt} file holds no audio or video stream we can decode"
    )
