"""The fleet as the control room sees it: each device's last status and telemetry (docs/formats/topics.md).

``FleetMonitor`` subscribes to ``lfr/v1/+/status`` (retained, QoS 1; the broker publishes the last
will ``offline`` when a device dies) and ``lfr/v1/+/telemetry`` (the 30 s heartbeat) and keeps
the latest of each per device in the store's ``devices`` table, so every console sharing the
store shows the same fleet. Only telemetry's documented numeric fields are kept.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from edge_agent.control_room.db import Database
from edge_agent.events.schema import EventFormatError, format_time, parse_payload, parse_time
from edge_agent.events.topics import STATUS_FILTER, TELEMETRY_FILTER, parse_topic

log = logging.getLogger(__name__)

TELEMETRY_FIELDS = ("frames", "faces", "alerts", "dropped_frames", "fps", "temperature_c", "queue_depth", "spool_bytes",
                    "latency_ms_p50", "latency_ms_p99", "broker_refused", "oldest_unreceipted_at")
#: A device whose last heartbeat is older than this reads "silent" even if its status says online.
HEARTBEAT_LATE = timedelta(seconds=90)


@dataclass(frozen=True)
class DeviceView:
    device_id: str
    state: str  # online, offline, silent (online but no heartbeat for HEARTBEAT_LATE), unknown
    since: str | None
    heartbeat_at: str | None
    telemetry: dict[str, Any]


class FleetBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, topic: str, payload: bytes, now: datetime) -> bool:
        """Keep a status or telemetry message; False (ignored) when malformed or for another device."""
        parsed = parse_topic(topic)
        if parsed is None or parsed[1] not in ("status", "telemetry"):
            return False
        device_id, kind = parsed
        try:
            doc = parse_payload(payload)
        except EventFormatError:
            return False
        if not isinstance(doc, dict) or doc.get("device_id") != device_id:
            return False
        try:
            at = format_time(parse_time(str(doc.get("at"))))
        except EventFormatError:
            return False
        with self._db.write() as tx:
            row = tx.one("SELECT state, state_at, heartbeat_at FROM devices WHERE device_id=?", (device_id,))
            if row is None:
                tx.run("INSERT INTO devices (device_id, updated_at) VALUES (?, ?)", (device_id, format_time(now)))
                row = (None, None, None)
            if kind == "status":
                state = doc.get("state")
                if state not in ("online", "offline") or (row[1] is not None and at < row[1]):
                    return False
                since = row[1] if row[0] == state and row[1] else at
                tx.run("UPDATE devices SET state=?, state_at=?, updated_at=? WHERE device_id=?", (state, since, format_time(now), device_id))
            else:
                if row[2] is not None and at < row[2]:
                    return False
                kept = {k: doc[k] for k in TELEMETRY_FIELDS if k in doc and _plain(doc[k])}
                tx.run("UPDATE devices SET heartbeat_at=?, telemetry=?, updated_at=? WHERE device_id=?",
                       (at, json.dumps(kept, sort_keys=True), format_time(now), device_id))
        return True

    def devices(self, now: datetime) -> list[DeviceView]:
        with self._db.read() as tx:
            rows = tx.rows("SELECT device_id, state, state_at, heartbeat_at, telemetry FROM devices ORDER BY device_id")
        out = []
        for device_id, state, since, heartbeat, telemetry in rows:
            shown = state or "unknown"
            if state == "online" and (heartbeat is None or now - parse_time(heartbeat) > HEARTBEAT_LATE) and (
                    since is None or now - parse_time(since) > HEARTBEAT_LATE):
                shown = "silent"
            out.append(DeviceView(device_id, shown, since, heartbeat, json.loads(telemetry) if telemetry else {}))
        return out


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool) and (not isinstance(value, str) or len(value) <= 32)


class FleetMonitor:
    """A paho client (own reconnect loop) that feeds status and telemetry into a FleetBook."""

    def __init__(self, config, book: FleetBook, client_id: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.book = book
        self.client_id = client_id or f"control-room-fleet-{uuid.uuid4().hex[:8]}"
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.subscribed = threading.Event()
        self._client: Any = None  # a paho Client once started

    def start(self) -> "FleetMonitor":
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge_agent.events.mqtt_connection import tls_context

        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        client.tls_set_context(tls_context(self.config))
        client.on_connect = lambda c, u, f, rc, p: c.subscribe([(STATUS_FILTER, 1), (TELEMETRY_FILTER, 0)]) if not rc.is_failure else None
        client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set() if not any(rc.is_failure for rc in rcs) else None
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        client.loop_start()
        self._client = client
        return self

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.book.record(message.topic, message.payload, self._clock())
        except Exception:  # noqa: BLE001 - a bad status message must not stop the fleet view
            log.exception("could not record %s", message.topic)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
