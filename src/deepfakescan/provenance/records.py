"""Turn raw metadata (XMP packets, EXIF, PNG text) into ``ProvenanceItem`` records.

Pure functions of bytes and strings. XML goes through defusedxml with DTDs forbidden (an XMP
packet never needs one; entity expansion is how an XML bomb explodes) and only after the
packet passed its size limit; JSON is parsed only for the chunk names that carry it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from PIL import Image

from .containers import MAX_XMP_BYTES
from .generators import known_generator
from .model import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    ProvenanceItem,
    Source,
    source_type_name,
    truncate,
)

MAX_ITEMS_PER_BLOCK = 32
"""Records kept from one XMP packet or EXIF block: a forged file may repeat a property."""

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_IPTC_EXT = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
_XMP_PROPERTIES = {
    f"{_IPTC_EXT}DigitalSourceType": ("iptc", "Iptc4xmpExt:DigitalSourceType"),
    f"{_IPTC_EXT}AISystemUsed": ("iptc", "Iptc4xmpExt:AISystemUsed"),
    "{http://ns.adobe.com/photoshop/1.0/}Credit": ("xmp", "photoshop:Credit"),
    "{http://ns.adobe.com/xap/1.0/}CreatorTool": ("xmp", "xmp:CreatorTool"),
}
_XMP_STARTS = (b"<x:xmpmeta", b"<x:xapmeta", b"<rdf:RDF")
_XMP_ENDS = (b"</x:xmpmeta>", b"</x:xapmeta>", b"</rdf:RDF>")

EXIF_MAKE, EXIF_MODEL, EXIF_SOFTWARE, EXIF_XMP = 0x010F, 0x0110, 0x0131, 0x02BC
EXIF_IFD, EXIF_USER_COMMENT = 0x8769, 0x9286

_A1111_PARAMETERS = re.compile(r"\bSteps: \d+, Sampler: ")
"""The line every Stable Diffusion web UI (AUTOMATIC1111, Forge, SD.Next) writes."""


def xmp_items(packet: bytes) -> tuple[list[ProvenanceItem], list[str]]:
    """IPTC digital source type, AI system, credit line and creator tool from one packet."""
    if len(packet) > MAX_XMP_BYTES:
        mb = len(packet) / 1024 / 1024
        return [], [f"XMP: packet of {mb:.1f} MB is over the 1 MB limit; not read"]
    try:
        root = SafeET.fromstring(_xmp_document(packet), forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as e:
        return [], [f"XMP: unreadable packet ({type(e).__name__}: {e}); ignored"]
    items = []
    for tag, value in _xmp_properties(root):
        items.append(_xmp_item(tag, value))
        if len(items) >= MAX_ITEMS_PER_BLOCK:
            break
    return items, []


def _xmp_document(packet: bytes) -> bytes:
    """The ``<x:xmpmeta>`` element alone: writers pad packets and wrap them in ``<?xpacket``."""
    starts = [i for i in (packet.find(s) for s in _XMP_STARTS) if i >= 0]
    ends = [i + len(e) for e in _XMP_ENDS if (i := packet.rfind(e)) >= 0]
    if starts and ends:
        return packet[min(starts) : max(ends)]
    return packet


def _xmp_properties(root: Element) -> Iterator[tuple[str, str]]:
    """(qualified name, value) of each wanted property, as attribute or as element."""
    for element in root.iter():
        for name, value in element.attrib.items():
            if name in _XMP_PROPERTIES:
                yield name, value
        if element.tag in _XMP_PROPERTIES:
            yield element.tag, _xmp_value(element)


def _xmp_value(element: Element) -> str:
    resource = element.get(f"{_RDF}resource")
    if resource:
        return resource
    items = [li.text.strip() for li in element.iter(f"{_RDF}li") if li.text and li.text.strip()]
    return "; ".join(items) if items else (element.text or "").strip()


def _xmp_item(tag: str, value: str) -> ProvenanceItem:
    source, name = _XMP_PROPERTIES[tag]
    if name.endswith("DigitalSourceType"):
        kind = source_type_name(value)
        return ProvenanceItem(
            source=source,
            field=name,
            value=truncate(value),
            digital_source_type=kind,
            declares_ai=kind in AI_SOURCE_TYPES,
            camera_capture=kind in CAPTURE_SOURCE_TYPES,
        )
    if name.endswith("AISystemUsed"):
        tool = truncate(value, 80) or "an unnamed AI system"
        return ProvenanceItem(source, name, truncate(value), generator=tool, declares_ai=True)
    generator = known_generator(value) if name == "xmp:CreatorTool" else None
    return ProvenanceItem(
        source, name, truncate(value), generator=generator, declares_ai=generator is not None
    )


def exif_items(raw: bytes) -> tuple[list[ProvenanceItem], list[bytes]]:
    """Software, Make, Model and UserComment records, and XMP packets held in EXIF (TIFF).

    ``raw`` starts at the TIFF header. Pillow's own EXIF reader parses it (no pixels).
    """
    exif = Image.Exif()
    exif.load(raw)
    return _exif_records(exif), _exif_xmp(exif)


def exif_items_from(exif: Image.Exif) -> tuple[list[ProvenanceItem], list[bytes]]:
    """As :func:`exif_items`, for the EXIF Pillow already read from a TIFF's first IFD."""
    return _exif_records(exif), _exif_xmp(exif)


def _exif_records(exif: Image.Exif) -> list[ProvenanceItem]:
    items = []
    software = _exif_text(exif.get(EXIF_SOFTWARE))
    if software:
        generator = known_generator(software)
        items.append(
            ProvenanceItem(
                "exif",
                "Software",
                truncate(software),
                generator=generator,
                declares_ai=generator is not None,
            )
        )
    for tag, name in ((EXIF_MAKE, "Make"), (EXIF_MODEL, "Model")):
        text = _exif_text(exif.get(tag))
        if text:
            items.append(ProvenanceItem("exif", name, truncate(text), camera_capture=True))
    comment = _user_comment(exif.get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT))
    if comment:
        items.append(_parameters_item("exif", "UserComment", comment))
    return items


def _exif_xmp(exif: Image.Exif) -> list[bytes]:
    packet = exif.get(EXIF_XMP)
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    return [packet] if isinstance(packet, bytes) and packet else []


def _exif_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip("\x00 \t\r\n") if isinstance(value, str) else ""


def _user_comment(raw: Any) -> str:
    """EXIF UserComment: an 8-byte character code, then the text (UTF-16 for UNICODE)."""
    if not isinstance(raw, bytes):
        return _exif_text(raw)
    code, body = raw[:8], raw[8:]
    if code == b"UNICODE\x00":
        big_endian = body[0::2].count(0) >= body[1::2].count(0)  # ASCII's high bytes are 0
        text = body.decode("utf-16-be" if big_endian else "utf-16-le", "replace")
    else:
        text = body.decode("utf-8", "replace")
    return text.strip("\x00 \t\r\n")


def _parameters_item(source: Source, name: str, text: str) -> ProvenanceItem:
    """Stable Diffusion web UI parameters (in a PNG chunk or EXIF UserComment), or plain text."""
    if _A1111_PARAMETERS.search(text):
        return ProvenanceItem(
            source, name, truncate(text), generator="Stable Diffusion web UI", declares_ai=True
        )
    return ProvenanceItem(source, name, truncate(text))


def text_items(key: str, text: str) -> list[ProvenanceItem]:
    """Records from one PNG text chunk; chunks that carry no provenance give none."""
    if key == "parameters":
        return [_parameters_item("png-text", key, text)]
    if key in ("prompt", "workflow"):
        comfy = _comfyui_prompt(text) if key == "prompt" else _comfyui_workflow(text)
        generator = "ComfyUI" if comfy else None
        return [
            ProvenanceItem("png-text", key, truncate(text), generator=generator, declares_ai=comfy)
        ]
    if key in ("invokeai_metadata", "sd-metadata", "Dream") and text.strip():
        return [
            ProvenanceItem("png-text", key, truncate(text), generator="InvokeAI", declares_ai=True)
        ]
    if key in ("Software", "Source"):
        generator = known_generator(text)
        item = ProvenanceItem(
            "png-text", key, truncate(text), generator=generator, declares_ai=bool(generator)
        )
        return [item]
    if key in ("Comment", "Description"):
        return [ProvenanceItem("png-text", key, truncate(text))] if text.strip() else []
    return []


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _comfyui_prompt(text: str) -> bool:
    """ComfyUI's ``prompt``: node id -> ``{"class_type": ..., "inputs": ...}``."""
    graph = _json(text)
    if not isinstance(graph, dict) or not graph:
        return False
    return any(isinstance(node, dict) and "class_type" in node for node in graph.values())


def _comfyui_workflow(text: str) -> bool:
    """ComfyUI's ``workflow``: the editor's graph, ``{"nodes": [...], "links": [...]}``."""
    graph = _json(text)
    return isinstance(graph, dict) and isinstance(graph.get("nodes"), list)
