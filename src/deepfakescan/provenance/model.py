"""What a file declares about itself, as plain values: one ``ProvenanceItem`` per record.

A record is evidence with a stated weight, never a verdict: metadata can be stripped or
forged, so each item says where it came from (``source``), whether a signature vouches for it
(``verified``), and what it claims (``declares_ai``, ``camera_capture``).
:func:`~deepfakescan.provenance.judgement.provenance_judgement` turns them into a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Source = Literal[
    "c2pa", "xmp", "iptc", "exif", "png-text", "id3", "mp4", "vorbis", "matroska", "riff"
]
"""Where a record was found: a C2PA manifest, an XMP packet (``iptc`` for the IPTC
extension properties inside it), EXIF, a PNG text chunk, or a container's tags."""

Validation = Literal["trusted", "untrusted", "invalid"]
"""A C2PA manifest store's state. ``trusted``: signature and hashes verify and the signer
chains to the operator's trust list (``DEEPFAKESCAN_C2PA_TRUST``); ``untrusted``: they verify
but the signer is not on that list; ``invalid``: a signature or hash does not verify (the
file changed after signing, or the manifest is forged)."""

MAX_VALUE_CHARS = 240
"""Values are cut to this many characters: a ComfyUI workflow can be megabytes of JSON."""

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"

AI_SOURCE_TYPES = frozenset(
    {
        "trainedAlgorithmicMedia",  # made by a generative model from a prompt or other input
        "compositeWithTrainedAlgorithmicMedia",  # edited with generative fill, inpainting...
        "compositeSynthetic",  # a composite of which at least one part is synthetic
        "algorithmicMedia",  # made purely by an algorithm, not captured
    }
)
"""IPTC digital source types that say the content was synthesised, wholly or in part."""

CAPTURE_SOURCE_TYPES = frozenset(
    {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm"}
)
"""IPTC digital source types that say a camera (or a film scanner) recorded the scene."""


def source_type_name(uri: str) -> str:
    """``trainedAlgorithmicMedia`` from the IPTC URI (or from the bare term)."""
    return uri.strip().rstrip("/").rsplit("/", 1)[-1]


def truncate(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class ProvenanceItem:
    """One record found in the file, and what it claims."""

    source: Source
    field: str
    """The record's own name: ``photoshop:Credit``, ``Software``, ``TSSE``, ``active manifest``."""
    value: str
    """The record's text, cut to ``MAX_VALUE_CHARS``."""
    verified: bool = False
    """A signature covers this record and it verifies (C2PA only; never for plain metadata)."""
    validation: Validation | None = None
    signer: str | None = None
    """Who signed it, as the certificate names them (unverified unless ``validation`` is
    ``trusted``: anyone can make a certificate with any name)."""
    claim_generator: str | None = None
    actions: tuple[str, ...] = ()
    digital_source_type: str | None = None
    """The IPTC term (``trainedAlgorithmicMedia``), without the URI prefix."""
    ingredients: tuple[str, ...] = ()
    generator: str | None = None
    """The AI tool the record names, when it names one (``ComfyUI``, ``ElevenLabs``)."""
    declares_ai: bool = False
    """The record says a generative model or synthesiser made or edited the content."""
    camera_capture: bool = False
    """The record says a camera recorded the content (EXIF Make/Model, a capture manifest)."""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "field": self.field,
            "value": self.value,
            "verified": self.verified,
            "validation": self.validation,
            "signer": self.signer,
            "claim_generator": self.claim_generator,
            "actions": list(self.actions),
            "digital_source_type": self.digital_source_type,
            "ingredients": list(self.ingredients),
            "generator": self.generator,
            "declares_ai": self.declares_ai,
            "camera_capture": self.camera_capture,
        }


@dataclass(frozen=True)
class Provenance:
    """Every record found in one file, and what could not be read (``warnings``)."""

    items: tuple[ProvenanceItem, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def declares_ai(self) -> bool:
        """Some record, verified or not, says the content was made or edited by AI."""
        return any(item.declares_ai for item in self.items)

    @property
    def camera_capture(self) -> bool:
        """Some record, verified or not, says a camera recorded the content."""
        return any(item.camera_capture for item in self.items)

    def to_dict(self) -> dict:
        return {
            "items": [item.to_dict() for item in self.items],
            "declares_ai": self.declares_ai,
            "camera_capture": self.camera_capture,
            "warnings": list(self.warnings),
        }
