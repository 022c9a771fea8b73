"""Seal bytes to an X25519 public key: ephemeral X25519 + HKDF-SHA256 + AES-256-GCM.

This is the ECIES construction the watchlist issue names (HPKE is not in every ``cryptography``
release a Pi may carry). Layout of a sealed blob, versioned by its first byte:

    0x01 | ephemeral public key (32) | nonce (12) | AES-GCM ciphertext+tag

The HKDF ``info`` binds the purpose (``context``), the ephemeral key and the recipient key, so a
blob sealed for one purpose or recipient cannot be replayed as another.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge_agent.crypto.keyfiles import public_raw
from edge_agent.errors import SecurityError

SEAL_VERSION = 1
_HEADER = 1 + 32 + 12


def _derive(shared: bytes, eph_pub: bytes, recipient_pub: bytes, context: bytes) -> bytes:
    info = b"edge-agent seal v1|" + context + b"|" + eph_pub + recipient_pub
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def seal(plaintext: bytes, recipient: X25519PublicKey, context: bytes, aad: bytes = b"") -> bytes:
    eph = X25519PrivateKey.generate()
    eph_pub = public_raw(eph.public_key())
    key = _derive(eph.exchange(recipient), eph_pub, public_raw(recipient), context)
    nonce = os.urandom(12)
    return bytes([SEAL_VERSION]) + eph_pub + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(blob: bytes, recipient: X25519PrivateKey, context: bytes, aad: bytes = b"") -> bytes:
    if len(blob) < _HEADER + 16:
        raise SecurityError("sealed data is truncated", "the sender must seal it again")
    if blob[0] != SEAL_VERSION:
        raise SecurityError(f"unknown seal version {blob[0]}", "upgrade edge-agent or re-seal with a supported version")
    eph_pub, nonce, ct = blob[1:33], blob[33:45], blob[45:]
    try:
        key = _derive(
            recipient.exchange(X25519PublicKey.from_public_bytes(eph_pub)),
            eph_pub,
            public_raw(recipient.public_key()),
            context,
        )
        return AESGCM(key).decrypt(nonce, ct, aad)
    except (InvalidTag, ValueError):
        raise SecurityError(
            "sealed data cannot be opened with this key (wrong recipient, or altered)",
            "check it was sealed for this device/control room key",
        ) from None
