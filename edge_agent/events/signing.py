"""Event signatures (docs/formats/events.md).

``lfr.alert/2``: Ed25519 over ``b"edge-agent alert v2\\x00" + jcs(unsigned)``; the payload is
``jcs(event)``. ``lfr.alert/1`` (read only): Ed25519 over ``canonical_json(unsigned)`` with no
domain; its payload was ``canonical_json(event)``. ``unsigned`` is the event without ``signature``.
"""

from __future__ import annotations

import base64
import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.crypto.canonical import canonical_json, jcs
from edge_agent.crypto.signing import ALERT_V1_UNDOMAINED, ALERT_V2, SignatureInvalid, sign, verify
from edge_agent.errors import SecurityError
from edge_agent.events.schema import SCHEMA_V1, SCHEMA_V2, AlertEvent, EventFormatError


def _domain(event: AlertEvent) -> bytes:
    return ALERT_V2 if event.schema == SCHEMA_V2 else ALERT_V1_UNDOMAINED


def signed_bytes(event: AlertEvent) -> bytes:
    """The canonical bytes of the unsigned event (the signing domain is added by crypto.signing)."""
    unsigned = event.unsigned_dict()
    return jcs(unsigned) if event.schema == SCHEMA_V2 else canonical_json(unsigned)


def sign_event(event: AlertEvent, key: Ed25519PrivateKey) -> AlertEvent:
    """Sign a v2 event; v1 is a read-only format and is never signed again."""
    if event.schema != SCHEMA_V2:
        raise EventFormatError(f"{event.schema} events are verified, never signed", f"build {SCHEMA_V2} events")
    signature = base64.b64encode(sign(key, _domain(event), signed_bytes(event))).decode("ascii")
    return dataclasses.replace(event, signature=signature)


def verify_event(event: AlertEvent, key: Ed25519PublicKey) -> None:
    """Raise SecurityError unless ``event`` carries a valid signature by ``key``."""
    if not event.signature:
        raise SecurityError(f"event {event.event_id} is unsigned", "devices must sign every alert")
    try:
        verify(key, _domain(event), signed_bytes(event), event.signature_bytes)
    except SignatureInvalid:
        raise SecurityError(
            f"event {event.event_id} signature does not verify with the registered key of {event.device_id}",
            "the event was altered or forged, or the registry holds a different key for this device",
        ) from None


def encode_event(event: AlertEvent) -> bytes:
    """The MQTT payload: the canonical JSON of the signed event (RFC 8785 for v2)."""
    doc = event.as_dict()
    return jcs(doc) if event.schema == SCHEMA_V2 else canonical_json(doc)


__all__ = ["SCHEMA_V1", "SCHEMA_V2", "encode_event", "sign_event", "signed_bytes", "verify_event"]
