"""Control room -> device messages: receipts (``lfr.receipt/1``) and adjudication notices
(``lfr.adjudication/1``), docs/formats/receipts.md.

A receipt tells a device that the control room has durably stored one of its alerts (so the
device may release it from its spool); an adjudication notice tells it what a person decided.
Both are RFC 8785 JSON signed by the control room's Ed25519 key under their own domain, parsed
strictly and refused unless byte for byte canonical: a device acts on them, so they must read
one way only. Deterministic Ed25519 and a fixed ``stored_at`` make a repeated receipt for a
duplicate alert the same bytes. Publishing and spool release are wired elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.crypto.canonical import is_jcs, jcs, loads_strict
from edge_agent.crypto.signing import ADJUDICATION_V1, RECEIPT_V1, SignatureInvalid, sign, verify
from edge_agent.errors import EdgeAgentError, SecurityError
from edge_agent.events.schema import SPOOL_EPOCH_PATTERN, AlertEvent, AuditHead, EventFormatError
from edge_agent.identifiers import IdentifierError, check_control_room_id, check_device_id, check_reviewer
from edge_agent.timestamps import TimestampError, format_timestamp, parse_timestamp

RECEIPT_SCHEMA = "lfr.receipt/1"
ADJUDICATION_SCHEMA = "lfr.adjudication/1"
MAX_MESSAGE_BYTES = 4096
MAX_SEQ = 2**53 - 1
DECISIONS = ("confirmed", "rejected")


class MessageFormatError(EdgeAgentError):
    """A receipt or adjudication notice is not well formed."""


class NonCanonicalMessage(MessageFormatError):
    """The bytes are not the RFC 8785 encoding of what they parse to."""


def _bad(message: str) -> MessageFormatError:
    return MessageFormatError(message, "see docs/formats/receipts.md")


def _check_id(name: str, check: Any, value: Any) -> None:
    try:
        check(value)
    except IdentifierError as exc:
        raise MessageFormatError(f"{name}: {exc.message}", exc.hint) from None


def _check_event_id(value: Any) -> None:
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != value:
        raise _bad(f"event_id {value!r} is not a lower-case UUID4")


def _check_time(name: str, value: Any) -> None:
    if not isinstance(value, datetime) or value.utcoffset() != timedelta(0) or value.microsecond % 1000:
        raise _bad(f"{name} must be a UTC datetime in whole milliseconds")


def _check_signature(value: Any) -> None:
    if value == "":
        return
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64 or base64.b64encode(raw).decode("ascii") != value:
        raise _bad("signature must be base64 of a 64-byte Ed25519 signature")


@dataclass(frozen=True)
class Receipt:
    """The control room has stored alert ``event_id`` (its seq and epoch echoed) at ``stored_at``."""

    SCHEMA: ClassVar[str] = RECEIPT_SCHEMA
    DOMAIN: ClassVar[bytes] = RECEIPT_V1
    FIELDS: ClassVar[tuple[str, ...]] = ("schema", "event_id", "device_id", "spool_epoch", "seq", "stored_at", "audit_head", "control_room", "signature")

    event_id: str
    device_id: str
    spool_epoch: str
    seq: int
    stored_at: datetime
    audit_head: AuditHead  # the alert's audit_head, echoed: binds the receipt to that exact alert
    control_room: str
    signature: str = ""

    def __post_init__(self) -> None:
        _check_event_id(self.event_id)
        _check_id("device_id", check_device_id, self.device_id)
        if not isinstance(self.spool_epoch, str) or not self.spool_epoch.isascii() or not SPOOL_EPOCH_PATTERN.fullmatch(self.spool_epoch):
            raise _bad(f"spool_epoch {self.spool_epoch!r} must be 32 lower-case hex digits")
        if type(self.seq) is not int or not 1 <= self.seq <= MAX_SEQ:
            raise _bad(f"seq {self.seq!r} must be an integer from 1 to 2^53-1")
        _check_time("stored_at", self.stored_at)
        if not isinstance(self.audit_head, AuditHead):
            raise _bad("audit_head must be {\"seq\": int, \"hash\": 64 hex}")
        _check_id("control_room", check_control_room_id, self.control_room)
        _check_signature(self.signature)

    @classmethod
    def for_alert(cls, event: AlertEvent, stored_at: datetime, control_room: str) -> "Receipt":
        """The receipt for a stored lfr.alert/2 event (v1 events carry no epoch and get none)."""
        if event.spool_epoch is None or event.audit_head is None:
            raise _bad(f"event {event.event_id} is {event.schema}: receipts acknowledge lfr.alert/2 events only")
        return cls(event.event_id, event.device_id, event.spool_epoch, event.seq, stored_at, event.audit_head, control_room)

    def acknowledges(self, event: AlertEvent) -> bool:
        """True when this receipt is for exactly ``event`` (id, device, epoch, seq and audit head)."""
        return (self.event_id, self.device_id, self.spool_epoch, self.seq, self.audit_head) == (
            event.event_id, event.device_id, event.spool_epoch, event.seq, event.audit_head)

    def unsigned_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "event_id": self.event_id,
            "device_id": self.device_id,
            "spool_epoch": self.spool_epoch,
            "seq": self.seq,
            "stored_at": format_timestamp(self.stored_at),
            "audit_head": self.audit_head.as_dict(),
            "control_room": self.control_room,
        }

    @classmethod
    def _from_fields(cls, data: dict[str, Any]) -> "Receipt":
        try:
            head = AuditHead.from_dict(data["audit_head"])
        except EventFormatError as exc:
            raise MessageFormatError(exc.message, exc.hint) from None
        return cls(data["event_id"], data["device_id"], data["spool_epoch"], data["seq"], _time("stored_at", data["stored_at"]),
                   head, data["control_room"], data["signature"])


@dataclass(frozen=True)
class AdjudicationNotice:
    """What a person in the control room decided about alert ``event_id``."""

    SCHEMA: ClassVar[str] = ADJUDICATION_SCHEMA
    DOMAIN: ClassVar[bytes] = ADJUDICATION_V1
    FIELDS: ClassVar[tuple[str, ...]] = ("schema", "event_id", "device_id", "decision", "engaged", "decided_at", "reviewer", "control_room", "signature")

    event_id: str
    device_id: str
    decision: str  # "confirmed" | "rejected"
    engaged: bool | None  # whether officers engaged the person; None when not recorded
    decided_at: datetime
    reviewer: str
    control_room: str
    signature: str = ""

    def __post_init__(self) -> None:
        _check_event_id(self.event_id)
        _check_id("device_id", check_device_id, self.device_id)
        if self.decision not in DECISIONS:
            raise _bad(f"decision {self.decision!r} is not one of {list(DECISIONS)}")
        if self.engaged is not None and not isinstance(self.engaged, bool):
            raise _bad("engaged must be true, false or null")
        _check_time("decided_at", self.decided_at)
        _check_id("reviewer", check_reviewer, self.reviewer)
        _check_id("control_room", check_control_room_id, self.control_room)
        _check_signature(self.signature)

    def unsigned_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "event_id": self.event_id,
            "device_id": self.device_id,
            "decision": self.decision,
            "engaged": self.engaged,
            "decided_at": format_timestamp(self.decided_at),
            "reviewer": self.reviewer,
            "control_room": self.control_room,
        }

    @classmethod
    def _from_fields(cls, data: dict[str, Any]) -> "AdjudicationNotice":
        return cls(data["event_id"], data["device_id"], data["decision"], data["engaged"], _time("decided_at", data["decided_at"]),
                   data["reviewer"], data["control_room"], data["signature"])


Message = Receipt | AdjudicationNotice


def _time(name: str, text: Any) -> datetime:
    try:
        return parse_timestamp(text, name)
    except TimestampError as exc:
        raise MessageFormatError(exc.message, exc.hint) from None


def signed_bytes(message: Message) -> bytes:
    """JCS of the message without ``signature`` (the domain is added by crypto.signing)."""
    return jcs(message.unsigned_dict())


def sign_message(message: Message, key: Ed25519PrivateKey) -> Message:
    signature = base64.b64encode(sign(key, message.DOMAIN, signed_bytes(message))).decode("ascii")
    return dataclasses.replace(message, signature=signature)


def verify_message(message: Message, key: Ed25519PublicKey) -> None:
    """Raise SecurityError unless ``message`` carries a valid signature by the control room's ``key``."""
    if not message.signature:
        raise SecurityError(f"{message.SCHEMA} for event {message.event_id} is unsigned", "only signed control-room messages are acted on")
    try:
        verify(key, message.DOMAIN, signed_bytes(message), base64.b64decode(message.signature))
    except SignatureInvalid:
        raise SecurityError(
            f"{message.SCHEMA} for event {message.event_id} does not verify with the pinned control-room key",
            "it was altered or forged, or the device pins another control-room key",
        ) from None


def encode_message(message: Message) -> bytes:
    """The MQTT payload: JCS of the signed message."""
    if not message.signature:
        raise _bad(f"{message.SCHEMA} is not signed")
    return jcs({**message.unsigned_dict(), "signature": message.signature})


def parse_message(payload: bytes) -> Message:
    """Strictly parse a receipt or adjudication notice: size-capped, UTF-8, no duplicate keys,
    exactly the documented fields, canonical bytes. The signature is checked by verify_message."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise _bad(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    data = loads_strict(payload, MessageFormatError)
    if not isinstance(data, dict):
        raise _bad("message is not a JSON object")
    kinds: dict[str, type[Receipt] | type[AdjudicationNotice]] = {RECEIPT_SCHEMA: Receipt, ADJUDICATION_SCHEMA: AdjudicationNotice}
    schema = data.get("schema")
    cls = kinds.get(schema) if isinstance(schema, str) else None  # a dict or list here is unhashable
    if cls is None:
        raise _bad(f"unsupported message schema {data.get('schema')!r} (this device reads {', '.join(kinds)})")
    if not is_jcs(payload, data):
        raise NonCanonicalMessage(f"{cls.SCHEMA} message is not in RFC 8785 canonical form", "send exactly jcs(message) (docs/formats/receipts.md)")
    if set(data) != set(cls.FIELDS):
        raise _bad(f"{cls.SCHEMA} fields do not match (missing {sorted(set(cls.FIELDS) - set(data))}, unexpected {sorted(set(data) - set(cls.FIELDS))})")
    return cls._from_fields(data)


__all__ = [
    "ADJUDICATION_SCHEMA", "RECEIPT_SCHEMA", "AdjudicationNotice", "MessageFormatError", "NonCanonicalMessage", "Receipt",
    "encode_message", "parse_message", "sign_message", "signed_bytes", "verify_message",
]
