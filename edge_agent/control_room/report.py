"""What one deployment did, from the audit log(s) and the control room's adjudications (policing.md 16).

Faces processed (detections, and distinct people from the agent's tracks), alerts raised and
received, confirmed true and false alerts, engagements, the false-alert rate per face, per person
searched and per alert (with 95 % Wilson intervals), the retention actions
taken, and the evidence the alert threshold rested on (the calibration each device's deployment
record cited, from its ``watchlist_loaded`` audit records). Alert rows may already be deleted by retention when the report is made; the audit log's
``alert_raised`` and adjudication records keep the counts, so both sources are merged.
Format: docs/formats/deployment-report.md.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.audit.verify import verify_audit_log
from edge_agent.control_room.auditing import ADJUDICATION_RECORDED
from edge_agent.control_room.db import is_postgres
from edge_agent.control_room.store import AlertStore
from edge_agent.errors import EdgeAgentError
from edge_agent.evaluation.metrics import Rate
from edge_agent.safe_load import json_loads

REPORT_FORMAT = "edge-agent-deployment-report"
REPORT_VERSION = 1
#: Periodic face counts the agent writes (see docs/formats/deployment-report.md, "What the agent must log").
FACES_KIND = "faces_processed"
SESSION_KIND = "session_summary"
#: Audit-record count fields. Not "frames": the audit log refuses that name as biometric.
COUNT_FIELDS = ("frames_processed", "faces", "faces_searched", "faces_rejected_quality")
#: Distinct faces (the agent's tracks), which older agents did not log: a per-person rate needs every
#: counted record to carry them, since detections (one per face per frame) are no substitute.
PEOPLE_FIELDS = ("people", "people_searched")
LOADED_KIND = "watchlist_loaded"
#: A decision as the control room records it, and as a device logs the notice of it.
ADJUDICATION_KINDS = (ADJUDICATION_RECORDED, "adjudication_received")
#: Threshold-evidence fields a ``watchlist_loaded`` record carries (edge_agent.deployment.policy.threshold_evidence).
EVIDENCE_FIELDS = ("threshold", "threshold_basis", "calibrated_default", "calibration_sha256", "calibration_budget",
                   "calibration_watchlist_size", "calibration_fpir_upper95", "calibration_searches")


class DeploymentReportError(EdgeAgentError):
    """An input to the deployment report is missing, unreadable or fails verification."""


@dataclass(frozen=True)
class AuditSource:
    path: Path
    sha256: str
    records: tuple[dict[str, Any], ...]
    verification: str  # summary of verify_audit_log, or why it was not verified
    verified: bool | None  # None when no public key was given


def read_audit(path: Path, public_key: Ed25519PublicKey | None = None, checkpoint_every: int = 100) -> AuditSource:
    """Parse an audit log (JSON lines); with the device key, refuse it unless the chain verifies."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeploymentReportError(f"cannot read audit log {path}: {exc.strerror}", "pass the device's audit.jsonl with --audit") from None
    verified: bool | None = None
    summary = "not verified: pass --audit-pub with the device's public key"
    if public_key is not None:
        result = verify_audit_log(path, public_key, checkpoint_every)
        if not result.ok:
            raise DeploymentReportError(f"audit log {path} failed verification: {result.summary()}",
                                        "a report cannot rest on a broken log; keep the file as evidence and investigate")
        verified, summary = True, result.summary()
    records = []
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = json_loads(raw)
        except ValueError:
            raise DeploymentReportError(f"audit log {path} line {line_no} is not JSON",
                                        "run edge-agent audit verify on it; the log may be damaged") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("details"), dict) or "kind" not in doc:
            raise DeploymentReportError(f"audit log {path} line {line_no} is not an audit record", "run edge-agent audit verify on it")
        records.append(doc)
    return AuditSource(path, hashlib.sha256(data).hexdigest(), tuple(records), summary, verified)


def _alerts_from_store(alerts_db: Path, deployment_id: str) -> list[dict[str, Any]]:
    """This deployment's alerts still in the control-room store, each with its final adjudication."""
    if not is_postgres(alerts_db) and not Path(alerts_db).is_file():
        raise DeploymentReportError(f"control-room database {alerts_db} not found", "pass the control room's alert store with --alerts-db")
    with AlertStore(alerts_db, read_only=True) as store:
        rows = []
        for alert in store.alerts():
            if alert.deployment_id != deployment_id:
                continue
            adjudications = store.adjudications(alert.event_id)
            rows.append({"alert": alert, "adjudication": adjudications[-1] if adjudications else None})
        return rows


def build_report(deployment_id: str, audits: Sequence[AuditSource], alerts_db: Path, now: datetime) -> dict[str, Any]:
    """Merge the audit logs and the control-room store into the report dictionary."""
    records = [r for source in audits for r in source.records]
    notes: list[str] = []

    def for_deployment(r: dict[str, Any]) -> bool:
        return r["details"].get("deployment_id") == deployment_id

    raised = {r["details"]["event_id"]: r for r in records if r["kind"] == "alert_raised" and for_deployment(r) and "event_id" in r["details"]}
    stored = _alerts_from_store(alerts_db, deployment_id)
    stored_ids = {row["alert"].event_id for row in stored}
    event_ids = set(raised) | stored_ids

    # Adjudications: the store where the alert still exists, else the audit record of the decision.
    decisions: dict[str, dict[str, Any]] = {}
    for r in records:
        d = r["details"]
        if r["kind"] in ADJUDICATION_KINDS and d.get("event_id") in event_ids:
            decisions[d["event_id"]] = {"decision": d.get("decision"), "engaged": d.get("engaged"), "source": "audit"}
    for row in stored:
        adj = row["adjudication"]
        if adj is not None:
            decisions[row["alert"].event_id] = {"decision": adj["decision"], "engaged": adj["engaged"], "source": "store"}
    confirmed = sum(1 for v in decisions.values() if v["decision"] == "confirmed")
    rejected = sum(1 for v in decisions.values() if v["decision"] == "rejected")
    engaged = Counter(v["engaged"] for v in decisions.values())

    faces = _face_counts(records, deployment_id)
    evidence = _threshold_evidence(records, deployment_id)
    notes.extend(_evidence_notes(evidence))
    if faces["source"] == "none":
        notes.append(f"no {FACES_KIND} or {SESSION_KIND} records for this deployment: faces processed is unknown, so the "
                     "false-alert rate per face cannot be given")

    dropped: set[str] = set()
    for r in records:
        if r["kind"] == "spool_dropped":
            dropped.update(e for e in r["details"].get("event_ids", []) if e in event_ids)
    deleted_records = [r for r in records if r["kind"] == "alerts_deleted_retention"]
    deleted_ids = {e for r in deleted_records for e in r["details"].get("event_ids", []) if e in event_ids}
    holds = [{"event_id": r["details"].get("event_id"), "reason": r["details"].get("reason"), "held_by": r["details"].get("held_by"), "time": r.get("time")}
             for r in records if r["kind"] == "legal_hold_placed" and r["details"].get("event_id") in event_ids]
    wipes = [{"time": r.get("time"), "reason": r["details"].get("reason"), "actor": r.get("actor")}
             for r in records if r["kind"] == "watchlist_wiped" and for_deployment(r)]
    ended = [{"time": r.get("time"), "expires": r["details"].get("expires")} for r in records if r["kind"] == "deployment_ended" and for_deployment(r)]
    never_received = sorted(set(raised) - stored_ids - deleted_ids - dropped)
    if never_received:
        notes.append(f"{len(never_received)} alert(s) raised on a device are neither in the control-room store nor deleted by retention "
                     "(still spooled, or the control room missed them)")
    received = stored_ids | deleted_ids
    pending = len(received - set(decisions))
    if pending:
        notes.append(f"{pending} received alert(s) have no adjudication: rates count only adjudicated alerts")
    if any(s.verified is None for s in audits):
        notes.append("at least one audit log was read without verifying its signature chain (pass --audit-pub)")

    per_face = _per_count_rate(rejected, faces["processed"], "face", notes)
    per_person = _per_count_rate(rejected, faces["people_searched"], "person", notes)
    if faces["source"] != "none" and faces["people_searched"] is None:
        notes.append("at least one device logged face detections but not distinct people (an older agent): the false-alert "
                     "rate per person searched cannot be given, and the rate per face divides by detections, one per face per frame")
    times = sorted(str(r["time"]) for r in records if for_deployment(r) and r.get("time"))
    thresholds = sorted({float(r["details"]["threshold"]) for r in raised.values() if "threshold" in r["details"]}
                        | {row["alert"].threshold for row in stored})
    adjudicated = confirmed + rejected
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created_at": now.isoformat(),
        "deployment_id": deployment_id,
        "sources": {
            "audit_logs": [{"path": str(s.path), "sha256": s.sha256, "records": len(s.records), "verified": s.verified,
                            "verification": s.verification} for s in audits],
            "alerts_db": str(alerts_db),
        },
        "period": {"first_record": times[0] if times else None, "last_record": times[-1] if times else None},
        "devices": sorted({r.get("actor") for r in records if for_deployment(r) and r.get("actor")}),
        "faces": faces,
        "alerts": {
            "raised": len(raised),
            "received": len(received),
            "known": len(event_ids),
            "dropped_before_delivery": len(dropped),
            "never_received": never_received,
            "thresholds": thresholds,
        },
        "threshold_evidence": evidence,
        "adjudication": {
            "adjudicated": adjudicated,
            "confirmed_true": confirmed,
            "confirmed_false": rejected,
            "pending": pending,
            "engaged": engaged.get(True, 0),
            "not_engaged": engaged.get(False, 0),
            "engagement_not_recorded": engaged.get(None, 0),
        },
        "rates": {
            "false_alerts_per_face": per_face,
            "false_alerts_per_person": per_person,
            "false_alerts_per_alert": Rate(rejected, adjudicated).as_dict(),
            "true_alerts_per_alert": Rate(confirmed, adjudicated).as_dict(),
        },
        "retention": {
            "alerts_deleted": len(deleted_ids),
            "alerts_still_stored": len(stored_ids),
            "deletion_runs": [{"time": r.get("time"), "count_in_deployment": len(set(r["details"].get("event_ids", [])) & event_ids)}
                              for r in deleted_records if set(r["details"].get("event_ids", [])) & event_ids],
            "legal_holds": holds,
            "held_now": sorted(row["alert"].event_id for row in stored if row["alert"].hold_reason),
            "watchlist_wiped": wipes,
            "deployment_ended": ended,
        },
        "notes": notes,
    }


def _threshold_evidence(records: Sequence[dict[str, Any]], deployment_id: str) -> list[dict[str, Any]]:
    """Each distinct threshold basis the deployment's devices loaded, with the devices that loaded it."""
    found: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["kind"] != LOADED_KIND or r["details"].get("deployment_id") != deployment_id:
            continue
        entry = {k: r["details"].get(k) for k in EVIDENCE_FIELDS}
        key = json.dumps(entry, sort_keys=True)
        found.setdefault(key, {**entry, "devices": []})
        actor = r.get("actor")
        if actor and actor not in found[key]["devices"]:
            found[key]["devices"].append(actor)
    return list(found.values())


def _evidence_notes(evidence: Sequence[dict[str, Any]]) -> list[str]:
    if not evidence:
        return [f"no {LOADED_KIND} record names this deployment: the evidence behind its alert threshold is unknown"]
    notes = []
    for e in evidence:
        devices = ", ".join(e["devices"]) or "unknown device"
        if e["threshold_basis"] is None:
            notes.append(f"{devices}: {LOADED_KIND} does not state the threshold's evidence (older agent)")
        elif e["threshold_basis"] != "calibration_report":
            notes.append(f"warning: {devices} matched at threshold {e['threshold']} resting on the provisional default "
                         f"{e['calibrated_default']}, not on a cited calibration (policing.md 9)")
    return notes


def _evidence_text(e: dict[str, Any]) -> str:
    devices = ", ".join(e["devices"])
    if e["threshold_basis"] != "calibration_report":
        return f"{devices}: threshold {e['threshold']} on {e['threshold_basis'] or 'unstated'} basis (calibrated default {e['calibrated_default']})"
    searches = e["calibration_searches"] or {}
    return (f"{devices}: threshold {e['threshold']}; calibration sha256 {e['calibration_sha256']} (calibrated threshold "
            f"{e['calibrated_default']} for budget {e['calibration_budget']} at watchlist <= {e['calibration_watchlist_size']}; "
            f"FPIR upper 95% bound {e['calibration_fpir_upper95']}; {searches.get('nonmated')} non-mated / {searches.get('mated')} mated searches)")


def _per_count_rate(events: int, trials: int | None, unit: str, notes: list[str]) -> dict[str, Any]:
    """False alerts per ``trials``; no rate (and a note) when the count is unknown or below the events."""
    if trials is not None and trials >= events:
        return Rate(events, trials).as_dict()
    if trials is not None:
        notes.append(f"the logged {unit} count ({trials}) is below the number of false alerts ({events}): {unit} counts are incomplete")
    return {"events": events, "trials": trials, "rate": None, "ci95": None}


def _face_counts(records: Sequence[dict[str, Any]], deployment_id: str) -> dict[str, Any]:
    """Add up face counts per device, in log order.

    ``faces_processed`` records (periodic deltas, the last one written at shutdown) always count;
    a ``session_summary`` counts only for a session that wrote no ``faces_processed`` (older agents),
    so no session is counted twice and a crashed session still counts up to its last period.
    """
    totals = {field: 0 for field in COUNT_FIELDS + PEOPLE_FIELDS}
    people_known = True
    sources: set[str] = set()
    periodic_since_summary: dict[str, bool] = {}
    for r in records:
        if r["kind"] not in (FACES_KIND, SESSION_KIND) or r["details"].get("deployment_id") != deployment_id:
            continue
        actor = str(r.get("actor", ""))
        if r["kind"] == FACES_KIND:
            periodic_since_summary[actor] = True
        elif periodic_since_summary.get(actor):
            periodic_since_summary[actor] = False
            continue  # this session was already counted from its periodic records
        else:
            periodic_since_summary[actor] = False
        sources.add(r["kind"])
        for field in COUNT_FIELDS + PEOPLE_FIELDS:
            value = r["details"].get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                totals[field] += value
            elif field in PEOPLE_FIELDS:
                people_known = False
    return {
        "processed": totals["faces"] if sources else None,
        "searched": totals["faces_searched"] if sources else None,
        "rejected_quality": totals["faces_rejected_quality"] if sources else None,
        "frames": totals["frames_processed"] if sources else None,
        "people": totals["people"] if sources and people_known else None,
        "people_searched": totals["people_searched"] if sources and people_known else None,
        "source": "+".join(sorted(sources)) or "none",
        "devices_reporting": len(periodic_since_summary),
    }


def _fmt(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "n/a"
    lo, hi = rate["ci95"]
    return f"{rate['events']:,}/{rate['trials']:,} = {rate['rate']:.3g} (95% CI {lo:.3g}-{hi:.3g})"


def render_html(report: dict[str, Any]) -> str:
    """A one-page, self-contained HTML view of the report."""
    e = html.escape
    a, j, f, ret = report["alerts"], report["adjudication"], report["faces"], report["retention"]
    rows = [
        ("Deployment", report["deployment_id"]),
        ("Period (audit records)", f"{report['period']['first_record']} to {report['period']['last_record']}"),
        ("Devices", ", ".join(report["devices"]) or "none"),
        ("Faces processed", "unknown" if f["processed"] is None else f"{f['processed']:,} (searched {f['searched']:,}; quality-rejected {f['rejected_quality']:,})"),
        ("People (distinct faces)", "unknown" if f["people"] is None else f"{f['people']:,} (searched {f['people_searched']:,})"),
        ("Alerts raised / received", f"{a['raised']:,} / {a['received']:,}"),
        ("Confirmed true alerts", f"{j['confirmed_true']:,}"),
        ("Confirmed false alerts", f"{j['confirmed_false']:,}"),
        ("Awaiting adjudication", f"{j['pending']:,}"),
        ("Engagements", f"{j['engaged']:,} (not engaged {j['not_engaged']:,}; not recorded {j['engagement_not_recorded']:,})"),
        ("False-alert rate per face", _fmt(report["rates"]["false_alerts_per_face"])),
        ("False-alert rate per person searched", _fmt(report["rates"]["false_alerts_per_person"])),
        ("False-alert rate per alert", _fmt(report["rates"]["false_alerts_per_alert"])),
        ("Thresholds in use", ", ".join(f"{t:g}" for t in a["thresholds"]) or "none"),
        ("Threshold evidence", "; ".join(_evidence_text(e) for e in report["threshold_evidence"]) or "unknown (no watchlist_loaded record)"),
        ("Alerts deleted by retention", f"{ret['alerts_deleted']:,}"),
        ("Alerts still stored (held now)", f"{ret['alerts_still_stored']:,} ({len(ret['held_now'])})"),
        ("Legal holds placed", f"{len(ret['legal_holds']):,}"),
        ("Watchlist wiped", "; ".join(f"{w['time']} ({w['reason']})" for w in ret["watchlist_wiped"]) or "no record"),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    sources = "".join(f"<li>{e(s['path'])} (sha256 {e(s['sha256'])}, {s['records']} records): {e(s['verification'])}</li>"
                      for s in report["sources"]["audit_logs"])
    notes = "".join(f"<li>{e(n)}</li>" for n in report["notes"])
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Deployment report "
            f"{e(report['deployment_id'])}</title><style>body{{font-family:system-ui,sans-serif;margin:2em}}"
            "table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:4px 10px;text-align:left}</style></head><body>"
            f"<h1>Deployment report: {e(report['deployment_id'])}</h1>"
            f"<section id=\"summary\"><table>{body}</table></section>"
            f"<section id=\"notes\"><h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul></section>"
            f"<section id=\"sources\"><h2>Sources</h2><ul>{sources}</ul><p>Control room: {e(report['sources']['alerts_db'])}</p>"
            f"<p>Generated {e(report['created_at'])}.</p></section></body></html>")
