"""C2PA manifests through the official ``c2pa-python`` bindings (the optional extra).

The library checks the claim signature, the hashes that bind the manifest to the file's
bytes, and the signer's certificate against the trust anchors we give it: those of the
operator (``DEEPFAKESCAN_C2PA_TRUST``, a PEM bundle), none by default. It runs offline: remote
manifests and OCSP are never fetched. Without the package, C2PA is reported as not checked.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ..media.source import MediaSource
from .generators import known_generator
from .model import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    ProvenanceItem,
    Validation,
    source_type_name,
    truncate,
)

UNAVAILABLE = (
    "C2PA: the file may carry a C2PA manifest, but it was not checked: the c2pa-python"
    " package is not installed (pip install 'deepfakescan[provenance]')"
)

MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/avi",
}
"""Sniffed formats the library reads manifests from (it has no Ogg, WebM or Matroska)."""

MAX_MANIFESTS = 16
MAX_LISTED = 16
MAX_TRUST_BYTES = 4 * 1024 * 1024

_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_STATES: dict[str, Validation] = {"Trusted": "trusted", "Valid": "untrusted"}


def available() -> bool:
    """Whether the c2pa-python bindings import (they load a native library on first use)."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def load_trust(path: Path | None) -> tuple[str | None, list[str]]:
    """The operator's PEM trust bundle, or ``None`` and why it cannot be used."""
    if path is None:
        return None, []
    from cryptography import x509  # comes with c2pa-python

    try:
        with open(path, "rb") as f:
            pem = f.read(MAX_TRUST_BYTES)
        x509.load_pem_x509_certificates(pem)
    except OSError as e:
        return None, [f"C2PA: trust list {path} cannot be read ({e.strerror}); no signer trusted"]
    except ValueError:
        return None, [f"C2PA: trust list {path} holds no PEM certificate; no signer trusted"]
    return pem.decode("ascii", "replace"), []


@functools.lru_cache(maxsize=4)
def _context(trust_pem: str | None) -> Any:
    import c2pa

    settings: dict = dict(_OFFLINE)
    if trust_pem:
        settings["trust"] = {"trust_anchors": trust_pem}
    return c2pa.Context.from_dict(settings)


def read_store(source: MediaSource, fmt: str, trust_pem: str | None) -> tuple[dict, str] | None:
    """The manifest store as JSON and the library's validation state, or ``None`` if absent.

    Raises ``c2pa.C2paError`` for a manifest the library cannot parse.
    """
    import c2pa

    with source.open() as stream:
        reader = c2pa.Reader.try_create(MIME_TYPES[fmt], stream, None, _context(trust_pem))
        if reader is None:
            return None
        with reader:
            return json.loads(reader.json()), reader.get_validation_state() or ""


def c2pa_items(
    source: MediaSource, fmt: str, trust_pem: str | None
) -> tuple[list[ProvenanceItem], list[str]]:
    """One record per manifest in the store (the active one first), and warnings."""
    import c2pa

    try:
        found = read_store(source, fmt, trust_pem)
    except c2pa.C2paError as e:
        return [], [f"C2PA: the manifest cannot be read ({e}); ignored"]
    if found is None:
        return [], []
    return store_items(*found), []


def store_items(store: dict, state: str) -> list[ProvenanceItem]:
    """Records from a manifest store as ``Reader.json()`` gives it."""
    validation = _STATES.get(state, "invalid")
    problems = _status_codes(store)
    ingredients_fail = _ingredient_failures(store)
    active = store.get("active_manifest")
    manifests = store.get("manifests") or {}
    labels = sorted(manifests, key=lambda label: label != active)[:MAX_MANIFESTS]
    items = []
    for label in labels:
        is_active = label == active
        state_here = validation if is_active or not ingredients_fail else "invalid"
        items.append(_manifest_item(manifests[label], is_active, state_here, problems))
    return items


def _status_codes(store: dict) -> list[str]:
    codes = [s.get("code", "") for s in store.get("validation_status") or [] if s.get("code")]
    return list(dict.fromkeys(codes))[:8]


def _ingredient_failures(store: dict) -> bool:
    deltas = (store.get("validation_results") or {}).get("ingredientDeltas") or []
    return any((d.get("validationDeltas") or {}).get("failure") for d in deltas)


def _manifest_item(
    manifest: dict, is_active: bool, validation: Validation, problems: list[str]
) -> ProvenanceItem:
    actions, source_types, agent = _actions(manifest)
    claim_generator = _claim_generator(manifest)
    ai_types = [t for t in source_types if t in AI_SOURCE_TYPES]
    capture_types = [t for t in source_types if t in CAPTURE_SOURCE_TYPES]
    named = known_generator(claim_generator) or known_generator(agent)
    declares_ai = bool(ai_types) or named is not None
    verified = validation != "invalid"
    return ProvenanceItem(
        source="c2pa",
        field="active manifest" if is_active else "ingredient manifest",
        value=", ".join(problems) if problems else "signature and hashes verify",
        verified=verified,
        validation=validation,
        signer=_signer(manifest.get("signature_info") or {}),
        claim_generator=claim_generator,
        actions=tuple(actions),
        digital_source_type=(ai_types or capture_types or source_types or [None])[0],
        ingredients=_ingredients(manifest),
        generator=(named or agent or claim_generator) if declares_ai else None,
        declares_ai=declares_ai,
        camera_capture=bool(capture_types) and not declares_ai,
    )


def _actions(manifest: dict) -> tuple[list[str], list[str], str | None]:
    """Action names, their IPTC digital source types, and the agent of an AI action."""
    names: list[str] = []
    source_types: list[str] = []
    agent = None
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            names.append(str(action.get("action", "?")))
            uri = action.get("digitalSourceType")
            if isinstance(uri, str):
                source_types.append(source_type_name(uri))
                if source_types[-1] in AI_SOURCE_TYPES and agent is None:
                    agent = _agent_name(action.get("softwareAgent"))
    return names[:MAX_LISTED], list(dict.fromkeys(source_types)), agent


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, dict):
        agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    return truncate(agent, 80) if isinstance(agent, str) and agent.strip() else None


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return _agent_name(info[0])
    generator = manifest.get("claim_generator")
    return truncate(generator, 80) if isinstance(generator, str) else None


def _signer(signature: dict) -> str | None:
    name, issuer = signature.get("common_name"), signature.get("issuer")
    if name and issuer and issuer != name:
        return truncate(f"{name} ({issuer})", 120)
    return truncate(str(name or issuer), 120) if (name or issuer) else None


def _ingredients(manifest: dict) -> tuple[str, ...]:
    listed = []
    for ingredient in (manifest.get("ingredients") or [])[:MAX_LISTED]:
        title = truncate(str(ingredient.get("title") or "untitled"), 80)
        relation = ingredient.get("relationship")
        listed.append(f"{title} ({relation})" if relation else title)
    return tuple(listed)
