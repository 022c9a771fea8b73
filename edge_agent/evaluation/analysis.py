"""From embeddings to the evaluation report (report.json, format ``edge-agent-evaluation`` v1).

Runs both protocols once and sweeps every threshold and watchlist size over the same scores, so
nothing is re-embedded; the raw 1:N scores go into the report so calibration and the release gate
can be recomputed exactly from the file a force keeps (docs/formats/evaluation-report.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD
from edge_agent.evaluation import metrics
from edge_agent.evaluation.dataset import UNLABELLED_GROUP
from edge_agent.evaluation.identification import (
    IdentificationScores,
    identification_scores,
    max_watchlist_size,
    split_watchlist,
)
from edge_agent.evaluation.metrics import Rate
from edge_agent.evaluation.runner import EmbeddedDataset
from edge_agent.library_pins import installed, scored_versions
from edge_agent.evaluation.verification import (
    DEFAULT_MAX_IMPOSTOR_PAIRS,
    VerificationScores,
    verification_scores,
)

REPORT_FORMAT = "edge-agent-evaluation"
REPORT_VERSION = 1
DEFAULT_THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.01))
DEFAULT_WATCHLIST_SIZES = (1000, 10000)
FAR_TARGETS = (1e-2, 1e-3, 1e-4)
FPIR_TARGETS = (1e-2, 3e-3, 1e-3)
#: Operating threshold for the group differential summary when none is given: the device's calibrated
#: default (one place it lives); a deployment should always pass its own --threshold.
FALLBACK_OPERATING_THRESHOLD = CALIBRATED_DEFAULT_THRESHOLD


@dataclass(frozen=True)
class EvaluationSettings:
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    watchlist_sizes: tuple[int, ...] = DEFAULT_WATCHLIST_SIZES
    operating_threshold: float | None = None
    enrol_per_subject: int = 1
    seed: int = 0
    max_impostor_pairs: int = DEFAULT_MAX_IMPOSTOR_PAIRS


@dataclass(frozen=True)
class Evaluation:
    """The report dictionary plus the raw score arrays the plots need (not all go into JSON)."""

    report: dict[str, Any]
    verification: VerificationScores
    identification: tuple[IdentificationScores, ...]
    group_names: tuple[str, ...] = field(default=())


def _rates(rates: Sequence[Rate]) -> list[dict[str, object]]:
    return [r.as_dict() for r in rates]


def _sweep(thresholds: Sequence[float], **series: Sequence[Rate]) -> list[dict[str, object]]:
    rows = []
    for i, t in enumerate(thresholds):
        row: dict[str, object] = {"threshold": t}
        for name, rates in series.items():
            row[name] = rates[i].as_dict()
        rows.append(row)
    return rows


def _rate_at(scores: np.ndarray, threshold: float, *, below: bool = False) -> Rate:
    counts = metrics.count_below(scores, [threshold]) if below else metrics.count_at_or_above(scores, [threshold])
    return Rate(int(counts[0]), int(np.asarray(scores).size))


def _differential(overall: Rate, per_group: dict[str, Rate]) -> dict[str, object]:
    """Each group's rate over the overall rate, and the largest ratio (None when overall is zero)."""
    ratios: dict[str, float | None] = {}
    for g, r in per_group.items():
        ratios[g] = (r.value / overall.value) if (overall.value and r.value is not None) else None
    finite = {g: v for g, v in ratios.items() if v is not None}
    worst = max(finite, key=lambda g: finite[g]) if finite else None
    return {
        "overall": overall.as_dict(),
        "groups": {g: {**r.as_dict(), "ratio_to_overall": ratios[g]} for g, r in per_group.items()},
        "max_ratio": {"group": worst, "ratio": finite[worst] if worst else None},
    }


def analyse(embedded: EmbeddedDataset, groups: dict[str, str] | None, settings: EvaluationSettings,
            dataset_info: dict[str, Any], now: datetime) -> Evaluation:
    thresholds = list(settings.thresholds)
    identities = embedded.identities.astype(str)
    id_names, id_codes = np.unique(identities, return_inverse=True)
    id_codes = id_codes.astype(np.int64)
    code_of = {name: k for k, name in enumerate(id_names.tolist())}
    group_of = groups or {}
    image_groups = [group_of.get(i, UNLABELLED_GROUP) for i in identities.tolist()]
    group_names = tuple(sorted(set(image_groups))) if groups else ()
    group_index = {g: k for k, g in enumerate(group_names)}
    grp_codes = np.array([group_index[g] for g in image_groups], np.int64) if groups else np.zeros(len(identities), np.int64)
    ok = embedded.probe_ok
    enrolment = {code_of[identity]: indices for identity, indices in embedded.enrolment.items()}

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created_at": now.isoformat(),
        "dataset": dataset_info,
        "model": embedded.model,
        # Not in "model": a calibration's model must match the device's, and a patch release of a
        # library must not refuse a watchlist; recorded so the evidence says what made the scores.
        "libraries": installed(scored_versions()),
        "protocol": {
            "match_rule": "score >= threshold (cosine similarity)",
            "interval": "Wilson score, 95%",
            "seed": settings.seed,
            "enrol_per_subject": settings.enrol_per_subject,
            "max_impostor_pairs": settings.max_impostor_pairs,
        },
        "groups": list(group_names) if groups else [],
        "thresholds": thresholds,
        "enrolment": _enrolment_section(embedded),
        "notes": [],
    }

    ver = verification_scores(embedded.probe[ok], id_codes[ok], grp_codes[ok], settings.max_impostor_pairs, settings.seed)
    report["verification"] = _verification_section(ver, thresholds, group_names if groups else ())
    if ver.sampled:
        report["notes"].append(f"1:1 non-mated pairs sampled: {ver.impostor.size:,} of {ver.impostor_total:,} (seed {settings.seed})")

    limit = max_watchlist_size(id_codes, ok, enrolment)
    sizes = [s for s in settings.watchlist_sizes if 1 <= s <= limit]
    too_big = [s for s in settings.watchlist_sizes if s > limit]
    if too_big and limit >= 1:
        if limit not in sizes:
            sizes.append(limit)
        report["notes"].append(
            f"watchlist size(s) {', '.join(f'{s:,}' for s in too_big)} not possible: the data has "
            f"{limit:,} usable subjects (identities with {settings.enrol_per_subject} enrolled and at least one more usable image, "
            f"keeping at least 20% of identities off the list as non-mated probes); evaluated at {limit:,} instead")
    elif limit < 1:
        report["notes"].append("no 1:N evaluation: no identity has enough images to enrol and probe")
    sizes = sorted(set(sizes))

    id_results = []
    id_sections = []
    for size in sizes:
        split = split_watchlist(id_codes, ok, enrolment, size, settings.seed)
        scores = identification_scores(embedded.probe, embedded.template, id_codes, grp_codes, split)
        id_results.append(scores)
        id_sections.append(_identification_section(scores, thresholds, group_names if groups else ()))
    report["identification"] = {
        "requested_sizes": list(settings.watchlist_sizes),
        "max_size": limit,
        "sizes": id_sections,
    }

    op_t = settings.operating_threshold if settings.operating_threshold is not None else FALLBACK_OPERATING_THRESHOLD
    report["operating_threshold"] = {"value": op_t, "given": settings.operating_threshold is not None}
    if groups:
        report["differentials"] = _differentials(ver, id_results, op_t, group_names)
    return Evaluation(report, ver, tuple(id_results), group_names)


def _enrolment_section(embedded: EmbeddedDataset) -> dict[str, Any]:
    failures = embedded.failures
    reasons = Counter(r for _, rs in failures for r in rs)
    by_identity = Counter(im.identity for im, _ in failures)
    refusals = Counter(r for _, rs in embedded.enrol_refusals for r in rs)
    return {
        "attempted": embedded.attempted,
        "enrolled": int(np.count_nonzero(embedded.probe_ok)),
        "failure_rate": Rate(len(failures), embedded.attempted).as_dict(),
        "failures_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "failures_by_identity": dict(sorted(by_identity.items())),
        "failures": [{"image": f"{im.identity}/{im.path.name}", "reasons": list(rs)} for im, rs in failures],
        "reference_refusals": {
            "attempted": len(embedded.enrol_refusals) + sum(len(v) for v in embedded.enrolment.values()),
            "refused": len(embedded.enrol_refusals),
            "by_reason": dict(sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0]))),
            "images": [{"image": f"{embedded.images[i].identity}/{embedded.images[i].path.name}", "reasons": list(rs)}
                       for i, rs in embedded.enrol_refusals],
        },
        "subjects_with_template": len(embedded.enrolment),
        "cache_hits": embedded.cache_hits,
    }


def _verification_section(ver: VerificationScores, thresholds: list[float], group_names: Sequence[str]) -> dict[str, Any]:
    section: dict[str, Any] = {
        "genuine_pairs": int(ver.genuine.size),
        "impostor_pairs": int(ver.impostor.size),
        "impostor_pairs_total": ver.impostor_total,
        "impostor_sampled": ver.sampled,
        "sweep": _sweep(thresholds, fmr=metrics.false_match_rates(ver.impostor, thresholds),
                        fnmr=metrics.false_non_match_rates(ver.genuine, thresholds)),
        "tar_at_far": [metrics.operating_point(ver.genuine, ver.impostor, far).as_dict() for far in FAR_TARGETS],
    }
    per_group = {}
    for k, g in enumerate(group_names):
        gen, imp = ver.genuine[ver.genuine_group == k], ver.impostor[ver.impostor_group == k]
        per_group[g] = {
            "genuine_pairs": int(gen.size),
            "impostor_pairs": int(imp.size),
            "sweep": _sweep(thresholds, fmr=metrics.false_match_rates(imp, thresholds),
                            fnmr=metrics.false_non_match_rates(gen, thresholds)),
        }
    section["groups"] = per_group
    return section


def _identification_section(scores: IdentificationScores, thresholds: list[float], group_names: Sequence[str]) -> dict[str, Any]:
    section: dict[str, Any] = {
        "watchlist_size": scores.watchlist_size,
        "mated_probes": int(scores.mated_hit.size),
        "nonmated_probes": int(scores.nonmated_top.size),
        "sweep": _sweep(thresholds, fpir=metrics.false_positive_identification_rates(scores.nonmated_top, thresholds),
                        fnir=metrics.false_negative_identification_rates(scores.mated_hit, thresholds)),
        "fnir_at_fpir": [],
    }
    for target in FPIR_TARGETS:
        op = metrics.operating_point(scores.mated_hit, scores.nonmated_top, target)
        entry = op.as_dict()
        entry["fnir"] = None if op.true_positive is None else Rate(op.true_positive.trials - op.true_positive.events, op.true_positive.trials).as_dict()
        section["fnir_at_fpir"].append(entry)
    per_group = {}
    for k, g in enumerate(group_names):
        nm, mh = scores.nonmated_top[scores.nonmated_group == k], scores.mated_hit[scores.mated_group == k]
        per_group[g] = {
            "mated_probes": int(mh.size),
            "nonmated_probes": int(nm.size),
            "sweep": _sweep(thresholds, fpir=metrics.false_positive_identification_rates(nm, thresholds),
                            fnir=metrics.false_negative_identification_rates(mh, thresholds)),
        }
    section["groups"] = per_group
    section["scores"] = scores.to_json()
    return section


def _differentials(ver: VerificationScores, id_results: Sequence[IdentificationScores], threshold: float,
                   group_names: Sequence[str]) -> dict[str, Any]:
    """Group-to-overall ratios at the operating threshold: FPIR at the largest watchlist, FMR and FNMR 1:1."""
    out: dict[str, Any] = {"threshold": threshold}
    out["fnmr"] = _differential(_rate_at(ver.genuine, threshold, below=True),
                                {g: _rate_at(ver.genuine[ver.genuine_group == k], threshold, below=True) for k, g in enumerate(group_names)})
    out["fmr"] = _differential(_rate_at(ver.impostor, threshold),
                               {g: _rate_at(ver.impostor[ver.impostor_group == k], threshold) for k, g in enumerate(group_names)})
    if id_results:
        largest = max(id_results, key=lambda s: s.watchlist_size)
        out["watchlist_size"] = largest.watchlist_size
        out["fpir"] = _differential(_rate_at(largest.nonmated_top, threshold),
                                    {g: _rate_at(largest.nonmated_top[largest.nonmated_group == k], threshold) for k, g in enumerate(group_names)})
        out["fnir"] = _differential(_rate_at(largest.mated_hit, threshold, below=True),
                                    {g: _rate_at(largest.mated_hit[largest.mated_group == k], threshold, below=True) for k, g in enumerate(group_names)})
    return out


def identification_from_report(report: dict[str, Any]) -> list[IdentificationScores]:
    """Rebuild the 1:N scores stored in a report (for calibration and the gate)."""
    return [IdentificationScores.from_json(int(s["watchlist_size"]), s["scores"]) for s in report.get("identification", {}).get("sizes", [])]
