"""``read_provenance``: every record a file declares about itself, read without a model.

The format comes from the sniffed bytes. Each reader runs behind one guard: whatever a
damaged or hostile block makes it raise becomes a warning, so provenance never fails a scan.
The work is bounded by sizes, not by a clock: block-size and block-count limits in the
walkers, a 1 MB XMP limit, the scan's own byte limit on the whole input; the C2PA library
hashes the file once to check the manifest's binding.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image

from ..config import Settings
from ..errors import UnsupportedMedia
from ..media.sniff import ACCEPTED, sniff_bytes
from ..media.source import MediaSource
from . import av_tags, c2pa_store
from .containers import Blocks, walk_jpeg, walk_png, walk_webp
from .model import Provenance, ProvenanceItem
from .records import exif_items, exif_items_from, text_items, xmp_items

MAX_ITEMS = 128
"""Records kept per file; a forged file may repeat a tag thousands of times."""
C2PA_HINT_BYTES = 1024 * 1024
"""Without the C2PA library, the first MiB of formats we do not walk is searched for the
manifest store's ``c2pa`` label, so that "not checked" is only said when it matters."""

_WALKERS: dict[str, Callable[[BinaryIO], Blocks]] = {
    "jpeg": walk_jpeg,
    "png": walk_png,
    "webp": walk_webp,
}


@dataclass
class _Found:
    items: list[ProvenanceItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def guard(self, what: str, read: Callable[[], None]) -> None:
        """Run one reader; a failure is a warning naming it, never an exception."""
        try:
            read()
        except Exception as e:  # noqa: BLE001 - hostile input may break any parser
            self.warnings.append(f"{what}: could not be read ({type(e).__name__}: {e})")

    def result(self) -> Provenance:
        items = self.items[:MAX_ITEMS]
        if len(self.items) > MAX_ITEMS:
            self.warnings.append(f"only the first {MAX_ITEMS} of {len(self.items)} records kept")
        return Provenance(items=tuple(items), warnings=tuple(dict.fromkeys(self.warnings)))


def read_provenance(
    source: MediaSource | bytes | str | os.PathLike,
    fmt: str | None = None,
    *,
    settings: Settings | None = None,
) -> Provenance:
    """What ``source`` declares about its origin: C2PA, XMP/IPTC, EXIF, PNG text, tags.

    Parameters
    ----------
    source
        The input, or the ``MediaSource`` a scan already holds (no second size check).
    fmt
        The sniffed format (``Sniffed.format``: ``jpeg``, ``png``, ``mp3``, ``mp4``...);
        sniffed from the magic numbers when ``None``.
    settings
        For the byte limit and ``c2pa_trust``; ``Settings.from_env()`` when ``None``.

    Raises
    ------
    BadInput, EmptyInput, TooLarge
        As a scan would, for an input that is missing, empty or over the byte limit.
    UnsupportedMedia
        The bytes are not a format we accept. Damaged metadata never raises: it is a warning.
    """
    settings = settings or Settings.from_env()
    if not isinstance(source, MediaSource):
        source = MediaSource.from_any(source, settings)
    fmt = fmt or _sniffed_format(source)
    found = _Found()
    blocks = _read_blocks(source, fmt, found)
    _read_c2pa(source, fmt, blocks, settings, found)
    if fmt in av_tags.SOURCES:
        found.guard(f"{fmt} tags", lambda: found.items.extend(av_tags.tag_items(source, fmt)))
    return found.result()


def _sniffed_format(source: MediaSource) -> str:
    sniffed = sniff_bytes(source.head())
    if sniffed is None:
        raise UnsupportedMedia(
            f"{source.name}: not a format we can analyse (the contents were checked, not the"
            f" file name); we accept {ACCEPTED}"
        )
    return sniffed[1]


def _read_blocks(source: MediaSource, fmt: str, found: _Found) -> Blocks | None:
    """Walk an image's metadata blocks and read the records they hold."""
    if fmt == "tiff":
        found.guard("TIFF EXIF", lambda: _read_tiff(source, found))
        return None
    walker = _WALKERS.get(fmt)
    if walker is None:
        return None
    blocks = Blocks()

    def walk() -> None:
        nonlocal blocks
        with source.open() as f:
            blocks = walker(f)

    found.guard(fmt.upper(), walk)
    found.warnings.extend(blocks.warnings)
    for raw in blocks.exif:
        found.guard("EXIF", lambda raw=raw: _add_exif(exif_items(raw), found))
    for packet in blocks.xmp:
        found.guard("XMP", lambda packet=packet: _add_xmp(packet, found))
    for key, text in blocks.texts:
        found.guard(f"PNG text {key!r}", lambda k=key, t=text: found.items.extend(text_items(k, t)))
    return blocks


def _add_exif(read: tuple[list[ProvenanceItem], list[bytes]], found: _Found) -> None:
    items, packets = read
    found.items.extend(items)
    for packet in packets:
        _add_xmp(packet, found)


def _add_xmp(packet: bytes, found: _Found) -> None:
    items, warnings = xmp_items(packet)
    found.items.extend(items)
    found.warnings.extend(warnings)


def _read_tiff(source: MediaSource, found: _Found) -> None:
    """TIFF keeps EXIF and XMP (tag 700) in its first IFD, which Pillow reads without pixels."""
    with source.open() as f, Image.open(f, formats=["TIFF"]) as img:
        _add_exif(exif_items_from(img.getexif()), found)


def _read_c2pa(
    source: MediaSource, fmt: str, blocks: Blocks | None, settings: Settings, found: _Found
) -> None:
    """Check the C2PA manifest store, when the format can hold one and one may be there."""
    if fmt not in c2pa_store.MIME_TYPES:
        return
    if blocks is not None and not blocks.has_jumbf:
        return  # JPEG, PNG and WebP keep the store in one known block: it is absent
    if not c2pa_store.available():
        if blocks is not None or _mentions_c2pa(source):
            found.warnings.append(c2pa_store.UNAVAILABLE)
        return
    trust, warnings = c2pa_store.load_trust(settings.c2pa_trust)
    found.warnings.extend(warnings)

    def read() -> None:
        items, problems = c2pa_store.c2pa_items(source, fmt, trust)
        found.items[:0] = items  # the strongest evidence first
        found.warnings.extend(problems)

    found.guard("C2PA", read)


def _mentions_c2pa(source: MediaSource) -> bool:
    return b"c2pa" in source.head(C2PA_HINT_BYTES)
