"""lfr.alert/2 context (issue 10.10 event side, 10.16): every alert carries its spool's random
epoch and the audit chain's head at commit; a recreated spool restarts seq under a new epoch."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditLog
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import AlertEvent, Candidate, parse_payload
from edge_agent.events.signing import verify_event
from edge_agent.events.spool import Spool, SpoolError

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt", "embedder_sha256": "e" * 64, "precision": "int8"}
JPEG = b"\xff\xd8" + bytes(300) + b"\xff\xd9"
KEY = Ed25519PrivateKey.generate()


def _outbox(spool, audit=None):
    builder = EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), KEY, X25519PrivateKey.generate().public_key())
    return AlertOutbox(builder, spool, audit)


def _decision(basis="single_frame"):
    return MatchDecision("subj-1", "suspect", 0.7, 0.64, (Candidate("subj-1", 0.7),), (1, 1, 20, 20), basis)


def test_a_spool_keeps_one_random_epoch_for_its_life(tmp_path):
    with Spool(tmp_path / "a.db") as a:
        epoch = a.epoch
    assert re.fullmatch(r"[0-9a-f]{32}", epoch)
    with Spool(tmp_path / "a.db") as again:
        assert again.epoch == epoch  # reopening keeps it
    with Spool(tmp_path / "b.db") as other:
        assert other.epoch != epoch  # a new database draws a new one
    with sqlite3.connect(tmp_path / "a.db") as db:
        (raw,) = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
    assert isinstance(raw, bytes) and raw.hex() == epoch  # a BLOB: INTEGER affinity cannot coerce it


def test_a_damaged_epoch_is_refused_not_replaced(tmp_path):
    Spool(tmp_path / "a.db").close()
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute("UPDATE meta SET value=7 WHERE key='epoch'")
    with pytest.raises(SpoolError, match="damaged epoch"):
        Spool(tmp_path / "a.db")


def test_a_recreated_spool_restarts_seq_under_a_new_epoch(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        first = [_outbox(spool).raise_alert(_decision(), JPEG, datetime.now(timezone.utc)) for _ in range(2)]
    (tmp_path / "spool.db").unlink()
    for side in ("-wal", "-shm"):
        (tmp_path / f"spool.db{side}").unlink(missing_ok=True)
    with Spool(tmp_path / "spool.db") as spool:
        again = _outbox(spool).raise_alert(_decision(), JPEG, datetime.now(timezone.utc))
    assert [e.seq for e in first] == [1, 2] and again.seq == 1
    assert first[0].spool_epoch == first[1].spool_epoch != again.spool_epoch
    # the same (device, seq) is told apart by the epoch, which the signature covers
    assert (first[0].device_id, first[0].spool_epoch, first[0].seq) != (again.device_id, again.spool_epoch, again.seq)


def test_each_alert_carries_the_audit_head_at_commit_and_its_match_basis(tmp_path):
    audit = AuditLog.open(tmp_path / "audit.log", KEY, "device:cam-01")
    audit.append("watchlist_loaded", {"package_id": "p"})
    with Spool(tmp_path / "spool.db") as spool:
        outbox = _outbox(spool, audit)
        head_before = audit.head()
        one = outbox.raise_alert(_decision(), JPEG, datetime.now(timezone.utc))
        two = outbox.raise_alert(_decision("fused_track"), JPEG, datetime.now(timezone.utc))
        stored = [AlertEvent.from_dict(parse_payload(e.payload)) for e in spool.pending(limit=10)]
    audit.close()
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert (one.audit_head.seq, one.audit_head.hash) == head_before == (records[0]["seq"], records[0]["hash"])
    # the second alert's head is the first alert's alert_raised record
    raised = next(r for r in records if r["kind"] == "alert_raised" and r["details"]["event_id"] == one.event_id)
    assert (two.audit_head.seq, two.audit_head.hash) == (raised["seq"], raised["hash"])
    assert (one.match_basis, two.match_basis) == ("single_frame", "fused_track")
    assert stored == [one, two]
    for event in stored:
        verify_event(event, KEY.public_key())


def test_without_an_audit_log_the_head_is_the_empty_chain(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        event = _outbox(spool).raise_alert(_decision(), JPEG, datetime.now(timezone.utc))
    assert (event.audit_head.seq, event.audit_head.hash) == (-1, "0" * 64)
