"""Metric code against hand-computed answers on small score sets."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edge_agent.evaluation import metrics
from edge_agent.evaluation.metrics import Rate


@pytest.mark.parametrize(
    "k, n, lower, upper",
    [
        # roots of (k/n - p)^2 n = z^2 p (1 - p), solved separately (numpy.roots); 5/10 and 0/10
        # also match statsmodels proportion_confint(method="wilson")
        (5, 10, 0.2365931, 0.7634069),
        (0, 10, 0.0, 0.2775328),
        (10, 10, 0.7224672, 1.0),
        (1, 100, 0.0017674, 0.0544862),
        (81, 263, 0.2552885, 0.3662096),
    ],
)
def test_wilson_interval_matches_reference_values(k, n, lower, upper):
    lo, hi = metrics.wilson_interval(k, n)
    assert lo == pytest.approx(lower, abs=1e-6)
    assert hi == pytest.approx(upper, abs=1e-6)


def test_wilson_interval_edge_cases():
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        metrics.wilson_interval(3, 2)
    r = Rate(0, 0)
    assert r.value is None and r.as_dict()["ci95"] == [0.0, 1.0]


IMPOSTOR = [0.1, 0.2, 0.3, 0.4, 0.5]
GENUINE = [0.3, 0.5, 0.7, 0.9]


def test_fmr_fnmr_at_thresholds_count_ties_as_matches():
    thresholds = [0.0, 0.3, 0.35, 0.5, 0.95]
    fmr = [r.events for r in metrics.false_match_rates(IMPOSTOR, thresholds)]
    fnmr = [r.events for r in metrics.false_non_match_rates(GENUINE, thresholds)]
    assert fmr == [5, 3, 2, 1, 0]  # score >= t is a match
    assert fnmr == [0, 0, 1, 1, 4]  # score < t is a non-match
    assert all(r.trials == 5 for r in metrics.false_match_rates(IMPOSTOR, thresholds))
    assert metrics.false_non_match_rates(GENUINE, [0.35])[0].value == 0.25


def test_tar_at_far_without_ties():
    impostor = np.arange(100) / 100.0  # 0.00 .. 0.99
    genuine = [0.95, 0.985, 0.99, 1.0]
    op = metrics.operating_point(genuine, impostor, 0.01)
    assert op.resolvable
    assert op.false_positive == Rate(1, 100)  # only 0.99 passes
    assert 0.98 < op.threshold <= 0.99
    assert op.true_positive == Rate(3, 4)  # 0.985 >= threshold? yes; 0.95 no


def test_tar_at_far_with_ties_puts_threshold_above_the_tied_block():
    impostor = [0.1] * 97 + [0.8] * 3
    genuine = [0.75, 0.8, 0.85, 0.9]
    op = metrics.operating_point(genuine, impostor, 0.02)  # 2 false accepts allowed; 3 tie at 0.8
    assert op.threshold > 0.8
    assert op.false_positive == Rate(0, 100)  # admitting any of the tie would admit all three
    assert op.true_positive == Rate(2, 4)  # 0.8 itself is no longer accepted


def test_tar_at_far_says_when_impostors_are_too_few():
    op = metrics.operating_point([0.9], np.linspace(0, 0.5, 50), 1e-3)
    assert not op.resolvable and op.threshold is None and op.true_positive is None
    assert "1000" in op.note


def test_fpir_fnir_with_rank_one_misses():
    nonmated_top = [0.2, 0.6, 0.7]
    mated_hit = [0.9, -math.inf, 0.5]  # second probe: someone else ranked first
    fpir = metrics.false_positive_identification_rates(nonmated_top, [0.0, 0.6, 0.95])
    fnir = metrics.false_negative_identification_rates(mated_hit, [0.0, 0.6, 0.95])
    assert [r.events for r in fpir] == [3, 2, 0]
    assert [r.events for r in fnir] == [1, 2, 3]  # the rank-1 miss counts at every threshold


def test_threshold_for_max_false_positives():
    scores = [0.1, 0.5, 0.5, 0.9]
    t = metrics.threshold_for_max_false_positives(scores, 1)
    assert 0.5 < t < 0.9 and metrics.count_at_or_above(scores, [t])[0] == 1
    t2 = metrics.threshold_for_max_false_positives(scores, 2)  # the 0.5 tie cannot be split
    assert metrics.count_at_or_above(scores, [t2])[0] == 1
    assert metrics.threshold_for_max_false_positives(scores, 4) == -math.inf


def _fisher_brute(a, n1, b, n2):
    total, succ = n1 + n2, a + b
    denom = math.comb(total, n1)
    return sum(math.comb(succ, x) * math.comb(total - succ, n1 - x) for x in range(a, min(succ, n1) + 1)) / denom


def test_fisher_one_sided_known_value():
    # P(X >= 3), N=20, K=3, n=10: C(10,3)/C(20,3) = 120/1140
    assert metrics.fisher_greater_pvalue(3, 10, 0, 10) == pytest.approx(120 / 1140)
    assert metrics.fisher_greater_pvalue(0, 10, 3, 10) == 1.0


def test_fisher_matches_brute_force_on_random_tables():
    rng = random.Random(4)
    for _ in range(200):
        n1, n2 = rng.randint(1, 40), rng.randint(1, 40)
        a, b = rng.randint(0, n1), rng.randint(0, n2)
        assert metrics.fisher_greater_pvalue(a, n1, b, n2) == pytest.approx(_fisher_brute(a, n1, b, n2), rel=1e-9, abs=1e-12)


def test_fisher_handles_large_counts():
    p = metrics.fisher_greater_pvalue(60, 100_000, 300, 900_000)  # 6e-4 vs 3.3e-4
    assert 0 < p < 1e-3
    assert metrics.fisher_greater_pvalue(30, 100_000, 300, 900_000) > 0.3


def test_holm_adjustment():
    assert metrics.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert metrics.holm_adjust([0.5]) == [0.5]
    assert metrics.holm_adjust([]) == []


def test_det_points_are_monotone():
    rng = np.random.default_rng(0)
    t, fpr, fnr = metrics.det_points(rng.normal(0.7, 0.1, 500), rng.normal(0.1, 0.1, 5000))
    assert len(t) == len(fpr) == len(fnr) > 10
    assert np.all(np.diff(fpr) <= 0) and np.all(np.diff(fnr) >= 0)
