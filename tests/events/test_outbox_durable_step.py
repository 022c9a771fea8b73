"""Spooling an alert and auditing it are one durable step (issue 11): a crash or a full disk
between the two never lets an alert leave the device without its audit record."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditError, AuditLog
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import GENESIS_HASH, AuditHead, Candidate
from edge_agent.events.spool import SPOOL_SCHEMA_VERSION, Spool

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt", "embedder_sha256": "e" * 64, "precision": "int8"}
JPEG = b"\xff\xd8" + b"crop" * 20 + b"\xff\xd9"
DECISION = MatchDecision("subj-1", "suspect", 0.7, 0.64, (Candidate("subj-1", 0.7),), (1, 1, 20, 20))
KEY = Ed25519PrivateKey.generate()


def builder() -> EventBuilder:
    return EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), KEY, X25519PrivateKey.generate().public_key())


class FlakyAudit:
    """The real audit log, whose appends fail while ``full`` is set (a full disk)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.full = False

    def append(self, kind, details, **kw):
        if self.full:
            raise AuditError("cannot write audit log: No space left on device", "free disk space")
        return self.log.append(kind, details, **kw)

    def head(self):
        return self.log.head()


def raised_records(path) -> list[dict]:
    return [r["details"] for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "alert_raised"]


def test_an_alert_whose_audit_record_cannot_be_written_is_held_not_sent(tmp_path):
    audit = FlakyAudit(AuditLog.open(tmp_path / "audit.log", KEY, "device:cam-01"))
    with Spool(tmp_path / "spool.db") as spool:
        outbox = AlertOutbox(builder(), spool, audit)
        audit.full = True
        event = outbox.raise_alert(DECISION, JPEG, datetime.now(timezone.utc))
        assert spool.stats().depth == 1, "the alert is stored (accepted)"
        assert spool.pending() == [] and spool.get(event.seq) is None, "but the publisher cannot see it"
        assert outbox.health().unaudited == 1 and "No space left" in outbox.health().last_error
        assert outbox.complete_audits() == 1  # still full
        audit.full = False
        assert outbox.complete_audits() == 0
        assert [p.event_id for p in spool.pending()] == [event.event_id]
    audit.log.close()
    records = raised_records(tmp_path / "audit.log")
    assert [(r["event_id"], r.get("recovered")) for r in records] == [(event.event_id, True)]


def test_a_crash_between_spooling_and_auditing_is_completed_at_the_next_start(tmp_path):
    """The crash: the spool row is committed (hidden), the process dies before the audit record."""
    built = []

    def make(seq):
        event = builder().build(DECISION, JPEG, datetime.now(timezone.utc), seq, spool_epoch=spool.epoch, audit_head=AuditHead(-1, GENESIS_HASH))
        built.append(event)
        from edge_agent.events.signing import encode_event

        return event.event_id, encode_event(event)

    with Spool(tmp_path / "spool.db") as spool:
        spool.append(make, audited=False)
    # restart: opening the outbox writes the missing record before anything is sent
    log = AuditLog.open(tmp_path / "audit.log", KEY, "device:cam-01")
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.pending() == []
        AlertOutbox(builder(), spool, log)
        assert [p.event_id for p in spool.pending()] == [built[0].event_id]
    log.close()
    assert [(r["event_id"], r["seq"], r["recovered"]) for r in raised_records(tmp_path / "audit.log")] == [(built[0].event_id, 1, True)]


def test_normal_alerts_are_audited_then_released(tmp_path):
    log = AuditLog.open(tmp_path / "audit.log", KEY, "device:cam-01")
    with Spool(tmp_path / "spool.db") as spool:
        outbox = AlertOutbox(builder(), spool, log)
        events = [outbox.raise_alert(DECISION, JPEG, datetime.now(timezone.utc)) for _ in range(3)]
        assert [p.event_id for p in spool.pending()] == [e.event_id for e in events]
        assert outbox.health().ok
    log.close()
    assert [r["event_id"] for r in raised_records(tmp_path / "audit.log")] == [e.event_id for e in events]
    assert all("recovered" not in r for r in raised_records(tmp_path / "audit.log"))


def test_a_version_1_spool_is_upgraded_and_keeps_its_alerts(tmp_path):
    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', 1), ('last_seq', 1), ('dropped_size_limit', 0), ('dropped_retention', 0);"
        "INSERT INTO events VALUES (1, 'e-1', '2026-11-22T08:00:00.000Z', x'7b7d', 2);"
    )
    db.commit()
    db.close()
    with Spool(path) as spool:
        assert [p.event_id for p in spool.pending()] == ["e-1"]
        assert spool.stats().last_seq == 1
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == SPOOL_SCHEMA_VERSION == 2


def test_a_torn_spool_wal_is_not_a_reason_to_refuse_to_start(tmp_path):
    """SQLite's WAL frames carry checksums: a crash mid-append leaves a torn last frame that the next
    open ignores (that transaction never committed); every whole transaction before it is kept."""
    import shutil
    import uuid

    live = tmp_path / "live"
    live.mkdir()
    spool = Spool(live / "spool.db")
    for _ in range(5):
        spool.append(lambda seq: (str(uuid.uuid4()), b"x" * 3000))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("spool.db", "spool.db-wal"):  # copied while open: the WAL is not checkpointed
        shutil.copy(live / name, crashed / name)
    spool.close()
    wal = crashed / "spool.db-wal"
    wal.write_bytes(wal.read_bytes()[:-2000])  # tear the last frame
    with Spool(crashed / "spool.db") as reopened:
        seqs = [p.seq for p in reopened.pending()]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 4
        assert reopened.append(lambda seq: (str(uuid.uuid4()), b"y")).seq == 5
