"""Score a labelled corpus and aggregate metrics overall, per source and per fake family.

``evaluate()`` is independent of the detector: it takes any ``score_fn(path)`` returning
something with ``fake_probability``, ``verdict`` and ``threshold`` (a ``Report`` does), so
training can evaluate a model in memory and the CLI can evaluate the whole pipeline. Files the
scanner refuses (a ``DeepfakescanError``) or cannot judge (no probability: no face, no speech)
are counted and listed in every group they belong to, never silently dropped: a detector that
abstains on the hard half of a corpus must not look good for it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepfakescanError
from .datasets import REAL, LabelledItem
from .metrics import (
    NAN,
    as_json_number,
    bootstrap_cis,
    expected_calibration_error,
    ranking_metrics,
    threshold_metrics,
    wilson_interval,
)

DEFAULT_THRESHOLD = 0.5
"""Used only when neither an override nor the report carries a threshold (said in warnings)."""

METRICS = ("auc", "eer", "ap", "accuracy", "precision", "recall", "fpr", "ece")

ScoreFn = Callable[[Path], Any]
ProgressFn = Callable[[int, int], None]


@dataclass
class ScoredItem:
    """One file with what the scanner said about it."""

    item: LabelledItem
    fake_probability: float | None
    verdict: str | None
    threshold: float | None
    error: str | None = None
    """``"code: message"`` when the scan failed; ``None`` otherwise."""

    @property
    def scored(self) -> bool:
        return self.error is None and self.fake_probability is not None


def _json_metric(value: float) -> float | None:
    """Six decimals are far below any bootstrap interval's width; nan becomes null."""
    number = as_json_number(value)
    return None if number is None else round(number, 6)


@dataclass
class GroupMetrics:
    """Counts and metrics of one group (overall, a source, or a fake family against all reals)."""

    kind: str
    """``overall``, ``source`` or ``family``."""
    name: str
    n_real: int
    n_fake: int
    n_errors: int
    n_unscored: int
    verdicts: dict[str, int]
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]

    @property
    def label(self) -> str:
        return self.kind if self.kind == "overall" else f"{self.kind}:{self.name}"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "n_errors": self.n_errors,
            "n_unscored": self.n_unscored,
            "verdicts": dict(self.verdicts),
            "metrics": {
                k: {
                    "value": _json_metric(v),
                    "ci95": [_json_metric(x) for x in self.intervals.get(k, (NAN, NAN))],
                }
                for k, v in self.metrics.items()
            },
        }


@dataclass(frozen=True)
class RealFalsePositives:
    """Reals of one source that the scanner's *verdict* called fake.

    Counted on the verdict, not on ``fake_probability >= threshold`` (the table's FPR): a
    report in its uncertain band, or one whose combined verdict another model decided, is
    what a user sees, and the issues' bars on real false positives are about that.
    """

    source: str
    n: int
    """Reals of the source scanned without error (uncertain ones included)."""
    fake: int
    uncertain: int
    errors: int

    @property
    def rate(self) -> float:
        return self.fake / self.n if self.n else NAN

    @property
    def interval(self) -> tuple[float, float]:
        """95 % Wilson interval of ``rate``."""
        return wilson_interval(self.fake, self.n)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "n": self.n,
            "fake": self.fake,
            "uncertain": self.uncertain,
            "errors": self.errors,
            "rate": _json_metric(self.rate),
            "ci95": [_json_metric(x) for x in self.interval],
        }


def real_false_positives(scored: list[ScoredItem]) -> list[RealFalsePositives]:
    """Per source holding reals, how many reals the verdict called fake (sources whose
    scores carry no verdict, such as bare probabilities, are left out)."""
    out = []
    for source in sorted({s.item.source for s in scored if s.item.label == 0}):
        reals = [s for s in scored if s.item.label == 0 and s.item.source == source]
        judged = [s for s in reals if s.error is None]
        if not any(s.verdict is not None for s in judged):
            continue
        verdicts = Counter(s.verdict for s in judged)
        errors = len(reals) - len(judged)
        out.append(
            RealFalsePositives(source, len(judged), verdicts["fake"], verdicts["uncertain"], errors)
        )
    return out


@dataclass
class EvalResult:
    """Everything ``deepfakescan eval`` reports; ``to_dict()`` is metrics.json."""

    groups: list[GroupMetrics]
    items: list[ScoredItem]
    threshold_override: float | None
    thresholds_used: list[float]
    bootstrap: int
    seed: int
    alpha: float
    warnings: list[str] = field(default_factory=list)
    real_sources: list[RealFalsePositives] = field(default_factory=list)
    """Per real source, the reals the verdict called fake (``real_false_positives``)."""
    notes: list[str] = field(default_factory=list)
    """How the inputs were prepared when not scanned as stored (e.g. re-encoded as WebP)."""

    def group(self, kind: str, name: str | None = None) -> GroupMetrics:
        """The group ``(kind, name)``, e.g. ``("family", "Deepfakes")`` or ``("overall",)``."""
        for g in self.groups:
            if g.kind == kind and (kind == "overall" or g.name == name):
                return g
        raise KeyError(f"no group {kind}:{name}")

    @property
    def problems(self) -> list[ScoredItem]:
        """Files that failed or got no probability, in corpus order."""
        return [s for s in self.items if not s.scored]

    def to_dict(self) -> dict:
        return {
            "threshold": {
                "override": self.threshold_override,
                "used": self.thresholds_used,
                "rule": "fake when fake_probability >= threshold",
            },
            "bootstrap": {"resamples": self.bootstrap, "seed": self.seed, "alpha": self.alpha},
            "groups": [g.to_dict() for g in self.groups],
            "problems": [
                {
                    "path": str(s.item.path),
                    "label": s.item.label,
                    "family": s.item.family,
                    "source": s.item.source,
                    "error": s.error or "no score (uncertain)",
                }
                for s in self.problems
            ],
            "real_false_positives": [r.to_dict() for r in self.real_sources],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def _read_score(out: Any) -> tuple[float | None, str | None, float | None]:
    """(probability, verdict, threshold) from a Report, a mapping, a bare number or None."""
    if out is None:
        return None, None, None
    if isinstance(out, int | float) and not isinstance(out, bool):
        return float(out), None, None
    if isinstance(out, Mapping):
        get = out.get
    else:

        def get(name: str) -> Any:
            return getattr(out, name, None)

    prob, threshold = get("fake_probability"), get("threshold")
    return (
        None if prob is None else float(prob),
        get("verdict"),
        None if threshold is None else float(threshold),
    )


def score_items(
    items: Iterable[LabelledItem], score_fn: ScoreFn, progress: ProgressFn | None = None
) -> list[ScoredItem]:
    """Run ``score_fn`` on every file, recording refusals instead of stopping.

    Only ``DeepfakescanError`` is recorded: anything else is a bug and propagates, with the
    file's path noted on the exception so it can be reproduced.
    """
    items = list(items)
    scored = []
    for done, item in enumerate(items, start=1):
        try:
            prob, verdict, threshold = _read_score(score_fn(item.path))
            error = None
            if prob is not None and not (math.isfinite(prob) and 0.0 <= prob <= 1.0):
                prob, error = None, f"invalid_score: fake_probability {prob!r} is not in [0, 1]"
        except DeepfakescanError as e:
            prob, verdict, threshold, error = None, None, None, f"{e.code}: {e.message}"
        except Exception as e:
            e.add_note(f"while scoring {item.path}")
            raise
        scored.append(ScoredItem(item, prob, verdict, threshold, error))
        if progress is not None:
            progress(done, len(items))
    return scored


def _metrics(y: np.ndarray, p: np.ndarray, thr: np.ndarray) -> dict[str, float]:
    """All metrics of one (re)sample; ranking metrics and precision need both classes."""
    both = 0 < int(y.sum()) < y.size
    rates = threshold_metrics(y, p, thr)
    ranking = ranking_metrics(y, p)  # nan unless both classes are present
    return {
        **ranking,
        "accuracy": rates["accuracy"],
        # with one class, precision is trivially 0 or 1: not a property of the detector
        "precision": rates["precision"] if both else NAN,
        "recall": rates["recall"],
        "fpr": rates["fpr"],
        "ece": expected_calibration_error(y, p),
    }


def _threshold_of(s: ScoredItem, override: float | None) -> float:
    if override is not None:
        return override
    return DEFAULT_THRESHOLD if s.threshold is None else s.threshold


def _group(
    kind: str,
    name: str,
    members: list[ScoredItem],
    threshold: float | None,
    *,
    bootstrap: int,
    seed: int,
    alpha: float,
) -> GroupMetrics:
    ok = [s for s in members if s.scored]
    y = np.array([s.item.label for s in ok], dtype=np.int8)
    p = np.array([s.fake_probability for s in ok], dtype=np.float64)
    thr = np.array([_threshold_of(s, threshold) for s in ok], dtype=np.float64)
    if ok:
        values = _metrics(y, p, thr)
        intervals = bootstrap_cis(_metrics, y, p, thr, n=bootstrap, seed=seed, alpha=alpha)
    else:
        values = dict.fromkeys(METRICS, NAN)
        intervals = {k: (NAN, NAN) for k in METRICS}
    # abstentions carry a verdict ("uncertain") too, so they are counted here as well
    verdicts = Counter(s.verdict for s in members if s.error is None and s.verdict is not None)
    return GroupMetrics(
        kind=kind,
        name=name,
        n_real=int(np.sum(y == 0)),
        n_fake=int(np.sum(y == 1)),
        n_errors=sum(s.error is not None for s in members),
        n_unscored=sum(s.error is None and s.fake_probability is None for s in members),
        verdicts=dict(sorted(verdicts.items())),
        metrics=values,
        intervals=intervals,
    )


def aggregate(
    scored: list[ScoredItem],
    *,
    threshold: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> EvalResult:
    """Group scored files and compute every metric with its bootstrap interval.

    Groups: ``overall``; one per ``source`` (its own files, possibly one class); one per
    ``family`` where a fake family is measured against **all** reals (how well this method is
    told apart from real media) and the ``real`` family holds the reals alone (its FPR).
    Every group uses the same bootstrap seed, so results do not depend on group order.
    """
    reals = [s for s in scored if s.item.label == 0]
    groups = [("overall", "all", scored)]
    for source in sorted({s.item.source for s in scored}):
        groups.append(("source", source, [s for s in scored if s.item.source == source]))
    families = sorted({s.item.family for s in scored}, key=lambda f: (f != REAL, f))
    for family in families:
        fakes = [s for s in scored if s.item.label == 1 and s.item.family == family]
        groups.append(("family", family, reals if family == REAL else reals + fakes))

    opts = {"bootstrap": bootstrap, "seed": seed, "alpha": alpha}
    warnings = []
    if threshold is None and any(s.scored and s.threshold is None for s in scored):
        warnings.append(
            f"some scores carried no threshold; {DEFAULT_THRESHOLD} was used for those files"
        )
    used = (
        [threshold]
        if threshold is not None
        else sorted({_threshold_of(s, None) for s in scored if s.scored})
    )
    if len(used) > 1:
        warnings.append(f"files were judged at different model thresholds: {used}")
    return EvalResult(
        groups=[_group(k, n, m, threshold, **opts) for k, n, m in groups],
        items=scored,
        threshold_override=threshold,
        thresholds_used=used,
        bootstrap=bootstrap,
        seed=seed,
        alpha=alpha,
        warnings=warnings,
        real_sources=real_false_positives(scored),
    )


def evaluate(
    items: Iterable[LabelledItem],
    score_fn: ScoreFn,
    *,
    threshold: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Score every labelled file with ``score_fn`` and aggregate the metrics.

    Parameters
    ----------
    items
        The corpus, e.g. from :func:`~deepfakescan.evaluation.datasets.load_dataset`.
    score_fn
        ``score_fn(path)`` returning an object or mapping with ``fake_probability``
        (``None`` = no judgement), ``verdict`` and ``threshold``, or a bare probability.
    threshold
        Override of the threshold the reports carry (the model card's); ``score >= threshold``
        is fake.
    bootstrap, seed, alpha
        Resamples, seed and ``1 - coverage`` of the stratified percentile bootstrap.
    progress
        ``progress(done, total)`` after each file.
    """
    scored = score_items(items, score_fn, progress)
    return aggregate(scored, threshold=threshold, bootstrap=bootstrap, seed=seed, alpha=alpha)


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


TABLE_METRICS = ("auc", "eer", "ap", "accuracy", "precision", "recall", "fpr", "ece")
TABLE_COLUMNS = ("group", "n_real", "n_fake", "err", "no_score")
TABLE_COLUMNS += ("AUC", "EER", "AP", "acc", "prec", "recall", "FPR", "ECE")


def _cell(g: GroupMetrics, key: str) -> str:
    """``value [low–high]``: every metric with its interval, as a reader needs to judge it."""
    text = _fmt(g.metrics[key])
    lo, hi = g.intervals.get(key, (NAN, NAN))
    if text != "-" and math.isfinite(lo) and math.isfinite(hi):
        text += f" [{_fmt(lo, 2)}–{_fmt(hi, 2)}]"
    return text


def format_table(result: EvalResult, *, markdown: bool = False) -> str:
    """A table, one row per group, each metric with its bootstrap interval, then a footer.

    Aligned text for a terminal, or (``markdown=True``) a Markdown table that a model card
    can quote as it is, so the card's figures are the command's output and not a retyping.
    """
    rows = [
        [g.label, str(g.n_real), str(g.n_fake), str(g.n_errors), str(g.n_unscored)]
        + [_cell(g, k) for k in TABLE_METRICS]
        for g in result.groups
    ]
    table = [list(TABLE_COLUMNS), *rows]
    if markdown:
        rule = ["---"] + ["---:"] * 4 + ["---"] * len(TABLE_METRICS)
        lines = ["| " + " | ".join(r) + " |" for r in [table[0], rule, *rows]]
    else:
        widths = [max(len(r[i]) for r in table) for i in range(len(TABLE_COLUMNS))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in table
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + _footer(result))


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _real_source_lines(result: EvalResult) -> list[str]:
    """One line per real source: reals the verdict called fake, with a 95 % interval."""
    if not result.real_sources:
        return []
    width = max(len(r.source) for r in result.real_sources)
    lines = [
        "false positives of the verdict per real source"
        " (verdict fake / reals scanned, 95% Wilson interval):"
    ]
    for r in result.real_sources:
        lo, hi = r.interval
        lines.append(
            f"  {r.source.ljust(width)}  {r.fake}/{r.n} = {_percent(r.rate)}"
            f" [{_percent(lo)}–{_percent(hi)}], uncertain {r.uncertain}, errors {r.errors}"
        )
    return lines


def _footer(result: EvalResult) -> list[str]:
    """Threshold, intervals, real-source false positives, notes, warnings and problems."""
    thresholds = ", ".join(f"{t:g}" for t in result.thresholds_used) or "-"
    origin = "override" if result.threshold_override is not None else "from the reports"
    footer = [f"threshold {thresholds} ({origin}); fake when fake_probability >= threshold"]
    if result.bootstrap:
        footer.append(
            f"[low–high]: {100 * (1 - result.alpha):g}% intervals, stratified bootstrap, "
            f"{result.bootstrap} resamples, seed {result.seed}"
        )
    footer += _real_source_lines(result)
    footer += [f"note: {n}" for n in result.notes]
    footer += [f"warning: {w}" for w in result.warnings]
    problems = result.problems
    if problems:
        footer.append(f"{len(problems)} file(s) failed or got no score; listed in metrics.json:")
        footer += [f"  {s.item.path}: {s.error or 'no score (uncertain)'}" for s in problems[:10]]
        if len(problems) > 10:
            footer.append(f"  ... and {len(problems) - 10} more")
    return footer
