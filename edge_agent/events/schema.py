"""Alert events (``lfr.alert/2``, and ``lfr.alert/1`` read for verification): the one message a
device sends when a face may match the watchlist.

The dict form is what is signed and sent. Parsing is strict (exact field set, types, ranges,
no duplicate JSON keys) because anything the signature does not pin exactly could be read two
ways by two programs. Version 2 travels as RFC 8785 canonical JSON and a v2 payload that is not
byte for byte ``jcs(parsed)`` is refused; it adds the spool epoch (so a recreated spool's
sequence numbers are not replays), the device audit chain's head, what the match rests on and
the model precision. Version 1 is still parsed so stored and in-flight v1 events verify.
Format: docs/formats/events.md, pinned by tests and docs/formats/vectors/.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from edge_agent.crypto.canonical import is_jcs, loads_strict
from edge_agent.errors import EdgeAgentError
from edge_agent.identifiers import IdentifierError, check_deployment_id, check_device_id, check_subject_ref
from edge_agent.timestamps import TimestampError, format_timestamp, parse_timestamp
from edge_agent.watchlist.entry import CATEGORIES  # the closed list (policing.md 5)

SCHEMA_V1 = "lfr.alert/1"
SCHEMA_V2 = "lfr.alert/2"
SCHEMA = SCHEMA_V2  # what devices write
SCHEMAS = (SCHEMA_V1, SCHEMA_V2)
MAX_CANDIDATES = 3
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_SEQ = 2**53 - 1
# The order here is the documented order; the canonical encodings sort keys anyway.
FIELDS_V1: tuple[str, ...] = (
    "schema",
    "event_id",
    "device_id",
    "deployment_id",
    "watchlist_version",
    "seq",
    "captured_at",
    "subject_ref",
    "category",
    "score",
    "threshold",
    "model",
    "face_box",
    "candidates",
    "crop",
    "signature",
)
V2_ADDED: tuple[str, ...] = ("spool_epoch", "audit_head", "match_basis")
FIELDS_V2: tuple[str, ...] = FIELDS_V1[:6] + ("spool_epoch",) + FIELDS_V1[6:10] + ("match_basis",) + FIELDS_V1[10:12] + ("audit_head",) + FIELDS_V1[12:]
FIELDS = FIELDS_V2
MODEL_FIELDS_V1: tuple[str, ...] = ("detector_sha256", "aligner", "embedder_sha256")
MODEL_FIELDS_V2: tuple[str, ...] = MODEL_FIELDS_V1 + ("precision",)
MODEL_FIELDS = MODEL_FIELDS_V2
CANDIDATE_FIELDS: tuple[str, ...] = ("subject_ref", "score")
AUDIT_HEAD_FIELDS: tuple[str, ...] = ("seq", "hash")
MATCH_BASES = ("single_frame", "fused_track")

# Device ids, deployment ids and subject refs follow edge_agent.identifiers; these are the event's own.
WATCHLIST_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SPOOL_EPOCH_PATTERN = re.compile(r"[0-9a-f]{32}")
PRECISION_PATTERN = re.compile(r"[a-z0-9_.+-]{1,32}")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_MODEL_TEXT = 256
SCORE_DECIMALS = 6
MAX_BOX = 2**31
MIN_CROP_BYTES = 61  # the smallest sealed blob: version, ephemeral key and nonce (45 bytes) and the AES-GCM tag (16)
GENESIS_HASH = "0" * 64


class EventFormatError(EdgeAgentError):
    """A payload is not a well-formed alert event."""


class NonCanonicalPayload(EventFormatError):
    """A v2 payload whose bytes are not the RFC 8785 encoding of what it parses to."""


def format_time(when: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z`` (edge_agent.timestamps: the one form)."""
    try:
        return format_timestamp(when)
    except TimestampError as exc:
        raise EventFormatError(exc.message, exc.hint) from None


def parse_time(text: str, name: str = "captured_at") -> datetime:
    try:
        return parse_timestamp(text, name)
    except TimestampError as exc:
        raise EventFormatError(exc.message, exc.hint) from None


@dataclass(frozen=True)
class AuditHead:
    """The device audit chain's head when an alert was committed: last record's seq and hash
    (seq -1 and 64 zeros for a chain with no record yet)."""

    seq: int
    hash: str

    def __post_init__(self) -> None:
        if not _is_int(self.seq) or not -1 <= self.seq <= MAX_SEQ:
            raise EventFormatError(f"audit_head.seq {self.seq!r} must be an integer from -1 to 2^53-1", "see docs/formats/events.md")
        if not isinstance(self.hash, str) or not self.hash.isascii() or not HASH_PATTERN.fullmatch(self.hash):
            raise EventFormatError(f"audit_head.hash {self.hash!r} must be 64 lower-case hex digits", "see docs/formats/events.md")
        if (self.seq == -1) != (self.hash == GENESIS_HASH):
            raise EventFormatError("audit_head: seq -1 goes with the all-zero hash and only with it", "see docs/formats/events.md")

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def from_dict(cls, data: Any) -> "AuditHead":
        if not isinstance(data, dict) or set(data) != set(AUDIT_HEAD_FIELDS):
            raise EventFormatError(f"audit_head must have exactly {list(AUDIT_HEAD_FIELDS)}", "see docs/formats/events.md")
        return cls(seq=data["seq"], hash=data["hash"])


def round_score(value: float) -> float:
    """Scores travel rounded to 6 decimals so every encoder writes the same digits."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise EventFormatError(f"score {value!r} is not a finite number", "this is a bug in the matcher")
    return round(float(value), SCORE_DECIMALS)


@dataclass(frozen=True)
class Candidate:
    subject_ref: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"subject_ref": self.subject_ref, "score": self.score}


@dataclass(frozen=True)
class AlertEvent:
    """A signed alert (``schema`` SCHEMA_V2 unless it is a received v1 event); signing: edge_agent.events.signing."""

    event_id: str
    device_id: str
    deployment_id: str
    watchlist_version: str
    seq: int
    captured_at: datetime
    subject_ref: str
    category: str
    score: float
    threshold: float
    model: dict[str, str]
    face_box: tuple[int, int, int, int]
    candidates: tuple[Candidate, ...]
    crop: str  # base64 of the sealed JPEG (edge_agent.events.crop)
    signature: str = ""
    schema: str = SCHEMA_V2
    spool_epoch: str | None = None  # v2: 32 hex, the device spool's random epoch
    audit_head: AuditHead | None = None  # v2: the device audit chain's head at commit
    match_basis: str | None = None  # v2: "single_frame" or "fused_track"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def version(self) -> int:
        return SCHEMAS.index(self.schema) + 1

    @property
    def captured_at_text(self) -> str:
        return format_time(self.captured_at)

    @property
    def crop_sealed(self) -> bytes:
        return base64.b64decode(self.crop)

    @property
    def signature_bytes(self) -> bytes:
        return base64.b64decode(self.signature)

    def unsigned_dict(self) -> dict[str, Any]:
        """Every field except ``signature``: the exact object the device signs."""
        doc: dict[str, Any] = {
            "schema": self.schema,
            "event_id": self.event_id,
            "device_id": self.device_id,
            "deployment_id": self.deployment_id,
            "watchlist_version": self.watchlist_version,
            "seq": self.seq,
            "captured_at": self.captured_at_text,
            "subject_ref": self.subject_ref,
            "category": self.category,
            "score": self.score,
            "threshold": self.threshold,
            "model": dict(self.model),
            "face_box": list(self.face_box),
            "candidates": [c.as_dict() for c in self.candidates],
            "crop": self.crop,
        }
        if self.schema == SCHEMA_V2:
            if self.audit_head is None:  # _validate refuses this; kept for the type checker
                raise EventFormatError("an lfr.alert/2 event needs audit_head", "this is a bug in the event builder")
            doc.update(spool_epoch=self.spool_epoch, audit_head=self.audit_head.as_dict(), match_basis=self.match_basis)
        return doc

    def as_dict(self) -> dict[str, Any]:
        if not self.signature:
            raise EventFormatError("event is not signed", "sign it with edge_agent.events.signing.sign_event first")
        return {**self.unsigned_dict(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> "AlertEvent":
        """Strictly rebuild an event from its dict form (received payloads go through here)."""
        if not isinstance(data, dict):
            raise EventFormatError("event payload is not a JSON object", f"the sender must send an {SCHEMA} object")
        schema = data.get("schema")
        if schema not in SCHEMAS:
            raise EventFormatError(f"unsupported event schema {schema!r}", f"this listener reads {', '.join(SCHEMAS)}")
        fields = FIELDS_V2 if schema == SCHEMA_V2 else FIELDS_V1
        keys = set(data)
        if keys != set(fields):
            missing = sorted(set(fields) - keys)
            extra = sorted(keys - set(fields))
            raise EventFormatError(
                f"event fields do not match {schema} (missing {missing}, unexpected {extra})",
                "see docs/formats/events.md",
            )
        model_fields = MODEL_FIELDS_V2 if schema == SCHEMA_V2 else MODEL_FIELDS_V1
        model = data["model"]
        if not isinstance(model, dict) or set(model) != set(model_fields):
            raise EventFormatError(f"model must have exactly {list(model_fields)}", "see docs/formats/events.md")
        box = data["face_box"]
        if not isinstance(box, list) or len(box) != 4:
            raise EventFormatError("face_box must be a list of 4 integers", "see docs/formats/events.md")
        cands = data["candidates"]
        if not isinstance(cands, list):
            raise EventFormatError("candidates must be a list", "see docs/formats/events.md")
        candidates = []
        for c in cands:
            if not isinstance(c, dict) or set(c) != set(CANDIDATE_FIELDS):
                raise EventFormatError(f"each candidate must have exactly {list(CANDIDATE_FIELDS)}", "see docs/formats/events.md")
            candidates.append(Candidate(subject_ref=c["subject_ref"], score=c["score"]))
        v2: dict[str, Any] = {}
        if schema == SCHEMA_V2:
            v2 = {"spool_epoch": data["spool_epoch"], "audit_head": AuditHead.from_dict(data["audit_head"]), "match_basis": data["match_basis"]}
        return cls(
            event_id=data["event_id"],
            device_id=data["device_id"],
            deployment_id=data["deployment_id"],
            watchlist_version=data["watchlist_version"],
            seq=data["seq"],
            captured_at=parse_time(data["captured_at"]),
            subject_ref=data["subject_ref"],
            category=data["category"],
            score=data["score"],
            threshold=data["threshold"],
            model=dict(model),
            face_box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])),
            candidates=tuple(candidates),
            crop=data["crop"],
            signature=data["signature"],
            schema=schema,
            **v2,
        )


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode JSON strictly: size-capped, UTF-8, no duplicate keys, no NaN/Infinity; a v2 event
    must be exactly its RFC 8785 encoding (NonCanonicalPayload otherwise)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EventFormatError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", "crops must be small JPEGs")
    data = loads_strict(payload, EventFormatError)
    if isinstance(data, dict) and data.get("schema") == SCHEMA_V2:
        if not is_jcs(payload, data):
            raise NonCanonicalPayload(
                f"{SCHEMA_V2} payload is not in RFC 8785 canonical form",
                "a v2 event travels as exactly jcs(event): sorted keys, no whitespace, ECMAScript numbers (docs/formats/events.md)",
            )
    if not isinstance(data, dict):
        raise EventFormatError("event payload is not a JSON object", "see docs/formats/events.md")
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate(ev: AlertEvent) -> None:
    def bad(msg: str) -> EventFormatError:
        return EventFormatError(msg, "see docs/formats/events.md")

    try:
        parsed = uuid.UUID(ev.event_id) if isinstance(ev.event_id, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != ev.event_id:
        raise bad(f"event_id {ev.event_id!r} is not a lower-case UUID4")
    for name, check in (("device_id", check_device_id), ("deployment_id", check_deployment_id)):
        _identifier(name, check, getattr(ev, name))
    if not isinstance(ev.watchlist_version, str) or not ev.watchlist_version.isascii() or not WATCHLIST_VERSION_PATTERN.fullmatch(ev.watchlist_version):
        raise bad(f"watchlist_version {ev.watchlist_version!r} must match {WATCHLIST_VERSION_PATTERN.pattern}")
    if ev.schema not in SCHEMAS:
        raise bad(f"unsupported event schema {ev.schema!r}")
    if not _is_int(ev.seq) or not 1 <= ev.seq <= MAX_SEQ:
        raise bad(f"seq {ev.seq!r} must be an integer from 1 to 2^53-1")
    if not isinstance(ev.captured_at, datetime) or ev.captured_at.utcoffset() != timedelta(0):
        raise bad("captured_at must be a UTC datetime")
    if ev.captured_at.microsecond % 1000:
        raise bad("captured_at must be whole milliseconds (use format_time/parse_time)")
    _identifier("subject_ref", check_subject_ref, ev.subject_ref)
    if not isinstance(ev.category, str) or ev.category not in CATEGORIES:
        raise bad(f"category {ev.category!r} is not on the closed list {list(CATEGORIES)}")
    for name in ("score", "threshold"):
        value = getattr(ev, name)
        if not _is_number(value) or not -1.0 <= value <= 1.0 or round(value, SCORE_DECIMALS) != value:
            raise bad(f"{name} {value!r} must be a number in [-1, 1] with at most {SCORE_DECIMALS} decimals")
    if ev.score < ev.threshold:
        raise bad(f"score {ev.score} is below threshold {ev.threshold}: only matches are alerts")
    model_fields = MODEL_FIELDS_V2 if ev.schema == SCHEMA_V2 else MODEL_FIELDS_V1
    if (
        not isinstance(ev.model, dict)
        or set(ev.model) != set(model_fields)
        or not all(isinstance(ev.model[k], str) and 0 < len(ev.model[k]) <= MAX_MODEL_TEXT for k in model_fields)
    ):
        raise bad(f"model must hold exactly the non-empty strings {list(model_fields)} (at most {MAX_MODEL_TEXT} characters)")
    if ev.schema == SCHEMA_V2 and not (ev.model["precision"].isascii() and PRECISION_PATTERN.fullmatch(ev.model["precision"])):
        raise bad(f"model.precision {ev.model['precision']!r} must match {PRECISION_PATTERN.pattern}")
    box = ev.face_box
    if len(box) != 4 or not all(_is_int(v) and -MAX_BOX < v < MAX_BOX for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        raise bad(f"face_box {box!r} must be 4 integers x1<x2, y1<y2")
    if not 1 <= len(ev.candidates) <= MAX_CANDIDATES:
        raise bad(f"candidates must hold 1 to {MAX_CANDIDATES} entries")
    for c in ev.candidates:
        _identifier("candidate subject_ref", check_subject_ref, c.subject_ref)
        if not _is_number(c.score) or not -1.0 <= c.score <= 1.0 or round(c.score, SCORE_DECIMALS) != c.score:
            raise bad(f"candidate score {c.score!r} is malformed")
    if ev.candidates[0].subject_ref != ev.subject_ref or ev.candidates[0].score != ev.score:
        raise bad("the first candidate must be the alerted subject with the alert score")
    if any(a.score < b.score for a, b in zip(ev.candidates, ev.candidates[1:], strict=False)):
        raise bad("candidates must be sorted best first")
    if len({c.subject_ref for c in ev.candidates}) != len(ev.candidates):
        raise bad("candidates must name distinct subjects")
    if not _is_b64(ev.crop, min_len=MIN_CROP_BYTES):
        raise bad("crop must be base64 of a sealed blob")
    if ev.schema == SCHEMA_V2:
        if not isinstance(ev.spool_epoch, str) or not ev.spool_epoch.isascii() or not SPOOL_EPOCH_PATTERN.fullmatch(ev.spool_epoch):
            raise bad(f"spool_epoch {ev.spool_epoch!r} must be 32 lower-case hex digits")
        if not isinstance(ev.audit_head, AuditHead):
            raise bad("audit_head must be {\"seq\": int, \"hash\": 64 hex}")
        if ev.match_basis not in MATCH_BASES:
            raise bad(f"match_basis {ev.match_basis!r} is not one of {list(MATCH_BASES)}")
    elif (ev.spool_epoch, ev.audit_head, ev.match_basis) != (None, None, None):
        raise bad(f"{SCHEMA_V1} events carry no spool_epoch, audit_head or match_basis")
    if ev.signature and not _is_b64(ev.signature, exact=64):
        raise bad("signature must be base64 of a 64-byte Ed25519 signature")


def _identifier(field: str, check: Any, value: Any) -> None:
    """Apply the one rule for this identifier (edge_agent.identifiers), reported as a format error."""
    try:
        check(value)
    except IdentifierError as exc:
        raise EventFormatError(f"{field}: {exc.message}", exc.hint) from None


def _is_b64(text: Any, min_len: int = 1, exact: int | None = None) -> bool:
    if not isinstance(text, str):
        return False
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    if base64.b64encode(raw).decode("ascii") != text:  # one spelling only
        return False
    return len(raw) == exact if exact is not None else len(raw) >= min_len
