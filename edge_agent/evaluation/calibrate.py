"""Threshold calibration: the lowest threshold whose FPIR, at the deployment's watchlist size,
keeps expected false alerts within the authorised budget.

Conservative by construction: the FPIR that must fit the budget is the *upper* 95 % Wilson bound,
not the point estimate, so a small evaluation cannot certify a tight budget by luck. Output is the
``edge-agent-calibration`` record (docs/formats/calibration.md) that a deployment can cite by the
SHA-256 of its file. Version 2 (written now) is that file's one spelling: the RFC 8785 bytes of the
record and a line feed, with the one timestamp form; version 1 (indented JSON) is still read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from edge_agent.crypto.canonical import jcs
from edge_agent.errors import EdgeAgentError
from edge_agent.evaluation import metrics
from edge_agent.evaluation.identification import IdentificationScores
from edge_agent.evaluation.metrics import Rate
from edge_agent.timestamps import format_timestamp
from edge_agent.version import tool_version

CALIBRATION_FORMAT = "edge-agent-calibration"
CALIBRATION_VERSION = 2
READABLE_CALIBRATION_VERSIONS = (1, 2)
#: Thresholds are rounded *up* to this many decimals: readable, and never more permissive.
THRESHOLD_DECIMALS = 4


class CalibrationError(EdgeAgentError):
    """The budget, watchlist size or evaluation cannot support a calibration."""


@dataclass(frozen=True)
class Budget:
    """Authorised false alerts per face seen, e.g. '1/6000'."""

    rate: float
    text: str


def parse_budget(text: str) -> Budget:
    """Accept '1/6000', '1 in 6000' or a plain rate such as '0.000167'."""
    raw = text.strip()
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:/|in)\s*([0-9][0-9_,]*\.?[0-9]*)\s*", raw)
    try:
        rate = float(m.group(1)) / float(m.group(2).replace(",", "").replace("_", "")) if m else float(raw)
    except (ValueError, ZeroDivisionError):
        rate = float("nan")
    if not (0.0 < rate < 1.0):
        raise CalibrationError(f"false-alert budget {text!r} is not a rate between 0 and 1",
                               "write it as false alerts per faces, e.g. --budget 1/6000")
    return Budget(rate, raw)


def max_errors_within(budget: float, trials: int) -> int | None:
    """Largest error count whose upper Wilson bound is <= budget; None if even zero is too many."""
    if trials == 0 or metrics.wilson_interval(0, trials)[1] > budget:
        return None
    lo, hi = 0, trials
    while lo < hi:  # upper bound grows with k: binary search the last k that fits
        mid = (lo + hi + 1) // 2
        if metrics.wilson_interval(mid, trials)[1] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def searches_needed(budget: float) -> int:
    """Non-mated searches needed before zero false alerts can show FPIR <= budget (upper bound)."""
    z2 = metrics.Z95 ** 2
    return math.ceil(z2 * (1 - budget) / budget)


def choose_scores(available: list[IdentificationScores], watchlist_size: int) -> IdentificationScores:
    """The evaluated watchlist at least as large as the deployment's (FPIR grows with size)."""
    fits = [s for s in available if s.watchlist_size >= watchlist_size]
    if not fits:
        largest = max((s.watchlist_size for s in available), default=0)
        raise CalibrationError(
            f"the evaluation covers watchlists of at most {largest:,} subjects; the deployment's has {watchlist_size:,}",
            "FPIR grows with watchlist size: evaluate on a dataset with at least that many subjects "
            "(edge-agent evaluate DATASET --watchlist-sizes N)")
    return min(fits, key=lambda s: s.watchlist_size)


def calibrate(scores: IdentificationScores, budget: Budget, watchlist_size: int, footfall: int,
              now: datetime, evaluation_sha256: str | None, model: dict[str, Any] | None,
              evaluation_set_sha256: str | None = None) -> dict[str, Any]:
    """The calibration record; ``recommended_threshold`` is None (with the reason) when none is supported."""
    if footfall <= 0:
        raise CalibrationError(f"footfall {footfall} must be a positive number of faces", "estimate faces expected over the deployment")
    nonmated = scores.nonmated_top
    n = int(nonmated.size)
    record: dict[str, Any] = {
        "format": CALIBRATION_FORMAT,
        "version": CALIBRATION_VERSION,
        "created_at": format_timestamp(now),
        "tool_version": tool_version(),
        "evaluation_report_sha256": evaluation_sha256,
        "evaluation_set_sha256": evaluation_set_sha256,
        "model": model,
        "watchlist_size": watchlist_size,
        "evaluated_watchlist_size": scores.watchlist_size,
        "footfall": footfall,
        "budget": {"text": budget.text, "false_alerts_per_face": budget.rate, "false_alerts_at_footfall": budget.rate * footfall},
        "rule": "lowest threshold whose upper 95% Wilson bound of FPIR is <= the budget (conservative)",
        "nonmated_searches": n,
        "mated_searches": int(scores.mated_hit.size),
        "recommended_threshold": None,
        "fpir_upper95": None,
        "fpir": None,
        "fnir": None,
        "expected_false_alerts": None,
        "reason": "",
    }
    allowed = max_errors_within(budget.rate, n)
    if allowed is None:
        record["reason"] = (f"{n:,} non-mated searches cannot show FPIR <= {budget.rate:.3g}: even with no false alerts the upper "
                            f"95% bound is {metrics.wilson_interval(0, n)[1]:.3g}; at least {searches_needed(budget.rate):,} are needed")
        return record
    exact = metrics.threshold_for_max_false_positives(nonmated, allowed)
    threshold = -1.0 if not math.isfinite(exact) else math.ceil(exact * 10**THRESHOLD_DECIMALS) / 10**THRESHOLD_DECIMALS
    fpir = Rate(int(np.count_nonzero(nonmated >= threshold)), n)
    fnir = Rate(int(np.count_nonzero(scores.mated_hit < threshold)), int(scores.mated_hit.size))
    record.update({
        "recommended_threshold": threshold,
        "fpir_upper95": fpir.upper,
        "fpir": fpir.as_dict(),
        "fnir": fnir.as_dict(),
        "expected_false_alerts": {"point": (fpir.value or 0.0) * footfall, "upper95": fpir.upper * footfall},
        "reason": f"FPIR upper bound {fpir.upper:.3g} <= budget {budget.rate:.3g} at {threshold:g}",
    })
    return record


def encode_calibration(record: dict[str, Any]) -> bytes:
    """The report file's exact bytes (version 2): ``jcs(record) + b"\\n"``. Its SHA-256 is the
    ``report_sha256`` a deployment cites, so this is the only spelling ``calibrate`` writes or a
    deployment accepts."""
    return jcs(record) + b"\n"
