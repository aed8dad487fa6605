"""Metrics against values worked out by hand (and scikit-learn where it is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepfakescan.evaluation.metrics import (
    UNCERTAIN_BAND_LOGIT,
    apply_platt,
    apply_temperature,
    average_precision,
    bootstrap_ci,
    bootstrap_cis,
    eer,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    pick_threshold_at_fpr,
    ranking_metrics,
    roc_auc,
    roc_curve,
    threshold_metrics,
    uncertain_band,
)

# scikit-learn's documentation example: AUC 0.75, AP 0.8333
DOC_LABELS = [0, 0, 1, 1]
DOC_SCORES = [0.1, 0.4, 0.35, 0.8]


def test_roc_curve_lists_every_distinct_threshold_from_inf():
    fpr, tpr, thr = roc_curve(DOC_LABELS, DOC_SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_curve_moves_tied_scores_together():
    fpr, tpr, thr = roc_curve([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.5, 0.2])


def test_roc_auc_of_documented_example():
    assert roc_auc(DOC_LABELS, DOC_SCORES) == pytest.approx(0.75)


def test_roc_auc_counts_ties_as_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    # fake 0.5 beats real 0.2 (1) and ties real 0.5 (1/2); fake 0.9 beats both (2): 3.5 / 4
    assert roc_auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.875)


def test_roc_auc_equals_mann_whitney_and_trapezoid_area():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes many ties
    pos, neg = s[y == 1], s[y == 0]
    u = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(y, s) == pytest.approx(u / (pos.size * neg.size))
    fpr, tpr, _ = roc_curve(y, s)
    assert roc_auc(y, s) == pytest.approx(np.trapezoid(tpr, fpr))


def test_ranking_metrics_from_one_sort_agree_with_the_single_functions():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + y, 1)
    m = ranking_metrics(y, s)
    assert m["auc"] == pytest.approx(roc_auc(y, s))
    assert m["eer"] == pytest.approx(eer(y, s))
    assert m["ap"] == pytest.approx(average_precision(y, s))
    assert all(math.isnan(v) for v in ranking_metrics([1, 1], [0.2, 0.3]).values())


def test_eer_interpolates_between_the_bracketing_roc_points():
    # ROC points (fpr, fnr): (0, 1), (0, .5), (.5, 0), (1, 0). FNR - FPR goes from +.5 to -.5
    # between the 2nd and 3rd points, halfway: fpr = fnr = 0.25.
    assert eer([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.8]) == pytest.approx(0.25)


def test_eer_where_rates_meet_at_a_roc_point():
    # points (fpr, fnr): (0, 1), (0, .5), (.5, .5), ...: equal at 0.5 exactly
    assert eer([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)


def test_eer_of_perfect_and_inverted_detectors():
    assert eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert eer([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0


def test_average_precision_of_documented_example():
    assert average_precision(DOC_LABELS, DOC_SCORES) == pytest.approx(5 / 6)


def test_average_precision_is_stepwise_over_distinct_thresholds():
    # 0.9 fake: P=1, R=.5; 0.8 real: R unchanged; 0.3 tie (fake, real): P=2/4, R=1 -> .5 + .25
    assert average_precision([1, 0, 1, 0, 0], [0.9, 0.8, 0.3, 0.3, 0.1]) == pytest.approx(0.75)


def test_threshold_metrics_count_score_equal_to_threshold_as_fake():
    m = threshold_metrics([0, 0, 1, 1, 1], [0.2, 0.6, 0.5, 0.7, 0.4], 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["fpr"] == pytest.approx(1 / 2)


def test_threshold_metrics_accept_one_threshold_per_file():
    m = threshold_metrics([0, 1], [0.6, 0.6], [0.7, 0.5])
    assert (m["fp"], m["tp"]) == (0, 1)


def test_threshold_metrics_undefined_rates_are_nan_not_errors():
    all_real = threshold_metrics([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.9], 0.5)
    assert all_real["fpr"] == 0.25 and math.isnan(all_real["recall"])
    nothing_called = threshold_metrics([0, 1], [0.1, 0.2], 0.5)
    assert math.isnan(nothing_called["precision"]) and nothing_called["recall"] == 0


def test_ece_weights_each_bin_gap_by_its_share_of_files():
    # four bins with one file each: (.05 + .15 + .15 + .05) / 4
    assert expected_calibration_error([0, 0, 1, 1], [0.05, 0.15, 0.85, 0.95]) == pytest.approx(0.1)
    # one bin: mean probability .75, observed fraction of fakes .5
    assert expected_calibration_error([1, 0], [0.72, 0.78]) == pytest.approx(0.25)
    # 2 files in bin 1 (gap |0 - .15| * 2/4) and 2 in bin 9 (gap |1 - .95| * 2/4)
    ece = expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.9, 1.0])
    assert ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.05)


def test_one_class_or_empty_input_gives_nan_for_ranking_metrics():
    for fn in (roc_auc, eer):
        assert math.isnan(fn([0, 0, 0], [0.1, 0.5, 0.9]))
        assert math.isnan(fn([1, 1], [0.1, 0.5]))
        assert math.isnan(fn([], []))
    assert math.isnan(average_precision([0, 0], [0.3, 0.4]))
    assert math.isnan(expected_calibration_error([], []))


@pytest.mark.parametrize(
    ("labels", "scores"),
    [([0, 2], [0.1, 0.2]), ([0, 1], [0.1, float("nan")]), ([0, 1], [0.1])],
)
def test_malformed_input_raises_value_error(labels, scores):
    with pytest.raises(ValueError):
        roc_auc(labels, scores)


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    s = rng.normal(size=400) + 1.5 * y
    ci = bootstrap_ci(roc_auc, y, s, n=300, seed=7)
    assert ci == bootstrap_ci(roc_auc, y, s, n=300, seed=7)
    assert ci[0] < roc_auc(y, s) < ci[1]
    assert ci[1] - ci[0] < 0.15


def test_bootstrap_keeps_both_classes_in_every_resample():
    y = np.r_[np.zeros(50, int), 1]  # one fake: unstratified resamples would often lose it
    s = np.r_[np.linspace(0, 0.5, 50), 0.9]
    calls = []

    def auc_checked(yy, ss):
        calls.append(int(yy.sum()))
        return roc_auc(yy, ss)

    assert bootstrap_ci(auc_checked, y, s, n=100, seed=0) == (1.0, 1.0)
    assert set(calls) == {1}


def test_bootstrap_of_undefined_metric_is_nan_and_defined_ones_survive():
    y, s = np.zeros(20, int), np.linspace(0, 1, 20)
    cis = bootstrap_cis(
        lambda yy, ss: {"auc": roc_auc(yy, ss), "fpr": threshold_metrics(yy, ss, 0.5)["fpr"]},
        y,
        s,
        n=200,
    )
    assert all(math.isnan(v) for v in cis["auc"])
    assert 0 < cis["fpr"][0] < 0.5 < cis["fpr"][1] < 1


def test_bootstrap_resamples_extra_arrays_with_the_same_indices():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.6, 0.1, 0.6, 0.9])
    thresholds = np.array([0.7, 0.7, 0.5, 0.5])  # per-file: the 0.6 real is below its threshold
    ci = bootstrap_ci(
        lambda yy, ss, tt: threshold_metrics(yy, ss, tt)["accuracy"], y, s, thresholds
    )
    assert ci == (1.0, 1.0)


def test_pick_threshold_at_fpr_allows_exactly_the_budget():
    reals = np.linspace(0.1, 1.0, 10)
    t = pick_threshold_at_fpr(reals, 0.1)
    assert np.mean(reals >= t) == pytest.approx(0.1)
    assert 0.9 < t < 0.9 + 1e-9  # the lowest such threshold: any lower lets 0.9 through
    assert np.mean(reals >= pick_threshold_at_fpr(reals, 0.0)) == 0.0
    assert np.mean(reals >= pick_threshold_at_fpr(reals, 0.25)) == pytest.approx(0.2)


def test_pick_threshold_at_fpr_never_exceeds_budget_with_ties():
    reals = np.array([0.2, 0.5, 0.5, 0.5, 0.9])
    t = pick_threshold_at_fpr(reals, 0.5)  # two false alarms allowed, the tie holds three
    assert np.mean(reals >= t) <= 0.5
    assert 0.5 < t < 0.9


def _overconfident(seed: int = 0, n: int = 4000):
    """Labels drawn from sigmoid(z), but the model reports 3 z: three times too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 3.0 * z, y


def test_temperature_scaling_recovers_the_overconfidence_and_lowers_ece():
    logits, y = _overconfident()
    before = expected_calibration_error(y, apply_temperature(logits, 1.0))
    t = fit_temperature(logits, y)
    after = expected_calibration_error(y, apply_temperature(logits, t))
    assert t == pytest.approx(3.0, rel=0.15)
    assert after < before / 2 and after < 0.04
    assert roc_auc(y, apply_temperature(logits, t)) == pytest.approx(roc_auc(y, logits))


def test_platt_scaling_removes_scale_and_shift_and_lowers_ece():
    logits, y = _overconfident(seed=1)
    scores = logits + 2.0
    before = expected_calibration_error(y, apply_platt(scores, 1.0, 0.0))
    a, b = fit_platt(scores, y)
    after = expected_calibration_error(y, apply_platt(scores, a, b))
    assert a == pytest.approx(1 / 3, rel=0.15) and b == pytest.approx(-2 / 3, abs=0.2)
    assert after < before / 2 and after < 0.04


def test_platt_stays_finite_on_separable_data():
    a, b = fit_platt([-2.0, -1.0, 1.0, 2.0], [0, 0, 1, 1])
    assert math.isfinite(a) and math.isfinite(b) and a > 0


def test_metrics_agree_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) * 0.6 + 0.4 * y, 2)
    assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))
    fpr, tpr, thr = roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])


@pytest.mark.parametrize("threshold", [0.02, 0.5, 0.874, 0.995])
def test_uncertain_band_leaves_both_verdicts_reachable_whatever_the_threshold(threshold):
    low, high = uncertain_band(threshold)
    assert 0.0 < low < threshold < high < 1.0
    z = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert z(threshold) - z(low) == pytest.approx(UNCERTAIN_BAND_LOGIT)
    assert z(high) - z(threshold) == pytest.approx(UNCERTAIN_BAND_LOGIT)
