"""Receipt (lfr.receipt/1) and adjudication notice (lfr.adjudication/1) formats: canonical,
signed under their own domains, strict; a duplicate alert gets the same receipt bytes."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.crypto.canonical import jcs
from edge_agent.errors import SecurityError
from edge_agent.events.receipts import (
    AdjudicationNotice,
    MessageFormatError,
    NonCanonicalMessage,
    Receipt,
    encode_message,
    parse_message,
    sign_message,
    verify_message,
)
from edge_agent.events.schema import AlertEvent, AuditHead, parse_payload
from tests_support_golden import golden_alert

CR_KEY = Ed25519PrivateKey.from_private_bytes(bytes([3]) * 32)
STORED = datetime(2026, 11, 22, 8, 30, 6, 250000, tzinfo=timezone.utc)


def _receipt() -> Receipt:
    return sign_message(Receipt.for_alert(golden_alert(), STORED, "control-room"), CR_KEY)


def _notice(**changes) -> AdjudicationNotice:
    base = dict(event_id=golden_alert().event_id, device_id="cam-01", decision="confirmed", engaged=False,
                decided_at=datetime(2026, 11, 22, 8, 41, 0, tzinfo=timezone.utc), reviewer="PC1234", control_room="control-room")
    base.update(changes)
    return sign_message(AdjudicationNotice(**base), CR_KEY)


def test_receipt_echoes_the_alert_and_is_the_same_bytes_for_a_duplicate():
    alert = golden_alert()
    receipt = _receipt()
    assert receipt.acknowledges(alert)
    assert (receipt.spool_epoch, receipt.seq, receipt.audit_head) == (alert.spool_epoch, alert.seq, alert.audit_head)
    assert encode_message(receipt) == encode_message(_receipt())  # deterministic: same stored_at, same bytes
    other = dataclasses.replace(alert, seq=18)
    assert not receipt.acknowledges(other)


@pytest.mark.parametrize("make", [_receipt, _notice])
def test_round_trip_canonical_and_signed_under_its_domain(make):
    message = make()
    payload = encode_message(message)
    assert payload == jcs(json.loads(payload))
    parsed = parse_message(payload)
    assert parsed == message
    verify_message(parsed, CR_KEY.public_key())
    doc = json.loads(payload)
    sig = base64.b64decode(doc.pop("signature"))
    domain = b"edge-agent receipt v1\x00" if isinstance(message, Receipt) else b"edge-agent adjudication v1\x00"
    CR_KEY.public_key().verify(sig, domain + jcs(doc))


@pytest.mark.parametrize("make", [_receipt, _notice])
def test_forged_altered_and_non_canonical_messages_are_refused(make):
    payload = encode_message(make())
    with pytest.raises(SecurityError):
        verify_message(parse_message(payload), Ed25519PrivateKey.generate().public_key())
    doc = json.loads(payload)
    key = "seq" if "seq" in doc else "engaged"
    doc[key] = 99 if key == "seq" else True
    with pytest.raises(SecurityError):
        verify_message(parse_message(jcs(doc)), CR_KEY.public_key())
    with pytest.raises(NonCanonicalMessage):
        parse_message(json.dumps(json.loads(payload)).encode())
    with pytest.raises(MessageFormatError, match="duplicate"):
        parse_message(payload.replace(b'{"', b'{"schema":"x","', 1))


def test_a_receipt_cannot_pass_as_an_adjudication_or_an_alert():
    receipt = _receipt()
    swapped = {**json.loads(encode_message(_notice())), "signature": receipt.signature}
    with pytest.raises(SecurityError):
        verify_message(parse_message(jcs(swapped)), CR_KEY.public_key())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(schema="lfr.receipt/2"), "unsupported"),
        (lambda d: d.pop("audit_head"), "missing"),
        (lambda d: d.update(extra=1), "unexpected"),
        (lambda d: d.update(spool_epoch="ABC"), "spool_epoch"),
        (lambda d: d.update(seq=0), "seq"),
        (lambda d: d.update(stored_at="2026-11-22T08:30:06Z"), "milliseconds"),
        (lambda d: d.update(device_id="control-room"), "reserved"),
        (lambda d: d.update(control_room="cr/1"), "control_room"),
        (lambda d: d.update(audit_head={"seq": 1, "hash": "x"}), "audit_head"),
    ],
)
def test_strict_receipt_fields(change, message):
    doc = json.loads(encode_message(_receipt()))
    change(doc)
    with pytest.raises(MessageFormatError, match=message):
        parse_message(jcs(doc))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(decision="maybe"), "decision"),
        (lambda d: d.update(engaged="yes"), "engaged"),
        (lambda d: d.update(reviewer="PC 1234"), "reviewer"),
        (lambda d: d.update(decided_at="2026-11-22 08:41:00.000Z"), "milliseconds"),
    ],
)
def test_strict_adjudication_fields(change, message):
    doc = json.loads(encode_message(_notice()))
    change(doc)
    with pytest.raises(MessageFormatError, match=message):
        parse_message(jcs(doc))


def test_v1_alerts_get_no_receipt():
    v1 = AlertEvent.from_dict(parse_payload(golden_alert(version=1, raw=True)))
    with pytest.raises(MessageFormatError, match="lfr.alert/2 events only"):
        Receipt.for_alert(v1, STORED, "control-room")
    assert AuditHead(-1, "0" * 64).as_dict() == {"seq": -1, "hash": "0" * 64}


def test_documented_fields_and_golden_examples_match_the_code():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "formats" / "receipts.md").read_text(encoding="utf-8")
    receipt_table = doc.split("## Receipt fields", 1)[1].split("## ", 1)[0]
    notice_table = doc.split("## Adjudication notice fields", 1)[1].split("## ", 1)[0]
    assert re.findall(r"^\| `([a-z_]+)` \|", receipt_table, re.M) == list(Receipt.FIELDS)
    assert re.findall(r"^\| `([a-z_]+)` \|", notice_table, re.M) == list(AdjudicationNotice.FIELDS)
    golden = [m.encode() for m in re.findall(r"```json\n(.*?)\n```", doc.split("## Golden examples", 1)[1], re.S)]
    assert golden == [encode_message(_receipt()), encode_message(_notice())]
