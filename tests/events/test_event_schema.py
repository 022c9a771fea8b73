"""Alert events v2 (and v1, read only): the documented field list, rules and golden bytes, strict
parsing, canonical-form refusal, signing with the alert domain, crop sealing."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.crypto.canonical import canonical_json, jcs
from edge_agent.errors import SecurityError
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision, NotAMatchError
from edge_agent.events.crop import crop_face_jpeg, open_crop, seal_crop
from edge_agent.events import schema
from edge_agent.events.schema import FIELDS, FIELDS_V1, AlertEvent, AuditHead, Candidate, EventFormatError, NonCanonicalPayload, parse_payload
from edge_agent.events.signing import encode_event, sign_event, verify_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats" / "events.md"
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)
CONTROL_ROOM_KEY = X25519PrivateKey.from_private_bytes(bytes([2]) * 32)
MODEL = {"detector_sha256": "a" * 64, "aligner": "5pt-similarity-112/1", "embedder_sha256": "b" * 64, "precision": "int8"}
EPOCH = "0123456789abcdef" * 2
HEAD = AuditHead(7, "cd" * 32)


def golden_line(heading: str = "## Golden example\n") -> bytes:
    text = DOC.read_text(encoding="utf-8")
    block = text.split(heading, 1)[1]
    return re.search(r"```json\n(.*?)\n```", block, re.S).group(1).encode("utf-8")


def golden_v1() -> bytes:
    return golden_line("## Version 1 (")


def doc_fields() -> list[str]:
    table = DOC.read_text(encoding="utf-8").split("## Fields", 1)[1].split("##", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.M)


def doc_rules() -> dict[str, str]:
    table = DOC.read_text(encoding="utf-8").split("## Rules", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.+?) \|$", table, re.M)}


def test_documented_fields_match_the_schema_exactly():
    assert doc_fields() == list(FIELDS)


def test_documented_rules_are_the_code_rules():
    from edge_agent import identifiers, timestamps
    from edge_agent.events.crop import MAX_CROP_BYTES

    rules = doc_rules()

    def pattern(name: str) -> str:
        return re.match(r"`([^`]+)`", rules[name]).group(1)

    assert pattern("`device_id` pattern") == identifiers.DEVICE_ID.pattern.pattern
    assert "`control-room`" in rules["`device_id` pattern"] and identifiers.RESERVED_DEVICE_IDS == {"control-room"}
    assert pattern("`deployment_id` pattern") == identifiers.DEPLOYMENT_ID.pattern.pattern
    assert pattern("`subject_ref` pattern") == identifiers.SUBJECT_REF.pattern.pattern
    assert pattern("`watchlist_version` pattern") == schema.WATCHLIST_VERSION_PATTERN.pattern
    assert pattern("`spool_epoch` pattern") == schema.SPOOL_EPOCH_PATTERN.pattern
    assert pattern("`model.precision` pattern") == schema.PRECISION_PATTERN.pattern
    assert pattern("`audit_head.hash` pattern") == schema.HASH_PATTERN.pattern
    assert pattern("`captured_at` pattern") == timestamps.PATTERN.pattern
    assert rules["`seq` range"].startswith(f"1 to {schema.MAX_SEQ} ")
    assert rules["`audit_head.seq` range"] == f"-1 to {schema.MAX_SEQ}"
    assert rules["`score`, `threshold`, candidate `score`"] == f"numbers in [-1, 1] with at most {schema.SCORE_DECIMALS} decimals"
    assert rules["`model` strings"] == f"1 to {schema.MAX_MODEL_TEXT} characters each"
    assert rules["`face_box` values"] == f"integers greater than -{schema.MAX_BOX} and less than {schema.MAX_BOX}"
    assert rules["`candidates` count"] == f"1 to {schema.MAX_CANDIDATES}"
    assert rules["`crop` sealed size"] == f"at least {schema.MIN_CROP_BYTES} bytes; the JPEG inside at most {MAX_CROP_BYTES} bytes"
    assert rules["payload size"] == f"at most {schema.MAX_PAYLOAD_BYTES} bytes"


def test_golden_example_decodes_reencodes_byte_exact_and_verifies():
    line = golden_line()
    event = AlertEvent.from_dict(parse_payload(line))
    assert event.schema == "lfr.alert/2" and event.version == 2
    assert encode_event(event) == line == jcs(json.loads(line))
    verify_event(event, DEVICE_KEY.public_key())
    # Ed25519 is deterministic: re-signing the unsigned event gives the documented signature.
    assert sign_event(dataclasses.replace(event, signature=""), DEVICE_KEY).signature == event.signature
    jpeg = open_crop(event.crop_sealed, CONTROL_ROOM_KEY, event.event_id)
    assert jpeg[:2] == b"\xff\xd8"
    assert event.seq == 17 and event.captured_at == datetime(2026, 11, 22, 8, 30, 5, 123000, tzinfo=timezone.utc)
    assert event.spool_epoch == "7d0c5a1e9b3f4e6a8c2d1b0a9f8e7d6c" and event.audit_head.seq == 41 and event.match_basis == "fused_track"
    assert event.model["precision"] == "int8"
    assert sorted(json.loads(line)) == sorted(FIELDS)


def test_v2_signature_is_over_the_alert_domain_and_jcs_without_signature():
    obj = json.loads(golden_line())
    sig = base64.b64decode(obj.pop("signature"))
    DEVICE_KEY.public_key().verify(sig, b"edge-agent alert v2\x00" + jcs(obj))
    with pytest.raises(InvalidSignature):  # without the domain it is not a valid signature
        DEVICE_KEY.public_key().verify(sig, jcs(obj))


def test_v1_golden_still_verifies_and_is_never_signed_again():
    line = golden_v1()
    event = AlertEvent.from_dict(parse_payload(line))
    assert event.schema == "lfr.alert/1" and event.spool_epoch is None and sorted(json.loads(line)) == sorted(FIELDS_V1)
    assert encode_event(event) == line
    verify_event(event, DEVICE_KEY.public_key())
    obj = json.loads(line)
    sig = base64.b64decode(obj.pop("signature"))
    DEVICE_KEY.public_key().verify(sig, canonical_json(obj))  # v1: no domain prefix
    with pytest.raises(EventFormatError, match="never signed"):
        sign_event(dataclasses.replace(event, signature=""), DEVICE_KEY)
    # a v1 event re-labelled v2 (or the other way round) is refused, not re-read
    relabelled = {**json.loads(line), "schema": "lfr.alert/2"}
    with pytest.raises(EventFormatError, match="missing"):
        AlertEvent.from_dict(relabelled)


@pytest.mark.parametrize(
    "payload",
    [
        lambda line: json.dumps(json.loads(line)).encode(),  # whitespace
        lambda line: json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n",
        lambda line: line.replace(b'"seq":17', b'"seq":17.0'),
        lambda line: line.replace(b'"threshold":0.64', b'"threshold":6.4e-1'),
        lambda line: line.replace(b'"device_id":"cam-01"', b'"device_id":"cam\\u002d01"'),
        lambda line: line.replace(b'{"audit_head":{"hash":', b'{"audit_head":{ "hash":'),
    ],
)
def test_a_v2_payload_not_in_canonical_form_is_refused(payload):
    line = golden_line()
    changed = payload(line)
    assert changed != line and json.loads(changed) == json.loads(line)  # same value, other bytes
    with pytest.raises(NonCanonicalPayload, match="RFC 8785"):
        parse_payload(changed)
    assert parse_payload(line) == json.loads(line)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(score=0.9),
        lambda d: d.update(seq=18),
        lambda d: d.update(subject_ref="subj-0000"),
        lambda d: d.update(captured_at="2026-11-22T08:30:06.123Z"),
        lambda d: d["candidates"][1].update(score=0.42),
        lambda d: d.update(crop=base64.b64encode(b"\x01" + bytes(100)).decode()),
        lambda d: d.update(spool_epoch="f" * 32),
        lambda d: d["audit_head"].update(seq=42),
        lambda d: d.update(match_basis="single_frame"),
        lambda d: d["model"].update(precision="float32"),
    ],
)
def test_any_change_breaks_the_signature(mutate):
    data = json.loads(golden_line())
    data["candidates"][0]["score"] = data["score"]
    mutate(data)
    if data["candidates"][0]["subject_ref"] != data["subject_ref"] or data["candidates"][0]["score"] != data["score"]:
        data["candidates"][0].update(subject_ref=data["subject_ref"], score=data["score"])
    event = AlertEvent.from_dict(data)
    with pytest.raises(SecurityError):
        verify_event(event, DEVICE_KEY.public_key())


def test_other_device_key_does_not_verify():
    event = AlertEvent.from_dict(parse_payload(golden_line()))
    with pytest.raises(SecurityError):
        verify_event(event, Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("seq"), "missing"),
        (lambda d: d.update(extra=1), "unexpected"),
        (lambda d: d.update(schema="lfr.alert/3"), "unsupported"),
        (lambda d: d.update(spool_epoch="ABCDEF0123456789ABCDEF0123456789"), "spool_epoch"),
        (lambda d: d.update(spool_epoch="0" * 31), "spool_epoch"),
        (lambda d: d.pop("spool_epoch"), "missing"),
        (lambda d: d.update(audit_head={"seq": 1}), "audit_head"),
        (lambda d: d.update(audit_head={"seq": -1, "hash": "ab" * 32}), "audit_head"),
        (lambda d: d.update(audit_head={"seq": 3, "hash": "AB" * 32}), "audit_head"),
        (lambda d: d.update(match_basis="best_guess"), "match_basis"),
        (lambda d: d["model"].pop("precision"), "model"),
        (lambda d: d["model"].update(precision="INT8"), "precision"),
        (lambda d: d.update(seq=2**53), "seq"),
        (lambda d: d.update(event_id="3f1c2b9e-8d4a-4c6f-7b1e-2a7d5c0e4f61"), "UUID4"),  # not the RFC 4122 variant
        (lambda d: d.update(device_id="control-room"), "reserved"),
        (lambda d: d.update(subject_ref="subj/7f3a"), "subject_ref"),
        (lambda d: d.update(event_id="not-a-uuid"), "UUID4"),
        (lambda d: d.update(event_id="3F1C2B9E-8D4A-4C6F-9B1E-2A7D5C0E4F61"), "UUID4"),
        (lambda d: d.update(device_id="cam/01"), "device_id"),
        (lambda d: d.update(device_id="+"), "device_id"),
        (lambda d: d.update(seq=0), "seq"),
        (lambda d: d.update(seq=True), "seq"),
        (lambda d: d.update(captured_at="2026-11-22T08:30:05Z"), "milliseconds"),
        (lambda d: d.update(captured_at="2026-11-22T08:30:05.123+01:00"), "milliseconds"),
        (lambda d: d.update(score=0.5), "below threshold"),
        (lambda d: d.update(score=0.1234567), "decimals"),
        (lambda d: d.update(face_box=[10, 10, 5, 20]), "face_box"),
        (lambda d: d.update(candidates=[]), "candidates"),
        (lambda d: d["model"].pop("aligner"), "model"),
        (lambda d: d.update(crop="not base64!"), "crop"),
        (lambda d: d.update(signature="AAAA"), "signature"),
        (lambda d: d.update(category="Other Stuff"), "category"),
    ],
)
def test_strict_parsing_refuses_malformed_events(mutate, message):
    data = json.loads(golden_line())
    mutate(data)
    with pytest.raises(EventFormatError, match=message):
        AlertEvent.from_dict(data)


def test_payload_parser_refuses_duplicate_keys_nan_and_oversize():
    with pytest.raises(EventFormatError, match="duplicate"):
        parse_payload(b'{"seq": 1, "seq": 2}')
    with pytest.raises(EventFormatError, match="NaN"):
        parse_payload(b'{"score": NaN}')
    with pytest.raises(EventFormatError, match="exceeds"):
        parse_payload(b" " * (1024 * 1024 + 1))
    with pytest.raises(EventFormatError, match="UTF-8"):
        parse_payload(b"\xff\xfe")


def _decision(score: float = 0.8, threshold: float = 0.64) -> MatchDecision:
    return MatchDecision("subj-1", "suspect", score, threshold, (Candidate("subj-1", score), Candidate("subj-2", 0.3)), (10.4, 20.6, 60.2, 90.9))


def test_a_non_match_cannot_become_a_decision_or_an_event():
    with pytest.raises(NotAMatchError):
        _decision(score=0.5, threshold=0.64)

    class C:
        def __init__(self, ref, score):
            self.subject_ref, self.score = ref, score

    assert MatchDecision.from_search([C("s1", 0.63), C("s2", 0.2)], 0.64, "suspect", (0, 0, 10, 10)) is None
    assert MatchDecision.from_search([], 0.64, "suspect", (0, 0, 10, 10)) is None
    decision = MatchDecision.from_search([C("s1", 0.7), C("s2", 0.6), C("s3", 0.5), C("s4", 0.4)], 0.64, "suspect", (0, 0, 10, 10))
    assert decision is not None and [c.subject_ref for c in decision.candidates] == ["s1", "s2", "s3"]
    builder = EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), DEVICE_KEY, CONTROL_ROOM_KEY.public_key())
    with pytest.raises(NotAMatchError):
        builder.build(object(), b"\xff\xd8\xff\xd9", datetime.now(timezone.utc), 1, spool_epoch=EPOCH, audit_head=HEAD)  # type: ignore[arg-type]


def test_builder_makes_a_signed_event_with_a_sealed_crop():
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    jpeg = crop_face_jpeg(frame, (100.0, 50.0, 180.0, 150.0))
    assert jpeg[:2] == b"\xff\xd8"
    builder = EventBuilder(DeviceContext("cam-01", "dep-1", "wl-1", MODEL), DEVICE_KEY, CONTROL_ROOM_KEY.public_key())
    when = datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=timezone.utc)
    event = builder.build(_decision(), jpeg, when, seq=5, spool_epoch=EPOCH, audit_head=HEAD)
    verify_event(event, DEVICE_KEY.public_key())
    assert event.captured_at_text == "2026-11-22T09:00:00.123Z"
    assert event.face_box == (10, 21, 60, 91)
    assert jpeg not in base64.b64decode(event.crop)
    assert open_crop(event.crop_sealed, CONTROL_ROOM_KEY, event.event_id) == jpeg
    assert (event.schema, event.spool_epoch, event.audit_head, event.match_basis) == ("lfr.alert/2", EPOCH, HEAD, "single_frame")
    roundtrip = AlertEvent.from_dict(parse_payload(encode_event(event)))
    assert roundtrip == event


def test_crop_is_bound_to_its_event_and_recipient():
    jpeg = crop_face_jpeg(np.zeros((64, 64, 3), np.uint8), (10, 10, 40, 40))
    sealed = base64.b64decode(seal_crop(jpeg, CONTROL_ROOM_KEY.public_key(), "3f1c2b9e-8d4a-4c6f-9b1e-2a7d5c0e4f61"))
    with pytest.raises(SecurityError):
        open_crop(sealed, CONTROL_ROOM_KEY, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(SecurityError):
        open_crop(sealed, X25519PrivateKey.generate(), "3f1c2b9e-8d4a-4c6f-9b1e-2a7d5c0e4f61")


def test_documented_storage_tables_match_the_databases(tmp_path):
    import sqlite3

    from edge_agent.control_room.store import AlertStore
    from edge_agent.events.spool import Spool

    section = DOC.read_text(encoding="utf-8").split("## Storage", 1)[1].split("## Golden example", 1)[0]
    documented = {}
    for kind, table, cols in re.findall(r"^\| (spool|store) `([a-z_]+)` \| (.*) \|$", section, re.M):
        documented[(kind, table)] = re.findall(r"`([a-z_0-9]+)`", cols)
    Spool(tmp_path / "spool.db").close()
    AlertStore(tmp_path / "store.db").close()
    actual = {}
    for kind, path in (("spool", tmp_path / "spool.db"), ("store", tmp_path / "store.db")):
        with sqlite3.connect(path) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name != 'meta'"):
                actual[(kind, table)] = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    assert documented == actual


def test_documented_categories_are_the_closed_list():
    from edge_agent.watchlist.entry import CATEGORIES

    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `category` |"))
    assert re.findall(r"`([a-z_]+)`", row.split("closed list:", 1)[1]) == list(CATEGORIES)
