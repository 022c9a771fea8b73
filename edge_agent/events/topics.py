"""MQTT topic scheme ``lfr/v1/<device_id>/<kind>`` (docs/formats/topics.md).

The device id is a single topic level and equals the device certificate's CN, so the broker ACL
``pattern write lfr/v1/%u/#`` confines each device to its own topics.
"""

from __future__ import annotations

from edge_agent.identifiers import DEVICE_ID, TOPIC_PREFIX, check_device_id

PREFIX = TOPIC_PREFIX
DEVICE_OUTBOUND_KINDS = ("alert", "status", "telemetry")  # published by the device
DEVICE_INBOUND_KINDS = ("receipt", "adjudication")  # published by the control room to the device
KINDS = DEVICE_OUTBOUND_KINDS + DEVICE_INBOUND_KINDS
SHARE_GROUP = "control-room"
ALERT_FILTER = f"{PREFIX}/+/alert"
SHARED_ALERT_SUBSCRIPTION = f"$share/{SHARE_GROUP}/{ALERT_FILTER}"
STATUS_FILTER = f"{PREFIX}/+/status"
TELEMETRY_FILTER = f"{PREFIX}/+/telemetry"


def topic(device_id: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{PREFIX}/{check_device_id(device_id)}/{kind}"


def alert_topic(device_id: str) -> str:
    return topic(device_id, "alert")


def status_topic(device_id: str) -> str:
    return topic(device_id, "status")


def telemetry_topic(device_id: str) -> str:
    return topic(device_id, "telemetry")


def receipt_topic(device_id: str) -> str:
    return topic(device_id, "receipt")


def adjudication_topic(device_id: str) -> str:
    return topic(device_id, "adjudication")


def parse_topic(name: str) -> tuple[str, str] | None:
    """(device_id, kind) for a topic of this scheme, else None."""
    parts = name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[3] not in KINDS:
        return None
    if DEVICE_ID.problem(parts[2]) is not None:
        return None
    return parts[2], parts[3]
