"""Write the test vectors in this folder (run from the repository root: python docs/formats/vectors/generate.py).

Keys come from fixed seeds so signatures are reproducible (Ed25519 is deterministic). Sealed
blobs use a fresh ephemeral key and nonce, so regenerating changes them; the vectors carry the
intermediate values (shared secret, HKDF info, key) a verifier can check step by step.
tests/formats/test_vectors.py checks every vector with our code, tests/interop/ without it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge_agent.audit.log import AuditLog
from edge_agent.crypto import signing
from edge_agent.crypto.canonical import jcs
from edge_agent.crypto.keyfiles import public_raw
from edge_agent.crypto.sealing import seal
from edge_agent.events.crop import CROP_CONTEXT
from edge_agent.events.receipts import Receipt, encode_message, sign_message
from edge_agent.events.schema import AlertEvent, parse_payload
from edge_agent.events.signing import encode_event

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
DEVICE_SEED = bytes([1]) * 32
CONTROL_ROOM_X25519_SEED = bytes([2]) * 32
CONTROL_ROOM_SIGNING_SEED = bytes([3]) * 32
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def hx(data: bytes) -> str:
    return data.hex()


def golden(doc: str, heading: str) -> bytes:
    text = (DOCS / doc).read_text(encoding="utf-8").split(heading, 1)[1]
    return re.search(r"```json\n(.*?)\n```", text, re.S).group(1).encode("utf-8")


def write(name: str, doc: dict) -> None:
    (HERE / name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def signing_vectors() -> None:
    key = Ed25519PrivateKey.from_private_bytes(DEVICE_SEED)
    data = b"edge-agent test vector"
    domains = sorted(d for d in signing.SIGNING_DOMAINS)
    write("signing.json", {
        "description": "Ed25519 over domain + data (docs/formats/*.md); every domain ends with one zero byte",
        "private_seed_hex": hx(DEVICE_SEED),
        "public_key_hex": hx(public_raw(key.public_key())),
        "data_hex": hx(data),
        "valid": [{"domain_hex": hx(d), "domain_text": d.rstrip(b"\x00").decode(), "signature_hex": hx(signing.sign(key, d, data))} for d in domains],
        "invalid": [
            {"name": "signature made under another domain", "domain_hex": hx(signing.DEPLOYMENT_V1),
             "signature_hex": hx(signing.sign(key, signing.WATCHLIST_V1, data))},
        ],
    })


def event_vectors() -> None:
    key = Ed25519PrivateKey.from_private_bytes(DEVICE_SEED)
    v2 = golden("events.md", "## Golden example\n")
    v1 = golden("events.md", "## Version 1 (")
    doc = json.loads(v2)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    assert encode_event(AlertEvent.from_dict(parse_payload(v2))) == v2
    other_key = Ed25519PrivateKey.generate()
    wrong_domain = {**doc, "signature": base64.b64encode(key.sign(jcs(unsigned))).decode()}
    invalid = [
        ("whitespace (not RFC 8785)", json.dumps(doc).encode(), "non_canonical"),
        ("number in another spelling", v2.replace(b'"threshold":0.64', b'"threshold":6.4e-1'), "non_canonical"),
        ("duplicate member", v2.replace(b'{"audit_head"', b'{"seq":1,"audit_head"', 1), "malformed_payload"),
        ("seq changed after signing", jcs({**doc, "seq": 18}), "bad_signature"),
        ("signed without the alert domain", jcs(wrong_domain), "bad_signature"),
        ("signed by another key", jcs({**doc, "signature": base64.b64encode(other_key.sign(b"edge-agent alert v2\x00" + jcs(unsigned))).decode()}), "bad_signature"),
        ("spool_epoch upper case", jcs({**doc, "spool_epoch": doc["spool_epoch"].upper()}), "schema_invalid"),
        ("subject_ref with a slash", jcs({**doc, "subject_ref": "subj/7f3a"}), "schema_invalid"),
    ]
    write("events.json", {
        "description": "lfr.alert/2 and lfr.alert/1 (docs/formats/events.md)",
        "device_private_seed_hex": hx(DEVICE_SEED),
        "device_public_key_hex": hx(public_raw(key.public_key())),
        "control_room_x25519_private_hex": hx(CONTROL_ROOM_X25519_SEED),
        "valid": [
            {"name": "lfr.alert/2 golden", "payload": v2.decode(), "signed_bytes_hex": hx(b"edge-agent alert v2\x00" + jcs(unsigned)),
             "crop_plaintext_sha256": hashlib.sha256(_open_crop(doc)).hexdigest()},
            {"name": "lfr.alert/1 golden (legacy, no domain)", "payload": v1.decode()},
        ],
        "invalid": [{"name": n, "payload": p.decode(), "reason": r} for n, p, r in invalid],
    })


def _open_crop(doc: dict) -> bytes:
    from edge_agent.events.crop import open_crop

    return open_crop(base64.b64decode(doc["crop"]), X25519PrivateKey.from_private_bytes(CONTROL_ROOM_X25519_SEED), doc["event_id"])


def sealing_vectors() -> None:
    recipient = X25519PrivateKey.from_private_bytes(CONTROL_ROOM_X25519_SEED)
    recipient_pub = public_raw(recipient.public_key())
    plaintext = b"\xff\xd8 edge-agent sealing vector \xff\xd9"
    aad = b"3f1c2b9e-8d4a-4c6f-9b1e-2a7d5c0e4f61"
    blob = seal(plaintext, recipient.public_key(), CROP_CONTEXT, aad)
    eph = blob[1:33]
    shared = recipient.exchange(X25519PublicKey.from_public_bytes(eph))
    info = b"edge-agent seal v1|" + CROP_CONTEXT + b"|" + eph + recipient_pub
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    write("sealing.json", {
        "description": "seal v1: X25519 + HKDF-SHA256 (zero salt) + AES-256-GCM (docs/formats/sealing.md)",
        "recipient_private_hex": hx(CONTROL_ROOM_X25519_SEED),
        "recipient_public_hex": hx(recipient_pub),
        "valid": [{"context_hex": hx(CROP_CONTEXT), "aad_hex": hx(aad), "blob_hex": hx(blob), "plaintext_hex": hx(plaintext),
                   "ephemeral_public_hex": hx(eph), "shared_secret_hex": hx(shared), "hkdf_info_hex": hx(info), "aes_key_hex": hx(key)}],
        "invalid": [
            {"name": "other aad", "context_hex": hx(CROP_CONTEXT), "aad_hex": hx(b"00000000-0000-4000-8000-000000000000"), "blob_hex": hx(blob)},
            {"name": "other context", "context_hex": hx(b"watchlist-v1"), "aad_hex": hx(aad), "blob_hex": hx(blob)},
            {"name": "last tag byte flipped", "context_hex": hx(CROP_CONTEXT), "aad_hex": hx(aad), "blob_hex": hx(flipped)},
        ],
    })


def audit_vectors(tmp: Path) -> None:
    key = Ed25519PrivateKey.from_private_bytes(DEVICE_SEED)
    path = tmp / "audit.log"
    with AuditLog.open(path, key, "device:cam-01", checkpoint_every=3) as log:
        for i in range(4):
            log.append("alert_raised", {"seq": i + 1, "score": 0.712345, "subject_ref": f"WL-{i}"}, now=T0 + timedelta(seconds=i))
    lines = path.read_text().splitlines()
    duplicate = lines[1].replace('"details":{', '"details":{"subject_ref":"FORGED"},"details":{', 1)
    write("audit.json", {
        "description": "audit record v2 lines (docs/formats/audit.md); checkpoint_every = 3",
        "device_public_key_hex": hx(public_raw(key.public_key())),
        "valid": [{"name": "v2 log with checkpoints", "lines": lines}],
        "invalid": [
            {"name": "duplicate details key", "lines": [lines[0], duplicate, *lines[2:]], "first_bad_line": 2},
            {"name": "record edited", "lines": [lines[0], lines[1].replace("WL-1", "WL-9"), *lines[2:]], "first_bad_line": 2},
            {"name": "record dropped", "lines": [lines[0], *lines[2:]], "first_bad_line": 2},
            {"name": "not canonical", "lines": [lines[0], lines[1].replace(',"kind"', ', "kind"'), *lines[2:]], "first_bad_line": 2},
        ],
    })


def receipt_vectors() -> None:
    key = Ed25519PrivateKey.from_private_bytes(CONTROL_ROOM_SIGNING_SEED)
    text = (DOCS / "receipts.md").read_text(encoding="utf-8").split("## Golden examples", 1)[1]
    receipt, notice = (m.encode() for m in re.findall(r"```json\n(.*?)\n```", text, re.S))
    doc = json.loads(receipt)
    write("receipts.json", {
        "description": "lfr.receipt/1 and lfr.adjudication/1 (docs/formats/receipts.md)",
        "control_room_public_key_hex": hx(public_raw(key.public_key())),
        "valid": [{"name": "receipt for the golden alert", "payload": receipt.decode()}, {"name": "adjudication notice", "payload": notice.decode()}],
        "invalid": [
            {"name": "not canonical", "payload": json.dumps(doc).encode().decode(), "reason": "non_canonical"},
            {"name": "seq changed", "payload": jcs({**doc, "seq": 18}).decode(), "reason": "bad_signature"},
            {"name": "receipt signature on the notice", "payload": jcs({**json.loads(notice), "signature": doc["signature"]}).decode(), "reason": "bad_signature"},
        ],
    })
    assert receipt == encode_message(sign_message(Receipt.for_alert(AlertEvent.from_dict(parse_payload(golden("events.md", "## Golden example\n"))),
                                                                    datetime(2026, 11, 22, 8, 30, 6, 250000, tzinfo=timezone.utc), "control-room"), key))


AUTHORITY_SEED = bytes([4]) * 32
DEVICE_X25519_SEED = bytes([5]) * 32


def watchlist_vectors() -> None:
    """A signed deployment record and a two-subject watchlist package sealed to one device."""
    import numpy as np

    from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
    from edge_agent.watchlist.entry import WatchlistEntry
    from edge_agent.watchlist.package import pack_watchlist

    authority = Ed25519PrivateKey.from_private_bytes(AUTHORITY_SEED)
    device = X25519PrivateKey.from_private_bytes(DEVICE_X25519_SEED)
    record = DeploymentRecord(
        deployment_id="DEP-VECTOR-1", authorising_officer="Supt Vector", purpose="test vectors", legal_basis="none (test data)",
        location="nowhere", location_rationale="test", start=T0, end=T0 + timedelta(days=3650), dpia_ref="DPIA-V",
        equality_impact_ref="EIA-V", mode="LFR", platform="fixed", silent=False, alert_threshold=0.6, watchlist_cap=10,
        device_ids=("cam-01",),
    )
    signed = SignedDeployment.sign(record, authority)
    from datetime import date

    entries = [WatchlistEntry(f"WL-000{i}", "suspect", "custody image (test)", "PACE s64A (test)", date(2025, 1, 1), date(2026, 1, 1), False, None, 1)
               for i in (1, 2)]
    templates = np.eye(2, 128, dtype=np.float32)
    model = {"detector_sha256": "d" * 64, "aligner": "vector", "embedder_sha256": "e" * 64}
    package = pack_watchlist(signed, entries, templates, model, {"cam-01": device.public_key()}, authority, T0)
    flipped = package[:200] + bytes([package[200] ^ 1]) + package[201:]
    write("watchlist.json", {
        "description": "deployment record (docs/formats/deployment.md) and watchlist package v2 (docs/formats/watchlist.md)",
        "authority_private_seed_hex": hx(AUTHORITY_SEED),
        "authority_public_key_hex": hx(public_raw(authority.public_key())),
        "device_id": "cam-01",
        "device_x25519_private_hex": hx(DEVICE_X25519_SEED),
        "deployment": {"record": signed.record_bytes.decode(), "authority_signature_hex": hx(signed.authority_signature),
                       "signed_file": signed.to_bytes().decode()},
        "valid": [{"name": "two subjects, one template each", "package_b64": base64.b64encode(package).decode(),
                   "entries": [e.subject_ref for e in entries], "template_count": 2, "dim": 128}],
        "invalid": [{"name": "one header byte flipped", "package_b64": base64.b64encode(flipped).decode(), "reason": "bad_signature"}],
    })


APPROVER_SEED = bytes([6]) * 32


def _calibration_golden() -> bytes:
    """docs/formats/calibration.md's golden, made again by calibrate (checked to be the documented bytes)."""
    import numpy as np

    from edge_agent.evaluation.calibrate import calibrate, encode_calibration, parse_budget
    from edge_agent.evaluation.identification import IdentificationScores

    scores = IdentificationScores(20, np.linspace(0.5, 1.0, 20), np.zeros(20, np.int64), np.linspace(0.0, 0.8, 200), np.zeros(200, np.int64))
    model = {"detector_sha256": "d" * 64, "aligner": "arcface112-umeyama-eyes-nose-mouthcentre-v1", "embedder_sha256": "e" * 64}
    record = calibrate(scores, parse_budget("1/20"), 10, 1000, datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc), "ab" * 32, model, "ef" * 32)
    data = encode_calibration({**record, "tool_version": "edge_agent 0.1.0"})
    assert data == golden("calibration.md", "## Example (golden)") + b"\n"
    return data


def calibration_vectors() -> None:
    v2 = _calibration_golden()
    v1 = (HERE.parents[2] / "tests" / "deployment" / "golden" / "calibration-v1.json").read_bytes()
    doc = json.loads(v2)
    invalid = [
        ("re-indented (version 2 has one spelling)", json.dumps(doc, indent=1).encode() + b"\n", "non_canonical"),
        ("final line feed dropped", v2[:-1], "non_canonical"),
        ("integer written as Python writes a float (50.0)", v2.replace(b'"false_alerts_at_footfall":50,', b'"false_alerts_at_footfall":50.0,'), "non_canonical"),
        ("duplicate member", v2.replace(b'{"budget":', b'{"version":1,"budget":', 1), "duplicate_key"),
    ]
    write("calibration.json", {
        "description": "calibration report v2 (and v1) file bytes and the report_sha256 a deployment cites (docs/formats/calibration.md)",
        "valid": [{"name": "version 2 golden: jcs(report) + LF", "file_b64": base64.b64encode(v2).decode(), "report_sha256": hashlib.sha256(v2).hexdigest()},
                  {"name": "version 1 (legacy: indented JSON, hashed as it is)", "file_b64": base64.b64encode(v1).decode(),
                   "report_sha256": hashlib.sha256(v1).hexdigest()}],
        "invalid": [{"name": n, "file_b64": base64.b64encode(d).decode(), "reason": r} for n, d, r in invalid],
    })


def deployment_vectors(tmp: Path) -> None:
    """Signed deployments: record v3 (RFC 8785, domains v3, signed-file v2) and v2 (legacy), valid and invalid."""
    import dataclasses

    from edge_agent.crypto.canonical import canonical_json
    from edge_agent.deployment.calibration import read_calibration_report
    from edge_agent.deployment.record import DeploymentRecord, SignedDeployment

    authority = Ed25519PrivateKey.from_private_bytes(AUTHORITY_SEED)
    approver = Ed25519PrivateKey.from_private_bytes(APPROVER_SEED)
    report = tmp / "calibration.json"
    report.write_bytes(_calibration_golden())
    citation = read_calibration_report(report)  # cites calibration.json's version 2 golden by its SHA-256
    base = DeploymentRecord(
        deployment_id="DEP-VECTOR-2", authorising_officer="Supt Vector (collar 0001)", purpose="test vectors: Zoë's café",
        legal_basis="none (test data)", location="nowhere", location_rationale="test", start=T0, end=T0 + timedelta(hours=8, microseconds=250750),
        dpia_ref="DPIA-V", equality_impact_ref="EIA-V", mode="LFR", platform="body_worn", silent=True, alert_threshold=0.6,
        watchlist_cap=10, device_ids=("cam-01",), false_alert_budget=1e-7,
    )
    cited = dataclasses.replace(base, calibration=citation, alert_threshold=0.75, false_alert_budget=0.05)
    v3 = SignedDeployment.sign(base, authority)
    v3_approved = SignedDeployment.sign(cited, authority).approve(approver)
    v2 = SignedDeployment.sign(dataclasses.replace(base, version=2), authority).approve(approver)

    def case(name: str, signed: SignedDeployment, **extra: object) -> dict:
        return {"name": name, "signed_file": (signed.to_bytes() + b"\n").decode(), "record": signed.record_bytes.decode(),
                "authority_signed_bytes_hex": hx(signing.DEPLOYMENT_V3 if json.loads(signed.record_bytes)["version"] == 3 else signing.DEPLOYMENT_V1)
                + hx(signed.record_bytes), **extra}

    def resigned(data: bytes, domain: bytes = signing.DEPLOYMENT_V3) -> SignedDeployment:
        return SignedDeployment(data, signing.sign(authority, domain, data))

    def file_of(signed: SignedDeployment) -> bytes:
        """Signed-file version 2 around any record bytes (to_bytes would refuse to read a broken record's version)."""
        return jcs({"approvals": [], "authority_signature": base64.b64encode(signed.authority_signature).decode(), "format": "edge-agent-signed-deployment",
                    "record": base64.b64encode(signed.record_bytes).decode(), "version": 2})

    doc = base.to_json()
    wrapper = v3.to_json()
    invalid = [
        ("record with whitespace, validly signed", resigned(json.dumps(doc, sort_keys=True).encode()), "non_canonical"),
        ("number in Python's spelling (1e-07), validly signed", resigned(canonical_json(doc)), "non_canonical"),
        ("time without milliseconds, validly signed", resigned(jcs({**doc, "start": "2026-11-22T08:00:00Z"})), "timestamp_form"),
        ("duplicate member, validly signed", resigned(jcs(doc).replace(b'{"alert_threshold":0.6', b'{"alert_threshold":0.1,"alert_threshold":0.6', 1)), "duplicate_key"),
        ("record edited after signing", SignedDeployment(jcs({**doc, "alert_threshold": 0.3}), v3.authority_signature), "bad_signature"),
        ("signed under the version 1 domain", resigned(v3.record_bytes, signing.DEPLOYMENT_V1), "bad_signature"),
        ("signed under the watchlist domain", resigned(v3.record_bytes, signing.WATCHLIST_V2), "bad_signature"),
        ("signed by another key", SignedDeployment(v3.record_bytes, signing.sign(approver, signing.DEPLOYMENT_V3, v3.record_bytes)), "bad_signature"),
    ]
    files = [
        ("signed file version 1 carrying a version 3 record", canonical_json({**wrapper, "version": 1}), "version_mismatch"),
        ("signed file not RFC 8785", json.dumps(wrapper, indent=1).encode(), "non_canonical"),
        ("signed file with an unknown member", jcs({**wrapper, "comment": "x"}), "malformed"),
    ]
    old_approval = {"public_key": v3_approved.approvals[0].public_key,
                    "signature": base64.b64encode(signing.sign(approver, signing.THRESHOLD_APPROVAL_V1, v3_approved.record_bytes)).decode()}
    write("deployment.json", {
        "description": "signed deployment records (docs/formats/deployment.md): v3 in signed-file v2, v2 in signed-file v1",
        "authority_private_seed_hex": hx(AUTHORITY_SEED),
        "authority_public_key_hex": hx(public_raw(authority.public_key())),
        "approver_private_seed_hex": hx(APPROVER_SEED),
        "approver_public_key_hex": hx(public_raw(approver.public_key())),
        "calibration_report_sha256": citation.report_sha256,
        "valid": [
            case("record v3, provisional default (non-ASCII text, 1e-7, a time truncated to the millisecond)", v3, approved=False),
            case("record v3 citing calibration.json's report, threshold 0.75 below its 0.788, approved", v3_approved, approved=True,
                 approval_signed_bytes_hex=hx(signing.THRESHOLD_APPROVAL_V3) + hx(v3_approved.record_bytes)),
            case("record v2 (legacy: canonical_json, domains v1, signed-file v1), approved", v2, approved=True),
        ],
        "invalid": [{"name": n, "signed_file": (file_of(s) + b"\n").decode(), "reason": r} for n, s, r in invalid]
        + [{"name": n, "signed_file": d.decode() + "\n", "reason": r} for n, d, r in files]
        + [{"name": "approval made under the version 1 approval domain (does not count for v3)",
            "signed_file": jcs({**v3_approved.to_json(), "approvals": [old_approval]}).decode() + "\n", "reason": "approval_invalid"}],
    })


def main() -> None:
    import tempfile

    signing_vectors()
    event_vectors()
    sealing_vectors()
    with tempfile.TemporaryDirectory() as tmp:
        audit_vectors(Path(tmp))
        deployment_vectors(Path(tmp))
    receipt_vectors()
    watchlist_vectors()
    calibration_vectors()


if __name__ == "__main__":
    main()
