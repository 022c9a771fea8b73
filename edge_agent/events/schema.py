"""AlertEvent v1 (``lfr.alert/1``): the one message a device sends when a face may match the watchlist.

The dict form is what is signed and sent. Parsing is strict (exact field set, types, ranges,
no duplicate JSON keys) because anything the signature does not pin exactly could be read two
ways by two programs. The format is documented in docs/formats/events.md and pinned by tests.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from edge_agent.errors import EdgeAgentError
from edge_agent.identifiers import IdentifierError, check_deployment_id, check_device_id, check_subject_ref
from edge_agent.watchlist.entry import CATEGORIES  # the closed list (policing.md 5)

SCHEMA = "lfr.alert/1"
MAX_CANDIDATES = 3
MAX_PAYLOAD_BYTES = 1024 * 1024
# The order here is the documented order; the canonical encoding sorts keys anyway.
FIELDS: tuple[str, ...] = (
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
MODEL_FIELDS: tuple[str, ...] = ("detector_sha256", "aligner", "embedder_sha256")
CANDIDATE_FIELDS: tuple[str, ...] = ("subject_ref", "score")

# Device ids, deployment ids and subject refs follow edge_agent.identifiers; this one is the event's own.
WATCHLIST_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SCORE_DECIMALS = 6


class EventFormatError(EdgeAgentError):
    """A payload is not a well-formed lfr.alert/1 event."""


def format_time(when: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``: one spelling per instant, so signatures are stable."""
    if when.tzinfo is None:
        raise EventFormatError("event time must be timezone-aware", "pass a UTC datetime")
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    if not isinstance(text, str) or not text.isascii() or not _TIME_PATTERN.fullmatch(text):
        raise EventFormatError(f"captured_at {text!r} is not UTC ISO 8601 with milliseconds", "expected e.g. 2026-01-31T12:00:00.000Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise EventFormatError(f"captured_at {text!r} is not a real date/time", "check the device clock") from None


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
    """A signed alert. ``signature`` is base64 Ed25519 over ``canonical_json(unsigned_dict())``."""

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

    def __post_init__(self) -> None:
        _validate(self)

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
        return {
            "schema": SCHEMA,
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

    def as_dict(self) -> dict[str, Any]:
        if not self.signature:
            raise EventFormatError("event is not signed", "sign it with edge_agent.events.signing.sign_event first")
        return {**self.unsigned_dict(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> "AlertEvent":
        """Strictly rebuild an event from its dict form (received payloads go through here)."""
        if not isinstance(data, dict):
            raise EventFormatError("event payload is not a JSON object", "the sender must send an lfr.alert/1 object")
        keys = set(data)
        if keys != set(FIELDS):
            missing = sorted(set(FIELDS) - keys)
            extra = sorted(keys - set(FIELDS))
            raise EventFormatError(
                f"event fields do not match {SCHEMA} (missing {missing}, unexpected {extra})",
                "see docs/formats/events.md",
            )
        if data["schema"] != SCHEMA:
            raise EventFormatError(f"unsupported event schema {data['schema']!r}", f"this listener reads {SCHEMA}")
        model = data["model"]
        if not isinstance(model, dict) or set(model) != set(MODEL_FIELDS):
            raise EventFormatError(f"model must have exactly {list(MODEL_FIELDS)}", "see docs/formats/events.md")
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
            face_box=tuple(box),  # type: ignore[arg-type]
            candidates=tuple(candidates),
            crop=data["crop"],
            signature=data["signature"],
        )


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode JSON strictly: size-capped, UTF-8, no duplicate keys, no NaN/Infinity."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EventFormatError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", "crops must be small JPEGs")
    try:
        text = payload.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise EventFormatError("payload is not UTF-8", "the sender must send JSON") from None
    except json.JSONDecodeError as exc:
        raise EventFormatError(f"payload is not valid JSON: {exc.msg}", "the sender must send JSON") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EventFormatError(f"duplicate JSON key {k!r}", "a payload with repeated keys could be read two ways; rejected")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise EventFormatError(f"JSON constant {name} is not allowed", "scores must be finite numbers")


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
    if not _is_int(ev.seq) or not 1 <= ev.seq < 2**53:
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
    if not all(isinstance(ev.model.get(k), str) and 0 < len(ev.model[k]) <= 256 for k in MODEL_FIELDS) or len(ev.model) != 3:
        raise bad(f"model must hold non-empty strings {list(MODEL_FIELDS)}")
    box = ev.face_box
    if len(box) != 4 or not all(_is_int(v) and -(2**31) < v < 2**31 for v in box) or box[2] <= box[0] or box[3] <= box[1]:
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
    if not _is_b64(ev.crop, min_len=61):
        raise bad("crop must be base64 of a sealed blob")
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
