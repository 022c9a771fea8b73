"""The agent's one call for raising an alert: build, sign, seal, spool durably, audit, wake the publisher.

When ``raise_alert`` returns, the alert is committed to disk and will be delivered (or, if the
spool's bounds force it out, dropped with an audit record) — it is never lost silently.

Spooling and auditing are one durable step (issue 11): the row is committed hidden from the
publisher, the ``alert_raised`` record is written, then the row is released. If the agent dies
in between, or the audit record cannot be written (disk full), the alert waits in the spool
unsent and ``complete_audits`` (run at start-up and before every new alert) writes its record
(``"recovered": true``) and releases it, so an alert never leaves the device unaudited.
``health()`` says whether alerts are waiting for their audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from edge_agent.errors import EdgeAgentError
from edge_agent.events.builder import EventBuilder, MatchDecision
from edge_agent.events.schema import GENESIS_HASH, AlertEvent, AuditHead, parse_payload
from edge_agent.events.signing import encode_event
from edge_agent.events.spool import Spool, SpoolDrop

log = logging.getLogger(__name__)


class AuditSink(Protocol):
    def append(self, kind: str, details: dict[str, Any]) -> Any: ...

    def head(self) -> tuple[int, str]: ...


def audit_spool_drop(audit: AuditSink) -> Callable[[SpoolDrop], None]:
    """An ``on_drop`` handler for Spool that writes one ``spool_dropped`` audit record per drop."""

    def record(drop: SpoolDrop) -> None:
        audit.append("spool_dropped", {"reason": drop.reason, "count": len(drop.event_ids), "first_seq": min(drop.seqs), "last_seq": max(drop.seqs), "event_ids": list(drop.event_ids)})

    return record


def alert_raised_details(event: AlertEvent) -> dict[str, Any]:
    """The ``alert_raised`` audit details: identifiers and scores only, never biometric data."""
    return {
        "event_id": event.event_id,
        "seq": event.seq,
        "deployment_id": event.deployment_id,
        "watchlist_version": event.watchlist_version,
        "subject_ref": event.subject_ref,
        "category": event.category,
        "score": event.score,
        "threshold": event.threshold,
        "captured_at": event.captured_at_text,
    }


@dataclass(frozen=True)
class OutboxHealth:
    """``unaudited``: alerts stored but held back until their audit record is written."""

    unaudited: int
    last_error: str

    @property
    def ok(self) -> bool:
        return self.unaudited == 0


class AlertOutbox:
    def __init__(self, builder: EventBuilder, spool: Spool, audit: AuditSink | None = None, notify: Callable[[], None] | None = None) -> None:
        self.builder = builder
        self.spool = spool
        self._audit = audit
        self._notify = notify
        self._unaudited = 0
        self._last_error = ""
        self.complete_audits()

    def raise_alert(self, decision: MatchDecision, crop_jpeg: bytes, captured_at: datetime) -> AlertEvent:
        """Commit one alert. Raises SpoolError (nothing stored) when the spool cannot take it; once
        it returns, the alert is stored and will be sent as soon as its audit record is written."""
        if self._unaudited:
            self.complete_audits()
        built: list[AlertEvent] = []

        def make(seq: int) -> tuple[str, bytes]:
            event = self.builder.build(decision, crop_jpeg, captured_at, seq, spool_epoch=self.spool.epoch, audit_head=self._audit_head())
            built.append(event)
            return event.event_id, encode_event(event)

        self.spool.append(make, audited=self._audit is None)
        event = built[-1]
        if self._audit is not None:
            if not self._release(event.seq, alert_raised_details(event)):
                self._unaudited += 1
        if self._notify is not None:
            self._notify()
        return event

    def complete_audits(self) -> int:
        """Write the missing audit record of every stored, unreleased alert and release it; returns
        how many are still waiting (the audit log still cannot be written)."""
        if self._audit is None:
            return 0
        waiting = self.spool.unaudited()
        released = 0
        for item in waiting:
            try:
                event = AlertEvent.from_dict(parse_payload(item.payload))
            except EdgeAgentError as exc:  # our own bytes: cannot happen unless the disk corrupted them
                self._last_error = f"spooled alert seq {item.seq} is unreadable: {exc}"
                log.error("%s", self._last_error)
                continue
            if not self._release(item.seq, {**alert_raised_details(event), "recovered": True}):
                break
            released += 1
        self._unaudited = len(waiting) - released
        if released and self._notify is not None:
            self._notify()
        return self._unaudited

    def health(self) -> OutboxHealth:
        return OutboxHealth(self._unaudited, self._last_error)

    def _release(self, seq: int, details: dict[str, Any]) -> bool:
        """Audit, then hand the row to the publisher. False (kept back) if either step fails."""
        if self._audit is None:
            raise RuntimeError("the outbox releases alerts only with an audit log")
        try:
            self._audit.append("alert_raised", details)
            self.spool.mark_audited(seq)
        except EdgeAgentError as exc:
            self._last_error = f"alert seq {seq} is stored but held back: {exc.message}"
            log.error("%s (%s)", self._last_error, exc.hint)
            return False
        self._last_error = ""
        return True
    def _audit_head(self) -> AuditHead:
        """The audit chain's head as the alert is committed (an empty chain without a log)."""
        if self._audit is None:
            return AuditHead(-1, GENESIS_HASH)
        seq, digest = self._audit.head()
        return AuditHead(seq, digest)
