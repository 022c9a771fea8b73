"""Self-contained HTML for the evaluation report: tables from report.json, plots inlined as base64 PNG.

One file that can be attached to an equality impact assessment or a release record, with no
scripts and no external resources.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from edge_agent.evaluation import plots
from edge_agent.evaluation.analysis import Evaluation

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#111}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}.note{background:#fff6d5;padding:6px 10px;border-left:4px solid #d9a400}
.fail{color:#a00;font-weight:bold}.pass{color:#070;font-weight:bold}figure{display:inline-block;margin:0 1em 1em 0}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt_rate(rate: dict[str, Any] | None) -> str:
    """'k/n = r [lo, hi]' for a Rate dict, or 'n/a'."""
    if not rate or rate.get("rate") is None:
        return "n/a (no trials)"
    lo, hi = rate["ci95"]
    return f"{rate['events']:,}/{rate['trials']:,} = {rate['rate']:.4g} [{lo:.3g}, {hi:.3g}]"


def img(png: bytes, alt: str) -> str:
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{esc(alt)}</figcaption></figure>'


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{esc(c)}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sweep_rows(sweep: list[dict[str, Any]], keys: Sequence[str], step: int) -> list[list[object]]:
    return [[f"{row['threshold']:g}", *(fmt_rate(row[k]) for k in keys)] for i, row in enumerate(sweep) if i % step == 0]


def render(evaluation: Evaluation, gate: dict[str, Any] | None = None) -> str:
    r = evaluation.report
    groups = evaluation.group_names if r.get("groups") else ()
    thresholds = r["thresholds"]
    step = max(1, len(thresholds) // 20)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Face recognition evaluation</title><style>{_STYLE}</style></head><body>"]
    parts.append("<h1>Face recognition accuracy and bias evaluation</h1>")

    parts.append('<section id="summary"><h2>Summary</h2>')
    ds, enrol = r["dataset"], r["enrolment"]
    rows = [["dataset", ds.get("root", "")], ["images", f"{enrol['attempted']:,}"], ["identities", f"{ds.get('identities', 0):,}"],
            ["enrolled (usable face)", f"{enrol['enrolled']:,}"], ["created", r["created_at"]]]
    rows += [[f"model {k}", v] for k, v in r["model"].items()]
    parts.append(table(["item", "value"], rows, left=2))
    if gate is not None:
        cls = "pass" if gate["passed"] else "fail"
        parts.append(f'<p class="{cls}">Release gate: {"PASSED" if gate["passed"] else "FAILED"} at threshold {gate["threshold"]:g}, '
                     f'budget {gate["budget"]:.3g}, watchlist {gate["watchlist_size"]:,}</p>')
        parts.extend(f'<p class="fail">{esc(reason)}</p>' for reason in gate["reasons"])
    for note in r["notes"]:
        parts.append(f'<p class="note">{esc(note)}</p>')
    parts.append("</section>")

    parts.append('<section id="enrolment"><h2>Enrolment failures</h2>')
    parts.append(f"<p>Failure to enrol: {esc(fmt_rate(enrol['failure_rate']))}</p>")
    parts.append(table(["reason", "images"], [[k, v] for k, v in enrol["failures_by_reason"].items()]))
    refused = enrol["reference_refusals"]
    refusal_reasons = ", ".join(f"{k}: {v}" for k, v in refused["by_reason"].items()) or "none"
    parts.append(f"<p>Watchlist reference images (the watchlist build's rule: exactly one usable face): {refused['refused']:,} of "
                 f"{refused['attempted']:,} tried were refused ({esc(refusal_reasons)}); "
                 f"{enrol['subjects_with_template']:,} identities have a template.</p>")
    if enrol["failures"]:
        parts.append("<details><summary>Images that failed</summary>")
        parts.append(table(["image", "reasons"], [[f["image"], ", ".join(f["reasons"])] for f in enrol["failures"]], left=2))
        parts.append("</details>")
    parts.append("</section>")

    ver = r["verification"]
    parts.append('<section id="verification"><h2>1:1 verification</h2>')
    parts.append(f"<p>{ver['genuine_pairs']:,} mated pairs; {ver['impostor_pairs']:,} non-mated pairs"
                 + (f" (sampled from {ver['impostor_pairs_total']:,})" if ver["impostor_sampled"] else "") + ". Rates: k/n = rate [95% Wilson interval].</p>")
    parts.append("<h3>TAR at FAR</h3>")
    parts.append(table(["FAR target", "threshold", "achieved FAR", "TAR", "note"],
                       [[f"{op['target']:g}", "-" if op["threshold"] is None else f"{op['threshold']:.4f}",
                         fmt_rate(op["false_positive"]) if op["false_positive"] else "-",
                         fmt_rate(op["true_positive"]) if op["true_positive"] else "-", op["note"]] for op in ver["tar_at_far"]]))
    parts.append(img(plots.verification_det(evaluation.verification, groups), "1:1 DET curve (FMR vs FNMR)"))
    parts.append(img(plots.score_distributions(evaluation.verification.genuine, evaluation.verification.impostor,
                                               "1:1 score distributions", "mated pairs", "non-mated pairs"), "1:1 score distributions"))
    parts.append("<h3>Threshold sweep</h3>")
    parts.append(table(["threshold", "FMR", "FNMR"], _sweep_rows(ver["sweep"], ["fmr", "fnmr"], step)))
    parts.append("</section>")

    ident = r["identification"]
    parts.append('<section id="identification"><h2>1:N identification (watchlist)</h2>')
    parts.append(f"<p>Requested watchlist sizes: {', '.join(f'{s:,}' for s in ident['requested_sizes'])}; "
                 f"largest the data allows: {ident['max_size']:,}.</p>")
    if evaluation.identification:
        parts.append(img(plots.identification_det(evaluation.identification), "1:N DET curve (FPIR vs FNIR)"))
    for section, scores in zip(ident["sizes"], evaluation.identification, strict=False):
        size = section["watchlist_size"]
        parts.append(f"<h3>Watchlist of {size:,} subjects</h3><p>{section['mated_probes']:,} mated searches, "
                     f"{section['nonmated_probes']:,} non-mated searches.</p>")
        parts.append(table(["FPIR target", "threshold", "achieved FPIR", "FNIR", "note"],
                           [[f"{op['target']:g}", "-" if op["threshold"] is None else f"{op['threshold']:.4f}",
                             fmt_rate(op["false_positive"]) if op["false_positive"] else "-",
                             fmt_rate(op["fnir"]) if op["fnir"] else "-", op["note"]] for op in section["fnir_at_fpir"]]))
        parts.append(img(plots.score_distributions(scores.mated_hit, scores.nonmated_top, f"1:N scores, watchlist {size:,}",
                                                   "mated (rank-1 mate score)", "non-mated (best score)",
                                                   r["operating_threshold"]["value"]), f"1:N score distributions, watchlist {size:,}"))
        parts.append(table(["threshold", "FPIR", "FNIR"], _sweep_rows(section["sweep"], ["fpir", "fnir"], step)))
    parts.append("</section>")

    if groups:
        parts.append(_groups_section(evaluation))
    parts.append('<section id="method"><h2>Method</h2><ul>'
                 f"<li>Match rule: {esc(r['protocol']['match_rule'])}; intervals: {esc(r['protocol']['interval'])}.</li>"
                 "<li>1:1: every mated pair; non-mated pairs all (or a fixed-seed sample). Per-group FMR uses non-mated pairs within the group.</li>"
                 f"<li>1:N: watchlist subjects drawn (seed {r['protocol']['seed']}) from identities with more than "
                 f"{r['protocol']['enrol_per_subject']} image(s); their first image(s) enrolled, the rest are mated searches; "
                 "images of everyone not on the watchlist are non-mated searches. FNIR counts a miss when the mate is not the rank-1 candidate at or above the threshold.</li>"
                 "<li>Enrolment: the largest face is the labelled subject when it is at least twice the area of the next; otherwise the image fails as multiple_faces.</li>"
                 "</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _groups_section(evaluation: Evaluation) -> str:
    r = evaluation.report
    diff = r.get("differentials", {})
    parts = ['<section id="groups"><h2>Demographic groups</h2>']
    parts.append(f"<p>Differentials at threshold {diff.get('threshold', 0):g}"
                 + (f" (watchlist {diff['watchlist_size']:,})" if "watchlist_size" in diff else "") + ".</p>")
    for metric, label in (("fpir", "FPIR"), ("fnir", "FNIR"), ("fmr", "FMR"), ("fnmr", "FNMR")):
        if metric not in diff:
            continue
        d = diff[metric]
        worst = d["max_ratio"]
        parts.append(f"<h3>{label}</h3><p>Overall {esc(fmt_rate(d['overall']))}. Largest group-to-overall ratio: "
                     + (f"{worst['ratio']:.2f} ({esc(worst['group'])})" if worst["group"] else "n/a (overall rate is zero)") + "</p>")
        parts.append(table(["group", label, "ratio to overall"],
                           [[g, fmt_rate(v), "n/a" if v["ratio_to_overall"] is None else f"{v['ratio_to_overall']:.2f}"] for g, v in d["groups"].items()]))
    if evaluation.identification:
        largest = max(evaluation.identification, key=lambda s: s.watchlist_size)
        parts.append(img(plots.group_fpir_curves(largest, evaluation.group_names, r["thresholds"]), "FPIR by group against threshold"))
    parts.append("</section>")
    return "".join(parts)
