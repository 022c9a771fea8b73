"""Check an audit log end to end and name the first record that breaks it (docs/formats/audit.md)."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.audit.log import CHECKPOINT_DOMAIN, CHECKPOINT_KIND, GENESIS_HASH, KIND_PATTERN, READABLE_VERSIONS, encode, record_body, record_hash
from edge_agent.crypto.canonical import CanonicalJsonError, DuplicateKey, loads_strict, parse_utc
from edge_agent.crypto.signing import SignatureInvalid, verify
from edge_agent.config_reader import read_file_bytes
from edge_agent.identifiers import ACTOR
from edge_agent.timestamps import TimestampError, parse_timestamp

_FIELDS = {"v", "seq", "time", "actor", "kind", "details", "prev", "hash"}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records read and found good (including checkpoints)
    checkpoints: int
    unsigned_tail: int  # good records after the last signed checkpoint (not yet protected by a signature)
    first_bad_line: int | None = None  # 1-based line number
    first_bad_seq: int | None = None
    reason: str = ""

    def summary(self) -> str:
        if self.ok:
            tail = f"; {self.unsigned_tail} record(s) after the last checkpoint are chained but not yet signed" if self.unsigned_tail else ""
            return f"audit log OK: {self.records} records, {self.checkpoints} signed checkpoints{tail}"
        where = f"line {self.first_bad_line}" + (f" (seq {self.first_bad_seq})" if self.first_bad_seq is not None else "")
        return f"audit log BROKEN at {where}: {self.reason}; {self.records} records before it are good"


def _content_problem(doc: dict[str, Any]) -> str | None:
    """A rule of the record's version that its fields break, or None."""
    if not isinstance(doc["kind"], str) or not KIND_PATTERN.fullmatch(doc["kind"]):
        return f"kind {doc['kind']!r} is not a snake_case kind"
    problem = ACTOR.problem(doc["actor"])
    if problem is not None:
        return f"actor {doc['actor']!r}: {problem}"
    if not isinstance(doc["details"], dict):
        return "details is not an object"
    try:
        if doc["v"] == 2:
            parse_timestamp(doc["time"], "time")
        else:
            parse_utc(doc["time"], "time")
    except (TimestampError, CanonicalJsonError) as exc:
        return exc.message
    return None


def verify_audit_log(path: Path, public_key: Ed25519PublicKey, checkpoint_every: int = 100) -> VerifyResult:
    """Detect edited, dropped, reordered or inserted records and forged or removed checkpoints.

    ``checkpoint_every`` is the interval the writer used: a longer run of records with no signed
    checkpoint means checkpoints were stripped (e.g. the chain was rebuilt without the device key).
    Every line must be exactly the canonical encoding of its version (so no duplicate key, no
    second spelling can hide in it); a log may move from version 1 to 2, never back.
    """
    data = read_file_bytes(path, "audit log", "check the state directory path", "pass the audit.log file inside the state directory")
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    if not torn:
        lines = lines[:-1]
    prev = GENESIS_HASH
    version = min(READABLE_VERSIONS)
    good = checkpoints = since_checkpoint = 0

    def bad(line_no: int, seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(False, good, checkpoints, since_checkpoint, line_no, seq, reason)

    for index, raw in enumerate(lines):
        line_no = index + 1
        if torn and index == len(lines) - 1:
            return bad(line_no, None, "torn last record (no line end)")
        try:
            doc = loads_strict(raw)
        except DuplicateKey as exc:
            return bad(line_no, None, f"{exc.message} (a record must read one way only)")
        except CanonicalJsonError:
            return bad(line_no, None, "not valid JSON")
        if not isinstance(doc, dict) or not _FIELDS <= set(doc) or not set(doc) <= _FIELDS | {"signature"}:
            return bad(line_no, None, "fields missing or unexpected")
        seq = doc["seq"] if type(doc["seq"]) is int else None
        if type(doc["v"]) is not int or doc["v"] not in READABLE_VERSIONS:
            return bad(line_no, seq, f"unknown record version {doc['v']!r}")
        if doc["v"] < version:
            return bad(line_no, seq, f"version {doc['v']} record after a version {version} record")
        version = doc["v"]
        if seq != index:
            return bad(line_no, seq, f"sequence number {doc['seq']!r} where {index} was expected (record dropped, inserted or reordered)")
        try:
            canonical = encode(doc) == raw
        except CanonicalJsonError:
            canonical = False
        if not canonical:
            return bad(line_no, seq, f"line is not the canonical encoding of a version {version} record")
        problem = _content_problem(doc)
        if problem is not None:
            return bad(line_no, seq, problem)
        if not _same_hash(doc["prev"], prev):
            return bad(line_no, seq, "prev hash does not match the previous record (record dropped, inserted or reordered)")
        expected = record_hash(record_body(seq, doc["time"], doc["actor"], doc["kind"], doc["details"], doc["prev"], doc["v"]))
        if not _same_hash(doc["hash"], expected):
            return bad(line_no, seq, "record hash does not match its content (record edited)")
        if doc["kind"] == CHECKPOINT_KIND:
            try:
                verify(public_key, CHECKPOINT_DOMAIN, bytes.fromhex(doc["hash"]), base64.b64decode(doc.get("signature", ""), validate=True))
            except (SignatureInvalid, ValueError, TypeError):
                return bad(line_no, seq, "checkpoint signature is not valid for the device key")
            checkpoints += 1
            since_checkpoint = 0
        else:
            if "signature" in doc:
                return bad(line_no, seq, "signature on a record that is not a checkpoint")
            if since_checkpoint >= checkpoint_every:
                return bad(line_no, seq, f"more than {checkpoint_every} records without a signed checkpoint (checkpoints removed or chain rebuilt)")
            since_checkpoint += 1
        prev = doc["hash"]
        good += 1
    return VerifyResult(True, good, checkpoints, since_checkpoint)


def _same_hash(value: object, expected: str) -> bool:
    """Constant-time equality; a non-ASCII string is simply unequal (compare_digest raises TypeError on it)."""
    return isinstance(value, str) and value.isascii() and hmac.compare_digest(value, expected)
