"""Issue 16.4: our bytes verified by tests/interop/verifier.py, written from docs/formats alone
with PyNaCl and pycryptodome: the documented golden examples, and a real demo's events, crops,
audit log and installed watchlist. The driver uses edge_agent to *make* the bytes; the verifier
never imports it."""

from __future__ import annotations

import ast
import base64
import io
import json
import re
import sqlite3

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verifier  # noqa: E402
from verifier import Refused  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats"
DEVICE_SEED = bytes([1]) * 32
CONTROL_ROOM_X25519 = bytes([2]) * 32
CONTROL_ROOM_SIGNING_SEED = bytes([3]) * 32


def _public(seed: bytes) -> bytes:
    import nacl.signing

    return bytes(nacl.signing.SigningKey(seed).verify_key)


def _blocks(doc: str, after: str) -> list[bytes]:
    text = (DOCS / doc).read_text(encoding="utf-8").split(after, 1)[1]
    return [m.encode() for m in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def test_the_verifier_imports_neither_our_code_nor_cryptography():
    tree = ast.parse((Path(__file__).resolve().parent / "verifier.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not modules & {"edge_agent", "cryptography", "rfc8785"}
    assert {"nacl", "Crypto"} <= modules


def test_jcs_matches_the_rfc_examples():
    # RFC 8785 section 3.2.2.3 number examples and 3.2.3 sorting example
    assert verifier.jcs(-0.0) == b"0"
    examples = {0.0: "0", 1e21: "1e+21", 1e-7: "1e-7", 0.000001: "0.000001", 333333333.3333333: "333333333.3333333",
                1.7976931348623157e308: "1.7976931348623157e+308", 5e-324: "5e-324", 9007199254740992.0: "9007199254740992",
                295147905179352830000.0: "295147905179352830000", 4.5: "4.5", 2e-3: "0.002", 0.000001234: "0.000001234"}
    for value, text in examples.items():
        assert verifier.jcs(value) == text.encode()
    sorted_example = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                      "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(verifier.jcs(sorted_example)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_golden_alerts_verify_and_their_crop_opens():
    v2 = _blocks("events.md", "## Golden example\n")[0]
    v1 = _blocks("events.md", "## Version 1 (")[0]
    for payload in (v2, v1):
        alert = verifier.verify_alert(payload, _public(DEVICE_SEED))
        assert verifier.open_crop(alert, CONTROL_ROOM_X25519)[:2] == b"\xff\xd8"
    # positive controls: the verifier refuses what it should
    with pytest.raises(Refused, match="non_canonical"):
        verifier.verify_alert(json.dumps(json.loads(v2)).encode(), _public(DEVICE_SEED))
    with pytest.raises(Refused, match="bad_signature"):
        verifier.verify_alert(v2.replace(b'"seq":17', b'"seq":18'), _public(DEVICE_SEED))
    with pytest.raises(Refused, match="duplicate_key"):
        verifier.verify_alert(v2.replace(b'{"audit_head"', b'{"seq":1,"audit_head"', 1), _public(DEVICE_SEED))
    with pytest.raises(Refused, match="bad_seal"):
        verifier.open_crop({**json.loads(v2), "event_id": "00000000-0000-4000-8000-000000000000"}, CONTROL_ROOM_X25519)


def test_golden_receipt_and_adjudication_notice_verify():
    blocks = _blocks("receipts.md", "## Golden examples")
    assert len(blocks) == 2
    kinds = [verifier.verify_control_room_message(b, _public(CONTROL_ROOM_SIGNING_SEED))["schema"] for b in blocks]
    assert kinds == ["lfr.receipt/1", "lfr.adjudication/1"]
    with pytest.raises(Refused, match="bad_signature"):
        verifier.verify_control_room_message(blocks[0], _public(DEVICE_SEED))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from edge_agent.demo.live import run_demo

    workdir = tmp_path_factory.mktemp("demo")
    result = run_demo(workdir, io.StringIO(), use_broker=False)
    assert len(result.verified) == 2
    return workdir, result


def test_a_real_demo_verifies_from_the_docs_alone(demo):
    workdir, result = demo
    registry = json.loads((workdir / "fleet" / "registry.json").read_text()) if (workdir / "fleet" / "registry.json").exists() else None
    if registry is None:
        registry = json.loads(next((workdir / "fleet").rglob("registry*.json")).read_text())
    [(device_id, entry)] = registry["devices"].items()
    device_pub = verifier.b64(entry["ed25519"])
    control_room_key = verifier.pem_x25519_private(next((workdir / "fleet").rglob("control_room_x25519.key")).read_text())
    with sqlite3.connect(result.alerts_db) as db:
        payloads = [bytes(row[0]) for row in db.execute("SELECT payload FROM alerts")]
    assert len(payloads) == 2
    for payload in payloads:
        alert = verifier.verify_alert(payload, device_pub)
        assert alert["schema"] == "lfr.alert/2" and alert["device_id"] == device_id
        assert verifier.open_crop(alert, control_room_key)[:2] == b"\xff\xd8"
    audit = (workdir / "state" / "audit.log").read_bytes()
    assert verifier.verify_audit_log(audit, device_pub) >= 3
    with pytest.raises(Refused):  # positive control: an edited record is caught
        verifier.verify_audit_log(audit.replace(b'"kind":"alert_raised"', b'"kind":"alert_raisex"', 1), device_pub)
    authority_pub = verifier.pem_ed25519_public((workdir / "authority" / "authority_ed25519.pub").read_text())
    pushed, _ = verifier.verify_deployment((workdir / "deployment.json").read_bytes(), authority_pub)  # the record pushed to the device
    assert pushed["version"] == 3 and device_id in pushed["device_ids"]
    # its threshold rests on the dev set's calibration shipped with the demo: cited by the SHA-256 of the report's bytes
    shipped = Path(__file__).resolve().parents[2] / "edge_agent" / "demo" / "devset-calibration.json"
    report, report_sha256 = verifier.read_calibration_report(shipped.read_bytes())
    assert pushed["calibration"]["basis"] == "calibration_report" and pushed["calibration"]["report_sha256"] == report_sha256
    assert pushed["alert_threshold"] == pushed["calibration"]["threshold"] == report["recommended_threshold"]
    # the control room's audit log (the demo opens it without a signing key: a hash chain, no checkpoints) records the import of that record
    room_audit = (workdir / "control-room" / "audit.log").read_bytes()
    assert verifier.verify_audit_log(room_audit, b"") >= 3
    imported = json.loads(room_audit.split(b"\n", 1)[0])
    assert imported["kind"] == "deployment_imported" and imported["details"]["alert_threshold"] == pushed["alert_threshold"]
    with pytest.raises(Refused, match="edited"):  # positive control
        verifier.verify_audit_log(room_audit.replace(b'"kind":"deployment_imported"', b'"kind":"deployment_importex"', 1), b"")
    device_seal_key = verifier.pem_x25519_private(next((workdir / "fleet").rglob("device_x25519.key")).read_text())
    package = next((workdir / "state").rglob("*.eawl")).read_bytes()
    header, entries, template_bytes = verifier.open_watchlist(package, authority_pub, device_id, device_seal_key)
    assert header["entry_count"] == len(entries) == 2
    embedded, _ = verifier.verify_deployment(header["deployment"], authority_pub)  # the one the watchlist is bound to
    assert embedded == pushed and header["deployment_id"] == pushed["deployment_id"]
    with pytest.raises(Refused, match="bad_signature"):  # positive control: the embedded record edited
        tampered = json.loads(base64.b64decode(header["deployment"]["record"]))
        tampered["alert_threshold"] = 0.3
        verifier.verify_deployment({**header["deployment"], "record": base64.b64encode(verifier.jcs(tampered)).decode()}, authority_pub)
    assert template_bytes == header["template_count"] * header["dim"] * 4
    with pytest.raises(Refused, match="bad_signature"):
        verifier.open_watchlist(package[:100] + bytes([package[100] ^ 1]) + package[101:], authority_pub, device_id, device_seal_key)


VECTORS = DOCS / "vectors"


def _vectors(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_vectors_verify_without_our_code():
    v = _vectors("signing.json")
    pub = bytes.fromhex(v["public_key_hex"])
    for x in v["valid"]:
        verifier.ed25519_verify(pub, bytes.fromhex(x["domain_hex"]) + bytes.fromhex(v["data_hex"]), bytes.fromhex(x["signature_hex"]))
    for x in v["invalid"]:
        with pytest.raises(Refused):
            verifier.ed25519_verify(pub, bytes.fromhex(x["domain_hex"]) + bytes.fromhex(v["data_hex"]), bytes.fromhex(x["signature_hex"]))

    v = _vectors("events.json")
    pub = bytes.fromhex(v["device_public_key_hex"])
    for x in v["valid"]:
        alert = verifier.verify_alert(x["payload"].encode(), pub)
        verifier.open_crop(alert, bytes.fromhex(v["control_room_x25519_private_hex"]))
    refused = 0
    for x in v["invalid"]:
        try:
            verifier.verify_alert(x["payload"].encode(), pub)
        except Refused:
            refused += 1
    # the schema-rule cases (pattern violations) need the field rules; the crypto and canonical ones all fail here
    assert refused >= sum(x["reason"] in ("non_canonical", "bad_signature", "malformed_payload") for x in v["invalid"])

    v = _vectors("sealing.json")
    for x in v["valid"]:
        plain = verifier.open_sealed(bytes.fromhex(x["blob_hex"]), bytes.fromhex(v["recipient_private_hex"]), bytes.fromhex(x["context_hex"]), bytes.fromhex(x["aad_hex"]))
        assert plain.hex() == x["plaintext_hex"]
    for x in v["invalid"]:
        with pytest.raises(Refused):
            verifier.open_sealed(bytes.fromhex(x["blob_hex"]), bytes.fromhex(v["recipient_private_hex"]), bytes.fromhex(x["context_hex"]), bytes.fromhex(x["aad_hex"]))

    v = _vectors("audit.json")
    pub = bytes.fromhex(v["device_public_key_hex"])
    for x in v["valid"]:
        assert verifier.verify_audit_log("".join(line + "\n" for line in x["lines"]).encode(), pub) == len(x["lines"])
    for x in v["invalid"]:
        with pytest.raises(Refused):
            verifier.verify_audit_log("".join(line + "\n" for line in x["lines"]).encode(), pub)

    v = _vectors("receipts.json")
    pub = bytes.fromhex(v["control_room_public_key_hex"])
    for x in v["valid"]:
        verifier.verify_control_room_message(x["payload"].encode(), pub)
    for x in v["invalid"]:
        with pytest.raises(Refused, match=x["reason"]):
            verifier.verify_control_room_message(x["payload"].encode(), pub)

    v = _vectors("watchlist.json")
    authority = bytes.fromhex(v["authority_public_key_hex"])
    record = v["deployment"]["record"].encode()
    verifier.ed25519_verify(authority, b"edge-agent deployment v3\x00" + record, bytes.fromhex(v["deployment"]["authority_signature_hex"]))
    assert verifier.verify_deployment(v["deployment"]["signed_file"].encode(), authority)[0] == json.loads(record)
    for x in v["valid"]:
        header, entries, template_bytes = verifier.open_watchlist(base64.b64decode(x["package_b64"]), authority, v["device_id"], bytes.fromhex(v["device_x25519_private_hex"]))
        assert [e["subject_ref"] for e in entries] == x["entries"] and template_bytes == x["template_count"] * x["dim"] * 4
        embedded, _ = verifier.verify_deployment(header["deployment"], authority)  # the package's own copy, from the doc alone
        assert embedded == json.loads(record) and embedded["deployment_id"] == header["deployment_id"]
    for x in v["invalid"]:
        with pytest.raises(Refused):
            verifier.open_watchlist(base64.b64decode(x["package_b64"]), authority, v["device_id"], bytes.fromhex(v["device_x25519_private_hex"]))


def test_deployment_and_calibration_vectors_verify_without_our_code():
    v = _vectors("deployment.json")
    authority, approver = bytes.fromhex(v["authority_public_key_hex"]), bytes.fromhex(v["approver_public_key_hex"])
    for x in v["valid"]:
        record, approved = verifier.verify_deployment(x["signed_file"].encode(), authority, (approver,))
        assert verifier.jcs(record) == x["record"].encode() or record["version"] < 3
        assert approved == x["approved"], x["name"]
        assert bytes.fromhex(x["authority_signed_bytes_hex"]).endswith(x["record"].encode())
    assert verifier.verify_deployment(v["valid"][0]["signed_file"].encode(), authority, (authority,))[1] is False  # the authority cannot approve itself
    for x in v["invalid"]:
        if x["reason"] == "approval_invalid":
            assert verifier.verify_deployment(x["signed_file"].encode(), authority, (approver,))[1] is False
            continue
        with pytest.raises(Refused, match=x["reason"]):
            verifier.verify_deployment(x["signed_file"].encode(), authority, (approver,))

    c = _vectors("calibration.json")
    for x in c["valid"]:
        assert verifier.read_calibration_report(base64.b64decode(x["file_b64"]))[1] == x["report_sha256"]
    for x in c["invalid"]:
        with pytest.raises(Refused, match=x["reason"]):
            verifier.read_calibration_report(base64.b64decode(x["file_b64"]))
    # the cited record names the calibration vector's report by the SHA-256 of its bytes
    cited, _ = verifier.verify_deployment(v["valid"][1]["signed_file"].encode(), authority)
    assert cited["calibration"]["report_sha256"] == c["valid"][0]["report_sha256"]
