"""Figures for the evaluation report, returned as PNG bytes (matplotlib, Agg, imported lazily).

matplotlib is an 'evaluate' extra used centrally, never on a device, hence the lazy import.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.evaluation import metrics
from edge_agent.evaluation.identification import IdentificationScores
from edge_agent.evaluation.verification import VerificationScores

_FLOOR = 1e-5  # log axes cannot show 0; rates of 0 are drawn at this floor


def _pyplot() -> Any:
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EdgeAgentError("matplotlib is needed to draw the evaluation report",
                             "pip install 'edge_agent[evaluate]'") from exc
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # nothing to label when a set produced no scores
        ax.legend(fontsize=8)


def _det_axes(ax: Any, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(_FLOOR, 1)
    ax.set_ylim(_FLOOR, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _det_line(ax: Any, genuine: np.ndarray, impostor: np.ndarray, label: str) -> None:
    _, fpr, fnr = metrics.det_points(genuine, impostor)
    if fpr.size:
        ax.plot(np.clip(fpr, _FLOOR, 1), np.clip(fnr, _FLOOR, 1), label=label, drawstyle="steps-post")


def verification_det(ver: VerificationScores, group_names: Sequence[str]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    _det_line(ax, ver.genuine, ver.impostor, "all")
    for k, g in enumerate(group_names):
        gen, imp = ver.genuine[ver.genuine_group == k], ver.impostor[ver.impostor_group == k]
        if gen.size and imp.size:
            _det_line(ax, gen, imp, g)
    _det_axes(ax, "FMR (false match rate)", "FNMR (false non-match rate)")
    ax.set_title("1:1 DET")
    _legend(ax)
    return _png(fig)


def identification_det(results: Sequence[IdentificationScores]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for s in results:
        _det_line(ax, s.mated_hit, s.nonmated_top, f"watchlist {s.watchlist_size:,}")
    _det_axes(ax, "FPIR (false positive identification rate)", "FNIR (false negative identification rate)")
    ax.set_title("1:N DET")
    _legend(ax)
    return _png(fig)


def score_distributions(mated: np.ndarray, nonmated: np.ndarray, title: str, mated_label: str, nonmated_label: str,
                        threshold: float | None = None) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-0.4, 1.0, 71)
    for values, label in ((nonmated, nonmated_label), (mated, mated_label)):
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=bins, density=True, alpha=0.5, label=f"{label} (n={values.size:,})")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    _legend(ax)
    return _png(fig)


def group_fpir_curves(scores: IdentificationScores, group_names: Sequence[str], thresholds: Sequence[float]) -> bytes:
    """FPIR against threshold per group, with 95 % Wilson bands, at one watchlist size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    t = np.asarray(thresholds, np.float64)
    series = [("all", scores.nonmated_top)] + [(g, scores.nonmated_top[scores.nonmated_group == k]) for k, g in enumerate(group_names)]
    for name, values in series:
        if not values.size:
            continue
        rates = metrics.false_positive_identification_rates(values, list(t))
        ax.plot(t, np.clip([r.value for r in rates], _FLOOR, 1), label=f"{name} (n={values.size:,})")
        ax.fill_between(t, np.clip([r.lower for r in rates], _FLOOR, 1), np.clip([r.upper for r in rates], _FLOOR, 1), alpha=0.15)
    ax.set_yscale("log")
    ax.set_ylim(_FLOOR, 1)
    ax.set_xlabel("threshold")
    ax.set_ylabel("FPIR")
    ax.set_title(f"FPIR by group, watchlist {scores.watchlist_size:,} (bands: 95% Wilson)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)
    return _png(fig)
