"""Device-side publisher: drains the spool to the broker over mutual TLS, QoS 1, MQTT 5.

One thread owns the paho client (paho is driven with ``loop()``, never from two threads). Each
connection attempt uses a fresh client, so nothing outlives a dropped connection except the
spool: rows are deleted only in ``on_publish`` for their own message id with a success reason
code (PUBACK). A PUBACK saying "No matching subscribers" (MQTT 5 reason 0x10: the broker would
drop the alert, e.g. after a restart before the control room re-subscribed) does not count:
the row stays and is re-sent with backoff until a subscriber exists. Whatever was in flight when the link dropped is published again after the
reconnect (the listener drops the duplicates by event id). Reconnects back off exponentially
with jitter.

With the control room's receipt key (issue 12.1) a PUBACK only means "at the broker": the row
stays in the spool until a receipt signed by the control room arrives on the device's receipt
topic for exactly that alert (id, epoch, seq, audit head); the receipt is audited
(``receipt_received``) and only then is the row deleted. An alert without a receipt is sent
again after RECEIPT_TIMEOUT_S (30 s), doubling per attempt up to RECEIPT_TIMEOUT_CAP_S, and
every unreceipted alert is sent again after a reconnect. Adjudication
notices on the device's adjudication topic are verified and audited (``adjudication_received``).
Without a receipt key the publisher falls back to deleting on PUBACK.

A clean stop (SIGTERM, end of a replay) drains: ``stop()`` keeps the connection (reconnecting if
needed) until every spooled alert has been acknowledged or ``drain_s`` has passed, and only then
says offline, so an alert raised just before the stop does not wait on the device for the next
start (issue 11).

Also published: a retained ``status`` ("online" on connect, "offline" on clean stop and as the
last will, so a crashed agent reads offline) and periodic ``telemetry`` (counters only — never
biometrics), which doubles as the heartbeat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.errors import EdgeAgentError
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig, disable_nagle, tls_context
from edge_agent.events.receipts import AdjudicationNotice, Receipt, parse_message, verify_message
from edge_agent.events.schema import format_time
from edge_agent.events.spool import Spool, SpooledEvent
from edge_agent.events.topics import adjudication_topic, alert_topic, receipt_topic, status_topic, telemetry_topic
from edge_agent.identifiers import check_device_id

log = logging.getLogger(__name__)

STATUS_SCHEMA = "lfr.status/1"
NO_MATCHING_SUBSCRIBERS = 0x10
DRAIN_S = 10.0  # how long a clean stop waits for the spool to drain (systemd allows 30 s)
# An alert with no receipt this long after its PUBACK is sent again. Only a safety net: every
# reconnect re-sends every unreceipted alert anyway, and a persistent control-room session at the
# broker queues the rest. Short timeouts turn a busy control room's backlog into a storm of
# duplicates that it then has to check as well (measured in tests/faults: collapse at 2 s).
RECEIPT_TIMEOUT_S = 30.0
RECEIPT_TIMEOUT_CAP_S = 600.0
TELEMETRY_SCHEMA = "lfr.telemetry/1"


@dataclass(frozen=True)
class Telemetry:
    """Operational counters the agent reports. Only numbers: no images, templates or identities."""

    frames: int = 0
    faces: int = 0
    alerts: int = 0
    dropped_frames: int = 0
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    fps: float = 0.0
    temperature_c: float | None = None  # SoC temperature where the board exposes it
    health: str = "ok"  # edge_agent.agent.storage_health state: can alerts still be stored?
    alerts_waiting: int = 0  # matched but refused by the spool (disk full), retried from memory
    alerts_unaudited: int = 0  # stored but held back until their audit record is written
    model_precision: str = ""  # the model variant this CPU runs (ModelIdentity.precision), e.g. "int8"
    model_choice: str = ""  # what chose it: measured (this device's timings), profile (its CPU flags) or config


@dataclass(frozen=True)
class PublisherState:
    connected: bool
    connects: int
    published: int
    acknowledged: int
    broker_refused: int
    no_subscribers: int
    last_error: str
    receipts: int = 0  # valid receipts applied (alert released from the spool)
    receipts_refused: int = 0  # receipts or notices that failed parsing, signature or matching
    retransmits: int = 0  # alerts sent again for want of a receipt
    adjudications: int = 0


def status_payload(device_id: str, state: str, now: datetime) -> bytes:
    return json.dumps({"schema": STATUS_SCHEMA, "device_id": device_id, "state": state, "at": format_time(now)}, sort_keys=True, separators=(",", ":")).encode()


class AlertPublisher:
    """``start()`` a background thread that keeps a connection and drains ``spool``; ``stop()`` says offline."""

    def __init__(
        self,
        config: BrokerConfig,
        device_id: str,
        spool: Spool,
        telemetry: Callable[[], Telemetry] | None = None,
        telemetry_interval_s: float = 30.0,
        window: int = 64,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] | None = None,
        receipt_key: Ed25519PublicKey | None = None,
        audit: "AuditSink | None" = None,
        receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.device_id = check_device_id(device_id)
        self.spool = spool
        self._telemetry = telemetry or Telemetry
        self._telemetry_interval = telemetry_interval_s
        self._window = window
        self._backoff = backoff or Backoff()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._ssl = tls_context(config)
        self._stop = threading.Event()
        self._drain_deadline = 0.0  # monotonic time after which a stopping worker gives up draining
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Connection-scoped state, touched only by the worker thread (and callbacks it runs).
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._retry: dict[int, float] = {}  # seq -> monotonic time to re-send (no subscribers yet)
        self._retry_backoff = Backoff(0.25, 15.0)
        self._retry_due = 0.0
        self._last_submitted = 0
        self._session_ok = False
        # Counters (read via state()).
        self._connected = False
        self._connects = 0
        self._published = 0
        self._acked = 0
        self._broker_refused = 0
        self._no_subscribers = 0
        self._last_error = ""
        self._receipt_key = receipt_key
        self._audit = audit
        self._receipt_timeout = receipt_timeout_s
        self._attempts: dict[int, int] = {}  # seq -> sends so far (receipt mode)
        self._receipts = 0
        self._receipts_refused = 0
        self._retransmits = 0
        self._adjudications = 0
        self.on_receipt: Callable[[Receipt], None] | None = None  # observers (benchmarks, the demo)
        self.on_adjudication: Callable[[AdjudicationNotice], None] | None = None

    @property
    def receipts_required(self) -> bool:
        return self._receipt_key is not None

    # ---- public API -------------------------------------------------------------------------
    def start(self) -> "AlertPublisher":
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._thread = threading.Thread(target=self._run, name=f"mqtt-publisher-{self.device_id}", daemon=True)
        self._thread.start()
        return self

    def notify(self) -> None:
        """Tell the worker a new event is in the spool (it also polls)."""
        self._wake.set()

    def stop(self, drain_s: float = DRAIN_S) -> bool:
        """Send what the spool still holds, wait for the broker's acknowledgements for at most
        ``drain_s`` seconds, then say offline and disconnect. True if the spool was drained."""
        self._drain_deadline = time.monotonic() + max(0.0, drain_s)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(drain_s + 5.0)
        return self.spool.stats().depth == 0

    def __enter__(self) -> "AlertPublisher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self) -> PublisherState:
        with self._lock:
            return PublisherState(self._connected, self._connects, self._published, self._acked, self._broker_refused, self._no_subscribers, self._last_error,
                                  self._receipts, self._receipts_refused, self._retransmits, self._adjudications)

    # ---- worker -----------------------------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"device-{self.device_id}",
            protocol=mqtt.MQTTv5,
        )
        client.tls_set_context(self._ssl)
        client.on_socket_open = disable_nagle
        client.max_inflight_messages_set(self._window)
        client.will_set(status_topic(self.device_id), status_payload(self.device_id, "offline", self._clock()), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _finished(self) -> bool:
        """Stopping, and either drained or out of time (the spool keeps the rest for the next start)."""
        if not self._stop.is_set():
            return False
        return time.monotonic() >= self._drain_deadline or self.spool.stats().depth == 0

    def _drained(self) -> bool:
        return not self._inflight and not self.spool.pending(after_seq=self._last_submitted, limit=1) and not self._retry

    def _run(self) -> None:
        while not self._finished():
            client = self._new_client()
            self._inflight.clear()
            self._retry.clear()  # everything still queued is re-sent on the next connection anyway
            self._last_submitted = 0
            self._session_ok = False
            try:
                client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s, clean_start=True)
                self._serve(client)
            except (OSError, ssl.SSLError, mqtt.WebsocketConnectionError) as exc:
                self._note_error(f"cannot reach broker {self.config.host}:{self.config.port}: {exc}")
            except Exception as exc:  # noqa: BLE001 - keep the publisher alive; the spool still holds everything
                log.exception("publisher loop failed")
                self._note_error(f"publisher loop failed: {type(exc).__name__}: {exc}")
            finally:
                with contextlib.suppress(Exception):  # best effort on a dead socket
                    client.socket() and client.disconnect()
                with self._lock:
                    self._connected = False
            if not self._finished():
                delay = self._backoff.next_delay()
                if self._stop.is_set():
                    delay = min(delay, max(0.0, self._drain_deadline - time.monotonic()))
                    time.sleep(delay)
                else:
                    log.info("reconnecting to broker in %.2fs", delay)
                    self._stop.wait(delay)

    def _serve(self, client: mqtt.Client) -> None:
        next_telemetry = 0.0
        next_scan = 0.0
        while True:
            rc = client.loop(timeout=0.01)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._note_error(f"connection to broker lost ({mqtt.error_string(rc)})")
                return
            if not self._session_ok:
                if self._stop.is_set() and time.monotonic() >= self._drain_deadline:
                    return
                continue
            if self._stop.is_set() and (time.monotonic() >= self._drain_deadline or self._drained()):
                self._say_offline(client)
                return
            now = time.monotonic()
            if self._wake.is_set() or now >= next_scan or (self._retry and min(self._retry.values()) <= now):
                self._submit(client)
                next_scan = now + 0.5
            if now >= next_telemetry:
                self._send_telemetry(client)
                next_telemetry = now + self._telemetry_interval

    def _submit(self, client: mqtt.Client) -> None:
        self._wake.clear()
        now = time.monotonic()
        for seq in [s for s, due in self._retry.items() if due <= now]:
            if len(self._inflight) >= self._window:
                return
            del self._retry[seq]
            item = self.spool.get(seq)
            if item is None:
                self._attempts.pop(seq, None)  # receipted meanwhile
                continue
            if self._attempts.get(seq):
                with self._lock:
                    self._retransmits += 1
            if not self._send(client, item):
                return
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        for item in self.spool.pending(after_seq=self._last_submitted, limit=room):
            if not self._send(client, item):
                return
            self._last_submitted = item.seq

    def _send(self, client: mqtt.Client, item: SpooledEvent) -> bool:
        info = client.publish(alert_topic(self.device_id), item.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._note_error(f"publish of seq {item.seq} failed locally ({mqtt.error_string(info.rc)})")
            return False
        self._inflight[info.mid] = item.seq
        self._attempts[item.seq] = self._attempts.get(item.seq, 0) + 1
        with self._lock:
            self._published += 1
        return True

    def _say_offline(self, client: mqtt.Client) -> None:
        info = client.publish(status_topic(self.device_id), status_payload(self.device_id, "offline", self._clock()), qos=1, retain=True)
        deadline = 50
        while not info.is_published() and deadline > 0 and client.loop(timeout=0.05) == mqtt.MQTT_ERR_SUCCESS:
            deadline -= 1
        client.disconnect()
        client.loop(timeout=0.05)

    def _send_telemetry(self, client: mqtt.Client) -> None:
        stats = self.spool.stats()
        body = {
            "schema": TELEMETRY_SCHEMA,
            "device_id": self.device_id,
            "at": format_time(self._clock()),
            **asdict(self._telemetry()),
            "queue_depth": stats.depth,
            "spool_bytes": stats.bytes,
            "spool_dropped_size_limit": stats.dropped_size_limit,
            "spool_dropped_retention": stats.dropped_retention,
            "broker_refused": self._broker_refused,
            "oldest_unreceipted_at": format_time(stats.oldest_created_at) if stats.oldest_created_at else None,
        }
        client.publish(telemetry_topic(self.device_id), json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), qos=0)

    def _note_error(self, text: str) -> None:
        log.warning("%s", text)
        with self._lock:
            self._last_error = text

    # ---- paho callbacks (run on the worker thread inside loop()) ----------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._note_error(f"broker refused the connection: {reason_code}")
            return
        self._session_ok = True
        self._wake.set()
        self._backoff.reset()
        with self._lock:
            self._connected = True
            self._connects += 1
        if self._receipt_key is not None:
            client.subscribe([(receipt_topic(self.device_id), 1), (adjudication_topic(self.device_id), 1)])
        client.publish(status_topic(self.device_id), status_payload(self.device_id, "online", self._clock()), qos=1, retain=True)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        self._session_ok = False
        with self._lock:
            self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return  # status or telemetry
        if reason_code.is_failure:
            # Keep the row: it is retried on the next connection and purged (audited) at retention.
            with self._lock:
                self._broker_refused += 1
            self._note_error(f"broker refused alert seq {seq}: {reason_code} (kept in spool)")
            return
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            # Accepted by the broker but delivered to nobody: keep it and try again later.
            # All refusals of one round share a due time, so the backoff grows per round, not per alert.
            now = time.monotonic()
            if self._retry_due <= now:
                self._retry_due = now + self._retry_backoff.next_delay()
            self._retry[seq] = self._retry_due
            with self._lock:
                self._no_subscribers += 1
            return
        self._retry_backoff.reset()
        if self._receipt_key is not None:
            # At the broker, not yet at the control room: wait for its receipt, then send again.
            attempt = self._attempts.get(seq, 1)
            timeout = min(RECEIPT_TIMEOUT_CAP_S, self._receipt_timeout * 2 ** (attempt - 1))
            self._retry[seq] = time.monotonic() + timeout * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not a secret
        else:
            self.spool.acknowledge(seq)
        self._wake.set()  # room in the window: look for more
        with self._lock:
            self._acked += 1

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """A receipt or adjudication notice from the control room: verified, matched, audited."""
        try:
            if self._receipt_key is None:
                return  # not subscribed to these topics without a receipt key
            parsed = parse_message(bytes(message.payload))
            verify_message(parsed, self._receipt_key)
            if parsed.device_id != self.device_id or message.topic != (receipt_topic if isinstance(parsed, Receipt) else adjudication_topic)(self.device_id):
                raise EdgeAgentError(f"{parsed.SCHEMA} for device {parsed.device_id!r} arrived on {message.topic}", "the broker ACL should prevent this")
            if isinstance(parsed, Receipt):
                self._apply_receipt(parsed)
            else:
                self._apply_adjudication(parsed)
        except EdgeAgentError as exc:
            with self._lock:
                self._receipts_refused += 1
            self._note_error(f"refused a message on {message.topic}: {exc.message}")

    def _apply_receipt(self, receipt: Receipt) -> None:
        item = self.spool.get(receipt.seq)
        if item is None:
            return  # a repeat for an alert already released
        # The row holds our own signed bytes: plain JSON is enough to read back what the receipt must echo.
        sent = json.loads(item.payload)
        echoed = (sent.get("event_id"), sent.get("device_id"), sent.get("spool_epoch"), sent.get("seq"), sent.get("audit_head"))
        if echoed != (receipt.event_id, receipt.device_id, receipt.spool_epoch, receipt.seq, receipt.audit_head.as_dict()):
            raise EdgeAgentError(f"receipt for {receipt.event_id} (seq {receipt.seq}) does not match the spooled alert", "kept the alert; it is sent again")
        if self._audit is not None:
            # Audited before the row goes: if the record cannot be written, the alert stays and is receipted again.
            self._audit.append("receipt_received", {
                "event_id": receipt.event_id, "seq": receipt.seq, "spool_epoch": receipt.spool_epoch,
                "stored_at": format_time(receipt.stored_at), "audit_head": receipt.audit_head.as_dict(), "control_room": receipt.control_room,
            })
        self.spool.acknowledge(receipt.seq)
        self._retry.pop(receipt.seq, None)
        self._attempts.pop(receipt.seq, None)
        with self._lock:
            self._receipts += 1
        if self.on_receipt is not None:
            self.on_receipt(receipt)

    def _apply_adjudication(self, notice: AdjudicationNotice) -> None:
        if self._audit is not None:
            self._audit.append("adjudication_received", {
                "event_id": notice.event_id, "decision": notice.decision, "engaged": notice.engaged,
                "decided_at": format_time(notice.decided_at), "reviewer": notice.reviewer, "control_room": notice.control_room,
            })
        with self._lock:
            self._adjudications += 1
        if self.on_adjudication is not None:
            self.on_adjudication(notice)


class AuditSink(Protocol):
    def append(self, kind: str, details: dict[str, Any]) -> Any: ...


def session_expiry(seconds: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's Properties.__init__ is unannotated
    props.SessionExpiryInterval = seconds
    return props
