"""Control-room intake: what is accepted, what is refused and why, adjudication, holds and retention."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import AuditRecorder, make_deployment
from edge_agent.control_room.adjudication import Adjudication, adjudicate, apply_retention, place_hold
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.intake import AlertIntake
from edge_agent.control_room.store import AlertStore, StoreError
from edge_agent.errors import ConfigError
from edge_agent.crypto.canonical import jcs
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.schema import AuditHead, Candidate
from edge_agent.events.signing import encode_event, sign_event
from edge_agent.identity.registry import DeviceRegistry

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
EPOCH = "5e" * 16
HEAD = AuditHead(41, "ab" * 32)
MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt", "embedder_sha256": "e" * 64, "precision": "int8"}
JPEG = b"\xff\xd8" + b"face" * 20 + b"\xff\xd9"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_world(location, max_age: timedelta = timedelta(days=31)):
    keys = {d: Ed25519PrivateKey.generate() for d in ("cam-01", "cam-02")}
    registry = DeviceRegistry()
    for d, k in keys.items():
        registry.add(d, k.public_key(), X25519PrivateKey.generate().public_key(), T0)
    cr = X25519PrivateKey.generate()
    authority = Ed25519PrivateKey.generate()
    store = AlertStore(location)
    audit = AuditRecorder()
    deployments = DeploymentBook(store.db, authority.public_key())
    deployments.import_signed(make_deployment(authority, "dep-1", start=T0 - timedelta(days=60), end=T0 + timedelta(days=60)), T0, "test", audit)
    clock = Clock(T0)
    intake = AlertIntake(registry, cr, store, deployments, audit, max_age=max_age, clock=clock)
    builders = {d: EventBuilder(DeviceContext(d, "dep-1", "wl-1", MODEL), k, cr.public_key()) for d, k in keys.items()}
    fields = ["intake", "store", "clock", "builders", "keys", "cr", "authority", "audit", "deployments"]
    return dataclasses.make_dataclass("World", fields)(intake, store, clock, builders, keys, cr, authority, audit, deployments)


@pytest.fixture
def world(store_location):
    w = make_world(store_location)
    yield w
    w.store.close()


def event(world, device="cam-01", seq=1, captured=T0, **kw):
    d = MatchDecision("subj-1", "suspect", 0.8, 0.64, (Candidate("subj-1", 0.8),), (1, 2, 30, 40))
    kw.setdefault("spool_epoch", EPOCH)
    kw.setdefault("audit_head", HEAD)
    return world.builders[device].build(d, JPEG, captured, seq, **kw)


def legacy_v1_event(world, device="cam-01", seq=1, captured=T0):
    """An lfr.alert/1 event as devices sent before v2 (no epoch; no signing domain). The project
    never signs v1 again, so this test signs it by hand exactly as docs/formats/events.md says."""
    import base64

    from edge_agent.crypto.canonical import canonical_json
    from edge_agent.events.schema import SCHEMA_V1, AlertEvent

    v2 = event(world, device, seq, captured)
    v1 = AlertEvent(**{**{f.name: getattr(v2, f.name) for f in dataclasses.fields(v2)}, "signature": "", "schema": SCHEMA_V1,
                       "spool_epoch": None, "audit_head": None, "match_basis": None,
                       "model": {k: v for k, v in v2.model.items() if k != "precision"}})
    signature = world.keys[device].sign(canonical_json(v1.unsigned_dict()))
    return dataclasses.replace(v1, signature=base64.b64encode(signature).decode())


def topic(device="cam-01"):
    return f"lfr/v1/{device}/alert"


def test_a_genuine_alert_is_stored_pending_review(world):
    ev = event(world)
    verdict = world.intake.receive(topic(), encode_event(ev))
    assert verdict.accepted and verdict.event_id == ev.event_id
    stored = world.store.alert(ev.event_id)
    assert stored.status == "pending_review" and stored.device_id == "cam-01" and stored.seq == 1
    assert world.store.payload(ev.event_id) == encode_event(ev)
    assert world.store.rejections() == []


def _columns(store, table):
    with store.db.read() as tx:
        if store.db.dialect.name == "sqlite":
            return [r[1] for r in tx.rows(f"PRAGMA table_info({table})")]
        return [r[0] for r in tx.rows("SELECT column_name FROM information_schema.columns WHERE table_name=?", (table,))]


def _reasons(world):
    return [r.reason for r in world.store.rejections()]


def test_duplicates_and_replays_are_refused_and_logged(world):
    ev = event(world)
    payload = encode_event(ev)
    assert world.intake.receive(topic(), payload).accepted
    assert world.intake.receive(topic(), payload).reason == "duplicate_event"
    again = event(world, seq=1)  # same device, same seq, new event id
    assert world.intake.receive(topic(), encode_event(again)).reason == "seq_reused"
    assert _reasons(world) == ["duplicate_event", "seq_reused"]
    assert len(world.store.alerts()) == 1


def test_forged_and_malformed_messages_are_refused_with_reasons(world):
    ev = event(world)
    forged = sign_event(dataclasses.replace(event(world, seq=2), signature=""), Ed25519PrivateKey.generate())
    other_device = event(world, device="cam-02", seq=3)
    unknown = EventBuilder(DeviceContext("cam-99", "dep-1", "wl-1", MODEL), Ed25519PrivateKey.generate(), world.cr.public_key())
    d = MatchDecision("subj-1", "suspect", 0.8, 0.64, (Candidate("subj-1", 0.8),), (1, 2, 30, 40))
    unknown_ev = unknown.build(d, JPEG, T0, 1, spool_epoch=EPOCH, audit_head=HEAD)
    wrong_cr = EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), world.keys["cam-01"], X25519PrivateKey.generate().public_key()).build(d, JPEG, T0, 9, spool_epoch=EPOCH, audit_head=HEAD)
    tampered = json.loads(encode_event(event(world, seq=4)))
    tampered["deployment_id"] = "dep-2"
    unsigned = event(world, seq=5).unsigned_dict()
    cases = [
        ("lfr/v1/cam-01/status", encode_event(ev), "malformed_topic"),
        (topic(), b"{", "malformed_payload"),
        (topic(), jcs(unsigned), "unsigned"),
        (topic(), jcs({**unsigned, "signature": ""}), "unsigned"),
        (topic(), json.dumps(ev.as_dict()).encode(), "non_canonical"),  # genuine, but not RFC 8785 bytes
        (topic(), jcs(ev.as_dict()).replace(b'"score":0.8', b'"score":8e-1'), "non_canonical"),  # same value, other spelling
        (topic(), json.dumps({"schema": "lfr.alert/1", "signature": "x"}).encode(), "schema_invalid"),
        (topic(), encode_event(other_device), "topic_device_mismatch"),
        (topic("cam-99"), encode_event(unknown_ev), "unknown_device"),
        (topic(), encode_event(forged), "bad_signature"),
        (topic(), jcs(tampered), "bad_signature"),
        (topic(), encode_event(wrong_cr), "crop_unreadable"),
    ]
    for t, payload, reason in cases:
        verdict = world.intake.receive(t, payload)
        assert (verdict.accepted, verdict.reason) == (False, reason), t
    assert _reasons(world) == [c[2] for c in cases]
    assert world.store.alerts() == []
    # Rejections keep a hash, never the payload.
    columns = _columns(world.store, "rejections")
    assert "payload" not in columns and "payload_sha256" in columns


def test_out_of_window_events_are_refused(world):
    old = event(world, seq=1, captured=T0 - timedelta(days=32))
    future = event(world, seq=2, captured=T0 + timedelta(minutes=6))
    late_but_ok = event(world, seq=3, captured=T0 - timedelta(days=2))  # store-and-forward after an outage
    assert world.intake.receive(topic(), encode_event(old)).reason == "out_of_window"
    assert world.intake.receive(topic(), encode_event(future)).reason == "out_of_window"
    assert world.intake.receive(topic(), encode_event(late_but_ok)).accepted


def test_adjudication_is_required_final_and_audited(world):
    ev = event(world)
    world.intake.receive(topic(), encode_event(ev))
    audit = AuditRecorder()
    with pytest.raises(ConfigError, match="reason"):
        Adjudication(ev.event_id, "confirmed", "PC1234", "  ", True, T0)
    with pytest.raises(ConfigError, match="decision"):
        Adjudication(ev.event_id, "maybe", "PC1234", "x", True, T0)
    adjudicate(world.store, Adjudication(ev.event_id, "rejected", "PC1234", "different person: ear shape", False, T0), audit)
    assert world.store.alert(ev.event_id).status == "rejected"
    assert world.store.adjudications(ev.event_id) == [
        {"decision": "rejected", "reviewer": "PC1234", "reason": "different person: ear shape", "engaged": False, "at": "2026-11-22T08:00:00.000Z"}
    ]
    assert audit.records == [("adjudication_recorded", {"event_id": ev.event_id, "decision": "rejected", "reviewer": "PC1234", "reason": "different person: ear shape", "engaged": False})]
    with pytest.raises(StoreError, match="already adjudicated"):
        adjudicate(world.store, Adjudication(ev.event_id, "confirmed", "PC9", "changed my mind", True, T0), audit)
    with pytest.raises(StoreError, match="no alert"):
        adjudicate(world.store, Adjudication(str(uuid.uuid4()), "confirmed", "PC9", "x", None, T0), audit)
    assert len(audit.records) == 1  # refused decisions are not recorded as decisions


def test_retention_deletes_unless_held_and_every_run_is_audited(world):
    a, b, c = (event(world, seq=i, captured=T0 + timedelta(hours=i)) for i in (1, 2, 3))
    world.clock.now = T0 + timedelta(hours=3)
    for ev in (a, b, c):
        assert world.intake.receive(topic(), encode_event(ev)).accepted
    audit = AuditRecorder()
    place_hold(world.store, b.event_id, "evidence in case 23/1234", "DI Smith", T0, audit)
    with pytest.raises(ConfigError, match="reason"):
        place_hold(world.store, c.event_id, " ", "DI Smith", T0, audit)
    now = T0 + timedelta(days=1, hours=2, minutes=30)
    assert apply_retention(world.store, now, timedelta(days=1), audit).deleted == [a.event_id]
    assert [x.event_id for x in world.store.alerts()] == [b.event_id, c.event_id]
    assert world.store.alert(b.event_id).hold_reason == "evidence in case 23/1234"
    assert apply_retention(world.store, now, timedelta(days=1), audit).deleted == []  # a run that deletes nothing is audited too
    runs = [d for k, d in audit.records if k == "alerts_deleted_retention"]
    assert [r["count"] for r in runs] == [1, 0] and runs[0]["event_ids"] == [a.event_id]
    with pytest.raises(ConfigError, match="31 days"):
        apply_retention(world.store, now, timedelta(days=40), audit)


@pytest.mark.parametrize("window_days", [3, 45])
def test_replay_memory_outlives_purges_for_as_long_as_an_event_could_be_accepted(store_location, window_days):
    """Issue 10.11: a purged alert replayed later is refused, whatever the intake's window; once the
    window has passed the memory may go, and the replay is then refused as too old."""
    world = make_world(store_location, max_age=timedelta(days=window_days))
    try:
        window = world.intake.max_age + world.intake.max_future
        ev = event(world, seq=1, captured=T0)
        assert world.intake.receive(topic(), encode_event(ev)).accepted
        audit = AuditRecorder()
        for later in (timedelta(days=1, hours=1), world.intake.max_age - timedelta(minutes=1)):  # still acceptable by age
            world.clock.now = T0 + later
            apply_retention(world.store, world.clock.now, timedelta(days=1), audit)  # retention far shorter than the window
            with pytest.raises(StoreError):
                world.store.alert(ev.event_id)  # the alert itself is gone...
            assert world.intake.receive(topic(), encode_event(ev)).reason == "duplicate_event"  # ...its replay memory is not
            same_seq = event(world, seq=1, captured=T0 + timedelta(minutes=1))
            assert world.intake.receive(topic(), encode_event(same_seq)).reason in ("seq_reused", "out_of_window")
        world.clock.now = T0 + window + timedelta(minutes=1)
        result = apply_retention(world.store, world.clock.now, timedelta(days=1), audit)
        assert result.forgotten >= 1 and result.replay_horizon > ev.captured_at_text
        assert world.intake.receive(topic(), encode_event(ev)).reason == "out_of_window"
        # A wider window configured later cannot reopen what was forgotten: the horizon refuses it.
        wider = AlertIntake(world.intake.registry, world.cr, world.store, world.deployments, AuditRecorder(),
                            max_age=timedelta(days=window_days * 3), clock=world.clock)
        verdict = wider.receive(topic(), encode_event(ev))
        assert (verdict.accepted, verdict.reason) == (False, "out_of_window") and "horizon" in verdict.detail
    finally:
        world.store.close()


def test_an_internal_error_is_logged_and_the_payload_quarantined(world):
    class BrokenRegistry:
        def signing_key(self, device_id):
            raise RuntimeError("registry backend exploded")

    world.intake.registry = BrokenRegistry()
    payload = encode_event(event(world))
    verdict = world.intake.receive(topic(), payload)
    assert (verdict.accepted, verdict.reason) == (False, "internal_error")
    assert "exploded" in world.store.rejections()[0].detail
    assert world.store.quarantined()[0][2] == payload


def test_a_recreated_spool_restarts_its_sequence_under_a_new_epoch(world):
    """Issue 10.10 (control-room half): replay memory keys on (device, spool_epoch, seq), so a device
    whose spool was lost starts again at seq 1 and is heard; a reused seq in one epoch is still refused."""
    first = event(world, seq=1)
    assert world.intake.receive(topic(), encode_event(first)).accepted
    recreated = event(world, seq=1, spool_epoch="ab" * 16)
    assert world.intake.receive(topic(), encode_event(recreated)).accepted
    assert world.store.alert(recreated.event_id).spool_epoch == "ab" * 16
    again = event(world, seq=1, spool_epoch="ab" * 16)
    verdict = world.intake.receive(topic(), encode_event(again))
    assert (verdict.accepted, verdict.reason) == (False, "seq_reused") and "ab" * 16 in verdict.detail
