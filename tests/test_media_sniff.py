"""sniff: the kind and format come from the bytes, never the name."""

from __future__ import annotations

import pytest

from deepfakescan.config import Settings
from deepfakescan.errors import CorruptMedia, EmptyInput, UnsupportedMedia
from deepfakescan.media.sniff import Sniffed, sniff, sniff_bytes
from deepfakescan.media.source import MediaSource

try:  # tests/ as a package (relative imports, like test_pipeline) or as a plain directory
    from . import fixtures as F
except ImportError:
    import fixtures as F

SETTINGS = Settings()


def src(data: bytes, name: str = "upload") -> MediaSource:
    return MediaSource.from_any(data, SETTINGS, name=name)


IMAGES = {
    "jpeg": lambda: F.make_jpeg(32, 24),
    "png": lambda: F.make_png(32, 24),
    "webp": lambda: F.make_image("WEBP", 32, 24),
    "bmp": lambda: F.make_image("BMP", 32, 24),
    "tiff": lambda: F.make_image("TIFF", 32, 24),
    "gif": lambda: F.make_image("GIF", 32, 24),
}
AUDIO = {
    fmt: (lambda fmt=fmt: F.encode_audio(F.tone(0.5, 16000), 16000, fmt))
    for fmt in ("wav", "flac", "mp3", "ogg", "opus", "m4a")
}
VIDEO = {
    fmt: (lambda fmt=fmt: F.make_video(None, 1.0, 5, (64, 48), container=fmt))
    for fmt in ("mp4", "mov", "webm", "mkv", "avi")
}


@pytest.mark.parametrize(
    ("kind", "fmt", "make"),
    [("image", f, m) for f, m in IMAGES.items()]
    + [("audio", f, m) for f, m in AUDIO.items()]
    + [("video", f, m) for f, m in VIDEO.items()],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_accepted_format_is_recognised_from_its_bytes(kind, fmt, make):
    # a misleading name: only the bytes may decide
    assert sniff(src(make(), name="file.txt")) == Sniffed(kind, fmt)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"hello, this is just text\n" * 10, "notes.jpg"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200, "photo.jpg"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 100, "clip.mp4"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n" * 20, "voice.mp3"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "face.png"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "face.svg"),
    ],
    ids=["text", "exe", "zip", "pdf", "html", "svg"],
)
def test_non_media_renamed_as_media_is_unsupported_media(data, name):
    with pytest.raises(UnsupportedMedia, match="we accept images"):
        sniff(src(data, name=name))


def test_exe_renamed_jpg_is_unsupported_media():
    exe = b"MZ" + bytes(range(256)) * 4
    with pytest.raises(UnsupportedMedia) as info:
        sniff(src(exe, name="holiday.jpg"))
    assert info.value.status == 415


def test_empty_upload_is_empty_input():
    with pytest.raises(EmptyInput):
        src(b"")


def test_mp4_holding_only_audio_is_scanned_as_audio():
    data = F.make_video(None, 1.0, audio_only=True, container="mp4")
    assert sniff(src(data)).kind == "audio"


def test_mp3_with_cover_art_is_still_audio():
    import io

    import av

    buf = io.BytesIO()
    with av.open(io.BytesIO(AUDIO["mp3"]())) as inp, av.open(buf, "w", format="mp3") as out:
        a = out.add_stream_from_template(inp.streams.audio[0])
        art = out.add_stream("mjpeg", rate=1)
        art.width, art.height, art.pix_fmt = 16, 16, "yuvj420p"
        art.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(F.gradient_rgb(16, 16), format="rgb24")
        for packet in art.encode(picture.reformat(format="yuvj420p")):
            out.mux(packet)
        for packet in art.encode(None):
            out.mux(packet)
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = a
                out.mux(packet)
    data = buf.getvalue()
    with av.open(io.BytesIO(data)) as check:
        assert [s.type for s in check.streams] == ["audio", "video"]
    assert sniff(src(data)) == Sniffed("audio", "mp3")


def test_video_container_with_no_streams_is_corrupt_media():
    # a valid MP4 header (ftyp) followed by nothing usable
    data = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    with pytest.raises(CorruptMedia):
        sniff(src(data))


def test_ogg_vorbis_and_opus_are_told_apart_by_the_first_packet():
    assert sniff_bytes(AUDIO["ogg"]()[:4096]) == ("audio", "ogg")
    assert sniff_bytes(AUDIO["opus"]()[:4096]) == ("audio", "opus")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, ("image", "jpeg")),
        (b"II*\x00" + b"\x00" * 8, ("image", "tiff")),
        (b"MM\x00*" + b"\x00" * 8, ("image", "tiff")),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("image", "webp")),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", ("audio", "wav")),
        (b"RIFF\x00\x00\x00\x00AVI LIST", ("video", "avi")),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", ("audio", "m4a")),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", ("video", "mov")),
        (b"\x00\x00\x00\x20ftypmp42\x00\x00\x00\x00", ("video", "mp4")),
        (b"ID3\x04\x00\x00\x00\x00\x00\x10", ("audio", "mp3")),
        (b"\xff\xfb\x90\x64" + b"\x00" * 8, ("audio", "mp3")),
        (b"\xff\xf1\x50\x80" + b"\x00" * 8, None),  # AAC ADTS is not MP3
        (b"\xff\xff\xff\xff" + b"\x00" * 8, None),
        (b"BM this is a note", None),
        (b"RIFF\x00\x00\x00\x00CDXA", None),
        (b"", None),
        (b"\x1aE\xdf\xa3" + b"\x00" * 4, None),
    ],
)
def test_magic_numbers(head, expected):
    assert sniff_bytes(head) == expected
