"""The agent's one call for raising an alert: build, sign, seal, spool durably, audit, wake the publisher.

When ``raise_alert`` returns, the alert is committed to disk and will be delivered (or, if the
spool's bounds force it out, dropped with an audit record) — it is never lost silently.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from edge_agent.events.builder import EventBuilder, MatchDecision
from edge_agent.events.schema import GENESIS_HASH, AlertEvent, AuditHead
from edge_agent.events.signing import encode_event
from edge_agent.events.spool import Spool, SpoolDrop


class AuditSink(Protocol):
    def append(self, kind: str, details: dict[str, Any]) -> Any: ...

    def head(self) -> tuple[int, str]: ...


def audit_spool_drop(audit: AuditSink) -> Callable[[SpoolDrop], None]:
    """An ``on_drop`` handler for Spool that writes one ``spool_dropped`` audit record per drop."""

    def record(drop: SpoolDrop) -> None:
        audit.append("spool_dropped", {"reason": drop.reason, "count": len(drop.event_ids), "first_seq": min(drop.seqs), "last_seq": max(drop.seqs), "event_ids": list(drop.event_ids)})

    return record


class AlertOutbox:
    def __init__(self, builder: EventBuilder, spool: Spool, audit: AuditSink | None = None, notify: Callable[[], None] | None = None) -> None:
        self.builder = builder
        self.spool = spool
        self._audit = audit
        self._notify = notify

    def raise_alert(self, decision: MatchDecision, crop_jpeg: bytes, captured_at: datetime) -> AlertEvent:
        built: list[AlertEvent] = []

        def make(seq: int) -> tuple[str, bytes]:
            event = self.builder.build(decision, crop_jpeg, captured_at, seq, spool_epoch=self.spool.epoch, audit_head=self._audit_head())
            built.append(event)
            return event.event_id, encode_event(event)

        self.spool.append(make)
        event = built[-1]
        if self._audit is not None:
            # Identifiers and scores only: the audit log never holds biometric data.
            self._audit.append(
                "alert_raised",
                {
                    "event_id": event.event_id,
                    "seq": event.seq,
                    "deployment_id": event.deployment_id,
                    "watchlist_version": event.watchlist_version,
                    "subject_ref": event.subject_ref,
                    "category": event.category,
                    "score": event.score,
                    "threshold": event.threshold,
                    "captured_at": event.captured_at_text,
                },
            )
        if self._notify is not None:
            self._notify()
        return event

    def _audit_head(self) -> AuditHead:
        """The audit chain's head as the alert is committed (an empty chain without a log)."""
        if self._audit is None:
            return AuditHead(-1, GENESIS_HASH)
        seq, digest = self._audit.head()
        return AuditHead(seq, digest)
