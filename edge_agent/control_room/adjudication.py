"""A person's decision on an alert, legal holds, and retention: the only ways an alert's state changes.

An alert is advisory until adjudicated (policing.md 11): the decision, reviewer, reasons and
outcome (engaged or not) are recorded append-only and audited. Alerts are deleted after the
retention period (at most 31 days, policing.md 13) unless a legal hold with a reason is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from edge_agent.control_room.store import AlertStore, StoreError
from edge_agent.errors import ConfigError
from edge_agent.identifiers import IdentifierError, check_retention, check_reviewer

DECISIONS = ("confirmed", "rejected")


class AuditSink(Protocol):
    def append(self, kind: str, details: dict[str, Any]) -> Any: ...


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
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ConfigError("an adjudication needs a reason", "say why, e.g. --reason 'face and tattoo match custody image'")
        if len(self.reason) > 1000:
            raise ConfigError("adjudication reason is over 1000 characters", "summarise; attach detail in the case system")


def adjudicate(store: AlertStore, adjudication: Adjudication, audit: AuditSink | None = None) -> None:
    store.record_adjudication(
        adjudication.event_id, adjudication.decision, adjudication.reviewer, adjudication.reason, adjudication.engaged, adjudication.at
    )
    if audit is not None:
        audit.append(
            "adjudication_received",
            {
                "event_id": adjudication.event_id,
                "decision": adjudication.decision,
                "reviewer": adjudication.reviewer,
                "reason": adjudication.reason,
                "engaged": adjudication.engaged,
            },
        )


def place_hold(store: AlertStore, event_id: str, reason: str, held_by: str, now: datetime, audit: AuditSink | None = None) -> None:
    if not reason.strip():
        raise ConfigError("a legal hold needs a reason", "e.g. --reason 'evidence in case 23/1234'")
    store.hold(event_id, reason, held_by, now)
    if audit is not None:
        audit.append("legal_hold_placed", {"event_id": event_id, "reason": reason, "held_by": held_by})


def apply_retention(
    store: AlertStore, now: datetime, retention: timedelta, replay_window: timedelta, audit: AuditSink | None = None
) -> list[str]:
    """Delete alerts older than ``retention`` (not held). Returns deleted ids, audited as one record."""
    check_retention(retention)
    deleted = store.purge(now, retention, replay_window)
    if deleted and audit is not None:
        audit.append("alerts_deleted_retention", {"count": len(deleted), "event_ids": deleted, "retention_days": retention / timedelta(days=1)})
    return deleted


__all__ = ["Adjudication", "adjudicate", "place_hold", "apply_retention", "DECISIONS", "StoreError"]
