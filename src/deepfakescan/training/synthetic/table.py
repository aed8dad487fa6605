"""The per-pair table of an ``image-synthetic`` card: the model beside its checks, in Markdown.

One row per test pair (``metrics["test"]["auc"]``): its counts, the model's AUC, the
sharpness-only baseline's AUC (:mod:`.baseline`), the AUC after each robustness condition
(:mod:`.robustness`), and the share called fake at the card's threshold (recall of the fake
source, FPR of each real source). ``deepfakescan train image-synthetic`` prints it after an
export; for a bundle already made::

    python -c "import json, sys; from deepfakescan.training.synthetic.table import card_table;
    print(card_table(json.load(open(sys.argv[1]))))" image-synthetic.json
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def _auc(entry: dict | None, interval: bool = True) -> str:
    """``0.912 [0.871, 0.946]``; :data:`MISSING` where the card has no figure."""
    if not entry or entry.get("value") is None or math.isnan(entry["value"]):
        return MISSING
    text = f"{entry['value']:.3f}"
    ci = entry.get("ci95") or [None, None]
    if interval and None not in ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _rate(at_threshold: dict, source: str) -> str:
    """``photo-real 0.021 (n 96)``: a source's share called fake at the threshold."""
    entry = at_threshold.get(source)
    if not entry:
        return f"{source} {MISSING}"
    value = entry.get("recall", entry.get("fpr"))
    return f"{source} {value:.3f} (n {entry['n']})"


def _row(pair: str, entry: dict, test: dict, conditions: list[str]) -> list[str]:
    fake, _, reals = pair.partition(" vs ")
    at = test.get("at_threshold", {})
    return [
        pair,
        f"{entry.get('n_fake', MISSING)} / {entry.get('n_real', MISSING)}",
        _auc(entry),
        _auc(test.get("sharpness_baseline", {}).get(pair)),
        *[_auc(test["robustness"][c].get(pair), interval=False) for c in conditions],
        _rate(at, fake),
        "; ".join(_rate(at, r) for r in reals.split("+")),
    ]


def card_table(card: dict[str, Any]) -> str:
    """The card's test figures per pair as a Markdown table, with a caption line saying how
    they were measured; a card without test figures gives the caption and the header."""
    metrics = card.get("metrics", {})
    test = metrics.get("test", {})
    conditions = list(test.get("robustness", {}))
    header = [
        "pair",
        "n fake / real",
        "model AUC [95% CI]",
        "sharpness AUC [95% CI]",
        *[f"{c} AUC" for c in conditions],
        "recall at threshold",
        "FPR at threshold",
    ]
    lines = [
        f"{card.get('name', '?')} {card.get('version', '')}: test split, threshold "
        f"{card.get('threshold', MISSING)}; model and sharpness on "
        f"{card.get('inputs', [{}])[0].get('preprocessing', {}).get('n_crops', MISSING)} "
        f"crops, robustness on {metrics.get('robustness_n_crops', MISSING)} crops per image",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for pair, entry in test.get("auc", {}).items():
        lines.append("| " + " | ".join(_row(pair, entry, test, conditions)) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["card_table"]
