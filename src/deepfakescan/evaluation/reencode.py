"""Re-encode images in memory before they are scanned: ``deepfakescan eval --reencode webp:80``.

A detector can learn the container instead of the content: every Stable Diffusion fake of our
corpus is a WebP file and most real photos are JPEG or PNG, so "lossy WebP" alone could read as
"generated". Scanning every image of a corpus after the same lossy re-encode (real and fake
alike) shows whether the false positives on reals survive that. Images are decoded as a scan
decodes them (``media.image.load_image``: EXIF orientation, alpha on white, the pixel limit),
encoded with Pillow and handed to ``scan()`` as bytes: nothing is written to disk. Audio and
video are passed through untouched.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..config import Settings
from ..errors import CorruptMedia
from ..media.image import load_image
from ..media.sniff import sniff_bytes
from ..media.source import MediaSource

FORMATS = {"webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG"}
"""``--reencode`` format names -> Pillow's encoder (both lossy here)."""
QUALITY_RANGE = (1, 100)


@dataclass(frozen=True)
class Reencode:
    """A lossy format and its quality, e.g. ``webp:80``."""

    format: str
    """``webp`` or ``jpeg``."""
    quality: int

    def __str__(self) -> str:
        return f"{self.format}:{self.quality}"

    @property
    def description(self) -> str:
        name = {"webp": "lossy WebP", "jpeg": "JPEG"}[self.format]
        return (
            f"every image was re-encoded in memory as {name} quality {self.quality} before "
            "scanning (--reencode); audio and video were scanned as stored"
        )


def parse_reencode(text: str) -> Reencode:
    """``FORMAT:QUALITY`` (``webp:80``, ``jpeg:75``) -> :class:`Reencode`; ``ValueError``
    naming the valid formats otherwise (argparse shows it as a usage error)."""
    name, sep, quality = text.strip().lower().partition(":")
    if name not in FORMATS or not sep:
        raise ValueError(f"expected FORMAT:QUALITY with FORMAT one of {sorted(FORMATS)}")
    try:
        q = int(quality)
    except ValueError:
        raise ValueError(f"quality {quality!r} is not a whole number") from None
    lo, hi = QUALITY_RANGE
    if not lo <= q <= hi:
        raise ValueError(f"quality must lie in {lo}..{hi}, got {q}")
    return Reencode("jpeg" if name == "jpg" else name, q)


def reencode_image(source: MediaSource, spec: Reencode, settings: Settings) -> bytes:
    """The image of ``source`` encoded as ``spec`` (RGB, as a scan sees it)."""
    rgb = load_image(source, settings).rgb
    buf = io.BytesIO()
    try:
        Image.fromarray(rgb).save(buf, FORMATS[spec.format], quality=spec.quality)
    except (OSError, ValueError) as e:  # e.g. WebP's 16383 px limit on a side
        raise CorruptMedia(f"{source.name}: could not re-encode as {spec}: {e}") from e
    return buf.getvalue()


def scan_input(path: Path, spec: Reencode | None, settings: Settings) -> Path | bytes:
    """What to hand to ``scan()`` for ``path``: the re-encoded bytes of an image, else the
    path itself (no ``spec``, or audio and video). Errors are the scanner's own
    (``DeepfakescanError``), so the evaluation records them per file."""
    if spec is None:
        return path
    source = MediaSource.from_any(path, settings)
    found = sniff_bytes(source.head())
    if found is None or found[0] != "image":
        return path
    return reencode_image(source, spec, settings)
