"""Release gate: fail when FPIR at the chosen threshold could be over the false-alert budget, or
when any demographic group's FPIR is significantly above everyone else's.

Test for "significantly above" (docs/evaluation.md explains the choice): for each group, a
one-sided Fisher exact test of the group's false alerts against those of all other non-mated
searches, with Holm-Bonferroni correction across groups at family-wise alpha = 0.05. Exact, so it
is valid for the handful of false alerts a small group produces; group-versus-rest, so a group is
never compared with a total that contains it; Holm, so adding groups cannot manufacture a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.evaluation import metrics
from edge_agent.evaluation.calibrate import searches_needed
from edge_agent.evaluation.identification import IdentificationScores
from edge_agent.evaluation.metrics import Rate

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class GroupTest:
    group: str
    fpir: Rate
    rest: Rate  # every non-mated search not in this group
    p_value: float
    p_holm: float
    significant: bool

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "fpir": self.fpir.as_dict(), "rest": self.rest.as_dict(),
                "p_value": self.p_value, "p_holm": self.p_holm, "significant": self.significant}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    threshold: float
    budget: float
    watchlist_size: int
    fpir: Rate
    groups: tuple[GroupTest, ...]
    alpha: float

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "threshold": self.threshold,
            "budget": self.budget,
            "watchlist_size": self.watchlist_size,
            "fpir": self.fpir.as_dict(),
            "budget_rule": "upper 95% Wilson bound of FPIR <= budget",
            "group_rule": f"one-sided Fisher exact test, group vs rest, Holm-corrected, alpha={self.alpha}",
            "groups": [g.as_dict() for g in self.groups],
        }


def group_tests(scores: IdentificationScores, group_names: Sequence[str], threshold: float,
                alpha: float = DEFAULT_ALPHA) -> tuple[GroupTest, ...]:
    """Fisher one-sided group-vs-rest tests of FPIR at ``threshold``, Holm-adjusted."""
    alerted = scores.nonmated_top >= threshold
    raw = []
    for k, name in enumerate(group_names):
        in_group = scores.nonmated_group == k
        if not in_group.any():
            continue
        g = Rate(int(alerted[in_group].sum()), int(in_group.sum()))
        rest = Rate(int(alerted[~in_group].sum()), int((~in_group).sum()))
        raw.append((name, g, rest, metrics.fisher_greater_pvalue(g.events, g.trials, rest.events, rest.trials)))
    adjusted = metrics.holm_adjust([p for *_, p in raw])
    return tuple(GroupTest(name, g, rest, p, q, q < alpha) for (name, g, rest, p), q in zip(raw, adjusted, strict=True))


def release_gate(scores: IdentificationScores, group_names: Sequence[str], threshold: float, budget: float,
                 alpha: float = DEFAULT_ALPHA) -> GateResult:
    fpir = Rate(int(np.count_nonzero(scores.nonmated_top >= threshold)), int(scores.nonmated_top.size))
    reasons: list[str] = []
    if fpir.trials == 0:
        reasons.append("no non-mated searches: FPIR cannot be measured")
    elif fpir.upper > budget:
        reasons.append(
            f"FPIR at threshold {threshold:g} with a {scores.watchlist_size:,}-subject watchlist is "
            f"{fpir.events}/{fpir.trials} = {fpir.value:.3g} (95% CI {fpir.lower:.3g}-{fpir.upper:.3g}); "
            f"the upper bound is over the budget {budget:.3g}"
            + (f" (too few non-mated searches to show the budget is met: with no false alerts at least {searches_needed(budget):,} are needed)"
               if fpir.value is not None and fpir.value <= budget else ""))
    tests = group_tests(scores, group_names, threshold, alpha) if len(group_names) > 1 else ()
    for t in tests:
        if t.significant:
            reasons.append(
                f"group {t.group!r}: FPIR {t.fpir.events}/{t.fpir.trials} = {t.fpir.value:.3g} is significantly above the "
                f"rest {t.rest.events}/{t.rest.trials} = {t.rest.value:.3g} (Fisher one-sided, Holm-adjusted p = {t.p_holm:.2g} < {alpha})")
    return GateResult(not reasons, tuple(reasons), threshold, budget, scores.watchlist_size, fpir, tests, alpha)
