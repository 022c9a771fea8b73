"""Deployment report from a real signed audit log and a real control-room store, after retention ran."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditLog
from edge_agent.cli.main import main
from edge_agent.control_room.adjudication import (
    Adjudication,
    adjudicate,
    apply_retention,
    place_hold,
)
from edge_agent.control_room.store import AlertStore, StoreError
from edge_agent.crypto.keyfiles import write_public_key
from edge_agent.crypto.sealing import seal
from edge_agent.control_room.report import (
    DeploymentReportError,
    build_report,
    read_audit,
    render_html,
)
from edge_agent.events.schema import AuditHead, AlertEvent, Candidate

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MODEL = {"detector_sha256": "d" * 64, "aligner": "arcface5/v1", "embedder_sha256": "e" * 64, "precision": "int8"}
REPO = Path(__file__).resolve().parents[2]
# The crop stays sealed to the control room; its content does not matter to the report.
SEALED_CROP = base64.b64encode(seal(b"\xff\xd8 not really a jpeg", X25519PrivateKey.generate().public_key(), b"test crop")).decode()


def _event(deployment: str, seq: int, captured: datetime, score: float = 0.7) -> AlertEvent:
    return AlertEvent(str(uuid.uuid4()), "cam-01", deployment, "wl-1", seq, captured, f"subj-{seq}", "wanted_by_court",
                      score, 0.6, MODEL, (10, 10, 90, 90), (Candidate(f"subj-{seq}", score),),
                      SEALED_CROP, spool_epoch="e1" * 16, audit_head=AuditHead(seq, "ab" * 32), match_basis="single_frame")


def _raise(audit: AuditLog, event: AlertEvent) -> None:
    audit.append("alert_raised", {"event_id": event.event_id, "seq": event.seq, "deployment_id": event.deployment_id,
                                  "watchlist_version": event.watchlist_version, "subject_ref": event.subject_ref,
                                  "category": event.category, "score": event.score, "threshold": event.threshold,
                                  "captured_at": event.captured_at_text}, now=event.captured_at)


@pytest.fixture()
def deployment(tmp_path):
    key = Ed25519PrivateKey.generate()
    write_public_key(tmp_path / "device.pub", key.public_key())
    device_log = tmp_path / "device-audit.jsonl"
    room_log = tmp_path / "room-audit.jsonl"
    db = tmp_path / "alerts.sqlite"
    old = NOW - timedelta(days=3)
    recent = NOW - timedelta(hours=2)
    events = [_event("dep-1", 1, old), _event("dep-1", 2, recent), _event("dep-1", 3, recent), _event("dep-1", 4, recent),
              _event("dep-2", 5, recent)]
    with AuditLog.open(device_log, key, "device:cam-01", checkpoint_every=5) as dev:
        for e in events:
            _raise(dev, e)
        # periodic counts (what the agent should write) win over its session summary: 3000 + 3000
        dev.append("faces_processed", {"deployment_id": "dep-1", "faces": 3000, "faces_searched": 2900, "faces_rejected_quality": 100, "frames_processed": 9000}, now=recent)
        dev.append("faces_processed", {"deployment_id": "dep-1", "faces": 3000, "faces_searched": 2800, "faces_rejected_quality": 200, "frames_processed": 9000}, now=recent)
        dev.append("session_summary", {"deployment_id": "dep-1", "faces": 6000, "faces_searched": 5700, "faces_rejected_quality": 300, "frames_processed": 18000}, now=recent)
        dev.append("session_summary", {"deployment_id": "dep-2", "faces": 999, "frames_processed": 1}, now=recent)
        # an earlier-style session with only a summary (no periodic records) still counts: +500
        dev.append("session_summary", {"deployment_id": "dep-1", "faces": 500, "faces_searched": 500, "faces_rejected_quality": 0, "frames_processed": 900}, now=recent)
        dev.append("watchlist_wiped", {"reason": "deployment ended", "deployment_id": "dep-1", "package_id": "p1"}, now=NOW)
    # a second device that only writes session summaries
    with AuditLog.open(tmp_path / "cam2.jsonl", None, "device:cam-02") as cam2:
        cam2.append("session_summary", {"deployment_id": "dep-1", "faces": 4000, "faces_searched": 3900, "faces_rejected_quality": 100, "frames_processed": 12000}, now=recent)
    with AuditLog.open(room_log, None, "control-room") as room, AlertStore(db) as store:
        for e in events[:3] + events[4:]:  # event 4 never reached the control room
            store.add_alert(e, b"payload", "c" * 64, e.captured_at + timedelta(seconds=2))
        adjudicate(store, Adjudication(events[0].event_id, "confirmed", "PC1234", "matches custody image", True, old + timedelta(minutes=5)), room)
        adjudicate(store, Adjudication(events[1].event_id, "rejected", "PC1234", "different person", False, recent + timedelta(minutes=5)), room)
        place_hold(store, events[1].event_id, "complaint 23/1", "PS99", NOW, room)
        deleted = apply_retention(store, NOW, timedelta(days=1), room).deleted
        assert deleted == [events[0].event_id]  # the confirmed alert is gone from the store; only the audit log knows
    return {"device_log": device_log, "room_log": room_log, "cam2": tmp_path / "cam2.jsonl", "db": db,
            "pub": tmp_path / "device.pub", "key": key, "events": events}


def test_report_counts_faces_alerts_adjudications_and_retention(deployment):
    sources = [read_audit(deployment["device_log"], deployment["key"].public_key(), 5),
               read_audit(deployment["cam2"]), read_audit(deployment["room_log"])]
    r = build_report("dep-1", sources, deployment["db"], NOW)
    assert r["faces"]["processed"] == 6000 + 500 + 4000 and r["faces"]["source"] == "faces_processed+session_summary"
    assert r["faces"]["searched"] == 2900 + 2800 + 500 + 3900
    assert r["alerts"]["raised"] == 4 and r["alerts"]["received"] == 3
    assert r["alerts"]["never_received"] == [deployment["events"][3].event_id]
    adj = r["adjudication"]
    assert (adj["confirmed_true"], adj["confirmed_false"], adj["pending"], adj["engaged"], adj["not_engaged"]) == (1, 1, 1, 1, 1)
    assert r["rates"]["false_alerts_per_face"]["events"] == 1 and r["rates"]["false_alerts_per_face"]["trials"] == 10_500
    assert r["rates"]["false_alerts_per_alert"] == {"events": 1, "trials": 2, "rate": 0.5, "ci95": pytest.approx([0.0945312, 0.9054688], abs=1e-6)}
    ret = r["retention"]
    assert ret["alerts_deleted"] == 1 and ret["alerts_still_stored"] == 2
    assert [h["event_id"] for h in ret["legal_holds"]] == [deployment["events"][1].event_id]
    assert ret["held_now"] == [deployment["events"][1].event_id]
    assert len(ret["watchlist_wiped"]) == 1
    assert r["alerts"]["thresholds"] == [0.6]
    assert sources[0].verified is True and sources[1].verified is None
    assert any("have no adjudication" in n for n in r["notes"]) and any("without verifying" in n for n in r["notes"])
    json.dumps(r, allow_nan=False)


def test_report_states_the_threshold_evidence_and_warns_on_the_provisional_default(deployment, tmp_path):
    """Evidence comes from the devices' watchlist_loaded records, as the store writes them."""
    from edge_agent.deployment.policy import threshold_evidence
    from edge_agent.deployment.record import DeploymentRecord

    spec = {"deployment_id": "dep-1", "authorising_officer": "Supt", "purpose": "p", "legal_basis": "l", "location": "x",
            "location_rationale": "r", "start": "2026-11-22T08:00:00Z", "end": "2026-11-22T16:00:00Z", "dpia_ref": "D",
            "equality_impact_ref": "E", "mode": "LFR", "platform": "fixed", "alert_threshold": 0.6, "watchlist_cap": 10,
            "device_ids": ["cam-01"]}
    provisional = threshold_evidence(DeploymentRecord.from_json(spec, fill_defaults=True))
    log = tmp_path / "loads.jsonl"
    with AuditLog.open(log, None, "device:cam-03") as audit:
        audit.append("watchlist_loaded", {"deployment_id": "dep-1", "package_id": "p1", "threshold": 0.6, **provisional}, now=NOW)
        audit.append("watchlist_loaded", {"deployment_id": "dep-1", "package_id": "p1", "threshold": 0.6, **provisional}, now=NOW)
    with AuditLog.open(tmp_path / "old.jsonl", None, "device:cam-04") as audit:
        audit.append("watchlist_loaded", {"deployment_id": "dep-1", "package_id": "p1", "threshold": 0.6}, now=NOW)
    r = build_report("dep-1", [read_audit(log), read_audit(tmp_path / "old.jsonl")], deployment["db"], NOW)
    first, older = r["threshold_evidence"]
    assert first["devices"] == ["device:cam-03"] and first["threshold_basis"] == "provisional_default"
    assert older["devices"] == ["device:cam-04"] and older["threshold_basis"] is None
    assert any(n.startswith("warning: device:cam-03") and "provisional default" in n for n in r["notes"])
    assert any("device:cam-04" in n and "older agent" in n for n in r["notes"])
    assert "Threshold evidence" in render_html(r) and "provisional_default" in render_html(r)
    # no load record at all: the evidence is unknown, and the report says so
    bare = build_report("dep-1", [read_audit(deployment["room_log"])], deployment["db"], NOW)
    assert bare["threshold_evidence"] == [] and any("evidence behind its alert threshold is unknown" in n for n in bare["notes"])


def test_report_refuses_a_tampered_audit_log(deployment):
    path = deployment["device_log"]
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"score":0.7', '"score":0.9')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeploymentReportError, match="failed verification"):
        read_audit(path, deployment["key"].public_key(), 5)


def test_missing_store_is_a_clear_error(deployment, tmp_path):
    with pytest.raises(DeploymentReportError, match="not found"):
        build_report("dep-1", [read_audit(deployment["device_log"])], tmp_path / "nope.sqlite", NOW)
    assert not (tmp_path / "nope.sqlite").exists()  # and no empty store was created by looking


def test_report_without_face_counts_says_so(deployment, tmp_path):
    r = build_report("dep-1", [read_audit(deployment["room_log"])], deployment["db"], NOW)
    assert r["faces"]["processed"] is None and r["rates"]["false_alerts_per_face"]["rate"] is None
    assert any("faces processed is unknown" in n for n in r["notes"])


def test_false_alert_rate_per_person_divides_by_people_searched_not_detections(deployment, tmp_path):
    """A person in view for seconds is dozens of detections: the per-face rate divides by those, the
    per-person rate by the agent's tracks that were searched. Logs without people counts (older agents,
    the fixture's) give no per-person rate and say why, rather than dividing by detections."""
    log = tmp_path / "agent.jsonl"
    with AuditLog.open(log, None, "device:cam-05") as audit:
        audit.append("faces_processed", {"deployment_id": "dep-1", "faces": 3000, "people": 60, "people_searched": 55,
                                         "faces_searched": 400, "faces_rejected_quality": 50, "frames_processed": 9000}, now=NOW)
        audit.append("faces_processed", {"deployment_id": "dep-1", "faces": 1500, "people": 40, "people_searched": 40,
                                         "faces_searched": 200, "faces_rejected_quality": 20, "frames_processed": 4500}, now=NOW)
    r = build_report("dep-1", [read_audit(log), read_audit(deployment["room_log"])], deployment["db"], NOW)
    assert (r["faces"]["processed"], r["faces"]["people"], r["faces"]["people_searched"]) == (4500, 100, 95)
    assert r["rates"]["false_alerts_per_face"]["trials"] == 4500
    per_person = r["rates"]["false_alerts_per_person"]
    assert (per_person["events"], per_person["trials"]) == (1, 95) and per_person["rate"] == pytest.approx(1 / 95)
    assert not any("distinct people" in n for n in r["notes"])
    assert "False-alert rate per person searched" in render_html(r) and "1/95" in render_html(r)
    # one device without people counts makes the per-person figure unknown, not a mix of units
    mixed = build_report("dep-1", [read_audit(log), read_audit(deployment["cam2"]), read_audit(deployment["room_log"])], deployment["db"], NOW)
    assert mixed["faces"]["people"] is None and mixed["rates"]["false_alerts_per_person"]["rate"] is None
    assert mixed["rates"]["false_alerts_per_face"]["trials"] == 4500 + 4000
    assert any("not distinct people" in n for n in mixed["notes"])


def test_cli_writes_html_and_json_matching_the_format_doc(deployment, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["report", "--deployment", "dep-1", "--audit", str(deployment["device_log"]), "--audit", str(deployment["room_log"]),
                 "--alerts-db", str(deployment["db"]), "--out", str(out), "--json"])
    assert code == 0
    report = json.loads((out / "deployment-report.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    doc = (REPO / "docs" / "formats" / "deployment-report.md").read_text()
    block = doc.split("## Fields", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^\| `([a-z0-9_]+)` \|", block, flags=re.MULTILINE)) == sorted(report)

    class Sections(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ids = []

        def handle_starttag(self, tag, attrs):
            if tag == "section":
                self.ids.append(dict(attrs)["id"])

    parser = Sections()
    parser.feed((out / "deployment-report.html").read_text())
    assert parser.ids == ["summary", "notes", "sources"]
    assert "dep-1" in render_html(report)
    # keys must pair with logs
    assert main(["report", "--deployment", "dep-1", "--audit", str(deployment["device_log"]), "--audit", str(deployment["room_log"]),
                 "--audit-pub", str(deployment["pub"]), "--alerts-db", str(deployment["db"]), "--out", str(out)]) == 2


def test_report_reads_the_alert_store_without_changing_it(deployment):
    """An evidence copy must come out of the report byte for byte as it went in."""
    db = deployment["db"]
    with sqlite3.connect(db) as conn:  # fold the WAL into the main file, as in a copied evidence file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    build_report("dep-1", [read_audit(deployment["device_log"])], db, NOW)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with AlertStore(db, read_only=True) as store, pytest.raises((StoreError, sqlite3.OperationalError), match="readonly|read-only|read only"):
        store.hold(deployment["events"][2].event_id, "must not be written", "tester", NOW)
    with pytest.raises(StoreError, match="does not exist"):
        AlertStore(db.with_name("absent.sqlite"), read_only=True)
