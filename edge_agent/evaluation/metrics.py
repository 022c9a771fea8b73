"""Error rates, their confidence intervals and significance tests: pure numpy, no model code.

Kept free of I/O and of the recognition core so every number in an evaluation report can be
checked by hand on a few scores. Convention everywhere: a comparison *matches* (or a search
*alerts*) when ``score >= threshold``, the same rule the device applies to watchlist alerts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Two-sided 95 % normal quantile, used for every Wilson interval in the reports.
Z95 = 1.959963984540054


def wilson_interval(errors: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``errors/trials``; (0, 1) when there are no trials.

    Wilson rather than the normal approximation because it stays inside [0, 1] and is honest at
    zero or few errors, which is exactly where alert rates live.
    """
    if trials < 0 or errors < 0 or errors > trials:
        raise ValueError(f"invalid counts: {errors} errors in {trials} trials")
    if trials == 0:
        return 0.0, 1.0
    p = errors / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    lower = 0.0 if errors == 0 else max(0.0, centre - half)
    upper = 1.0 if errors == trials else min(1.0, centre + half)
    return lower, upper


@dataclass(frozen=True)
class Rate:
    """A count of events out of trials, with its 95 % Wilson interval; ``value`` is None with no trials."""

    events: int
    trials: int

    @property
    def value(self) -> float | None:
        return self.events / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.events, self.trials)

    @property
    def lower(self) -> float:
        return self.interval[0]

    @property
    def upper(self) -> float:
        return self.interval[1]

    def as_dict(self) -> dict[str, object]:
        lo, hi = self.interval
        return {"events": self.events, "trials": self.trials, "rate": self.value, "ci95": [lo, hi]}


def _sorted(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).ravel()
    if arr.size and not np.all(np.isfinite(arr) | np.isneginf(arr)):
        raise ValueError("scores contain NaN or +inf")
    return np.sort(arr)


def count_at_or_above(scores: np.ndarray | Sequence[float], thresholds: np.ndarray | Sequence[float]) -> np.ndarray:
    """How many scores are ``>= t`` for each threshold t (vectorised with one sort + searchsorted)."""
    s = _sorted(scores)
    t = np.asarray(thresholds, dtype=np.float64)
    return (s.size - np.searchsorted(s, t, side="left")).astype(np.int64)


def count_below(scores: np.ndarray | Sequence[float], thresholds: np.ndarray | Sequence[float]) -> np.ndarray:
    """How many scores are ``< t`` for each threshold t."""
    s = _sorted(scores)
    t = np.asarray(thresholds, dtype=np.float64)
    return np.searchsorted(s, t, side="left").astype(np.int64)


def false_match_rates(impostor: np.ndarray | Sequence[float], thresholds: Sequence[float]) -> list[Rate]:
    """FMR(t): share of non-mated comparisons scoring ``>= t``."""
    n = int(np.asarray(impostor).size)
    return [Rate(int(k), n) for k in count_at_or_above(impostor, thresholds)]


def false_non_match_rates(genuine: np.ndarray | Sequence[float], thresholds: Sequence[float]) -> list[Rate]:
    """FNMR(t): share of mated comparisons scoring ``< t``."""
    n = int(np.asarray(genuine).size)
    return [Rate(int(k), n) for k in count_below(genuine, thresholds)]


def false_positive_identification_rates(nonmated_top: np.ndarray | Sequence[float], thresholds: Sequence[float]) -> list[Rate]:
    """FPIR(t): share of non-mated searches whose best candidate scores ``>= t`` (an alert on nobody)."""
    return false_match_rates(nonmated_top, thresholds)


def false_negative_identification_rates(mated_hit: np.ndarray | Sequence[float], thresholds: Sequence[float]) -> list[Rate]:
    """FNIR(t): share of mated searches where the mate is not the rank-1 candidate at ``>= t``.

    ``mated_hit`` holds the mate's score when it ranked first and ``-inf`` when someone else
    outranked it, so a wrong rank-1 identity counts as a miss at every threshold.
    """
    return false_non_match_rates(mated_hit, thresholds)


@dataclass(frozen=True)
class OperatingPoint:
    """The lowest threshold whose false-positive rate stays within a target, and the hit rate there.

    ``threshold`` is None when there are too few non-mated trials to resolve the target
    (fewer than ``1/target``): then no threshold can be shown to meet it.
    """

    target: float
    threshold: float | None
    false_positive: Rate | None
    true_positive: Rate | None
    resolvable: bool
    note: str

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "threshold": self.threshold,
            "false_positive": self.false_positive.as_dict() if self.false_positive else None,
            "true_positive": self.true_positive.as_dict() if self.true_positive else None,
            "resolvable": self.resolvable,
            "note": self.note,
        }


def threshold_for_max_false_positives(nonmated: np.ndarray | Sequence[float], allowed: int) -> float:
    """Lowest threshold t with ``count(scores >= t) <= allowed``; ties at the boundary all fall out.

    That is the smallest float strictly above the (allowed+1)-th highest score, or -inf when
    every score may pass.
    """
    s = _sorted(nonmated)
    if allowed >= s.size:
        return float("-inf")
    boundary = s[s.size - 1 - allowed]  # the (allowed+1)-th highest score
    return float(np.nextafter(boundary, np.inf))


def operating_point(genuine: np.ndarray | Sequence[float], impostor: np.ndarray | Sequence[float], target: float) -> OperatingPoint:
    """TAR at FAR = target (or 1 - FNIR at FPIR = target): threshold, achieved false rate, hit rate.

    Ties: every impostor scoring exactly at the boundary would cross together, so the threshold
    goes just above them and the achieved rate may be below the target.
    """
    imp = np.asarray(impostor, dtype=np.float64).ravel()
    gen = np.asarray(genuine, dtype=np.float64).ravel()
    n = imp.size
    if n == 0 or n * target < 1.0:
        needed = math.ceil(1.0 / target)
        return OperatingPoint(target, None, None, None, False,
                              f"{n} non-mated comparisons cannot resolve a rate of {target:g}; at least {needed} are needed")
    allowed = math.floor(n * target + 1e-9)
    t = threshold_for_max_false_positives(imp, allowed)
    fp = Rate(int(count_at_or_above(imp, [t])[0]), n)
    tp = Rate(int(count_at_or_above(gen, [t])[0]), gen.size)
    note = "" if fp.events else "no non-mated comparison scores this high: the rate is known only up to its upper bound"
    return OperatingPoint(target, t, fp, tp, True, note)


def det_points(genuine: np.ndarray | Sequence[float], impostor: np.ndarray | Sequence[float], max_points: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, false-positive rate, false-negative rate) along every distinct score, thinned for plotting."""
    gen = _sorted(genuine)
    imp = _sorted(impostor)
    finite = np.concatenate([gen[np.isfinite(gen)], imp[np.isfinite(imp)]])
    if finite.size == 0 or imp.size == 0 or gen.size == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    thresholds = np.unique(finite)
    if thresholds.size > max_points:
        # keep the tails dense: quantiles of the impostor side matter most at low FMR
        idx = np.unique(np.concatenate([
            np.linspace(0, thresholds.size - 1, max_points // 2).astype(int),
            np.searchsorted(thresholds, imp[-min(imp.size, max_points // 2):]),
        ]).clip(0, thresholds.size - 1))
        thresholds = thresholds[idx]
    fpr = (imp.size - np.searchsorted(imp, thresholds, side="left")) / imp.size
    fnr = np.searchsorted(gen, thresholds, side="left") / gen.size
    return thresholds, fpr, fnr


def fisher_greater_pvalue(events_a: int, trials_a: int, events_b: int, trials_b: int) -> float:
    """One-sided Fisher exact test p-value for 'rate of A is greater than rate of B'.

    Exact (hypergeometric) so that it stays valid with the handful of false alerts a small
    group produces, where a z-test's normal approximation is not.
    """
    for e, t in ((events_a, trials_a), (events_b, trials_b)):
        if t < 0 or e < 0 or e > t:
            raise ValueError(f"invalid counts: {e} events in {t} trials")
    total = trials_a + trials_b
    successes = events_a + events_b
    if trials_a == 0 or trials_b == 0 or successes == 0:
        return 1.0
    hi = min(successes, trials_a)
    lo = max(0, successes - trials_b)
    if events_a <= lo:
        return 1.0

    def log_pmf(x: int) -> float:
        return (_log_comb(successes, x) + _log_comb(total - successes, trials_a - x) - _log_comb(total, trials_a))

    xs = np.arange(events_a, hi + 1, dtype=np.float64)
    # ratio pmf(x+1)/pmf(x) = (K-x)(n-x) / ((x+1)(N-K-n+x+1)); cumulate in log space
    log_ratios = (np.log(successes - xs[:-1]) + np.log(trials_a - xs[:-1])
                  - np.log(xs[:-1] + 1) - np.log(total - successes - trials_a + xs[:-1] + 1))
    logs = log_pmf(events_a) + np.concatenate([[0.0], np.cumsum(log_ratios)])
    peak = logs.max()
    return float(min(1.0, math.exp(peak) * np.exp(logs - peak).sum()))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control without Bonferroni's waste)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
