"""Receipts end to end through a real Mosquitto (issue 12.1): the device keeps every alert until
the control room's signed receipt arrives, audits each receipt, retransmits without one; decisions
come back signed and are audited on the device."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_room_helpers import intake_for
from edge_agent.audit.log import AuditLog
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.receipting import ReceiptIssuer
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.events.mqtt_client import AlertPublisher
from edge_agent.events.mqtt_connection import Backoff
from edge_agent.events.receipts import Receipt, encode_message, parse_message, sign_message
from edge_agent.events.spool import Spool
from edge_agent.events.topics import receipt_topic
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER
from edge_agent.identity.registry import DeviceRegistry
from test_mqtt_delivery import client_context, decision, make_outbox, raw_client, wait_for

pytestmark = pytest.mark.broker
CROP = b"\xff\xd8crop\xff\xd9"


@pytest.fixture
def room(mosquitto, messaging_env, tmp_path):
    """A listener that signs receipts (``issue=False``: one that does not)."""
    made = []

    def start(issue: bool = True):
        key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
        store = AlertStore(tmp_path / f"alerts-{len(made)}.db")
        verdicts = []
        group = f"cr-{uuid.uuid4().hex[:8]}"
        issuer = ReceiptIssuer.from_key_file(messaging_env.receipt_key, "control-room", store) if issue else None
        listener = AlertListener(mosquitto.broker_config(CONTROL_ROOM_USER), intake_for(DeviceRegistry.load(messaging_env.registry_path), key, store),
                                 client_id=group, session_expiry_s=300, backoff=Backoff(0.05, 0.5), on_verdict=verdicts.append,
                                 share_group=group, receipts=issuer).start()
        assert listener.subscribed.wait(10), listener.last_error
        made.append((listener, store))
        return listener, store, verdicts

    yield start
    for listener, store in made:
        listener.stop(end_session=True)
        store.close()


def device(mosquitto, messaging_env, tmp_path, device_id="cam-01", timeout_s=5.0):
    audit = AuditLog.open(tmp_path / f"{device_id}-audit.log", None, f"device:{device_id}")
    spool = Spool(tmp_path / f"{device_id}-spool.db")
    publisher = AlertPublisher(mosquitto.broker_config(device_id), device_id, spool, backoff=Backoff(0.05, 0.5),
                               receipt_key=load_public_key(messaging_env.receipt_pub, Ed25519PublicKey), audit=audit, receipt_timeout_s=timeout_s)
    outbox = make_outbox(messaging_env, device_id, spool, publisher.notify)
    outbox._audit = audit  # alerts carry this log's head, as on a device
    return publisher, outbox, spool, audit


def records(audit: AuditLog, kind: str) -> list[dict]:
    return [r["details"] for r in map(json.loads, audit.path.read_text().splitlines()) if r["kind"] == kind]


def test_the_spool_releases_an_alert_only_on_its_signed_receipt_and_audits_it(mosquitto, messaging_env, tmp_path, room):
    listener, store, verdicts = room()
    publisher, outbox, spool, audit = device(mosquitto, messaging_env, tmp_path)
    publisher.start()
    try:
        events = [outbox.raise_alert(decision(), CROP, datetime.now(timezone.utc)) for _ in range(5)]
        wait_for(lambda: spool.stats().depth == 0, 15, "every alert receipted")
        assert publisher.state().receipts == 5 and publisher.state().receipts_refused == 0
    finally:
        publisher.stop()
    got = records(audit, "receipt_received")
    assert [r["event_id"] for r in got] == [e.event_id for e in events]
    for r, e in zip(got, events, strict=True):
        assert r["seq"] == e.seq and r["spool_epoch"] == spool.epoch and r["control_room"] == "control-room"
        assert r["stored_at"] == store.alert(e.event_id).received_at and r["audit_head"] == e.audit_head.as_dict()
    spool.close()
    audit.close()


def test_puback_alone_does_not_release_an_alert_it_is_sent_again(mosquitto, messaging_env, tmp_path, room):
    """A control room that stores alerts but signs no receipt: the device keeps them and retransmits."""
    listener, store, verdicts = room(issue=False)
    publisher, outbox, spool, audit = device(mosquitto, messaging_env, tmp_path, timeout_s=0.3)
    publisher.start()
    try:
        event = outbox.raise_alert(decision(), CROP, datetime.now(timezone.utc))
        wait_for(lambda: publisher.state().retransmits >= 2, 15, "retransmissions without a receipt")
        assert spool.stats().depth == 1
        assert [v.reason for v in verdicts if v.event_id == event.event_id][:2] == ["accepted", "duplicate_event"]
        # a control room that does sign: the same alert is now receipted once and released
        room()
        wait_for(lambda: spool.stats().depth == 0, 15, "released after a receipt")
    finally:
        publisher.stop()
    assert [r["event_id"] for r in records(audit, "receipt_received")] == [event.event_id]
    spool.close()
    audit.close()


def test_forged_or_mismatched_receipts_are_refused_and_the_alert_kept(mosquitto, messaging_env, tmp_path, room):
    room(issue=False)  # stores the alert, signs nothing
    publisher, outbox, spool, audit = device(mosquitto, messaging_env, tmp_path, timeout_s=60)
    publisher.start()
    ident = messaging_env.clients[CONTROL_ROOM_USER]
    sender, state = raw_client(mosquitto, client_context(messaging_env, ident.cert, ident.key), f"forger-{uuid.uuid4().hex[:6]}")
    sender.connect(mosquitto.host, mosquitto.port)
    wait_for(lambda: sender.loop(0.05) == 0 and state["connected"], what="forger connected")
    try:
        event = outbox.raise_alert(decision(), CROP, datetime.now(timezone.utc))
        wait_for(lambda: publisher.state().acknowledged >= 1, what="PUBACK")
        genuine_key = load_private_key(messaging_env.receipt_key, Ed25519PrivateKey)
        receipt = Receipt.for_alert(event, datetime.now(timezone.utc).replace(microsecond=0), "control-room")
        forged = encode_message(sign_message(receipt, Ed25519PrivateKey.generate()))  # the wrong key
        other = Receipt(str(uuid.uuid4()), "cam-01", event.spool_epoch, event.seq, receipt.stored_at, event.audit_head, "control-room")
        wrong_event = encode_message(sign_message(other, genuine_key))  # right key, another alert at that seq
        for payload in (forged, wrong_event, b"{}"):
            sender.publish(receipt_topic("cam-01"), payload, qos=1)
        wait_for(lambda: sender.loop(0.02) == 0 and publisher.state().receipts_refused >= 3, what="three refusals")
        assert spool.stats().depth == 1 and records(audit, "receipt_received") == []
        sender.publish(receipt_topic("cam-01"), encode_message(sign_message(receipt, genuine_key)), qos=1)
        wait_for(lambda: sender.loop(0.02) == 0 and spool.stats().depth == 0, what="the genuine receipt applied")
    finally:
        sender.disconnect()
        publisher.stop()
    assert len(records(audit, "receipt_received")) == 1
    spool.close()
    audit.close()


def test_a_duplicate_alert_gets_the_same_receipt_bytes(messaging_env, tmp_path):
    key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    store = AlertStore(tmp_path / "alerts.db")
    intake = intake_for(DeviceRegistry.load(messaging_env.registry_path), key, store)
    with Spool(tmp_path / "spool.db") as spool:
        outbox = make_outbox(messaging_env, "cam-01", spool, None)
        event = outbox.raise_alert(decision(), CROP, datetime.now(timezone.utc))
        payload = spool.pending()[0].payload
    issuer = ReceiptIssuer.from_key_file(messaging_env.receipt_key, "control-room", store)
    assert intake.receive("lfr/v1/cam-01/alert", payload).accepted
    first = issuer.receipt(event.event_id)
    assert intake.receive("lfr/v1/cam-01/alert", payload).reason == "duplicate_event"
    again = issuer.receipt(event.event_id)
    assert first == again and first.topic == "lfr/v1/cam-01/receipt"
    parsed = parse_message(first.payload)
    assert isinstance(parsed, Receipt) and parsed.acknowledges(event)
    assert len(base64.b64decode(parsed.signature)) == 64
    store.close()


def test_a_reviewers_decision_reaches_the_device_signed_and_is_audited(mosquitto, messaging_env, tmp_path, room):
    listener, store, verdicts = room()
    publisher, outbox, spool, audit = device(mosquitto, messaging_env, tmp_path)
    publisher.start()
    try:
        event = outbox.raise_alert(decision(), CROP, datetime.now(timezone.utc))
        wait_for(lambda: spool.stats().depth == 0, 15, "receipted")
        decided = datetime.now(timezone.utc)
        assert listener.notify_adjudication(event.event_id, "rejected", False, decided, "PC1234")
        wait_for(lambda: publisher.state().adjudications == 1, 10, "the notice at the device")
    finally:
        publisher.stop()
    [notice] = records(audit, "adjudication_received")
    assert (notice["event_id"], notice["decision"], notice["engaged"], notice["reviewer"]) == (event.event_id, "rejected", False, "PC1234")
    spool.close()
    audit.close()
