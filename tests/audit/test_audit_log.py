"""Audit log: chained, checkpoint-signed, fsync'd; every edit, drop, reorder or forgery is named."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.audit import AuditError, AuditLog, BiometricDataRefused, verify_audit_log
from edge_agent.audit.log import record_body, record_hash
from edge_agent.crypto.canonical import canonical_json, jcs

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


def write_log(path, key, n=12, every=5):
    with AuditLog.open(path, key, "device:cam-01", checkpoint_every=every) as log:
        for i in range(n):
            log.append("alert_raised", {"subject_ref": f"S{i}", "score": 0.71, "threshold": 0.6}, now=T0 + timedelta(seconds=i))
    return path.read_text().splitlines()


def test_chain_and_checkpoints(tmp_path, key):
    lines = write_log(tmp_path / "audit.jsonl", key, n=12, every=5)
    docs = [json.loads(line) for line in lines]
    assert [d["seq"] for d in docs] == list(range(len(docs)))
    # after seq 4, after seq 9, and at close() so the last records are signed too
    assert [i for i, d in enumerate(docs) if d["kind"] == "checkpoint"] == [5, 10, 14]
    assert docs[0]["prev"] == "0" * 64
    for a, b in zip(docs, docs[1:], strict=False):
        assert b["prev"] == a["hash"]
    result = verify_audit_log(tmp_path / "audit.jsonl", key.public_key(), checkpoint_every=5)
    assert result.ok and result.records == 15 and result.checkpoints == 3 and result.unsigned_tail == 0
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600


def test_record_fields_pinned(tmp_path, key):
    lines = write_log(tmp_path / "a.jsonl", key, n=1)
    doc = json.loads(lines[0])
    assert set(doc) == {"v", "seq", "time", "actor", "kind", "details", "prev", "hash"}
    assert doc["v"] == 2 and doc["time"] == "2026-11-22T08:00:00.000Z" and doc["actor"] == "device:cam-01"
    body = {k: doc[k] for k in doc if k != "hash"}
    assert doc["hash"] == record_hash(body) == hashlib.sha256(jcs(body)).hexdigest()
    assert lines[0].encode() == jcs(doc)


def _rewrite(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_edit_detected(tmp_path, key):
    path = tmp_path / "a.jsonl"
    lines = write_log(path, key)
    lines[2] = lines[2].replace('"S2"', '"S9"')
    _rewrite(path, lines)
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 3 and r.first_bad_seq == 2 and "edited" in r.reason


def test_edit_with_recomputed_hash_detected(tmp_path, key):
    path = tmp_path / "a.jsonl"
    lines = write_log(path, key)
    doc = json.loads(lines[2])
    doc["details"]["subject_ref"] = "S9"
    doc["hash"] = record_hash({k: doc[k] for k in doc if k != "hash"})
    lines[2] = jcs(doc).decode()
    _rewrite(path, lines)
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 4 and "prev hash" in r.reason


def test_drop_detected(tmp_path, key):
    path = tmp_path / "a.jsonl"
    lines = write_log(path, key)
    del lines[3]
    _rewrite(path, lines)
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 4 and "dropped" in r.reason


def test_reorder_detected(tmp_path, key):
    path = tmp_path / "a.jsonl"
    lines = write_log(path, key)
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(path, lines)
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 2 and "reordered" in r.reason


def test_rebuilt_chain_without_device_key_detected(tmp_path, key):
    """A forger rewrites a record and recomputes every later hash; the signed checkpoint exposes it."""
    path = tmp_path / "a.jsonl"
    lines = write_log(path, key)
    docs = [json.loads(line) for line in lines]
    docs[1]["details"]["subject_ref"] = "FORGED"
    prev = "0" * 64
    for d in docs:
        d["prev"] = prev
        d["hash"] = record_hash(record_body(d["seq"], d["time"], d["actor"], d["kind"], d["details"], d["prev"]))
        prev = d["hash"]
    _rewrite(path, [jcs(d).decode() for d in docs])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_seq == 5 and "checkpoint signature" in r.reason
    # ... and stripping the checkpoints instead is caught by the checkpoint interval
    docs = [d for d in docs if d["kind"] != "checkpoint"]
    prev = "0" * 64
    for i, d in enumerate(docs):
        d["seq"], d["prev"] = i, prev
        d["hash"] = record_hash(record_body(d["seq"], d["time"], d["actor"], d["kind"], d["details"], d["prev"]))
        prev = d["hash"]
    _rewrite(path, [jcs(d).decode() for d in docs])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_seq == 5 and "without a signed checkpoint" in r.reason


def test_unsigned_tail_reported(tmp_path, key):
    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, key, "device:cam-01", checkpoint_every=5)
    for i in range(7):
        log.append("alert_raised", {"i": i}, now=T0)
    r = verify_audit_log(path, key.public_key(), 5)
    assert r.ok and r.checkpoints == 1 and r.unsigned_tail == 2 and "not yet signed" in r.summary()
    log.close(now=T0)
    assert verify_audit_log(path, key.public_key(), 5).unsigned_tail == 0


def test_wrong_key_fails_checkpoint(tmp_path, key):
    path = tmp_path / "a.jsonl"
    write_log(path, key)
    r = verify_audit_log(path, Ed25519PrivateKey.generate().public_key(), 5)
    assert not r.ok and r.first_bad_seq == 5


def test_reopen_continues_chain_and_two_writers_share_it(tmp_path, key):
    path = tmp_path / "a.jsonl"
    write_log(path, key, n=3)
    a = AuditLog.open(path, key, "device:cam-01", 5)
    b = AuditLog.open(path, key, "operator:pc1234", 5)
    a.append("config_changed", {"field": "threshold"}, now=T0)
    b.append("watchlist_wiped", {"reason": "operator"}, now=T0)
    a.append("alert_raised", {"subject_ref": "S1"}, now=T0)
    assert b.checkpoint(now=T0) is not None
    a.close(), b.close()
    r = verify_audit_log(path, key.public_key(), 5)
    assert r.ok and r.unsigned_tail == 0


@pytest.mark.parametrize(
    "details",
    [
        {"embedding": [0.1, 0.2]},
        {"probe": "x"},
        {"scores": [0.1] * 128},
        {"blob": b"\x00" * 10},
        {"vec": np.zeros(128, np.float32)},
        {"score": np.float32(0.7)},
        {"crop_b64": "A" * 5000},
        {"nested": {"list": [{"template": [1.0]}]}},
    ],
)
def test_biometric_details_refused(tmp_path, key, details):
    with AuditLog.open(tmp_path / "a.jsonl", key, "device:cam-01") as log:
        with pytest.raises(BiometricDataRefused, match="audit"):
            log.append("alert_raised", details, now=T0)
    assert (tmp_path / "a.jsonl").read_text() == ""


def test_bad_kind_and_actor_refused(tmp_path, key):
    with AuditLog.open(tmp_path / "a.jsonl", key, "device:cam-01") as log:
        with pytest.raises(AuditError, match="kind"):
            log.append("checkpoint", {}, now=T0)
        with pytest.raises(AuditError, match="actor"):
            log.append("alert_raised", {}, actor="bad actor", now=T0)


def test_torn_tail_is_named_by_verify_and_cut_back_on_open(tmp_path, key):
    """Issue 11: a partial line (disk full mid-append by an older writer, or a crash) made every
    later start refuse the log. Now open() cuts it back, keeps the bytes, audits the repair, and
    the log verifies again."""
    import hashlib

    path = tmp_path / "a.jsonl"
    write_log(path, key, n=3)
    torn = b'{"v":1,"seq":3'
    with open(path, "ab") as fh:
        fh.write(torn)
    r = verify_audit_log(path, key.public_key())
    assert not r.ok and r.first_bad_line == 5 and "torn" in r.reason and r.records == 4
    with AuditLog.open(path, key, "device:cam-01") as log:
        log.append("config_changed", {"after": "repair"}, now=T0)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    repair = next(r for r in records if r["kind"] == "audit_tail_repaired")
    assert repair["details"]["cut_bytes"] == len(torn) and repair["details"]["cut_sha256"] == hashlib.sha256(torn).hexdigest()
    assert (tmp_path / repair["details"]["kept_as"]).read_bytes() == torn
    assert (tmp_path / repair["details"]["kept_as"]).stat().st_mode & 0o777 == 0o600
    assert verify_audit_log(path, key.public_key()).ok


def test_a_complete_garbage_last_line_is_cut_too(tmp_path, key):
    """A torn line an older writer continued after (partial + a whole record on one line)."""
    path = tmp_path / "a.jsonl"
    write_log(path, key, n=3)
    with open(path, "ab") as fh:
        fh.write(b'{"v":1,"se{"v":1,"seq":9}\n')
    with AuditLog.open(path, key, "device:cam-01"):
        pass
    assert verify_audit_log(path, key.public_key()).ok


def test_an_append_that_fails_midway_leaves_no_partial_line(tmp_path, key, monkeypatch):
    """All or nothing: ENOSPC after part of the line was written is cut off at once."""
    import os as _os

    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, key, "device:cam-01")
    log.append("config_changed", {"i": 0}, now=T0)
    before = path.read_bytes()
    real_write = _os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("edge_agent.audit.log.os.write", half_then_full)
    with pytest.raises(AuditError, match="No space left"):
        log.append("config_changed", {"i": 1}, now=T0)
    monkeypatch.undo()
    assert path.read_bytes() == before
    log.append("config_changed", {"i": 2}, now=T0)
    log.close(now=T0)
    assert verify_audit_log(path, key.public_key()).ok


def test_no_signing_key_means_no_checkpoints(tmp_path):
    path = tmp_path / "a.jsonl"
    with AuditLog.open(path, None, "authority:central", checkpoint_every=2) as log:
        for i in range(5):
            log.append("config_changed", {"i": i}, now=T0)
        assert log.checkpoint() is None
    assert all(json.loads(line)["kind"] != "checkpoint" for line in path.read_text().splitlines())


def test_doc_lists_record_fields_and_kinds():
    import re
    from pathlib import Path

    from edge_agent.audit.log import KINDS

    text = (Path(__file__).resolve().parents[2] / "docs" / "formats" / "audit.md").read_text()
    fields_table = text.split("## Records", 1)[1].split("### Kinds", 1)[0]
    kinds_table = text.split("### Kinds", 1)[1].split("## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", fields_table, flags=re.M)
    assert documented == ["v", "seq", "time", "actor", "kind", "details", "prev", "hash", "signature"]
    assert re.findall(r"^\| `([a-z_]+)` \|", kinds_table, flags=re.M) == list(KINDS)
    from edge_agent.audit.log import KIND_PATTERN
    from edge_agent.identifiers import ACTOR

    assert f"`{KIND_PATTERN.pattern}`" in fields_table and f"`{ACTOR.pattern.pattern}`" in fields_table


def test_concurrent_threads_and_processes_keep_one_chain(tmp_path, key):
    import multiprocessing
    import threading

    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, key, "device:cam-01", checkpoint_every=7)

    def burst(tag):
        for i in range(25):
            log.append("alert_raised", {"who": tag, "i": i}, now=T0)

    threads = [threading.Thread(target=burst, args=(f"t{n}",)) for n in range(4)]
    proc = multiprocessing.get_context("fork").Process(target=_child_appends, args=(str(path), key))
    proc.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc.join()
    assert proc.exitcode == 0
    log.close(now=T0)
    r = verify_audit_log(path, key.public_key(), 7)
    assert r.ok, r.summary()
    assert r.records - r.checkpoints == 125


def _child_appends(path, key):
    with AuditLog.open(path, key, "operator:other", checkpoint_every=7) as other:
        for i in range(25):
            other.append("config_changed", {"i": i}, now=T0)


def test_every_kind_the_code_writes_is_documented():
    """Scan every audit append with a literal kind (device: direct or through the storage-health guard) and the control room's constants."""
    import re
    from pathlib import Path

    from edge_agent.audit.log import KINDS
    from edge_agent.control_room import auditing

    root = Path(__file__).resolve().parents[2] / "edge_agent"
    written = set()
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        # an audit append takes (kind, details, ...): a list's append never has a comma after one string
        written |= set(re.findall(r"append\(\s*\"([a-z][a-z0-9_]+)\",", text))
    assert {"faces_processed", "session_summary", "watchlist_loaded", "spool_dropped"} <= written  # the scan finds them
    assert written - set(KINDS) == set(), "a device kind is written but not listed in KINDS / docs/formats/audit.md"
    assert not set(KINDS) & set(auditing.KINDS)


def _v1_log(path, key, n=4):
    """A log exactly as the version 1 writer wrote it (canonical_json lines, times without a zero fraction)."""
    from edge_agent.crypto.canonical import format_utc

    prev, lines = "0" * 64, []
    for i in range(n):
        body = record_body(i, format_utc(T0 + timedelta(seconds=i)), "device:cam-01", "alert_raised", {"score": 0.71, "i": i}, prev, 1)
        digest = hashlib.sha256(canonical_json(body)).hexdigest()
        lines.append(canonical_json({**body, "hash": digest}).decode())
        prev = digest
    body = record_body(n, format_utc(T0 + timedelta(seconds=n)), "device:cam-01", "checkpoint", {"head_seq": n - 1, "head_hash": prev}, prev, 1)
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    sig = base64.b64encode(key.sign(b"edge-agent audit checkpoint v1\x00" + bytes.fromhex(digest))).decode()
    lines.append(canonical_json({**body, "hash": digest, "signature": sig}).decode())
    path.write_text("".join(line + "\n" for line in lines))
    return lines


def test_version_1_logs_still_verify_and_continue_as_version_2(tmp_path, key):
    path = tmp_path / "old.log"
    lines = _v1_log(path, key)
    assert '"time":"2026-11-22T08:00:00Z"' in lines[0] and '"v":1' in lines[0]
    r = verify_audit_log(path, key.public_key(), 5)
    assert r.ok and r.records == 5 and r.checkpoints == 1
    with AuditLog.open(path, key, "device:cam-01", checkpoint_every=5) as log:
        log.append("config_changed", {"sha256": "ab" * 32}, now=T0 + timedelta(minutes=1))
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [d["v"] for d in docs] == [1, 1, 1, 1, 1, 2, 2]
    assert docs[5]["prev"] == docs[4]["hash"]
    assert verify_audit_log(path, key.public_key(), 5).ok


def test_a_version_1_record_after_version_2_is_refused(tmp_path, key):
    path = tmp_path / "a.log"
    lines = write_log(path, key, n=2)
    doc = json.loads(lines[1])
    doc.update(v=1, time="2026-11-22T08:00:01Z")
    doc["hash"] = hashlib.sha256(canonical_json({k: doc[k] for k in doc if k != "hash"})).hexdigest()
    lines[1] = canonical_json(doc).decode()
    _rewrite(path, lines[:2])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_seq == 1 and "version 1 record after a version 2" in r.reason


def test_a_duplicate_details_key_is_refused(tmp_path, key):
    """The code accepted this before: one hash, two readings of the record."""
    path = tmp_path / "a.log"
    lines = write_log(path, key, n=3)
    forged = lines[1].replace('"details":{', '"details":{"subject_ref":"FORGED"},"details":{', 1)
    assert json.loads(forged)["details"] == json.loads(lines[1])["details"]  # a lax reader sees the original
    _rewrite(path, [lines[0], forged, *lines[2:]])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 2 and "duplicate JSON key 'details'" in r.reason


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda line: line.replace(',"kind"', ', "kind"'), "canonical"),
        (lambda line: line.replace('"score":0.71', '"score":7.1e-1'), "canonical"),
        (lambda line: line + " ", "canonical"),
    ],
)
def test_a_line_not_in_canonical_form_is_refused(tmp_path, key, change, reason):
    path = tmp_path / "a.log"
    lines = write_log(path, key, n=3)
    _rewrite(path, [lines[0], change(lines[1]), *lines[2:]])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and r.first_bad_line == 2 and reason in r.reason


@pytest.mark.parametrize(
    "field, value, reason",
    [("time", "2026-11-22T08:00:01Z", "milliseconds"), ("actor", "device:cam\u043001", "actor"), ("kind", "Alert", "kind")],
)
def test_a_rehashed_record_outside_the_rules_is_refused(tmp_path, key, field, value, reason):
    path = tmp_path / "a.log"
    lines = write_log(path, key, n=1)
    doc = json.loads(lines[0])
    doc[field] = value
    doc["hash"] = record_hash({k: doc[k] for k in doc if k != "hash"})
    _rewrite(path, [jcs(doc).decode()])
    r = verify_audit_log(path, key.public_key(), 5)
    assert not r.ok and reason in r.reason
