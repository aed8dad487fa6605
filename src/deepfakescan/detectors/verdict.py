"""One verdict from several models that looked at the same picture in different ways.

The face model judges faces, the whole-image model judges crops of the whole picture. Either
one seeing a fake is enough (a swapped face in a real photo, or a generated photo whose face
looks fine); "real" needs every model that had something to judge to say real; anything else
is "uncertain". Each model is judged against its own calibrated threshold and uncertain band
(``report.verdict_for``), so no score is compared with another model's.

With a single judgement this is exactly ``verdict_for`` on that model's probability, with that
model's own reasons: adding a model never changes what a one-model report says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..report import Verdict, percent, verdict_for


@dataclass(frozen=True)
class Judgement:
    """What one model concluded about one image.

    ``probability`` is calibrated, or None when the model had nothing to judge (no face).
    ``label`` names the model for people ("the face detector"), ``looked_at`` says what it
    scored ("2 faces", "16 crops of the whole image", "no face was found") and ``reasons``
    are the model's own sentences, shown first when this model decides.
    """

    model: str
    probability: float | None
    threshold: float
    band: tuple[float, float]
    label: str = ""
    looked_at: str = ""
    reasons: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return verdict_for(self.probability, self.band)

    def margin(self, edge: int) -> float:
        """How far the probability lies above the band's lower (0) or upper (1) edge."""
        return -float("inf") if self.probability is None else self.probability - self.band[edge]


@dataclass(frozen=True)
class Combined:
    """The image's verdict, the probability shown and the model whose judgement decided.

    ``threshold`` and ``band`` are the deciding model's; when nothing was judged they are the
    first judgement's (callers put the face model first, as reports did before).
    """

    verdict: Verdict
    probability: float | None
    threshold: float
    band: tuple[float, float]
    decided_by: str | None
    reasons: list[str]


_SAYS = {
    "fake": "looks manipulated",
    "real": "looks authentic",
    "uncertain": "is in its uncertain band",
}


def combine(judgements: Sequence[Judgement]) -> Combined:
    """Either fake is fake; all real (at least one judged) is real; otherwise uncertain.

    The probability shown is the deciding judgement's: for fake, the model furthest above its
    fake edge; for real, the most suspicious model (closest to its real edge); for uncertain,
    the uncertain model closest to its fake edge. Reasons: the decider's own sentences, then
    one line per other model (its own sentences when it saw a fake too).
    """
    if not judgements:
        raise ValueError("combine needs at least one judgement")
    judged = [j for j in judgements if j.probability is not None]
    if not judged:
        first = judgements[0]
        reasons = [r for j in judgements for r in (j.reasons or (_line(j),))]
        return Combined("uncertain", None, first.threshold, first.band, None, reasons)
    verdicts = {j.verdict for j in judged}
    verdict: Verdict = (
        "fake" if "fake" in verdicts else "real" if verdicts == {"real"} else "uncertain"
    )
    pool = [j for j in judged if j.verdict == verdict]
    edge = 0 if verdict == "real" else 1  # real: closest to leaving real; else: to fake
    decider = max(pool, key=lambda j: j.margin(edge))
    reasons = list(decider.reasons or (_line(decider),))
    for j in judgements:
        if j is not decider:
            # a second model that also saw a fake keeps its own sentences (e.g. the face's family)
            also_fake = j.verdict == "fake" and j.reasons
            reasons += list(j.reasons) if also_fake else [_line(j)]
    return Combined(
        verdict, decider.probability, decider.threshold, decider.band, decider.model, reasons
    )


def _line(j: Judgement) -> str:
    """One sentence naming the model, what it looked at and what it concluded."""
    name = j.label or j.model
    label = name[:1].upper() + name[1:]
    if j.probability is None:
        return f"{label} had nothing to judge" + (f" ({j.looked_at})." if j.looked_at else ".")
    seen = f" ({j.looked_at})" if j.looked_at else ""
    return f"{label}{seen} {_SAYS[j.verdict]}: {percent(j.probability)}."
