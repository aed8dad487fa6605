"""Detection metrics as small numpy functions: ROC, AUC, EER, AP, threshold rates, calibration.

Conventions shared by every function here:

- ``labels`` are 0/1 with **1 = fake** (the positive class); ``scores`` are "how fake", higher
  meaning more likely fake, usually the calibrated ``fake_probability``.
- A file is called fake when ``score >= threshold``, as the report's verdict does.
- A metric that the data cannot define (AUC with one class only, precision with no file called
  fake) is ``nan``, never an exception, so per-source tables with one-class sources still print.
  Malformed input (labels other than 0/1, non-finite scores, mismatched lengths) is a programming
  error and raises ``ValueError``.

Only numpy is used, so the package needs neither scipy nor scikit-learn at run time; the tests
cross-check against scikit-learn where it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

NAN = float("nan")


def _check(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """Validate and convert to (int8 labels, float64 scores) 1-D arrays of equal length."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(
            f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int8), s


def _class_counts(y: NDArray[np.int8]) -> tuple[int, int]:
    n_pos = int(y.sum())
    return n_pos, int(y.size - n_pos)


def _cumulative_counts(
    y: NDArray[np.int8], s: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """(true positives, false positives, threshold) at each distinct score, highest first.

    One sort serves the ROC, EER and AP, which matters inside a 1000-fold bootstrap. Tied
    scores enter together: only the last index of each run of equal scores is kept.
    """
    order = np.argsort(-s)
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1] if s.size else np.array([], int)
    tps = np.cumsum(y_sorted, dtype=np.int64)[last]
    return tps, last + 1 - tps, s_sorted[last]


def _rates(
    tps: NDArray[np.int64], fps: NDArray[np.int64], n_pos: int, n_neg: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FPR and TPR with the (0, 0) point first; ``nan`` for a rate whose class is absent."""
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    fpr = fps / n_neg if n_neg else np.full(fps.shape, NAN)
    tpr = tps / n_pos if n_pos else np.full(tps.shape, NAN)
    return fpr.astype(np.float64), tpr.astype(np.float64)


def roc_curve(
    labels: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC points at every distinct score, from "nothing is fake" to "everything is fake".

    Returns
    -------
    fpr, tpr, thresholds
        Float arrays of length ``n_distinct_scores + 1``. Point ``i`` is the rates when files with
        ``score >= thresholds[i]`` are called fake; ``thresholds[0]`` is ``inf`` (the (0, 0)
        point). A rate whose class is absent is ``nan`` throughout. Collinear points are kept
        (unlike scikit-learn's default ``drop_intermediate=True``), so EER interpolation sees
        every operating point.
    """
    y, s = _check(labels, scores)
    tps, fps, thresholds = _cumulative_counts(y, s)
    fpr, tpr = _rates(tps, fps, *_class_counts(y))
    return fpr, tpr, np.r_[np.inf, thresholds]


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties sharing the mean of the ranks they span (scipy's ``rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_run = np.r_[True, ordered[1:] != ordered[:-1]]
    run = np.cumsum(starts_run) - 1
    starts = np.flatnonzero(starts_run)
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[run]
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(a random fake scores above a random real), ties counting 1/2.

    Computed as the Mann-Whitney U statistic from average ranks, which equals the trapezoidal
    area under :func:`roc_curve` exactly. ``nan`` with one class only.
    """
    y, s = _check(labels, scores)
    n_pos, n_neg = _class_counts(y)
    if n_pos == 0 or n_neg == 0:
        return NAN
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _eer_from_rates(fpr: NDArray[np.float64], tpr: NDArray[np.float64]) -> float:
    if fpr.size < 2 or np.isnan(fpr[0]) or np.isnan(tpr[0]):
        return NAN
    gap = (1.0 - tpr) - fpr  # starts at 1 (nothing called fake) and ends at -1
    i = int(np.flatnonzero(gap <= 0)[0])
    if gap[i] == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def eer(labels: ArrayLike, scores: ArrayLike) -> float:
    """Equal error rate: where the false-positive and false-negative rates are equal.

    The ROC is a set of points, so FPR and FNR rarely meet exactly at one; we interpolate
    linearly between the two consecutive ROC points that bracket the crossing (FNR - FPR changes
    sign there) and return the common value at the crossing. This does not depend on how finely
    thresholds are sampled. ``nan`` with one class only.
    """
    fpr, tpr, _ = roc_curve(labels, scores)
    return _eer_from_rates(fpr, tpr)


def _ap_from_counts(tps: NDArray[np.int64], fps: NDArray[np.int64], n_pos: int) -> float:
    if n_pos == 0:
        return NAN
    precision = tps / (tps + fps)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision, step-wise: ``sum_n (R_n - R_{n-1}) * P_n`` over distinct thresholds.

    This is scikit-learn's ``average_precision_score`` (no interpolation, which would be
    optimistic). ``nan`` without fakes; 1.0 without reals (every call is right), which callers
    that want "undefined with one class" must mask themselves.
    """
    y, s = _check(labels, scores)
    tps, fps, _ = _cumulative_counts(y, s)
    return _ap_from_counts(tps, fps, _class_counts(y)[0])


def ranking_metrics(labels: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """``auc``, ``eer`` and ``ap`` from one sort, for bootstrap loops; all ``nan`` with one class.

    AUC here is the trapezoidal area under the tie-grouped ROC, equal to :func:`roc_auc`.
    """
    y, s = _check(labels, scores)
    n_pos, n_neg = _class_counts(y)
    if n_pos == 0 or n_neg == 0:
        return {"auc": NAN, "eer": NAN, "ap": NAN}
    tps, fps, _ = _cumulative_counts(y, s)
    fpr, tpr = _rates(tps, fps, n_pos, n_neg)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)
    return {"auc": auc, "eer": _eer_from_rates(fpr, tpr), "ap": _ap_from_counts(tps, fps, n_pos)}


def threshold_metrics(
    labels: ArrayLike, scores: ArrayLike, threshold: float | ArrayLike
) -> dict[str, float]:
    """Accuracy, precision, recall (TPR) and false-positive rate when ``score >= threshold``.

    ``threshold`` may be one number or one per file: without an override each report carries
    its own model's threshold, and an image model and an audio model need not agree.

    Returns
    -------
    dict
        ``accuracy``, ``precision``, ``recall``, ``fpr`` (``nan`` where the denominator is zero:
        precision with nothing called fake, recall without fakes, fpr without reals) and the
        confusion counts ``tp``, ``fp``, ``tn``, ``fn`` as floats.
    """
    y, s = _check(labels, scores)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), s.shape)
    called = s >= thr
    fake = y == 1
    tp = int(np.sum(called & fake))
    fp = int(np.sum(called & ~fake))
    fn = int(np.sum(~called & fake))
    tn = int(np.sum(~called & ~fake))

    def ratio(num: int, den: int) -> float:
        return num / den if den else NAN

    return {
        "accuracy": ratio(tp + tn, y.size),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "fpr": ratio(fp, fp + tn),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
    }


def expected_calibration_error(labels: ArrayLike, probs: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error of a probability of "fake", over equal-width bins.

    File ``i`` falls in bin ``min(floor(p_i * n_bins), n_bins - 1)``; each non-empty bin adds
    ``(n_bin / n) * |acc_bin - conf_bin|`` where ``conf`` is the mean predicted probability of
    fake and ``acc`` the observed fraction of fakes in the bin (a reliability diagram's gap).
    We use the positive-class form (as torchmetrics' ``BinaryCalibrationError``) rather than the
    top-label form because our reports promise that ``fake_probability`` itself is calibrated,
    and because it stays defined on one-class groups (an all-real source should score near 0).
    ``nan`` for no files.
    """
    y, p = _check(labels, probs)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    if y.size == 0:
        return NAN
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    # sum_b (n_b / n) * |mean_y_b - mean_p_b| == sum_b |sum_y_b - sum_p_b| / n
    return float(np.abs(sum_y - sum_p).sum() / y.size)


def _stratified_indices(
    y: NDArray[np.int8], rng: np.random.Generator
) -> Callable[[], NDArray[np.int64]]:
    """A sampler of bootstrap index sets that keep each class's count (so AUC stays defined)."""
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    groups = [g for g in groups if g.size]

    def draw() -> NDArray[np.int64]:
        return np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])

    return draw


def bootstrap_cis(
    fn: Callable[..., Mapping[str, float]],
    labels: ArrayLike,
    scores: ArrayLike,
    *more: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for several metrics computed on the same resamples.

    Parameters
    ----------
    fn
        ``fn(labels, scores, *more) -> {name: value}``, called once per resample.
    labels, scores, *more
        Per-file arrays; ``more`` (e.g. per-file thresholds) is resampled with the same indices.
    n
        Number of resamples. Each keeps the number of reals and of fakes (stratified), so a
        ranking metric is defined in every resample whenever it is on the data.
    seed
        Seed of the resampling; the same seed gives the same intervals.
    alpha
        ``1 - coverage``: 0.05 gives the 2.5th and 97.5th percentiles.

    Returns
    -------
    dict
        ``{name: (low, high)}``. Resamples where a metric is ``nan`` (e.g. precision when nothing
        was called fake) are left out of that metric's percentiles; ``(nan, nan)`` if none is
        finite, or for no files or ``n == 0``.
    """
    y, s = _check(labels, scores)
    extra = [np.asarray(m) for m in more]
    if any(m.shape[:1] != y.shape for m in extra):
        raise ValueError("every extra array must have one entry per file")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    names = list(fn(y, s, *extra))
    if y.size == 0 or n <= 0:
        return {k: (NAN, NAN) for k in names}
    draw = _stratified_indices(y, np.random.default_rng(seed))
    values = np.empty((n, len(names)), dtype=np.float64)
    for r in range(n):
        idx = draw()
        out = fn(y[idx], s[idx], *(m[idx] for m in extra))
        values[r] = [out[k] for k in names]
    intervals = {}
    for j, name in enumerate(names):
        finite = values[:, j][np.isfinite(values[:, j])]
        if finite.size == 0:
            intervals[name] = (NAN, NAN)
        else:
            lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            intervals[name] = (float(lo), float(hi))
    return intervals


def bootstrap_ci(
    fn: Callable[..., float],
    labels: ArrayLike,
    scores: ArrayLike,
    *more: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of one metric ``fn(labels, scores, *more)``.

    Resampling is stratified by class; see :func:`bootstrap_cis` for the details, which this
    wraps for a single metric.
    """
    return bootstrap_cis(
        lambda *a: {"value": fn(*a)}, labels, scores, *more, n=n, seed=seed, alpha=alpha
    )["value"]


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (95 % for ``z = 1.96``).

    For a rate of a few events in a few dozen files (false positives on one real source) it
    stays inside [0, 1] and is not zero-width at ``k = 0``, unlike the normal approximation,
    and it needs no resampling. ``(0, 1)`` when ``n`` is 0: nothing was measured.
    """
    if n == 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


VALIDATION_FPR_BUDGET = 0.025
"""Share of *validation* reals a shipped model's threshold may call fake: half of the 5 % that
the issues promise on unseen people. A few hundred validation reals from a handful of speakers
or sources are a noisy, optimistic estimate: thresholds held at 5 % on validation let 9.6 %
(audio v0.2) and 6.7 % (image v0.1) of test reals through."""


UNCERTAIN_BAND_LOGIT = 0.75
"""Half-width of a shipped model's uncertain band around its threshold, in calibrated logits."""


def uncertain_band(threshold: float, half_width: float = UNCERTAIN_BAND_LOGIT) -> list[float]:
    """``[low, high)`` around ``threshold``, symmetric in logit space.

    Symmetric in logits rather than in probability so that a threshold near 0 or 1 still gets a
    band on both sides (``threshold +- 0.15`` clipped at 1.0 would make "fake" unreachable).
    """
    t = min(max(threshold, 1e-6), 1 - 1e-6)
    z = math.log(t / (1 - t))
    return [1 / (1 + math.exp(-(z - half_width))), 1 / (1 + math.exp(-(z + half_width)))]


def pick_threshold_at_fpr(real_scores: ArrayLike, max_fpr: float) -> float:
    """The lowest threshold that calls at most ``max_fpr`` of these reals fake.

    Used when training to set a model's threshold on validation reals: the lowest such threshold
    catches the most fakes for the false-alarm budget. With ``k = floor(max_fpr * n)`` false
    alarms allowed, the threshold sits just above the ``(k+1)``-th highest real score (the next
    float up, since ``score >= threshold`` is fake); ties can only lower the realised FPR.
    """
    s = np.asarray(real_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("need at least one real score")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError("max_fpr must lie in [0, 1]")
    k = math.floor(max_fpr * s.size + 1e-9)  # 1e-9: 0.1 * 10 must allow 1, not 0
    if k >= s.size:
        return float(s.min())
    kth_highest = np.sort(s)[::-1][k]
    return float(np.nextafter(kth_highest, np.inf))


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _fit_logistic(
    x: NDArray[np.float64], target: NDArray[np.float64], w0: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Minimise mean cross-entropy of ``sigmoid(x @ w)`` against soft targets by damped Newton.

    A handful of parameters and a convex loss: Newton with backtracking converges in a few
    steps, with no optimiser library. A tiny ridge keeps the Hessian invertible when the data
    are separable (the loss then keeps falling as the weights grow, and the iteration cap ends).
    """

    def loss(w: NDArray[np.float64]) -> float:
        z = x @ w
        return float(np.mean(np.logaddexp(0.0, z) - target * z))

    w = w0.astype(np.float64).copy()
    current = loss(w)
    for _ in range(100):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - target) / x.shape[0]
        if np.max(np.abs(grad)) < 1e-10:
            break
        hess = (x.T * (p * (1 - p))) @ x / x.shape[0] + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        rate = 1.0
        while rate > 1e-8:
            candidate = w - rate * step
            new = loss(candidate)
            if new <= current - 1e-4 * rate * float(grad @ step):
                break
            rate /= 2
        else:
            break
        w, current = candidate, new
    return w


def fit_logistic_regression(features: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Weights of ``sigmoid(features @ w[:-1] + w[-1])`` fitted to 0/1 labels (maximum
    likelihood, the damped Newton of :func:`fit_temperature`): for a baseline of a few features,
    not a model. Scale the features first; separable data give large weights, the same ranking.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("features must be (n_files, n_features)")
    y, _ = _check(labels, np.zeros(x.shape[0]))
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    if min(_class_counts(y)) == 0:
        raise ValueError("logistic regression needs both real and fake examples")
    x = np.column_stack([x, np.ones(x.shape[0])])
    return _fit_logistic(x, y.astype(np.float64), np.zeros(x.shape[1]))


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """Temperature ``T`` minimising the log loss of ``sigmoid(logits / T)`` (Guo et al., 2017).

    One parameter, so it cannot reorder scores (AUC and EER are unchanged) and it needs few
    validation files. Returns ``T`` clipped to [0.01, 100]; raises ``ValueError`` when the logits
    are unrelated or inversely related to the labels (no positive temperature helps).
    """
    y, z = _check(labels, logits)
    if y.size == 0:
        raise ValueError("need at least one logit")
    (w,) = _fit_logistic(z[:, None], y.astype(np.float64), np.array([1.0]))
    if w <= 0:
        raise ValueError("logits do not rise with the fake label; temperature scaling cannot help")
    return float(np.clip(1.0 / w, 0.01, 100.0))


def apply_temperature(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Calibrated probabilities ``sigmoid(logits / temperature)``."""
    return _sigmoid(np.asarray(logits, dtype=np.float64) / temperature)


def fit_platt(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` so that ``sigmoid(a * score + b)`` is calibrated.

    Pass logits (or any score on an unbounded scale); for a probability pass its logit. As in
    Platt (1999) the targets are smoothed to ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, which
    keeps the slope finite when validation data are separable and avoids over-confident output.
    """
    y, s = _check(labels, scores)
    n_pos, n_neg = _class_counts(y)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Platt scaling needs both real and fake examples")
    target = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    x = np.column_stack([s, np.ones_like(s)])
    a, b = _fit_logistic(x, target, np.array([1.0, 0.0]))
    return float(a), float(b)


def apply_platt(scores: ArrayLike, a: float, b: float) -> NDArray[np.float64]:
    """Calibrated probabilities ``sigmoid(a * scores + b)``."""
    return _sigmoid(a * np.asarray(scores, dtype=np.float64) + b)


def as_json_number(value: Any) -> float | None:
    """A metric for JSON: ``nan`` and ``inf`` become ``None`` (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
