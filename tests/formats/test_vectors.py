"""docs/formats/vectors/ (issue 16.3): every valid vector is accepted and every invalid one refused
for its stated reason by our code; the deterministic signatures regenerate byte for byte."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.verify import verify_audit_log
from edge_agent.crypto import signing
from edge_agent.crypto.sealing import open_sealed
from edge_agent.deployment.record import SignedDeployment
from edge_agent.errors import EdgeAgentError, SecurityError
from edge_agent.events.crop import open_crop
from edge_agent.events.receipts import MessageFormatError, NonCanonicalMessage, parse_message, verify_message
from edge_agent.events.schema import AlertEvent, EventFormatError, NonCanonicalPayload, parse_payload
from edge_agent.events.signing import verify_event

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "formats" / "vectors"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_every_signed_and_sealed_format_has_vectors():
    assert {p.name for p in VECTORS.glob("*.json")} == {"signing.json", "events.json", "sealing.json", "audit.json", "receipts.json", "watchlist.json",
                                                        "deployment.json", "calibration.json"}
    for path in VECTORS.glob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["valid"] and doc["invalid"], path.name


def test_signing_vectors_regenerate_and_refuse_cross_domain():
    v = load("signing.json")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["private_seed_hex"]))
    data = bytes.fromhex(v["data_hex"])
    assert {bytes.fromhex(x["domain_hex"]) for x in v["valid"]} == set(signing.SIGNING_DOMAINS)
    for x in v["valid"]:
        assert signing.sign(key, bytes.fromhex(x["domain_hex"]), data).hex() == x["signature_hex"]
    for x in v["invalid"]:
        with pytest.raises(signing.SignatureInvalid):
            signing.verify(key.public_key(), bytes.fromhex(x["domain_hex"]), data, bytes.fromhex(x["signature_hex"]))


def _intake_reason(payload: bytes, device_pub: Ed25519PublicKey) -> str:
    """The intake's reason code for a payload, without a store: the same checks in the same order."""
    try:
        data = parse_payload(payload)
    except NonCanonicalPayload:
        return "non_canonical"
    except EventFormatError:
        return "malformed_payload"
    try:
        event = AlertEvent.from_dict(data)
    except EventFormatError:
        return "schema_invalid"
    try:
        verify_event(event, device_pub)
    except SecurityError:
        return "bad_signature"
    return "accepted"


def test_event_vectors():
    v = load("events.json")
    pub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["device_private_seed_hex"])).public_key()
    cr = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["control_room_x25519_private_hex"]))
    for x in v["valid"]:
        assert _intake_reason(x["payload"].encode(), pub) == "accepted", x["name"]
        event = AlertEvent.from_dict(parse_payload(x["payload"].encode()))
        assert open_crop(event.crop_sealed, cr, event.event_id)[:2] == b"\xff\xd8"
    for x in v["invalid"]:
        assert _intake_reason(x["payload"].encode(), pub) == x["reason"], x["name"]


def test_sealing_vectors():
    v = load("sealing.json")
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["recipient_private_hex"]))
    for x in v["valid"]:
        assert open_sealed(bytes.fromhex(x["blob_hex"]), key, bytes.fromhex(x["context_hex"]), bytes.fromhex(x["aad_hex"])).hex() == x["plaintext_hex"]
    for x in v["invalid"]:
        with pytest.raises(SecurityError):
            open_sealed(bytes.fromhex(x["blob_hex"]), key, bytes.fromhex(x["context_hex"]), bytes.fromhex(x["aad_hex"]))


def test_audit_vectors(tmp_path):
    v = load("audit.json")
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["device_public_key_hex"]))
    for x in v["valid"] + v["invalid"]:
        path = tmp_path / "a.log"
        path.write_text("".join(line + "\n" for line in x["lines"]))
        result = verify_audit_log(path, pub, checkpoint_every=3)
        assert result.ok == ("first_bad_line" not in x), x["name"]
        assert result.first_bad_line == x.get("first_bad_line"), x["name"]


def test_receipt_vectors():
    v = load("receipts.json")
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["control_room_public_key_hex"]))
    for x in v["valid"]:
        verify_message(parse_message(x["payload"].encode()), pub)
    for x in v["invalid"]:
        if x["reason"] == "non_canonical":
            with pytest.raises(NonCanonicalMessage):
                parse_message(x["payload"].encode())
        else:
            with pytest.raises((SecurityError, MessageFormatError)):
                verify_message(parse_message(x["payload"].encode()), pub)


def test_watchlist_and_deployment_vectors():
    from edge_agent.watchlist.loader import verify_package_signature

    v = load("watchlist.json")
    authority = Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["authority_public_key_hex"]))
    signed = SignedDeployment.from_bytes(v["deployment"]["signed_file"].encode())
    assert signed.record_bytes.decode() == v["deployment"]["record"]
    record = signed.verify(authority)
    assert record.deployment_id == "DEP-VECTOR-1" and record.version == 3
    # the package embeds that signed deployment, and the loader's checks accept it
    from edge_agent.watchlist.format import decode_container

    for x in v["valid"]:
        embedded = SignedDeployment.from_json(decode_container(base64.b64decode(x["package_b64"])).header["deployment"])
        assert embedded == signed and embedded.verify(authority) == record
    for x in v["valid"]:
        verify_package_signature(base64.b64decode(x["package_b64"]), authority)
    for x in v["invalid"]:
        with pytest.raises(EdgeAgentError):
            verify_package_signature(base64.b64decode(x["package_b64"]), authority)


#: How our code states each refusal the deployment vectors name.
DEPLOYMENT_REFUSALS = {
    "non_canonical": "canonical form", "bad_signature": "signature is not valid", "timestamp_form": "milliseconds",
    "duplicate_key": "duplicate", "version_mismatch": "cannot carry", "malformed": "malformed",
}


def test_deployment_vectors(tmp_path):
    """Each valid signed deployment verifies (approved when it says so) and regenerates byte for byte
    (Ed25519 is deterministic); each invalid one is refused for its stated reason."""
    from edge_agent.crypto.signing import DEPLOYMENT_V1, DEPLOYMENT_V3

    v = load("deployment.json")
    authority_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["authority_private_seed_hex"]))
    authority, approver = authority_key.public_key(), Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["approver_private_seed_hex"])).public_key()
    for x in v["valid"]:
        signed = SignedDeployment.from_bytes(x["signed_file"].encode())
        record = signed.verify(authority)
        assert signed.record_bytes == x["record"].encode() == record.canonical_bytes(), x["name"]
        assert signed.to_bytes() + b"\n" == x["signed_file"].encode()
        domain = DEPLOYMENT_V3 if record.version == 3 else DEPLOYMENT_V1
        assert bytes.fromhex(x["authority_signed_bytes_hex"]) == domain + signed.record_bytes
        assert SignedDeployment.sign(record, authority_key).authority_signature == signed.authority_signature
        assert signed.threshold_approved([approver], authority) == x["approved"], x["name"]
    cited = SignedDeployment.from_bytes(v["valid"][1]["signed_file"].encode()).verify(authority)
    assert cited.calibration.report_sha256 == v["calibration_report_sha256"] == load("calibration.json")["valid"][0]["report_sha256"]
    for x in v["invalid"]:
        if x["reason"] == "approval_invalid":
            signed = SignedDeployment.from_bytes(x["signed_file"].encode())
            signed.verify(authority)
            assert not signed.threshold_approved([approver], authority), x["name"]
            continue
        with pytest.raises(SecurityError, match=DEPLOYMENT_REFUSALS[x["reason"]]):
            SignedDeployment.from_bytes(x["signed_file"].encode()).verify(authority)


def test_calibration_vectors(tmp_path):
    from edge_agent.deployment.calibration import read_calibration_report
    from edge_agent.errors import ConfigError

    v = load("calibration.json")
    path = tmp_path / "report.json"
    for x in v["valid"]:
        path.write_bytes(base64.b64decode(x["file_b64"]))
        assert read_calibration_report(path).report_sha256 == x["report_sha256"], x["name"]
    for x in v["invalid"]:
        path.write_bytes(base64.b64decode(x["file_b64"]))
        with pytest.raises(ConfigError, match="one spelling" if x["reason"] == "non_canonical" else "duplicate"):
            read_calibration_report(path)
