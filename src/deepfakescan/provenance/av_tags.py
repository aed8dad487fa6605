"""Encoder and tool tags of audio and video containers: ID3, MP4, Vorbis comments, Matroska.

PyAV (FFmpeg) already parses every container we accept, with the demuxer forced to the
sniffed format (see ``media/sniff.py``), and maps each container's own tags to common names:
ID3 ``TSSE`` and MP4 ``©too`` become ``encoder``, ``TENC`` becomes ``encoded_by``, an ID3
``TXXX`` frame its own description. Only the container header is read, never a packet.
"""

from __future__ import annotations

from ..media.sniff import open_av
from ..media.source import MediaSource
from .generators import known_generator
from .model import ProvenanceItem, Source, truncate

SOURCES: dict[str, Source] = {
    "mp3": "id3",
    "mp4": "mp4",
    "mov": "mp4",
    "m4a": "mp4",
    "ogg": "vorbis",
    "opus": "vorbis",
    "flac": "vorbis",
    "webm": "matroska",
    "mkv": "matroska",
    "wav": "riff",
    "avi": "riff",
}

SOFTWARE_KEYS = frozenset(
    {"encoder", "encoded_by", "software", "encoding_tool", "creation_tool", "tool", "generator"}
)
"""Tags that name the program that wrote the file: a known AI tool here declares AI."""
TEXT_KEYS = frozenset({"comment", "description", "synopsis"})
"""Free text: kept as a record, never matched against tool names."""

_NATIVE_NAMES = {
    "id3": {"encoder": "TSSE", "encoded_by": "TENC", "comment": "COMM"},
    "mp4": {"encoder": "©too", "comment": "©cmt", "description": "desc"},
    "vorbis": {"encoder": "ENCODER", "encoded_by": "ENCODED-BY", "comment": "COMMENT"},
}
MAX_TAGS = 64


def tag_items(source: MediaSource, fmt: str) -> list[ProvenanceItem]:
    """Records from the container's and its streams' tags (software and comment fields)."""
    kind = SOURCES[fmt]
    with open_av(source, fmt) as container:
        tags = list(container.metadata.items())
        for stream in container.streams:
            tags.extend((k, v) for k, v in stream.metadata.items() if k.lower() in SOFTWARE_KEYS)
    items = []
    for key, value in dict(tags[:MAX_TAGS]).items():
        item = _tag_item(kind, key, str(value))
        if item is not None:
            items.append(item)
    return items


def _tag_item(kind: Source, key: str, value: str) -> ProvenanceItem | None:
    name = key.lower()
    if not value.strip() or (name not in SOFTWARE_KEYS and name not in TEXT_KEYS):
        return None
    field = _NATIVE_NAMES.get(kind, {}).get(name, key)
    if kind == "id3" and field == key:
        field = f"TXXX:{key}"  # FFmpeg names a user-defined frame by its description
    generator = known_generator(value) if name in SOFTWARE_KEYS else None
    return ProvenanceItem(
        kind, field, truncate(value), generator=generator, declares_ai=generator is not None
    )
