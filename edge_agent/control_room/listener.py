"""Control-room MQTT listener: a shared subscription, a persistent session, ack after commit.

Several listeners can share the load (MQTT 5 shared subscription ``$share/control-room/...``).
The session is persistent (clean_start=False with a session expiry), so alerts published while
the listener is down wait at the broker. Messages are acknowledged manually, only after the
intake has committed the alert (or the rejection) to the store: if the store fails, the message
is not acknowledged, the connection is dropped and the broker delivers it again.

With a ``ReceiptIssuer`` the listener then signs a receipt for every alert it stored (and the
same receipt again for a duplicate) and publishes it QoS 1 on the device's receipt topic: the
device keeps the alert until that receipt arrives (issue 12.1). ``notify_adjudication`` sends a
reviewer's decision back to the device the same way.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.control_room.intake import AlertIntake, Verdict
from edge_agent.control_room.receipting import Outgoing, ReceiptIssuer
from edge_agent.errors import EdgeAgentError
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig, disable_nagle, tls_context
from edge_agent.events.topics import ALERT_FILTER, SHARE_GROUP

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


class AlertListener:
    def __init__(
        self,
        config: BrokerConfig,
        intake: AlertIntake,
        client_id: str = "control-room-1",
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        backoff: Backoff | None = None,
        on_verdict: Callable[[Verdict], None] | None = None,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_interval_s: float = 3600.0,
        share_group: str = SHARE_GROUP,
        receipts: ReceiptIssuer | None = None,
    ) -> None:
        self.config = config
        self.intake = intake
        self.client_id = client_id
        self._session_expiry_s = session_expiry_s
        self._backoff = backoff or Backoff()
        self._on_verdict = on_verdict
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval_s
        self._ssl = tls_context(config)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False
        self._end_session = False
        self.subscription = f"$share/{share_group}/{ALERT_FILTER}"
        self.last_error = ""
        self._receipts = receipts
        self._outgoing: queue.Queue[Outgoing] = queue.Queue()
        self.receipts_sent = 0
        self.notices_sent = 0

    @property
    def subscribed(self) -> threading.Event:
        """Set while connected with the alert subscription granted."""
        return self._subscribed

    def start(self) -> "AlertListener":
        self._thread = threading.Thread(target=self.run, name=f"listener-{self.client_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0, end_session: bool = False) -> None:
        """Disconnect. ``end_session`` also ends the broker session: only for a listener retired for
        good (while a persistent session exists, the broker keeps queueing its share of alerts)."""
        self._end_session = end_session
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def notify_adjudication(self, event_id: str, decision: str, engaged: bool | None, decided_at: datetime, reviewer: str) -> bool:
        """Send a reviewer's decision on a stored alert back to its device (signed, QoS 1). Safe to
        call from any thread (the console calls it when a decision is recorded); it is published
        from the listener's connection, at once or as soon as it reconnects. False when this
        listener signs nothing (no receipt key)."""
        if self._receipts is None:
            return False
        self._outgoing.put(self._receipts.adjudication(event_id, decision, engaged, decided_at, reviewer))
        return True

    def __enter__(self) -> "AlertListener":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """Connect, serve, reconnect with backoff until ``stop()``."""
        import time

        next_housekeeping = 0.0
        while not self._stop.is_set():
            client = self._new_client()
            self._failed = False
            try:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self._session_expiry_s
                client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s, clean_start=False, properties=props)
                while not self._stop.is_set() and not self._failed:
                    if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                        break
                    if self._subscribed.is_set():
                        self._send_queued(client)
                    if self._housekeeping is not None and time.monotonic() >= next_housekeeping:
                        next_housekeeping = time.monotonic() + self._housekeeping_interval
                        try:
                            self._housekeeping()
                        except EdgeAgentError as exc:
                            self._error(f"housekeeping (retention) failed: {exc}")
                if self._stop.is_set():
                    end: Properties | None = None
                    if self._end_session:
                        end = Properties(PacketTypes.DISCONNECT)
                        end.SessionExpiryInterval = 0
                    client.disconnect(properties=end)
                    client.loop(timeout=0.05)
            except (OSError, ssl.SSLError) as exc:
                self._error(f"cannot reach broker {self.config.host}:{self.config.port}: {exc}")
            except Exception as exc:  # noqa: BLE001 - keep listening; unacknowledged messages come back
                log.exception("listener loop failed")
                self._error(f"listener loop failed: {type(exc).__name__}: {exc}")
            finally:
                self._subscribed.clear()
                if not self._stop.is_set():
                    with contextlib.suppress(Exception):  # best effort on a dead socket
                        client.disconnect()  # drop the link; unacknowledged messages are redelivered
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.tls_set_context(self._ssl)
        client.on_socket_open = disable_nagle
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _send_queued(self, client: mqtt.Client) -> None:
        while True:
            try:
                item = self._outgoing.get_nowait()
            except queue.Empty:
                return
            if client.publish(item.topic, item.payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                self._outgoing.put(item)  # not connected after all: try after the reconnect
                return
            self.notices_sent += 1

    def _error(self, text: str) -> None:
        log.warning("%s", text)
        self.last_error = text

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            self._error(f"broker refused the listener connection: {reason_code}")
            return
        self._backoff.reset()
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[mqtt.ReasonCode], properties: object) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._error(f"broker refused the alert subscription: {[str(rc) for rc in reason_codes]}")
            self._failed = True
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._failed:
            return  # the connection is being dropped; the broker will redeliver
        try:
            verdict = self.intake.receive(message.topic, bytes(message.payload))
        except EdgeAgentError as exc:
            # Not committed: do not acknowledge; reconnect so the broker delivers it again.
            self._error(f"could not store message on {message.topic}: {exc}")
            self._failed = True
            return
        client.ack(message.mid, message.qos)
        if self._receipts is not None and verdict.event_id is not None and (verdict.accepted or verdict.reason == "duplicate_event"):
            try:
                receipt = self._receipts.receipt(verdict.event_id)
            except EdgeAgentError as exc:  # the alert is stored; the device retransmits and asks again
                self._error(f"could not sign a receipt for {verdict.event_id}: {exc}")
                receipt = None
            if receipt is not None:
                client.publish(receipt.topic, receipt.payload, qos=1)
                self.receipts_sent += 1
        if self._on_verdict is not None:
            try:
                self._on_verdict(verdict)
            except Exception:  # noqa: BLE001 - a display callback must not stop intake
                log.exception("on_verdict callback failed")
