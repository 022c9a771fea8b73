"""The one signing layer (issue 15.2): domain separation, one error, and nothing signs around it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.crypto import signing
from edge_agent.crypto.signing import SignatureInvalid, sign, verify
from edge_agent.errors import SecurityError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PACKAGE = Path(__file__).resolve().parents[2] / "edge_agent"


def test_signature_is_ed25519_over_domain_and_data():
    sig = sign(KEY, signing.WATCHLIST_V1, b"payload")
    KEY.public_key().verify(sig, b"edge-agent watchlist v1\x00payload")  # the documented construction
    verify(KEY.public_key(), signing.WATCHLIST_V1, b"payload", sig)


def test_domains_have_their_documented_bytes_and_are_distinct():
    assert signing.AUDIT_CHECKPOINT_V1 == b"edge-agent audit checkpoint v1\x00"
    assert signing.DEPLOYMENT_V1 == b"edge-agent deployment v1\x00"
    assert signing.THRESHOLD_APPROVAL_V1 == b"edge-agent threshold-approval v1\x00"
    assert signing.WATCHLIST_V1 == b"edge-agent watchlist v1\x00"
    assert signing.ALERT_V2 == b"edge-agent alert v2\x00"
    assert signing.RECEIPT_V1 == b"edge-agent receipt v1\x00"
    assert signing.ADJUDICATION_V1 == b"edge-agent adjudication v1\x00"
    named = [d for d in signing.VERIFYING_DOMAINS if d]
    assert all(re.fullmatch(rb"edge-agent [a-z -]+ v[0-9]+\x00", d) for d in named)
    # no domain is a prefix of another, so domain + data can never be read under two purposes
    assert not any(a != b and b.startswith(a) for a in named for b in named)


def test_a_signature_for_one_purpose_never_verifies_for_another():
    sig = sign(KEY, signing.DEPLOYMENT_V1, b"record")
    for other in signing.VERIFYING_DOMAINS - {signing.DEPLOYMENT_V1}:
        with pytest.raises(SignatureInvalid):
            verify(KEY.public_key(), other, b"record", sig)


@pytest.mark.parametrize(
    "data, signature",
    [(b"record!", None), (b"record", b"\x00" * 64), (b"record", b"short"), (b"record", "not bytes")],
)
def test_one_error_for_every_failure(data, signature):
    good = sign(KEY, signing.DEPLOYMENT_V1, b"record")
    with pytest.raises(SignatureInvalid) as info:
        verify(KEY.public_key(), signing.DEPLOYMENT_V1, data, good if signature is None else signature)
    assert isinstance(info.value, SecurityError) and "deployment v1" in info.value.message
    with pytest.raises(SignatureInvalid):
        verify(Ed25519PrivateKey.generate().public_key(), signing.DEPLOYMENT_V1, b"record", good)


def test_undeclared_domains_are_refused():
    with pytest.raises(ValueError, match="not declared"):
        sign(KEY, b"edge-agent made-up v1\x00", b"x")
    with pytest.raises(ValueError, match="not declared"):
        verify(KEY.public_key(), b"edge-agent made-up v1\x00", b"x", bytes(64))


def test_nothing_else_calls_ed25519_sign_or_verify():
    """Every Ed25519 signature goes through crypto/signing.py (X.509 certificate signing in fleet/pki.py is not Ed25519-over-data)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel in ("crypto/signing.py", "fleet/pki.py") or "Ed25519" not in text:
            continue  # a module that never names an Ed25519 key cannot call one (argon2's verify is not a signature)
        for n, line in enumerate(text.splitlines(), 1):
            # SignedDeployment.sign(record, key) and signed.verify(pub) are our own wrappers
            if re.search(r"(?<!SignedDeployment)\.sign\(|\.verify\([^()]*,", line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_the_scan_would_catch_a_hand_written_signature(tmp_path):
    """Positive control for the scan above."""
    line = "    return key.sign(DOMAIN + data)"
    assert re.search(r"(?<!SignedDeployment)\.sign\(|\.verify\([^()]*,", line)
    assert re.search(r"(?<!SignedDeployment)\.sign\(|\.verify\([^()]*,", "key.verify(sig, DOMAIN + data)")
