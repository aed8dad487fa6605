"""ROC curves and score histograms as PNG files, drawn with matplotlib's Agg canvas.

We build ``Figure`` objects and an Agg canvas directly instead of using ``pyplot``: no global
backend switch, no GUI, nothing left open, so evaluation can run in a worker or a test.
matplotlib is imported inside the functions because it is slow to import and only ``--out``
needs it; it comes with the ``[eval]`` extra, and ``available()`` says whether it is installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .datasets import REAL
from .metrics import roc_auc, roc_curve
from .runner import EvalResult

FIGSIZE = (6.4, 4.8)
DPI = 120
HIST_BINS = 20


def available() -> bool:
    """True when matplotlib is installed (``pip install 'deepfakescan[eval]'``)."""
    return importlib.util.find_spec("matplotlib") is not None


def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _scored_arrays(result: EvalResult, family: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of scored files: all, or a fake family with all reals."""
    keep = [
        s
        for s in result.items
        if s.scored and (family is None or s.item.label == 0 or s.item.family == family)
    ]
    y = np.array([s.item.label for s in keep], dtype=np.int8)
    p = np.array([s.fake_probability for s in keep], dtype=np.float64)
    return y, p


def plot_roc(result: EvalResult, path: str | Path) -> Path:
    """ROC of all files and of each fake family against all reals, with the operating point."""
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    families = sorted({s.item.family for s in result.items if s.item.label == 1})
    curves = [("overall", None)] + ([(f, f) for f in families] if len(families) > 1 else [])
    drawn = 0
    for name, family in curves:
        y, p = _scored_arrays(result, family)
        if not 0 < y.sum() < y.size:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        width = 2.0 if family is None else 1.0
        ax.plot(fpr, tpr, linewidth=width, label=f"{name} (AUC {roc_auc(y, p):.3f})")
        drawn += 1
    overall = result.group("overall")
    fpr_at, tpr_at = overall.metrics["fpr"], overall.metrics["recall"]
    if np.isfinite(fpr_at) and np.isfinite(tpr_at):
        ax.plot([fpr_at], [tpr_at], "ko", label="at threshold")
    if not drawn:
        ax.text(0.5, 0.5, "needs scored reals and fakes", ha="center", va="center")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate (reals called fake)")
    ax.set_ylabel("true-positive rate (fakes caught)")
    ax.set_title("ROC")
    if drawn:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_score_histogram(result: EvalResult, path: str | Path) -> Path:
    """Histogram of ``fake_probability`` for reals and fakes, with the threshold(s) marked."""
    fig = _new_figure()
    ax = fig.add_subplot()
    y, p = _scored_arrays(result)
    bins = np.linspace(0.0, 1.0, HIST_BINS + 1)
    for label, name, color in ((0, REAL, "tab:blue"), (1, "fake", "tab:red")):
        values = p[y == label]
        if values.size:
            # each class sums to 1, so a 10:1 imbalance does not flatten the smaller class
            weights = np.full(values.size, 1.0 / values.size)
            label_text = f"{name} (n={values.size})"
            ax.hist(values, bins=bins, weights=weights, alpha=0.55, color=color, label=label_text)
    for t in result.thresholds_used:
        ax.axvline(t, color="k", linestyle="--", linewidth=1, label=f"threshold {t:g}")
    if p.size == 0:
        ax.text(0.5, 0.5, "no scored files", ha="center", va="center")
    ax.set(xlim=(0, 1), xlabel="fake_probability", ylabel="fraction of the class")
    ax.set_title("Scores by true label")
    if p.size or result.thresholds_used:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
