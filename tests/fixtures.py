"""Media synthesised in code, so the suite passes on a fresh clone with no data files.

Images come from Pillow, WAV/FLAC/OGG-Vorbis from soundfile, and every other compressed format
(MP3, Opus, M4A/AAC, MP4, MOV, WebM, MKV, AVI) from PyAV, whose wheels carry the encoders.
Everything is small (a 160x120 two-second clip encodes in well under a second) and returned as
``bytes`` unless a path is given. Other test modules import these helpers: keep them general.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

# container format name in FFmpeg, for the short names the sniffer reports
AUDIO_CONTAINERS = {"mp3": "mp3", "ogg": "ogg", "opus": "ogg", "m4a": "ipod", "webm": "webm"}
AUDIO_CODECS = {
    "mp3": "libmp3lame",
    "ogg": "vorbis",
    "opus": "libopus",
    "m4a": "aac",
    "webm": "libopus",
    "mp4": "aac",
    "mkv": "aac",
    "mov": "aac",
    "avi": "libmp3lame",
}
VIDEO_CONTAINERS = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska", "avi": "avi"}
VIDEO_CODECS = {
    "mp4": "libx264",
    "mov": "libx264",
    "webm": "libvpx-vp9",
    "mkv": "libx264",
    "avi": "mpeg4",
}


# ----------------------------------------------------------------------------------- images


def gradient_rgb(width: int, height: int) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 image whose corners all differ, so flips show.

    Red rises left to right, green top to bottom, and the top-left quarter is blue: any
    rotation or mirror moves the blue block to another corner.
    """
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.broadcast_to(x, (height, width)).astype(np.uint8)
    rgb[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    rgb[: height // 2, : width // 2, 2] = 255
    return rgb


def make_image(
    fmt: str,
    width: int = 64,
    height: int = 48,
    *,
    mode: str = "RGB",
    orientation: int | None = None,
    frames: int = 1,
    **save_kwargs,
) -> bytes:
    """Encode a gradient image with Pillow as ``fmt`` (``"JPEG"``, ``"PNG"``, ``"WEBP"``, ...).

    ``mode`` converts the gradient first (``"P"``, ``"LA"``, ``"RGBA"``, ``"CMYK"``, ``"I;16"``,
    ``"1"``); ``orientation`` writes an EXIF Orientation tag; ``frames > 1`` writes an
    animation or multi-page file (GIF, WebP, TIFF) whose later frames are plain grey.
    """
    img = Image.fromarray(gradient_rgb(width, height))
    if mode != "RGB":
        img = img.convert(mode) if mode != "I;16" else img.convert("L").convert("I;16")
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save_kwargs["exif"] = exif.tobytes()
    if frames > 1:
        rest = [Image.new(img.mode, img.size, 128 if img.mode != "P" else 0)] * (frames - 1)
        save_kwargs.update(save_all=True, append_images=rest)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def make_jpeg(width: int = 64, height: int = 48, *, orientation: int | None = None, **kw) -> bytes:
    """A baseline JPEG gradient, optionally with an EXIF Orientation tag (1-8)."""
    return make_image("JPEG", width, height, orientation=orientation, quality=90, **kw)


def make_png(width: int = 64, height: int = 48, *, mode: str = "RGB") -> bytes:
    """A PNG gradient in any Pillow mode."""
    return make_image("PNG", width, height, mode=mode)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR claims ``width x height`` RGB pixels.

    The IDAT holds a few compressed rows only: a decoder that trusts the header and allocates
    before reading would ask for ``width*height*3`` bytes (2.7 GB for 30000x30000).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * (3 * min(width, 1024)), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------ audio


def tone(
    seconds: float, sr: int = 16000, channels: int = 1, freq: float = 440.0, amp: float = 0.5
) -> np.ndarray:
    """A sine tone, float32 ``(frames, channels)``; channel ``c`` is at ``freq * (1 + c/4)``."""
    t = np.arange(int(round(seconds * sr)), dtype=np.float64) / sr
    cols = [amp * np.sin(2 * np.pi * freq * (1 + c / 4) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32) if cols else np.zeros((0, 0), np.float32)


def tone_wav(
    seconds: float = 1.0,
    sr: int = 16000,
    channels: int = 1,
    *,
    freq: float = 440.0,
    subtype: str = "PCM_16",
) -> bytes:
    """A WAV file holding :func:`tone` (``seconds=0`` gives a valid header and no samples)."""
    return encode_audio(tone(seconds, sr, max(channels, 1), freq), sr, "wav", subtype=subtype)


def encode_audio(samples: np.ndarray, sr: int, fmt: str, *, subtype: str | None = None) -> bytes:
    """Encode float samples ``(frames,)`` or ``(frames, channels)`` in [-1, 1] as ``fmt``.

    ``fmt``: ``wav``, ``flac`` (soundfile); ``ogg`` (Vorbis via soundfile, because the wheel's
    FFmpeg has no libvorbis); ``mp3``, ``opus``, ``m4a`` (AAC), ``webm`` (Opus) via PyAV.
    Opus only takes 8/12/16/24/48 kHz, so other rates are resampled by the encoder.
    """
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    buf = io.BytesIO()
    if fmt in ("wav", "flac", "ogg"):
        sf_format = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[fmt]
        sf_subtype = subtype or {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[fmt]
        sf.write(buf, samples, sr, format=sf_format, subtype=sf_subtype)
        return buf.getvalue()
    if fmt not in AUDIO_CONTAINERS:
        raise ValueError(
            f"unknown audio format {fmt!r}; known: wav, flac, ogg, {list(AUDIO_CONTAINERS)}"
        )
    with av.open(buf, "w", format=AUDIO_CONTAINERS[fmt]) as out:
        stream = _add_audio_stream(out, AUDIO_CODECS[fmt], sr, samples.shape[1])
        _write_audio(out, stream, samples, sr)
    return buf.getvalue()


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, f"{channels}c")


def _add_audio_stream(out, codec: str, sr: int, channels: int):
    rate = sr
    if "opus" in codec and sr not in (8000, 12000, 16000, 24000, 48000):
        rate = 48000
    stream = out.add_stream(codec, rate=rate, layout=_layout(channels))
    if codec == "vorbis":
        stream.codec_context.options = {"strict": "experimental"}
    return stream


def _write_audio(out, stream, samples: np.ndarray, sr: int, start: int = 0) -> None:
    """Feed planar float frames of 1024 samples; the encoder resamples if its rate differs."""
    layout = _layout(samples.shape[1])
    resampler = av.AudioResampler(
        format="fltp", layout=layout, rate=stream.codec_context.sample_rate
    )
    for i in range(0, len(samples), 1024):
        chunk = np.ascontiguousarray(samples[i : i + 1024].T)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts = start + i
        frame.time_base = Fraction(1, sr)
        for rf in resampler.resample(frame):
            for packet in stream.encode(rf):
                out.mux(packet)
    for rf in resampler.resample(None):
        for packet in stream.encode(rf):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


# ------------------------------------------------------------------------------------ video


def moving_frame(width: int, height: int, i: int, fps: float) -> np.ndarray:
    """Frame ``i``: the :func:`gradient_rgb` pattern with a white bar at ``x = 8 * t`` px.

    The bar's position encodes the frame's time, so a test can check which frame it got.
    """
    rgb = gradient_rgb(width, height)
    x = int(8 * i / fps * width / 160) % max(width - 4, 1)
    rgb[:, x : x + 4] = 255
    return rgb


def _add_video_stream(out, codec: str, fps: int, size, gop: int | None, rotation: int | None):
    vs = out.add_stream(codec, rate=fps)
    vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
    if gop is not None:
        vs.codec_context.gop_size = gop
    if codec == "libx264":
        vs.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if gop is not None:
            vs.codec_context.options |= {"keyint": str(gop), "min-keyint": str(gop)}
    if rotation:
        vs.set_display_rotation(rotation)
    return vs


def _write_frames(out, vs, frames, fps: int) -> None:
    """Encode RGB arrays at ``fps`` (one pts per frame) and flush the encoder."""
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for packet in vs.encode(frame):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)


def make_video(
    dest: str | os.PathLike | None = None,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    *,
    with_audio: bool = False,
    container: str = "mp4",
    codec: str | None = None,
    rotation: int | None = None,
    gop: int | None = None,
    audio_only: bool = False,
    audio_sr: int = 16000,
) -> bytes | Path:
    """Encode a small test clip; ``size`` is ``(width, height)``.

    Parameters
    ----------
    dest:
        A path to write to, or ``None`` to get ``bytes`` back.
    container:
        ``mp4``, ``mov``, ``webm``, ``mkv`` or ``avi``; ``codec`` defaults to H.264 (VP9 for
        WebM, MPEG-4 Part 2 for AVI).
    rotation:
        Degrees counter-clockwise written as the stream's display matrix (MP4/MOV), as phones do.
    gop:
        Keyframe interval in frames (``None``: the encoder's default).
    audio_only:
        Write only an audio track (the "MP4 that holds only audio" case).
    """
    buf = io.BytesIO()
    with av.open(buf, "w", format=VIDEO_CONTAINERS[container]) as out:
        vs = None
        if not audio_only:
            vs = _add_video_stream(out, codec or VIDEO_CODECS[container], fps, size, gop, rotation)
        aus = None
        if with_audio or audio_only:
            aus = _add_audio_stream(out, AUDIO_CODECS[container], audio_sr, 1)
        if vs is not None:
            n = int(round(seconds * fps))
            _write_frames(out, vs, (moving_frame(*size, i, fps) for i in range(n)), fps)
        if aus is not None:
            _write_audio(out, aus, tone(seconds, audio_sr, 1), audio_sr)
    data = buf.getvalue()
    if dest is None:
        return data
    Path(dest).write_bytes(data)
    return Path(dest)


# ---------------------------------------------------------------------------------- damage


def corrupt(data: bytes, start_fraction: float = 0.5, length: int = 2048, seed: int = 0) -> bytes:
    """Overwrite ``length`` bytes from ``start_fraction`` of the way in with random bytes."""
    start = int(len(data) * start_fraction)
    noise = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:start] + noise[: len(data) - start] + data[start + length :]
