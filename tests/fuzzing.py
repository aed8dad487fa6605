"""Seed files and a seeded mutator for fuzzing the intake (``test_fuzz_smoke.py``, and the long
runs of ``benchmarks/fuzz_intake.py``).

Seeds are small valid files of every kind we decode, made here. A mutant is one seed with one
or two mutations, each a kind of damage real files and hostile uploads carry:

- ``bit_flips``: 1 to 32 bits flipped anywhere (storage and transfer errors);
- ``truncate``: cut anywhere (an interrupted upload or download);
- ``duplicate_chunk`` / ``delete_chunk``: a span of up to 4 KiB copied in place or removed
  (a broken muxer, a splice);
- ``huge_length``: a length, size or count field of the format's own structure (PNG chunk and
  IHDR, JPEG segment and SOF, RIFF chunk, MP4 box and sample tables, ID3) set to a huge value,
  zero or one past the truth: what a decoder that trusts headers allocates or loops on;
- ``append_random``: up to 4 KiB of random bytes after the end (trailing junk, polyglots).

Cases are a pure function of (kind, index, seed): a failing case is rerun by its id.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

try:  # as the tests package, or from benchmarks/ with the repository root on sys.path
    from . import fixtures as F
except ImportError:
    from tests import fixtures as F

MAX_CHUNK = 4096
"""Longest span ``duplicate_chunk``, ``delete_chunk`` and ``append_random`` handle (bytes)."""
HUGE = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x0FFFFFFF, 0)
"""Values ``huge_length`` writes (cut to the field's width), besides "one more than before"."""
_BOX_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf"}
_BOX_COUNTS = {b"stts": 12, b"stsc": 12, b"stco": 12, b"co64": 12, b"stss": 12, b"stsz": 16}
"""Full boxes of an MP4 sample table and where their entry count sits."""

Field = tuple[int, int, str]
"""A length field: (offset, width in bytes, ``"big"`` or ``"little"``)."""


def seed_files() -> dict[str, list[bytes]]:
    """Two small valid files per kind, each exercising a different decoder path."""
    voice = F.tone(0.5, 16000, 1)[:, 0]
    return {
        "jpeg": [F.make_jpeg(64, 48), F.make_jpeg(48, 64, orientation=6, progressive=True)],
        "png": [F.make_png(64, 48), F.make_png(40, 30, mode="RGBA")],
        "webp": [
            F.make_image("WEBP", 64, 48, quality=80),
            F.make_image("WEBP", 40, 30, mode="RGBA", lossless=True),
        ],
        "wav": [F.tone_wav(0.5), F.tone_wav(0.3, 22050, 2, subtype="FLOAT")],
        "mp3": [F.encode_audio(voice, 16000, "mp3"), F.encode_audio(voice, 22050, "mp3")],
        "ogg": [F.encode_audio(voice, 16000, "ogg"), F.encode_audio(voice, 16000, "opus")],
        "mp4": [
            F.make_video(None, 1.0, 10, (64, 48), with_audio=True),
            F.make_video(None, 1.0, 10, (64, 48), gop=5),
        ],
    }


KINDS = ("jpeg", "png", "webp", "wav", "mp3", "ogg", "mp4")


# ---------------------------------------------------------------------------- mutations


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))] if len(data) > 1 else data


def duplicate_chunk(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(1, MAX_CHUNK))
    return data[:end] + data[start:end] + data[end:]


def delete_chunk(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(1, MAX_CHUNK))
    return (data[:start] + data[end:]) or data[:1]


def append_random(data: bytes, rng: random.Random) -> bytes:
    return data + rng.randbytes(rng.randint(1, MAX_CHUNK))


def huge_length(data: bytes, rng: random.Random) -> bytes:
    """One of the format's length fields set to a huge value (or zero, or one more)."""
    fields = length_fields(data) or [(rng.randrange(max(1, min(len(data), 64) - 3)), 4, "big")]
    offset, width, order = rng.choice(fields)
    if offset + width > len(data):
        return data
    old = int.from_bytes(data[offset : offset + width], order)
    value = rng.choice([*HUGE, old + 1]) & ((1 << (8 * width)) - 1)
    return data[:offset] + value.to_bytes(width, order) + data[offset + width :]


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bit_flips": bit_flips,
    "truncate": truncate,
    "duplicate_chunk": duplicate_chunk,
    "delete_chunk": delete_chunk,
    "huge_length": huge_length,
    "append_random": append_random,
}


# ---------------------------------------------------------------------------- length fields


def length_fields(data: bytes) -> list[Field]:
    """The length, size and count fields of ``data``'s structure that we know how to find."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_fields(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_fields(data)
    if data[:4] in (b"RIFF", b"RF64"):
        return [(4, 4, "little"), *_riff_fields(data, 12, len(data))]
    if data.startswith(b"ID3"):
        return [(6, 4, "big")]  # synchsafe: a huge value is still huge
    if data[4:8] == b"ftyp":
        return _box_fields(data, 0, len(data), depth=0)
    return []


def _png_fields(data: bytes) -> list[Field]:
    fields: list[Field] = [(16, 4, "big"), (20, 4, "big")]  # IHDR width, height
    at = 8
    while at + 8 <= len(data):
        fields.append((at, 4, "big"))
        at += 12 + struct.unpack(">I", data[at : at + 4])[0]
    return fields


def _jpeg_fields(data: bytes) -> list[Field]:
    fields: list[Field] = []
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        fields.append((at + 2, 2, "big"))
        if marker in (0xC0, 0xC1, 0xC2):  # SOF: height and width
            fields += [(at + 5, 2, "big"), (at + 7, 2, "big")]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return fields


def _riff_fields(data: bytes, at: int, end: int) -> list[Field]:
    fields: list[Field] = []
    while at + 8 <= end:
        fields.append((at + 4, 4, "little"))
        size = struct.unpack("<I", data[at + 4 : at + 8])[0]
        if data[at : at + 4] == b"LIST":
            fields += _riff_fields(data, at + 12, min(end, at + 8 + size))
        at += 8 + size + (size & 1)
    return fields


def _box_fields(data: bytes, at: int, end: int, depth: int) -> list[Field]:
    fields: list[Field] = []
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        fields.append((at, 4, "big"))
        if kind in _BOX_COUNTS:
            fields.append((at + _BOX_COUNTS[kind], 4, "big"))
        if kind in _BOX_CONTAINERS and depth < 6:
            fields += _box_fields(data, at + 8, min(end, at + size), depth + 1)
        if kind == b"stsd":
            fields += _box_fields(data, at + 16, min(end, at + size), depth + 1)
        if size < 8:
            break
        at += size
    return fields


# ---------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One mutant: ``id`` says how to make it again (``kind/seed/index``)."""

    id: str
    kind: str
    mutations: tuple[str, ...]
    data: bytes


def mutant(seeds: list[bytes], kind: str, index: int, seed: int = 0) -> Case:
    """The ``index``-th mutant of ``kind``: a seed file with one mutation, or two (1 in 4)."""
    rng = random.Random(f"{kind}/{seed}/{index}")
    data = rng.choice(seeds)
    names = [rng.choice(list(MUTATIONS))]
    if rng.random() < 0.25:
        names.append(rng.choice(list(MUTATIONS)))
    for name in names:
        data = MUTATIONS[name](data, rng)
    return Case(f"{kind}/{seed}/{index}", kind, tuple(names), data)


def cases(seeds: list[bytes], kind: str, n: int, seed: int = 0) -> Iterator[Case]:
    """``n`` mutants of ``kind`` (see :func:`mutant`)."""
    for index in range(n):
        yield mutant(seeds, kind, index, seed)
