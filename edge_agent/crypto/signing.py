"""The one signing layer: Ed25519 over ``domain + data``, with every domain declared here.

Why a layer: domain-tagged signing was written out by hand in six places. A signature made for
one purpose (a watchlist) must never verify as another (a deployment), so every signed format
prefixes a domain ``b"edge-agent <purpose> v<N>\\x00"`` that names it; these bytes are part of
the formats (docs/formats/) and never change for an existing version. Nothing else in the
project calls ``Ed25519PrivateKey.sign`` or ``Ed25519PublicKey.verify``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.errors import SecurityError

SIGNATURE_LEN = 64

# Signing domains (docs/formats/*.md). Existing ones keep their exact bytes.
AUDIT_CHECKPOINT_V1 = b"edge-agent audit checkpoint v1\x00"
DEPLOYMENT_V1 = b"edge-agent deployment v1\x00"  # deployment records v1 and v2 (canonical_json)
THRESHOLD_APPROVAL_V1 = b"edge-agent threshold-approval v1\x00"
DEPLOYMENT_V3 = b"edge-agent deployment v3\x00"  # deployment record v3 (RFC 8785)
THRESHOLD_APPROVAL_V3 = b"edge-agent threshold-approval v3\x00"
WATCHLIST_V1 = b"edge-agent watchlist v1\x00"
WATCHLIST_V2 = b"edge-agent watchlist v2\x00"
WATCHLIST_BUILD_RECORD_V1 = b"edge-agent watchlist build-record v1\x00"
ALERT_V2 = b"edge-agent alert v2\x00"
RECEIPT_V1 = b"edge-agent receipt v1\x00"
ADJUDICATION_V1 = b"edge-agent adjudication v1\x00"
#: lfr.alert/1 signed the canonical JSON with no domain at all; kept only to verify old events.
ALERT_V1_UNDOMAINED = b""

#: Domains new signatures may be made under.
SIGNING_DOMAINS: frozenset[bytes] = frozenset(
    {AUDIT_CHECKPOINT_V1, DEPLOYMENT_V1, THRESHOLD_APPROVAL_V1, DEPLOYMENT_V3, THRESHOLD_APPROVAL_V3, WATCHLIST_V1, WATCHLIST_V2, WATCHLIST_BUILD_RECORD_V1, ALERT_V2, RECEIPT_V1,
     ADJUDICATION_V1}
)
#: Domains signatures are verified under (legacy formats are read, never written).
VERIFYING_DOMAINS: frozenset[bytes] = SIGNING_DOMAINS | {ALERT_V1_UNDOMAINED}


class SignatureInvalid(SecurityError):
    """A signature does not verify for this key, domain and data."""


def sign(private_key: Ed25519PrivateKey, domain: bytes, data: bytes | memoryview) -> bytes:
    """Ed25519 signature (64 bytes) over ``domain + data``; ``domain`` must be one declared here."""
    if domain not in SIGNING_DOMAINS:
        raise ValueError(f"signing domain {domain!r} is not declared in edge_agent.crypto.signing")
    return private_key.sign(b"".join((domain, data)))  # one copy of ``data``, also for a view (a package is megabytes)


def verify(public_key: Ed25519PublicKey, domain: bytes, data: bytes | memoryview, signature: bytes) -> None:
    """Return if ``signature`` is ``public_key``'s Ed25519 signature over ``domain + data``, else raise SignatureInvalid."""
    if domain not in VERIFYING_DOMAINS:
        raise ValueError(f"signing domain {domain!r} is not declared in edge_agent.crypto.signing")
    try:
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_LEN:
            raise InvalidSignature
        public_key.verify(bytes(signature), b"".join((domain, data)))  # one copy, also for a memoryview
    except (InvalidSignature, TypeError, ValueError):
        purpose = domain.rstrip(b"\x00").decode("ascii") or "lfr.alert/1 (no domain)"
        raise SignatureInvalid(
            f"signature does not verify ({purpose})",
            "the data was altered, or it was signed by another key or for another purpose",
        ) from None
