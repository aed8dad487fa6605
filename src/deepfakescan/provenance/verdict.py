"""The verdict rule for provenance: how the file's own records combine with the models'.

- A record that declares AI generation (a C2PA manifest, an IPTC digital source type, a
  generator's settings or graph, a known AI tool's name) makes the verdict ``fake`` whatever
  the models say, and its sentences come first. A false claim of AI generation harms no one,
  so this holds for a C2PA manifest that does not verify too: its claim is still an explicit
  generator record in the file, and the reason says that it does not verify.
- A camera-capture manifest whose signer chains to the operator's trust list adds a
  supporting sentence after the models' and never changes their verdict; an untrusted one is
  said and not counted.
- No record changes nothing: most platforms strip metadata.

The models' verdict, calibrated probability and band stay in the report either way
(``provenance.model_verdict``, ``fake_probability``): the records decide, they do not
rewrite the score. Which records give which hint, in which words, is
:func:`~deepfakescan.provenance.judgement.provenance_judgement`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..report import ProvenanceRecord, ProvenanceSection, Verdict
from .judgement import Judgement
from .model import Provenance

_MODELS_SAY = {
    "fake": "the models also found it manipulated",
    "real": "on their own the models found it authentic",
    "uncertain": "on their own the models reached no verdict",
}


class Decision(NamedTuple):
    """The report's verdict and reasons once the records are counted; ``decided`` is true
    when a record set the verdict."""

    verdict: Verdict
    reasons: tuple[str, ...]
    decided: bool


def decide(model_verdict: Verdict, model_reasons: Sequence[str], judgement: Judgement) -> Decision:
    """Combine the models' verdict and reasons with the records' hint (module docstring)."""
    if judgement.hint == "fake":
        note = (
            "The verdict is fake because of what the file declares, whatever the content looks"
            f" like; {_MODELS_SAY[model_verdict]} (their score and reasons follow)."
        )
        return Decision("fake", (*judgement.reasons, note, *model_reasons), True)
    return Decision(model_verdict, (*model_reasons, *judgement.reasons), False)


def section(
    provenance: Provenance, judgement: Judgement, decision: Decision, model_verdict: Verdict
) -> ProvenanceSection:
    """The report's ``provenance`` section: every record found, the hint and its effect."""
    return ProvenanceSection(
        items=[ProvenanceRecord(**item.to_dict()) for item in provenance.items],
        warnings=list(provenance.warnings),
        hint=judgement.hint,
        decided=decision.decided,
        model_verdict=model_verdict,
    )
