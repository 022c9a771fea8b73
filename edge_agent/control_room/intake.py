"""Decide whether a received message is a genuine, new, in-window alert; store it or record why not.

Checks, in order: topic shape, strict JSON, schema, signature present, topic device == payload
device, device registered, Ed25519 signature, capture time within the acceptance window, the
cited deployment (imported, names the device, capture inside its window, threshold not below
its), crop opens with the control room key for this event id, and finally id/sequence
uniqueness and the replay horizon (inside the store's transaction). A message that fails any
check is recorded in ``rejections`` with its reason and the payload's SHA-256 — never its
content. Every verdict is audited (``alert_accepted`` / ``alert_refused``), after the store commit
and before the listener acknowledges the message, so nothing is acknowledged unaudited.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.control_room.auditing import ALERT_ACCEPTED, ALERT_REFUSED, AuditSink
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.store import AlertStore, DuplicateAlert, Rejection, StoreError, event_epoch
from edge_agent.errors import EdgeAgentError, SecurityError
from edge_agent.events.crop import open_crop
from edge_agent.events.schema import AlertEvent, EventFormatError, NonCanonicalPayload, format_time, parse_payload
from edge_agent.events.signing import verify_event
from edge_agent.events.topics import parse_topic
from edge_agent.identifiers import MAX_RETENTION

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = MAX_RETENTION  # store-and-forward may deliver late; older than retention is refused
DEFAULT_MAX_FUTURE = timedelta(minutes=5)  # device clock skew allowance


class KeyRegistry(Protocol):
    def signing_key(self, device_id: str) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str  # "accepted" or a rejection code (docs/formats/events.md)
    detail: str
    event_id: str | None
    device_id: str | None
    captured_at: datetime | None = None


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class AlertIntake:
    def __init__(
        self,
        registry: KeyRegistry,
        control_room_key: X25519PrivateKey,
        store: AlertStore,
        deployments: DeploymentBook,
        audit: AuditSink,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
        clock: Callable[[], datetime] | None = None,
        on_accept: Callable[[AlertEvent, datetime], None] | None = None,
    ) -> None:
        self.registry = registry
        self._key = control_room_key
        self.store = store
        self.deployments = deployments
        self.audit = audit
        self.max_age = max_age
        self.max_future = max_future
        store.record_accept_window(max_age + max_future)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._on_accept = on_accept

    def receive(self, topic: str, payload: bytes) -> Verdict:
        """Verify and store one message. Raises only when the store itself fails (then do not ack)."""
        now = self._clock()
        claimed: str | None = None
        event_id: str | None = None
        try:
            parsed = parse_topic(topic)
            if parsed is None or parsed[1] != "alert":
                raise _Reject("malformed_topic", f"topic {topic!r} is not lfr/v1/<device>/alert")
            claimed = parsed[0]
            try:
                data = parse_payload(payload)
            except NonCanonicalPayload as exc:
                raise _Reject("non_canonical", exc.message) from None
            except EventFormatError as exc:
                raise _Reject("malformed_payload", exc.message) from None
            if isinstance(data, dict):
                event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
                if not data.get("signature"):
                    raise _Reject("unsigned", "the event carries no signature")
            try:
                event = AlertEvent.from_dict(data)
            except EventFormatError as exc:
                raise _Reject("schema_invalid", exc.message) from None
            if event.device_id != claimed:
                raise _Reject("topic_device_mismatch", f"payload device {event.device_id!r} published on the topic of {claimed!r}")
            try:
                key = self.registry.signing_key(event.device_id)
            except SecurityError as exc:
                raise _Reject("unknown_device", exc.message) from None
            try:
                verify_event(event, key)
            except SecurityError as exc:
                raise _Reject("bad_signature", exc.message) from None
            age = now - event.captured_at
            if age > self.max_age:
                raise _Reject("out_of_window", f"captured {event.captured_at_text}, older than the {self.max_age} window")
            if -age > self.max_future:
                raise _Reject("out_of_window", f"captured {event.captured_at_text}, more than {self.max_future} in the future")
            refusal = self.deployments.check(event.deployment_id, event.device_id, event.captured_at, event.threshold)
            if refusal is not None:
                raise _Reject(refusal.reason, refusal.detail)
            try:
                jpeg = open_crop(event.crop_sealed, self._key, event.event_id)
            except SecurityError as exc:
                raise _Reject("crop_unreadable", exc.message) from None
            try:
                self.store.add_alert(event, payload, hashlib.sha256(jpeg).hexdigest(), now)
            except DuplicateAlert as exc:
                raise _Reject(exc.reason, exc.message) from None
        except StoreError:
            raise  # not committed: the caller must not acknowledge
        except _Reject as rej:
            return self._reject(now, topic, claimed, event_id, rej.reason, rej.detail, payload)
        except Exception as exc:  # noqa: BLE001 - a bug must not silently eat an alert
            log.exception("internal error while checking a message on %s", topic)
            self.store.quarantine(format_time(now), topic[:256], payload)
            return self._reject(now, topic, claimed, event_id, "internal_error", f"{type(exc).__name__}: {exc}; payload quarantined", payload)
        self.audit.append(ALERT_ACCEPTED, {
            "event_id": event.event_id, "device_id": event.device_id, "spool_epoch": event_epoch(event), "seq": event.seq,
            "deployment_id": event.deployment_id, "captured_at": event.captured_at_text,
        })
        if self._on_accept is not None:
            self._on_accept(event, now)
        return Verdict(True, "accepted", "", event.event_id, event.device_id, event.captured_at)

    def _reject(self, now: datetime, topic: str, claimed: str | None, event_id: str | None, reason: str, detail: str, payload: bytes) -> Verdict:
        log.warning("rejected message on %s (event %s): %s: %s", topic, event_id, reason, detail)
        rejection = Rejection(format_time(now), topic[:256], claimed, event_id if _plausible_id(event_id) else None, reason, detail[:500],
                              hashlib.sha256(payload).hexdigest())
        self.store.add_rejection(rejection)
        self.audit.append(ALERT_REFUSED, {
            "reason": reason, "topic": rejection.topic, "claimed_device": claimed if _plausible_id(claimed) else None,
            "event_id": rejection.event_id, "payload_sha256": rejection.payload_sha256,
        })
        return Verdict(False, reason, detail, event_id, claimed)



def _plausible_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 64


__all__ = ["AlertIntake", "Verdict", "EdgeAgentError"]
