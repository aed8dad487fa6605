"""Find the metadata blocks of a JPEG, PNG or WebP without decoding a pixel.

Each walker reads only block headers and the blocks that may hold provenance (XMP, EXIF, PNG
text, the C2PA JUMBF box), seeking over image data, so a 500 MB file costs a few reads. Every
read is bounded: a block over its size limit is skipped with a warning, a file made of
millions of tiny blocks stops after ``MAX_BLOCKS``, compressed text is inflated to at most
``MAX_TEXT_BYTES``. A damaged block is a warning, never an exception.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

MiB = 1024 * 1024

MAX_XMP_BYTES = 1 * MiB
"""An XMP packet larger than this is not parsed (real ones are a few kB; Photoshop's history
can reach a few hundred kB)."""
MAX_TEXT_BYTES = 4 * MiB
"""A PNG text chunk (or its inflated text) larger than this is not read: ComfyUI workflows
are tens to hundreds of kB."""
MAX_EXIF_BYTES = 64 * 1024
"""JPEG caps a segment at 64 kB; the same limit for PNG ``eXIf`` and WebP ``EXIF``."""
MAX_BLOCKS = 4096
"""Segments or chunks visited per file before the walk stops."""

JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_EXIF_HEADER = b"Exif\x00\x00"
PNG_XMP_KEY = "XML:com.adobe.xmp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length field
_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})


@dataclass
class Blocks:
    """The provenance-bearing blocks of one file, raw."""

    xmp: list[bytes] = field(default_factory=list)
    exif: list[bytes] = field(default_factory=list)
    """EXIF payloads starting at the TIFF header (``II*`` or ``MM*``)."""
    texts: list[tuple[str, str]] = field(default_factory=list)
    """PNG text chunks as (keyword, text), XMP excluded."""
    has_jumbf: bool = False
    """A C2PA manifest store (JUMBF) is embedded: JPEG APP11, PNG ``caBX``, WebP ``C2PA``."""
    warnings: list[str] = field(default_factory=list)


def _mb(n: int) -> str:
    return f"{n / MiB:.1f} MB"


def walk_jpeg(f: BinaryIO) -> Blocks:
    """XMP, EXIF and the C2PA marker from a JPEG's segments before the image data (SOS)."""
    blocks = Blocks()
    if f.read(2) != b"\xff\xd8":
        blocks.warnings.append("JPEG: no start-of-image marker")
        return blocks
    for _ in range(MAX_BLOCKS):
        marker = _next_jpeg_marker(f)
        if marker is None or marker in (0xD9, 0xDA):  # end of file, EOI, start of scan
            return blocks
        if marker in _JPEG_STANDALONE or marker == 0xD8:
            continue
        raw = f.read(2)
        length = struct.unpack(">H", raw)[0] if len(raw) == 2 else 0
        if length < 2:
            blocks.warnings.append(f"JPEG: segment 0x{marker:02X} has a bad length; walk stopped")
            return blocks
        if marker in (0xE1, 0xEB):  # APP1 (EXIF, XMP), APP11 (JUMBF)
            _jpeg_app(marker, f.read(length - 2), blocks)
        else:
            f.seek(length - 2, 1)
    blocks.warnings.append(f"JPEG: more than {MAX_BLOCKS} segments; the rest was not read")
    return blocks


def _next_jpeg_marker(f: BinaryIO) -> int | None:
    """The next marker code, skipping fill bytes; ``None`` at the end of the file."""
    byte = f.read(1)
    if byte != b"\xff":
        return None
    while byte == b"\xff":  # fill bytes may precede a marker
        byte = f.read(1)
    return byte[0] if byte else None


def _jpeg_app(marker: int, payload: bytes, blocks: Blocks) -> None:
    if marker == 0xEB:
        blocks.has_jumbf |= payload[:2] == b"JP"
    elif payload.startswith(JPEG_XMP_HEADER):
        blocks.xmp.append(payload[len(JPEG_XMP_HEADER) :])
    elif payload.startswith(JPEG_EXIF_HEADER):
        blocks.exif.append(payload[len(JPEG_EXIF_HEADER) :])
    # Extended XMP (http://ns.adobe.com/xmp/extension/) holds overflow such as thumbnails and
    # edit history; the properties read here live in the main packet.


def walk_png(f: BinaryIO) -> Blocks:
    """Text chunks, XMP (iTXt ``XML:com.adobe.xmp``), ``eXIf`` and the C2PA ``caBX`` chunk."""
    blocks = Blocks()
    if f.read(8) != PNG_SIGNATURE:
        blocks.warnings.append("PNG: bad signature")
        return blocks
    for _ in range(MAX_BLOCKS):
        header = f.read(8)
        if len(header) < 8:
            return blocks  # a missing IEND is common and harmless here
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return blocks
        blocks.has_jumbf |= kind == b"caBX"
        limit = MAX_EXIF_BYTES if kind == b"eXIf" else MAX_TEXT_BYTES
        if kind not in _PNG_TEXT and kind != b"eXIf":
            f.seek(length + 4, 1)
        elif length > limit:
            name = kind.decode("latin-1")
            key = f.read(min(length, 80)).split(b"\x00", 1)[0].decode("latin-1", "replace")
            blocks.warnings.append(
                f"PNG: {name} chunk {key!r} of {_mb(length)} is over the {_mb(limit)} limit;"
                " not read"
            )
            f.seek(length - min(length, 80) + 4, 1)
        elif not _png_chunk(kind, f.read(length), f.read(4), blocks):
            return blocks
    blocks.warnings.append(f"PNG: more than {MAX_BLOCKS} chunks; the rest was not read")
    return blocks


def _png_chunk(kind: bytes, data: bytes, crc: bytes, blocks: Blocks) -> bool:
    """File one chunk's contents; ``False`` when the file ends inside it."""
    name = kind.decode("latin-1")
    if len(crc) < 4:
        blocks.warnings.append(f"PNG: the file ends inside a {name} chunk")
        return False
    if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
        blocks.warnings.append(f"PNG: {name} chunk fails its CRC check; ignored")
        return True
    if kind == b"eXIf":
        blocks.exif.append(_strip_exif_header(data))
        return True
    try:
        key, text = _png_text(kind, data)
    except (ValueError, zlib.error) as e:
        blocks.warnings.append(f"PNG: unreadable {name} chunk ({e}); ignored")
        return True
    if key == PNG_XMP_KEY:
        blocks.xmp.append(text.encode("utf-8"))
    else:
        blocks.texts.append((key, text))
    return True


def _png_text(kind: bytes, data: bytes) -> tuple[str, str]:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk, inflating at most ``MAX_TEXT_BYTES``."""
    key, sep, rest = data.partition(b"\x00")
    if not sep or not 1 <= len(key) <= 79:
        raise ValueError("no keyword")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        raise ValueError("truncated iTXt header")
    compressed = rest[0] == 1
    _language, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    text = _inflate(text) if compressed else text
    return key.decode("latin-1"), text.decode("utf-8", "replace")


def _inflate(data: bytes) -> bytes:
    """zlib-inflate ``data``, refusing output over ``MAX_TEXT_BYTES`` (a zip bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"inflates to more than {_mb(MAX_TEXT_BYTES)}")
    return out


def walk_webp(f: BinaryIO) -> Blocks:
    """The ``XMP ``, ``EXIF`` and ``C2PA`` chunks of a WebP (RIFF) file."""
    blocks = Blocks()
    header = f.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        blocks.warnings.append("WebP: bad RIFF header")
        return blocks
    limits = {b"XMP ": MAX_XMP_BYTES, b"EXIF": MAX_EXIF_BYTES}
    for _ in range(MAX_BLOCKS):
        head = f.read(8)
        if len(head) < 8:
            return blocks
        kind, length = struct.unpack("<4sI", head)
        padded = length + (length & 1)
        blocks.has_jumbf |= kind == b"C2PA"
        if kind not in limits:
            f.seek(padded, 1)
            continue
        if length > limits[kind]:
            blocks.warnings.append(
                f"WebP: {kind.decode().strip()} chunk of {_mb(length)} is over the"
                f" {_mb(limits[kind])} limit; not read"
            )
            f.seek(padded, 1)
            continue
        data = f.read(padded)[:length]
        if kind == b"XMP ":
            blocks.xmp.append(data)
        else:
            blocks.exif.append(_strip_exif_header(data))
    blocks.warnings.append(f"WebP: more than {MAX_BLOCKS} chunks; the rest was not read")
    return blocks


def _strip_exif_header(data: bytes) -> bytes:
    """Some writers keep JPEG's ``Exif\\0\\0`` prefix in WebP and PNG EXIF chunks."""
    return data[len(JPEG_EXIF_HEADER) :] if data.startswith(JPEG_EXIF_HEADER) else data
