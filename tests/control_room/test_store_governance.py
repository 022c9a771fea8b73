"""Store governance (issue 10.2, 10.3, 10.13, 10.14, 10.15): holds are never overwritten, every
verdict is audited, alerts outside their deployment are refused, stores are private, evidence
copies are read without a trace, and crops leave only after adjudication, 0600 and audited."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import stat
import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_room_helpers import AuditRecorder, make_deployment
from edge_agent.audit.log import AuditError, AuditLog
from edge_agent.audit.verify import verify_audit_log
from edge_agent.control_room.adjudication import Adjudication, adjudicate, export_crop, place_hold, release_hold
from edge_agent.control_room.intake import AlertIntake
from edge_agent.control_room.store import AlertStore, StoreError
from edge_agent.errors import ConfigError, SecurityError
from edge_agent.events.signing import encode_event
from test_intake import EPOCH, HEAD, JPEG, MODEL, T0, event, legacy_v1_event, make_world, topic


@pytest.fixture
def world(store_location):
    w = make_world(store_location)
    yield w
    w.store.close()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_legal_hold_is_never_overwritten_silently(world):
    ev = event(world)
    assert world.intake.receive(topic(), encode_event(ev)).accepted
    audit = AuditRecorder()
    place_hold(world.store, ev.event_id, "evidence in case 23/1234", "DI Smith", T0, audit)
    with pytest.raises(StoreError, match="already on legal hold.*DI Smith"):
        place_hold(world.store, ev.event_id, "nothing to see", "PC Other", T0 + timedelta(hours=1), audit)
    assert world.store.alert(ev.event_id).hold_reason == "evidence in case 23/1234"
    with pytest.raises(ConfigError, match="reason"):
        release_hold(world.store, ev.event_id, "", "DI Smith", T0, audit)
    release_hold(world.store, ev.event_id, "case 23/1234 closed", "DI Smith", T0 + timedelta(hours=2), audit)
    assert world.store.alert(ev.event_id).hold_reason is None
    place_hold(world.store, ev.event_id, "new case 24/1", "DI Jones", T0 + timedelta(hours=3), audit)
    assert [(h["action"], h["actor"]) for h in world.store.hold_history(ev.event_id)] == [
        ("placed", "DI Smith"), ("released", "DI Smith"), ("placed", "DI Jones")]
    assert audit.kinds() == ["legal_hold_placed", "legal_hold_released", "legal_hold_placed"]
    with pytest.raises(StoreError, match="no legal hold"):
        release_hold(world.store, event(world, seq=2).event_id, "x", "DI Smith", T0, audit)


def test_alerts_outside_the_deployment_they_cite_are_refused(world):
    """Issue 10.13 (control-room half): the record's window, devices and threshold bind its alerts."""
    short = make_deployment(world.authority, "dep-short", devices=("cam-01",), start=T0 - timedelta(hours=2), end=T0 + timedelta(hours=2),
                            threshold=0.7)
    world.deployments.import_signed(short, T0, "test", world.audit)
    from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
    from edge_agent.events.schema import Candidate

    seqs = itertools.count(100)

    def on(deployment, device="cam-01", captured=T0, score=0.8, threshold=0.75):
        builder = EventBuilder(DeviceContext(device, deployment, "wl-1", MODEL), world.keys[device], world.cr.public_key())
        decision = MatchDecision("subj-1", "suspect", score, threshold, (Candidate("subj-1", score),), (1, 2, 30, 40))
        return encode_event(builder.build(decision, JPEG, captured, next(seqs), spool_epoch=EPOCH, audit_head=HEAD))

    cases = [
        (on("dep-unknown"), "unknown_deployment"),
        (on("dep-short", device="cam-02"), "device_not_in_deployment"),
        (on("dep-short", captured=T0 - timedelta(hours=3)), "outside_deployment"),
        (on("dep-short", captured=T0 + timedelta(hours=2)), "outside_deployment"),  # the end is exclusive
        (on("dep-short", threshold=0.65), "threshold_below_deployment"),
    ]
    world.clock.now = T0 + timedelta(hours=2, minutes=1)
    for payload, reason in cases:
        assert world.intake.receive(topic("cam-02" if "device_not" in reason else "cam-01"), payload).reason == reason
    assert world.intake.receive(topic(), on("dep-short", captured=T0 + timedelta(hours=1))).accepted
    # Records must verify under the authority key; a held id is never replaced by different content.
    with pytest.raises(SecurityError):
        world.deployments.import_signed(make_deployment(Ed25519PrivateKey.generate(), "dep-forged"), T0, "test", world.audit)
    with pytest.raises(SecurityError, match="never replaced"):
        world.deployments.import_signed(make_deployment(world.authority, "dep-short", threshold=0.5), T0, "test", world.audit)
    assert world.audit.kinds().count("deployment_imported") == 2


def test_every_verdict_is_audited_and_an_unauditable_alert_is_not_acknowledged(store_location, tmp_path):
    world = make_world(store_location)
    log_path = tmp_path / "room-audit.log"
    key = Ed25519PrivateKey.generate()
    try:
        with AuditLog.open(log_path, key, "control-room:test") as log:
            world.intake.audit = log
            good = event(world)
            assert world.intake.receive(topic(), encode_event(good)).accepted
            assert world.intake.receive(topic(), encode_event(good)).reason == "duplicate_event"
            assert world.intake.receive(topic(), b"{").reason == "malformed_payload"
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
        kinds = [(r["kind"], r["details"].get("reason")) for r in records if r["kind"] != "checkpoint"]
        assert kinds == [("alert_accepted", None), ("alert_refused", "duplicate_event"), ("alert_refused", "malformed_payload")]
        assert records[0]["details"]["event_id"] == good.event_id and records[0]["details"]["seq"] == 1
        assert records[2]["details"]["payload_sha256"] == hashlib.sha256(b"{").hexdigest()
        assert verify_audit_log(log_path, key.public_key(), 100).ok

        class FullDisk:
            def append(self, kind, details, actor=None):
                raise AuditError("cannot write audit log: No space left on device", "free disk space")

        world.intake.audit = FullDisk()
        with pytest.raises(AuditError):  # the listener does not acknowledge: the broker redelivers
            world.intake.receive(topic(), encode_event(event(world, seq=2)))
    finally:
        world.store.close()


def test_store_and_its_journal_files_are_created_private(tmp_path):
    db = tmp_path / "alerts.db"
    old = os.umask(0o022)
    try:
        world = make_world(str(db))
        assert world.intake.receive(topic(), encode_event(event(world))).accepted
        for path in (db, f"{db}-wal", f"{db}-shm"):
            assert os.path.exists(path) and _mode(path) == 0o600, path
        world.store.close()
        with AuditLog.open(tmp_path / "audit.log", None, "control-room") as log:
            log.append("alert_accepted", {"event_id": "x"})
        assert _mode(tmp_path / "audit.log") == 0o600
        # A store left world-readable by an older version is tightened on open.
        os.chmod(db, 0o644)
        AlertStore(db).close()
        assert _mode(db) == 0o600
    finally:
        os.umask(old)


def test_an_evidence_copy_opened_read_only_leaves_nothing_beside_it(tmp_path):
    world = make_world(str(tmp_path / "live.db"))
    first = event(world)
    assert world.intake.receive(topic(), encode_event(first)).accepted
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    with sqlite3.connect(tmp_path / "live.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (evidence / "alerts.db").write_bytes((tmp_path / "live.db").read_bytes())
    before = hashlib.sha256((evidence / "alerts.db").read_bytes()).hexdigest()
    with AlertStore(evidence / "alerts.db", read_only=True) as copy:
        assert [a.event_id for a in copy.alerts()] == [first.event_id]
        assert sorted(p.name for p in evidence.iterdir()) == ["alerts.db"]  # no -wal, no -shm while open
        with pytest.raises(StoreError, match="read-only"):
            copy.hold(first.event_id, "must not be written", "tester", T0)
    assert sorted(p.name for p in evidence.iterdir()) == ["alerts.db"]
    assert hashlib.sha256((evidence / "alerts.db").read_bytes()).hexdigest() == before

    # A copy taken while the control room ran has a -wal beside it holding the newest alert.
    second = event(world, seq=2)
    assert world.intake.receive(topic(), encode_event(second)).accepted
    hot = tmp_path / "hot"
    hot.mkdir()
    for suffix in ("", "-wal"):
        (hot / f"alerts.db{suffix}").write_bytes((tmp_path / f"live.db{suffix}").read_bytes())
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in hot.iterdir()}
    with AlertStore(hot / "alerts.db", read_only=True) as copy:
        assert {a.event_id for a in copy.alerts()} == {first.event_id, second.event_id}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in hot.iterdir()} == sums
    world.store.close()


def test_a_version_1_store_is_migrated_and_keeps_its_replay_memory(tmp_path):
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE alerts (event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL, deployment_id TEXT NOT NULL,
            watchlist_version TEXT NOT NULL, subject_ref TEXT NOT NULL, category TEXT NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL,
            model TEXT NOT NULL, face_box TEXT NOT NULL, candidates TEXT NOT NULL, captured_at TEXT NOT NULL, received_at TEXT NOT NULL,
            crop_sha256 TEXT NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL, UNIQUE (device_id, seq));
        CREATE TABLE adjudications (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, decision TEXT NOT NULL,
            reviewer TEXT NOT NULL, reason TEXT NOT NULL, engaged INTEGER, at TEXT NOT NULL);
        CREATE TABLE holds (event_id TEXT PRIMARY KEY, reason TEXT NOT NULL, held_by TEXT NOT NULL, at TEXT NOT NULL);
        CREATE TABLE seen (event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL, captured_at TEXT NOT NULL, UNIQUE (device_id, seq));
    """)
    conn.execute("INSERT INTO seen VALUES ('0b7e6c84-8f0c-4d0e-9a53-9f1f4c1f5b71', 'cam-01', 7, '2026-11-21T08:00:00.000Z')")
    conn.commit()
    conn.close()
    world = make_world(str(db))
    replay = legacy_v1_event(world, seq=7)  # a v1 event carries no epoch, like the migrated memory
    assert world.intake.receive(topic(), encode_event(replay)).reason == "seq_reused"
    assert world.intake.receive(topic(), encode_event(event(world, seq=8))).accepted
    world.store.close()


def test_crops_leave_only_after_adjudication_0600_and_audited(world, tmp_path):
    ev = event(world)
    assert world.intake.receive(topic(), encode_event(ev)).accepted
    audit = AuditRecorder()
    out = tmp_path / "crop.jpg"
    with pytest.raises(StoreError, match="not adjudicated"):
        export_crop(world.store, ev.event_id, world.cr, out, audit)
    assert not out.exists() and audit.records == []
    adjudicate(world.store, Adjudication(ev.event_id, "confirmed", "PC1234", "custody image match", True, T0), audit)
    old = os.umask(0o022)
    try:
        digest = export_crop(world.store, ev.event_id, world.cr, out, audit, actor="operator:pc1234")
    finally:
        os.umask(old)
    assert out.read_bytes() == JPEG and _mode(out) == 0o600 and digest == hashlib.sha256(JPEG).hexdigest()
    assert audit.records[-1] == ("crop_exported", {"event_id": ev.event_id, "path": str(out.resolve()), "sha256": digest, "status": "confirmed"})
    with pytest.raises(ConfigError, match="already exists"):
        export_crop(world.store, ev.event_id, world.cr, out, audit)

    class Broken:
        def append(self, kind, details, actor=None):
            raise AuditError("audit log is closed", "open it again")

    again = tmp_path / "again.jpg"
    with pytest.raises(AuditError):
        export_crop(world.store, ev.event_id, world.cr, again, Broken())
    assert not again.exists()  # an export that could not be audited does not stay


def test_two_stores_on_one_database_never_both_accept_an_alert(store_location):
    """Several listeners share one control room (PostgreSQL, or one SQLite file): a redelivered
    alert racing on two connections is stored once."""
    world = make_world(store_location)
    second = AlertStore(store_location)
    other = AlertIntake(world.intake.registry, world.cr, second, world.deployments, AuditRecorder(), clock=world.clock)
    try:
        payloads = [encode_event(event(world, seq=i)) for i in range(1, 41)]
        verdicts: list = []
        lock = threading.Lock()

        def run(intake):
            for p in payloads:
                v = intake.receive(topic(), p)
                with lock:
                    verdicts.append(v)

        threads = [threading.Thread(target=run, args=(i,)) for i in (world.intake, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(v.accepted for v in verdicts) == 40
        assert sorted(v.reason for v in verdicts if not v.accepted) == ["duplicate_event"] * 40
        assert len(world.store.alerts()) == 40
    finally:
        second.close()
        world.store.close()
