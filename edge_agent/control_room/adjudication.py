"""A person's decision on an alert, legal holds, retention and crop export: the only ways an
alert's state changes or its face leaves the control room, each one audited.

An alert is advisory until adjudicated (policing.md 11): the decision, reviewer, reasons and
outcome (engaged or not) are recorded append-only. Alerts are deleted after the retention period
(at most 31 days, policing.md 13) unless a legal hold with a reason is recorded. Nothing is
exported before adjudication. Every function here takes the audit log as a required argument:
an action that cannot be audited does not happen (the store change is made first, in one
transaction, and the audit record right after; if the audit write fails the caller sees the
error). Audit kinds: docs/formats/control-room.md.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.control_room.auditing import (
    ADJUDICATION_RECORDED, CROP_EXPORTED, LEGAL_HOLD_PLACED, LEGAL_HOLD_RELEASED, RETENTION_RUN, AuditSink,
)
from edge_agent.control_room.store import PENDING, AlertStore, PurgeResult, StoreError
from edge_agent.errors import ConfigError
from edge_agent.identifiers import IdentifierError, check_retention, check_reviewer
from edge_agent.events.crop import open_crop
from edge_agent.events.schema import AlertEvent, parse_payload

DECISIONS = ("confirmed", "rejected")
MAX_REASON = 1000


@dataclass(frozen=True)
class Adjudication:
    event_id: str
    decision: str  # "confirmed" (the reviewer judges it the subject) or "rejected" (a false alert)
    reviewer: str
    reason: str
    engaged: bool | None  # whether officers engaged the person; None when not recorded
    at: datetime

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ConfigError(f"decision {self.decision!r} is not one of {DECISIONS}", "use --decision confirmed or --decision rejected")
        try:
            check_reviewer(self.reviewer)
        except IdentifierError as exc:
            raise ConfigError(f"{exc.message}: not a valid reviewer id", "use an id like PC1234 or officer:PC1234") from None
        check_reason(self.reason, "an adjudication", "e.g. --reason 'face and tattoo match custody image'")


def check_reason(reason: str, what: str, example: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{what} needs a reason", example)
    if len(reason) > MAX_REASON:
        raise ConfigError(f"{what}'s reason is over {MAX_REASON} characters", "summarise; attach detail in the case system")
    return reason


def adjudicate(store: AlertStore, adjudication: Adjudication, audit: AuditSink, actor: str | None = None) -> None:
    store.record_adjudication(
        adjudication.event_id, adjudication.decision, adjudication.reviewer, adjudication.reason, adjudication.engaged, adjudication.at
    )
    audit.append(
        ADJUDICATION_RECORDED,
        {
            "event_id": adjudication.event_id,
            "decision": adjudication.decision,
            "reviewer": adjudication.reviewer,
            "reason": adjudication.reason,
            "engaged": adjudication.engaged,
        },
        actor=actor,
    )


def place_hold(store: AlertStore, event_id: str, reason: str, held_by: str, now: datetime, audit: AuditSink, actor: str | None = None) -> None:
    check_reason(reason, "a legal hold", "e.g. --reason 'evidence in case 23/1234'")
    store.hold(event_id, reason, held_by, now)
    audit.append(LEGAL_HOLD_PLACED, {"event_id": event_id, "reason": reason, "held_by": held_by}, actor=actor)


def release_hold(store: AlertStore, event_id: str, reason: str, released_by: str, now: datetime, audit: AuditSink, actor: str | None = None) -> None:
    check_reason(reason, "releasing a legal hold", "e.g. --reason 'case 23/1234 closed'")
    hold = store.release_hold(event_id, reason, released_by, now)
    audit.append(LEGAL_HOLD_RELEASED, {"event_id": event_id, "reason": reason, "released_by": released_by, "held_since": hold.at}, actor=actor)


def apply_retention(store: AlertStore, now: datetime, retention: timedelta, audit: AuditSink, actor: str | None = None) -> PurgeResult:
    """Delete alerts older than ``retention`` (not held). Every run is audited, even one that deletes nothing."""
    check_retention(retention)
    result = store.purge(now, retention)
    audit.append(
        RETENTION_RUN,
        {
            "count": len(result.deleted),
            "event_ids": result.deleted,
            "retention_days": retention / timedelta(days=1),
            "replay_memory_forgotten": result.forgotten,
            "replay_horizon": result.replay_horizon,
        },
        actor=actor,
    )
    return result


def read_crop(store: AlertStore, event_id: str, control_room_key: X25519PrivateKey) -> bytes:
    """The alert's probe crop, decrypted in memory (for the console's review view, which audits the view)."""
    event = AlertEvent.from_dict(parse_payload(store.payload(event_id)))
    return open_crop(event.crop_sealed, control_room_key, event.event_id)


def export_crop(store: AlertStore, event_id: str, control_room_key: X25519PrivateKey, out: Path, audit: AuditSink,
                actor: str | None = None) -> str:
    """Write an adjudicated alert's decrypted crop to a new 0600 file; refused while pending.

    A reviewer looks at the crop inside the control room in order to decide; a file leaves it,
    so it is for evidence after the decision only (policing.md 11). Returns the file's SHA-256.
    """
    alert = store.alert(event_id)
    if alert.status == PENDING:
        raise StoreError(f"alert {event_id} is not adjudicated yet: its crop cannot be exported",
                         "review it in the console (edge-agent control-room serve) and record a decision first")
    out = Path(out)
    jpeg = read_crop(store, event_id, control_room_key)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory", "give a file name, e.g. --out crop.jpg")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{out} already exists", "choose a new file name; an export never overwrites") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}", "check the folder exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(jpeg)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        out.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {out}: {exc.strerror}", "free disk space and try again") from None
    digest = hashlib.sha256(jpeg).hexdigest()
    try:
        audit.append(CROP_EXPORTED, {"event_id": event_id, "path": str(out.resolve()), "sha256": digest, "status": alert.status}, actor=actor)
    except BaseException:
        out.unlink(missing_ok=True)  # an export that cannot be audited does not stay
        raise
    return digest


__all__ = [
    "Adjudication", "adjudicate", "place_hold", "release_hold", "apply_retention", "export_crop", "read_crop", "DECISIONS", "StoreError",
]
