"""The trust rule: what the file's own records may say about the verdict, and in which words.

- A record that declares AI generation (a C2PA manifest, verified or not, an IPTC digital
  source type, Stable Diffusion parameters, a ComfyUI graph, a known generator's software
  tag) gives the hint ``fake``. A false claim of AI generation harms no one, so an unsigned
  record is enough; the reason says whether a signature vouches for it.
- A C2PA camera-capture manifest gives the hint ``real`` only when it verifies and its
  signer chains to the operator's trust list (``DEEPFAKESCAN_C2PA_TRUST``). The caller must
  never let this hint override the models: it is supporting evidence, not a verdict.
- Nothing found means nothing: no hint. Metadata is stripped by most platforms.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from .model import Provenance, ProvenanceItem

Hint = Literal["fake", "real"]

_PLACES = {
    "xmp": "XMP metadata",
    "iptc": "XMP metadata",
    "exif": "EXIF",
    "png-text": "PNG",
    "id3": "ID3 tag",
    "mp4": "MP4 metadata",
    "vorbis": "Vorbis comments",
    "matroska": "Matroska tags",
    "riff": "RIFF INFO tags",
}

_GENERATION_RECORDS = frozenset(
    {"parameters", "UserComment", "invokeai_metadata", "sd-metadata", "Dream"}
)
"""Fields that hold a generator's own settings (prompt, sampler, seed), not a tool name."""


class Judgement(NamedTuple):
    """``hint`` is ``None`` when the records say nothing either way; ``reasons`` are plain
    sentences, strongest first, and may be given with no hint (a capture manifest from a
    signer not on the trust list is worth saying, not counting)."""

    hint: Hint | None
    reasons: tuple[str, ...]


def provenance_judgement(provenance: Provenance) -> Judgement:
    """The hint the file's records give and why (see the module docstring for the rule)."""
    ai = sorted((i for i in provenance.items if i.declares_ai), key=_strength)
    if ai:
        return Judgement("fake", tuple(dict.fromkeys(_ai_reason(i) for i in ai)))
    captures = [i for i in provenance.items if i.source == "c2pa" and i.camera_capture]
    trusted = [i for i in captures if i.validation == "trusted" and i.field == "active manifest"]
    if trusted:
        return Judgement("real", (_capture_reason(trusted[0], counted=True),))
    return Judgement(None, tuple(_capture_reason(i, counted=False) for i in captures[:1]))


def _strength(item: ProvenanceItem) -> int:
    """Verified C2PA, unverified C2PA, an IPTC source type, a generator's settings, a name."""
    if item.source == "c2pa":
        return 0 if item.verified else 1
    if item.digital_source_type:
        return 2
    return 3 if item.field in _GENERATION_RECORDS else 4


def _signed_by(item: ProvenanceItem) -> str:
    who = f"“{item.signer}”" if item.signer else "an unnamed signer"
    if item.validation == "trusted":
        return f"signed by {who} (on your trust list)"
    return f"signed by {who} (a signer not on your trust list)"


def _ai_reason(item: ProvenanceItem) -> str:
    made = _made_how(item)
    if item.source == "c2pa":
        manifest = (
            "C2PA manifest" if item.field == "active manifest" else "ingredient's C2PA manifest"
        )
        if item.verified:
            return f"The file's {manifest}, {_signed_by(item)}, declares {made}."
        return (
            f"The file's {manifest} declares {made}, but its signature or hashes do not verify"
            " (the file changed after signing, or the manifest is forged)."
        )
    if item.source == "png-text" and item.generator == "ComfyUI":
        graph = "workflow" if item.field == "workflow" else "prompt graph"
        return f"The PNG carries a ComfyUI {graph}."
    place = _PLACES.get(item.source, item.source)
    if item.digital_source_type:
        term = item.digital_source_type
        return f"The file's {place} declares {made} (IPTC digital source type {term})."
    if item.field in _GENERATION_RECORDS:
        where = "The PNG" if item.source == "png-text" else f"The file's {place} {item.field}"
        return f"{where} carries {item.generator} generation parameters."
    if item.field.endswith("AISystemUsed"):
        return f"The file's {place} names the AI system that made it: {item.generator}."
    return f"The file's {place} field {item.field} names {item.generator}, an AI generator."


def _made_how(item: ProvenanceItem) -> str:
    partly = item.digital_source_type in (
        "compositeWithTrainedAlgorithmicMedia",
        "compositeSynthetic",
    )
    what = (
        "it was edited with a generative model"
        if partly
        else "it was created by a generative model"
    )
    if item.generator and item.source == "c2pa":
        return f"{what} ({item.generator})"
    return what


def _capture_reason(item: ProvenanceItem, *, counted: bool) -> str:
    if counted:
        return (
            f"The file's C2PA manifest, {_signed_by(item)}, declares a camera capture"
            " (supporting evidence only: it does not override the models)."
        )
    if not item.verified:
        return (
            "The file's C2PA manifest declares a camera capture, but it does not verify;"
            " not counted."
        )
    return (
        f"The file's C2PA manifest, {_signed_by(item)}, declares a camera capture; not counted,"
        " since only signers on the trust list (DEEPFAKESCAN_C2PA_TRUST) are."
    )
