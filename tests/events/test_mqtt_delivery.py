"""Alerts through a real Mosquitto (TLS, client certs, ACL): delivery, auth, outages, crashes, LWT."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from control_room_helpers import intake_for
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, MosquittoBroker
from edge_agent.control_room.intake import Verdict
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.crypto.canonical import jcs
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.crop import crop_face_jpeg, open_crop
from edge_agent.events.mqtt_client import AlertPublisher
from edge_agent.events.mqtt_connection import Backoff
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import AlertEvent, Candidate, parse_payload
from edge_agent.events.signing import encode_event
from edge_agent.events.spool import Spool
from edge_agent.events.topics import alert_topic, status_topic
from edge_agent.fleet import pki
from edge_agent.identity.registry import DeviceRegistry

pytestmark = pytest.mark.broker

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt-similarity-112/1", "embedder_sha256": "e" * 64, "precision": "int8"}
PUBLISHER_PROC = Path(__file__).with_name("publisher_proc.py")


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def make_outbox(env, device_id: str, spool: Spool, notify: Callable[[], None] | None, model: dict[str, str] = MODEL) -> AlertOutbox:
    key = load_private_key(env.devices[device_id] / "device_ed25519.key", Ed25519PrivateKey)
    cr_pub = load_private_key(env.control_room_key, X25519PrivateKey).public_key()
    return AlertOutbox(EventBuilder(DeviceContext(device_id, "dep-test", "wl-1", model), key, cr_pub), spool, notify=notify)


def decision(score: float = 0.81) -> MatchDecision:
    return MatchDecision("subj-1", "suspect", score, 0.64, (Candidate("subj-1", score), Candidate("subj-2", 0.5)), (100, 50, 180, 150))


def raw_client(mosquitto: MosquittoBroker, ctx: ssl.SSLContext, client_id: str) -> tuple[mqtt.Client, dict]:
    """A bare paho client; returns (client, state) with state["connected"] set on a successful CONNACK."""
    state: dict = {"connected": False, "messages": [], "acks": {}}
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set_context(ctx)
    client.on_connect = lambda c, u, f, rc, p: state.update(connected=not rc.is_failure)
    client.on_message = lambda c, u, m: state["messages"].append(m)
    client.on_publish = lambda c, u, mid, rc, p: state["acks"].__setitem__(mid, rc)
    return client, state


def try_connect(mosquitto: MosquittoBroker, ctx: ssl.SSLContext) -> bool:
    client, state = raw_client(mosquitto, ctx, f"probe-{uuid.uuid4().hex[:6]}")
    try:
        client.connect(mosquitto.host, mosquitto.port, keepalive=5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not state["connected"]:
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
    except (OSError, ssl.SSLError):
        return False
    finally:
        client.disconnect()
    return state["connected"]


def client_context(env, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(env.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_alert_arrives_verified_with_crop_decrypted(mosquitto, messaging_env, control_room, tmp_path):
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    jpeg = crop_face_jpeg(frame, (100, 50, 180, 150))
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.5)).start()
        try:
            event = make_outbox(messaging_env, "cam-01", spool, publisher.notify).raise_alert(decision(), jpeg, datetime.now(timezone.utc))
            wait_for(lambda: len(control_room.accepted()) == 1, what="the alert at the listener")
            wait_for(lambda: spool.stats().depth == 0, what="the spool row deleted after PUBACK")
        finally:
            publisher.stop()
    stored = control_room.store.alert(event.event_id)
    assert stored.status == "pending_review"
    assert (stored.device_id, stored.seq, stored.subject_ref, stored.score) == ("cam-01", 1, "subj-1", 0.81)
    received = AlertEvent.from_dict(parse_payload(control_room.store.payload(event.event_id)))
    assert open_crop(received.crop_sealed, control_room.key, event.event_id) == jpeg
    assert control_room.reasons() == []


def test_no_connection_without_a_valid_client_certificate(mosquitto, messaging_env, tmp_path):
    good = messaging_env.clients["cam-01"]
    assert try_connect(mosquitto, client_context(messaging_env, good.cert, good.key))
    assert not try_connect(mosquitto, client_context(messaging_env, None, None))
    rogue_ca = pki.create_ca(tmp_path / "rogue-ca", "rogue CA")
    rogue = pki.issue_client_cert(rogue_ca, tmp_path / "rogue", "cam-01")  # right name, wrong issuer
    assert not try_connect(mosquitto, client_context(messaging_env, rogue.cert_path, rogue.key_path))


def test_device_cannot_publish_as_another_device(mosquitto, messaging_env, control_room, tmp_path):
    # cam-01's credentials, an event genuinely signed by cam-02's key, on cam-02's topic: the ACL drops it.
    with Spool(tmp_path / "spool2.db") as spool2:
        event = make_outbox(messaging_env, "cam-02", spool2, None).raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
    ident = messaging_env.clients["cam-01"]
    client, state = raw_client(mosquitto, client_context(messaging_env, ident.cert, ident.key), "device-cam-01-rogue")
    client.connect(mosquitto.host, mosquitto.port)
    wait_for(lambda: client.loop(0.05) == 0 and state["connected"], what="cam-01 connected")
    info = client.publish(alert_topic("cam-02"), encode_event(event), qos=1)
    wait_for(lambda: client.loop(0.05) == 0 and info.mid in state["acks"], what="PUBACK")
    assert state["acks"][info.mid].is_failure  # MQTT 5: "Not authorized"
    # And on its own topic, a payload naming another device is refused by the listener.
    info2 = client.publish(alert_topic("cam-01"), encode_event(event), qos=1)
    wait_for(lambda: client.loop(0.05) == 0 and info2.mid in state["acks"], what="PUBACK 2")
    client.disconnect()
    wait_for(lambda: control_room.reasons() == ["topic_device_mismatch"], what="the mismatch rejection")
    assert control_room.accepted() == []
    assert control_room.store.alerts() == []


def test_tampered_replayed_and_unsigned_messages_are_rejected(mosquitto, messaging_env, control_room, tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        outbox = make_outbox(messaging_env, "cam-01", spool, None)
        good = outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
        other = outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
    tampered = good.as_dict() | {"event_id": str(uuid.uuid4()), "seq": 99}
    tampered_score = other.as_dict() | {"score": 0.99, "candidates": [{"subject_ref": "subj-1", "score": 0.99}, {"subject_ref": "subj-2", "score": 0.5}]}
    unsigned = good.unsigned_dict() | {"event_id": str(uuid.uuid4()), "seq": 100}
    payloads = [
        encode_event(good),
        encode_event(good),  # replay
        jcs(tampered),
        jcs(tampered_score),
        jcs(unsigned),
        b"not json at all",
    ]
    ident = messaging_env.clients["cam-01"]
    client, state = raw_client(mosquitto, client_context(messaging_env, ident.cert, ident.key), "device-cam-01-test")
    client.connect(mosquitto.host, mosquitto.port)
    wait_for(lambda: client.loop(0.05) == 0 and state["connected"], what="connected")
    mids = [client.publish(alert_topic("cam-01"), p, qos=1).mid for p in payloads]
    wait_for(lambda: client.loop(0.05) == 0 and all(m in state["acks"] for m in mids), what="PUBACKs")
    client.disconnect()
    wait_for(lambda: len(control_room.verdicts) == len(payloads), what="all verdicts")
    assert [v.reason for v in control_room.verdicts] == [
        "accepted", "duplicate_event", "bad_signature", "bad_signature", "unsigned", "malformed_payload",
    ]
    assert [r.reason for r in control_room.store.rejections()] == control_room.reasons()
    assert len(control_room.store.alerts()) == 1


def test_broker_outage_every_alert_delivered_exactly_once(mosquitto, messaging_env, control_room, tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.3)).start()
        outbox = make_outbox(messaging_env, "cam-01", spool, publisher.notify)
        try:
            for _ in range(10):
                outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
            for _ in range(15):  # a burst that is partly in flight when the broker goes down
                outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
            mosquitto.stop()
            for _ in range(20):  # raised while the broker is down: spooled
                outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
                time.sleep(0.01)
            assert spool.stats().depth >= 20
            time.sleep(0.5)
            mosquitto.start()
            for _ in range(5):
                outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
            wait_for(lambda: spool.stats().depth == 0, timeout_s=20, what="spool drained")
            wait_for(lambda: len(control_room.accepted()) == 50, timeout_s=20, what="50 accepted alerts")
        finally:
            publisher.stop()
            mosquitto.start()
    seqs = sorted(v.event_id and control_room.store.alert(v.event_id).seq for v in control_room.accepted())
    assert seqs == list(range(1, 51))
    assert len(control_room.store.alerts()) == 50
    assert set(control_room.reasons()) <= {"duplicate_event"}  # re-sent in-flight messages are dropped, not stored twice


def _spawn_publisher(env, mosquitto, device_id: str, spool: Path, count: int, interval: float = 0.0, linger: bool = False) -> subprocess.Popen:
    ident = env.clients[device_id]
    cmd = [
        sys.executable, str(PUBLISHER_PROC), "--broker", mosquitto.url, "--ca", str(env.ca_cert), "--cert", str(ident.cert), "--key", str(ident.key),
        "--device-dir", str(env.devices[device_id]), "--control-room-pub", str(env.control_room_pub), "--spool", str(spool),
        "--count", str(count), "--interval", str(interval),
    ] + (["--linger"] if linger else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_agent_killed_mid_stream_and_restarted_loses_nothing(mosquitto, messaging_env, control_room, tmp_path):
    spool_path = tmp_path / "agent-spool.db"
    proc = _spawn_publisher(messaging_env, mosquitto, "cam-02", spool_path, count=400, interval=0.005)
    raised = 0
    while raised < 60:  # let it get well into the stream
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        raised += line.startswith("raised")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    with Spool(spool_path) as spool:
        committed = spool.stats().last_seq
        left = spool.stats().depth
    assert committed >= 60 and committed < 400
    restarted = _spawn_publisher(messaging_env, mosquitto, "cam-02", spool_path, count=0)
    out, err = restarted.communicate(timeout=30)
    assert restarted.returncode == 0, err
    wait_for(lambda: len(control_room.accepted()) == committed, timeout_s=15, what=f"{committed} alerts accepted")
    seqs = sorted(control_room.store.alert(v.event_id).seq for v in control_room.accepted())
    assert seqs == list(range(1, committed + 1)), f"{left} were left in the spool after the kill"
    assert set(control_room.reasons()) <= {"duplicate_event"}


def test_status_reads_offline_after_the_agent_dies(mosquitto, messaging_env, tmp_path):
    proc = _spawn_publisher(messaging_env, mosquitto, "cam-03", tmp_path / "s.db", count=0, linger=True)
    ident = messaging_env.clients[CONTROL_ROOM_USER]
    ctx = client_context(messaging_env, ident.cert, ident.key)

    def read_status() -> dict | None:
        client, state = raw_client(mosquitto, ctx, f"status-{uuid.uuid4().hex[:6]}")
        client.connect(mosquitto.host, mosquitto.port)
        wait_for(lambda: client.loop(0.05) == 0 and state["connected"], what="connected")
        client.subscribe(status_topic("cam-03"), qos=1)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not state["messages"]:
            client.loop(0.05)
        client.disconnect()
        return json.loads(state["messages"][-1].payload) if state["messages"] else None

    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: (read_status() or {}).get("state") == "online", what="retained online status")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        wait_for(lambda: (read_status() or {}).get("state") == "offline", what="last will: offline")
        status = read_status()
        assert status["device_id"] == "cam-03" and status["schema"] == "lfr.status/1"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_alerts_wait_in_the_spool_while_no_control_room_is_subscribed(mosquitto, messaging_env, tmp_path, request):
    """The broker PUBACKs "No matching subscribers" when nobody would get the alert: it stays spooled."""
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.3)).start()
        try:
            outbox = make_outbox(messaging_env, "cam-01", spool, publisher.notify)
            for _ in range(5):
                outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
            wait_for(lambda: publisher.state().no_subscribers >= 5, what="no-subscriber PUBACKs")
            assert spool.stats().depth == 5 and publisher.state().acknowledged == 0
            room = request.getfixturevalue("control_room")  # a control room subscribes now
            wait_for(lambda: len(room.accepted()) == 5, timeout_s=20, what="the 5 alerts delivered")
            wait_for(lambda: spool.stats().depth == 0, what="spool drained")
        finally:
            publisher.stop()


def test_refused_alerts_stay_in_the_spool_and_telemetry_reports_them(mosquitto, messaging_env, tmp_path):
    """A publisher whose certificate is cam-01 but which claims to be cam-02 is refused by the ACL;
    the alerts are kept (counted, visible in telemetry), never silently deleted."""
    ident = messaging_env.clients[CONTROL_ROOM_USER]
    watcher, state = raw_client(mosquitto, client_context(messaging_env, ident.cert, ident.key), f"tele-{uuid.uuid4().hex[:6]}")
    watcher.connect(mosquitto.host, mosquitto.port)
    wait_for(lambda: watcher.loop(0.05) == 0 and state["connected"], what="watcher connected")
    watcher.subscribe("lfr/v1/+/telemetry", qos=0)
    with Spool(tmp_path / "spool.db") as spool:
        make_outbox(messaging_env, "cam-02", spool, None).raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
        # cam-01's certificate; the ACL only lets it write under lfr/v1/cam-01/.
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-02", spool, telemetry_interval_s=0.2, backoff=Backoff(0.05, 0.3)).start()
        try:
            wait_for(lambda: publisher.state().broker_refused >= 1, what="the broker refusing the alert")
            assert spool.stats().depth == 1 and publisher.state().acknowledged == 0
        finally:
            publisher.stop()
        # Telemetry from a correctly configured publisher reaches the control room.
        publisher = AlertPublisher(mosquitto.broker_config("cam-02"), "cam-02", Spool(tmp_path / "s2.db"), telemetry_interval_s=0.2).start()
        try:
            wait_for(lambda: watcher.loop(0.05) == 0 and any(m.topic == "lfr/v1/cam-02/telemetry" for m in state["messages"]), what="telemetry")
        finally:
            publisher.stop()
            watcher.disconnect()
    body = json.loads(next(m for m in state["messages"] if m.topic == "lfr/v1/cam-02/telemetry").payload)
    assert body["schema"] == "lfr.telemetry/1" and body["device_id"] == "cam-02"
    assert {"frames", "faces", "alerts", "queue_depth", "spool_dropped_size_limit", "broker_refused"} <= set(body)
    assert {"fps", "temperature_c"} <= set(body)
    # Only numbers (temperature may be null where the board does not expose it), the storage
    # health state and the model variant run: never biometrics.
    from edge_agent.agent.storage_health import STATES

    assert body["health"] in STATES
    assert isinstance(body["model_precision"], str), "the model variant run, a word like int8"
    assert isinstance(body["model_choice"], str), "what chose it: measured, profile or config"
    words = ("schema", "device_id", "at", "health", "model_precision", "model_choice", "oldest_unreceipted_at")
    assert all(isinstance(v, (int, float)) or (k == "temperature_c" and v is None) for k, v in body.items() if k not in words)
    assert body["oldest_unreceipted_at"] is None  # its spool is empty


def test_alerts_raised_while_the_listener_is_down_arrive_when_it_returns(mosquitto, messaging_env, tmp_path):
    """Persistent listener session: the broker queues alerts for it; acknowledged only after commit."""
    key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    store = AlertStore(tmp_path / "alerts.db")
    verdicts: list[Verdict] = []
    group = f"cr-{uuid.uuid4().hex[:8]}"

    def start_listener() -> AlertListener:
        intake = intake_for(DeviceRegistry.load(messaging_env.registry_path), key, store)
        listener = AlertListener(mosquitto.broker_config(CONTROL_ROOM_USER), intake, client_id=group, session_expiry_s=300,
                                 backoff=Backoff(0.05, 0.5), on_verdict=verdicts.append, share_group=group).start()
        assert listener.subscribed.wait(10), listener.last_error
        return listener

    start_listener().stop()  # subscribes, then goes away with its session kept
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.3)).start()
        try:
            outbox = make_outbox(messaging_env, "cam-01", spool, publisher.notify)
            events = [outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc)) for _ in range(5)]
            wait_for(lambda: spool.stats().depth == 0, what="the broker accepting the alerts for the queued session")
        finally:
            publisher.stop()
    assert verdicts == []
    listener = start_listener()
    try:
        wait_for(lambda: len(verdicts) == 5, what="the queued alerts")
    finally:
        listener.stop(end_session=True)
    assert sorted(v.event_id for v in verdicts if v.accepted) == sorted(e.event_id for e in events)
    store.close()


def test_two_listeners_share_the_load_and_each_alert_is_stored_once(mosquitto, messaging_env, tmp_path):
    key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    group = f"cr-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "shared-alerts.db"
    stores = [AlertStore(db), AlertStore(db)]  # two processes' worth of connections to one store
    verdicts: list[list[Verdict]] = [[], []]
    listeners = []
    for i in range(2):
        intake = intake_for(DeviceRegistry.load(messaging_env.registry_path), key, stores[i])
        listener = AlertListener(mosquitto.broker_config(CONTROL_ROOM_USER), intake, client_id=f"{group}-{i}", session_expiry_s=300,
                                 backoff=Backoff(0.05, 0.5), on_verdict=verdicts[i].append, share_group=group).start()
        assert listener.subscribed.wait(10), listener.last_error
        listeners.append(listener)
    try:
        with Spool(tmp_path / "spool.db") as spool:
            publisher = AlertPublisher(mosquitto.broker_config("cam-03"), "cam-03", spool, backoff=Backoff(0.05, 0.3)).start()
            try:
                outbox = make_outbox(messaging_env, "cam-03", spool, publisher.notify)
                for _ in range(20):
                    outbox.raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
                wait_for(lambda: len(verdicts[0]) + len(verdicts[1]) == 20, what="20 verdicts across both listeners")
            finally:
                publisher.stop()
    finally:
        for listener in listeners:
            listener.stop(end_session=True)
    assert len(verdicts[0]) > 0 and len(verdicts[1]) > 0  # the load was shared
    assert all(v.accepted for v in verdicts[0] + verdicts[1])
    assert len(stores[0].alerts()) == 20
    for store in stores:
        store.close()


def test_a_message_the_store_could_not_commit_is_not_acknowledged_and_comes_back(mosquitto, messaging_env, tmp_path):
    from edge_agent.control_room.store import StoreError

    class FlakyStore(AlertStore):
        failures = 1

        def add_alert(self, *args, **kwargs):
            if self.failures:
                self.failures -= 1
                raise StoreError("disk full (simulated)", "free space")
            return super().add_alert(*args, **kwargs)

    key = load_private_key(messaging_env.control_room_key, X25519PrivateKey)
    store = FlakyStore(tmp_path / "alerts.db")
    verdicts: list[Verdict] = []
    group = f"cr-{uuid.uuid4().hex[:8]}"
    listener = AlertListener(mosquitto.broker_config(CONTROL_ROOM_USER), intake_for(DeviceRegistry.load(messaging_env.registry_path), key, store),
                             client_id=group, session_expiry_s=300, backoff=Backoff(0.05, 0.3), on_verdict=verdicts.append, share_group=group).start()
    try:
        assert listener.subscribed.wait(10)
        with Spool(tmp_path / "spool.db") as spool:
            publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.3)).start()
            try:
                event = make_outbox(messaging_env, "cam-01", spool, publisher.notify).raise_alert(decision(), b"\xff\xd8x\xff\xd9", datetime.now(timezone.utc))
                wait_for(lambda: any(v.accepted for v in verdicts), what="the redelivered alert stored")
            finally:
                publisher.stop()
    finally:
        listener.stop(end_session=True)
    assert store.failures == 0 and "disk full" in listener.last_error
    assert [a.event_id for a in store.alerts()] == [event.event_id]
    store.close()


def test_clean_stop_drains_the_outbox_before_saying_offline(mosquitto, messaging_env, control_room, tmp_path):
    """Issue 11: a SIGTERM or the end of a replay right after alerts were raised must not leave them
    on the device until the next start: stop() sends them and waits for the broker's PUBACKs."""
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.5)).start()
        wait_for(lambda: publisher.state().connected, what="the publisher connected")
        outbox = make_outbox(messaging_env, "cam-01", spool, None)  # no wake-up: the stop alone must send them
        events = [outbox.raise_alert(decision(), b"\xff\xd8crop\xff\xd9", datetime.now(timezone.utc)) for _ in range(30)]
        started = time.monotonic()
        assert publisher.stop(drain_s=10.0) is True
        took = time.monotonic() - started
        assert spool.stats().depth == 0
    assert took < 10.0
    wait_for(lambda: len(control_room.accepted()) == 30, what="all 30 alerts at the control room")
    assert {v.event_id for v in control_room.accepted()} == {e.event_id for e in events}


def test_clean_stop_gives_up_after_its_bound_when_the_broker_is_gone(messaging_env, tmp_path):
    """The drain is bounded: with no broker the stop returns after drain_s and the spool keeps the alert."""
    broker = MosquittoBroker(messaging_env, tmp_path / "gone")  # configured, never started
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(broker.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.2)).start()
        make_outbox(messaging_env, "cam-01", spool, None).raise_alert(decision(), b"\xff\xd8crop\xff\xd9", datetime.now(timezone.utc))
        started = time.monotonic()
        assert publisher.stop(drain_s=1.0) is False
        assert 0.9 <= time.monotonic() - started < 4.0
        assert spool.stats().depth == 1


def test_a_device_joining_the_control_rooms_shared_group_gets_nothing_and_takes_nothing(mosquitto, messaging_env, control_room, tmp_path):
    """Issue 11: a device certificate subscribing to the control room's shared subscription was
    handed every other alert (then dropped by the read ACL): 20 of 40 lost. Now the broker refuses
    the subscription and the control room receives all 40."""
    ident = messaging_env.clients["cam-03"]
    rogue, state = raw_client(mosquitto, client_context(messaging_env, ident.cert, ident.key), "device-cam-03")
    subacks: list = []
    rogue.on_subscribe = lambda c, u, mid, rcs, p: subacks.append([rc.is_failure for rc in rcs])
    rogue.connect(mosquitto.host, mosquitto.port)
    wait_for(lambda: rogue.loop(0.05) == 0 and state["connected"], what="cam-03 connected")
    rogue.subscribe([(control_room.listener.subscription, 1), ("lfr/v1/+/alert", 1), ("lfr/v1/#", 1), ("#", 1)])
    wait_for(lambda: rogue.loop(0.05) == 0 and bool(subacks), what="SUBACK")
    assert subacks == [[True, True, True, True]], "every alert subscription of a device is refused"
    with Spool(tmp_path / "spool.db") as spool:
        publisher = AlertPublisher(mosquitto.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.5)).start()
        outbox = make_outbox(messaging_env, "cam-01", spool, publisher.notify)
        for _ in range(40):
            outbox.raise_alert(decision(), b"\xff\xd8crop\xff\xd9", datetime.now(timezone.utc))
        wait_for(lambda: rogue.loop(0.02) == 0 and len(control_room.accepted()) == 40, 20, "all 40 alerts at the control room")
        publisher.stop()
    for _ in range(10):
        rogue.loop(0.02)
    rogue.disconnect()
    assert state["messages"] == []
