"""Ed25519 signatures over the canonical encoding of an alert (everything but the signature).

The canonical encoding (edge_agent.crypto.canonical) makes the signed bytes independent of key
order and whitespace, so the listener can re-derive them from the parsed payload.
"""

from __future__ import annotations

import base64
import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.crypto.canonical import canonical_json
from edge_agent.crypto.signing import ALERT_V1_UNDOMAINED, SignatureInvalid, sign, verify
from edge_agent.errors import SecurityError
from edge_agent.events.schema import AlertEvent


def signed_bytes(event: AlertEvent) -> bytes:
    """The exact bytes the device signs."""
    return canonical_json(event.unsigned_dict())


def sign_event(event: AlertEvent, key: Ed25519PrivateKey) -> AlertEvent:
    signature = base64.b64encode(sign(key, ALERT_V1_UNDOMAINED, signed_bytes(event))).decode("ascii")
    return dataclasses.replace(event, signature=signature)


def verify_event(event: AlertEvent, key: Ed25519PublicKey) -> None:
    """Raise SecurityError unless ``event`` carries a valid signature by ``key``."""
    if not event.signature:
        raise SecurityError(f"event {event.event_id} is unsigned", "devices must sign every alert")
    try:
        verify(key, ALERT_V1_UNDOMAINED, signed_bytes(event), event.signature_bytes)
    except SignatureInvalid:
        raise SecurityError(
            f"event {event.event_id} signature does not verify with the registered key of {event.device_id}",
            "the event was altered or forged, or the registry holds a different key for this device",
        ) from None


def encode_event(event: AlertEvent) -> bytes:
    """The MQTT payload: canonical JSON of the signed event."""
    return canonical_json(event.as_dict())
