"""What ``deepfakescan eval --out DIR`` writes, for model cards and for training's ``--metrics``.

metrics.json (every group with intervals, and the problem files), metrics.md (the table cards
quote), scores.csv (one row per file), and, when matplotlib (the ``[eval]`` extra) is installed,
roc.png and hist.png. The plots are left out rather than the run failed: the numbers are what
cards and training read, and an evaluation may have taken an hour to score.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from . import plots
from .runner import EvalResult, format_table

SCORES_CSV_COLUMNS = ("path", "label", "family", "source", "fake_probability", "verdict", "error")
PLOTS_EXTRA = "pip install 'deepfakescan[eval]'"
"""How to get the plots: matplotlib comes with the ``[eval]`` extra."""


def write_outputs(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics.json, metrics.md, scores.csv, roc.png and hist.png into ``out_dir``.

    Returns the paths written, by name; ``roc`` and ``hist`` are missing when matplotlib is
    not installed (``plots.available()``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out / "metrics.json",
        "table": out / "metrics.md",
        "scores": out / "scores.csv",
    }
    paths["metrics"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    paths["table"].write_text(format_table(result, markdown=True) + "\n", encoding="utf-8")
    _write_scores(result, paths["scores"])
    if plots.available():
        paths["roc"] = plots.plot_roc(result, out / "roc.png")
        paths["hist"] = plots.plot_score_histogram(result, out / "hist.png")
    return paths


def _write_scores(result: EvalResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SCORES_CSV_COLUMNS)
        for s in result.items:
            prob = "" if s.fake_probability is None else f"{s.fake_probability:.6f}"
            writer.writerow(
                [s.item.path, s.item.label, s.item.family, s.item.source, prob]
                + [s.verdict or "", s.error or ""]
            )
