"""What the control room signs back to a device: receipts for stored alerts, notices of decisions (issue 12.1).

A receipt is built from the store, never from the message in hand: the stored payload (so it
echoes the exact alert: id, epoch, seq, audit head) and the stored ``received_at`` (so a duplicate
alert gets the same receipt bytes again; Ed25519 is deterministic). The device keeps every alert
until such a receipt arrives, so the store commit, not the broker's PUBACK, is what releases it.
Formats: docs/formats/receipts.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.events.receipts import AdjudicationNotice, Receipt, encode_message, sign_message
from edge_agent.events.schema import AlertEvent, parse_payload, parse_time
from edge_agent.events.topics import adjudication_topic, receipt_topic
from edge_agent.identifiers import check_control_room_id


@dataclass(frozen=True)
class Outgoing:
    """One message for a device: topic and payload, published QoS 1, never retained."""

    topic: str
    payload: bytes


class ReceiptIssuer:
    def __init__(self, key: Ed25519PrivateKey, control_room_id: str, store: AlertStore) -> None:
        self._key = key
        self.control_room_id = check_control_room_id(control_room_id)
        self._store = store

    @classmethod
    def from_key_file(cls, path: Path, control_room_id: str, store: AlertStore) -> "ReceiptIssuer":
        return cls(load_private_key(path, Ed25519PrivateKey), control_room_id, store)

    def receipt(self, event_id: str) -> Outgoing | None:
        """The receipt for a stored alert; None for a legacy lfr.alert/1 (no epoch to echo)."""
        event = AlertEvent.from_dict(parse_payload(self._store.payload(event_id)))
        if event.spool_epoch is None or event.audit_head is None:
            return None
        stored_at = parse_time(self._store.alert(event_id).received_at, "received_at")
        signed = sign_message(Receipt.for_alert(event, stored_at, self.control_room_id), self._key)
        return Outgoing(receipt_topic(event.device_id), encode_message(signed))

    def adjudication(self, event_id: str, decision: str, engaged: bool | None, decided_at: datetime, reviewer: str) -> Outgoing:
        """The signed notice of a reviewer's decision on a stored alert."""
        alert = self._store.alert(event_id)
        notice = AdjudicationNotice(event_id, alert.device_id, decision, engaged, decided_at.replace(microsecond=decided_at.microsecond // 1000 * 1000),
                                    reviewer, self.control_room_id)
        return Outgoing(adjudication_topic(alert.device_id), encode_message(sign_message(notice, self._key)))
