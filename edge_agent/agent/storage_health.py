"""Whether the agent can still store alerts, said once to systemd, telemetry and the audit log.

A full disk (or a spool or audit log that cannot be written) must not end the agent (issue 11):
matching goes on, alerts the spool refuses wait in memory and are retried (agent/pipeline.py),
alerts stored without their audit record are held back until it is written (events/outbox.py),
and everything already accepted stays in the spool. This module turns those facts into one
health state, reported as systemd ``STATUS=`` and in telemetry, and audits each change of state
(when the audit log can be written at all).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

OK = "ok"
ALERTS_NOT_STORED = "alerts_not_stored"  # the spool refuses new alerts; they wait in memory
ALERTS_HELD = "alerts_held_unaudited"  # stored, but not sent until their audit record is written
AUDIT_UNWRITABLE = "audit_unwritable"  # other audit records (counts, summaries) cannot be written
STATES = (OK, ALERTS_NOT_STORED, ALERTS_HELD, AUDIT_UNWRITABLE)
RETRY_S = 1.0


class Audit(Protocol):
    def append(self, kind: str, details: dict[str, Any]) -> Any: ...


class Outbox(Protocol):
    def complete_audits(self) -> int: ...


class Status(Protocol):
    def status(self, text: str) -> None: ...


@dataclass(frozen=True)
class HealthReport:
    state: str
    alerts_waiting: int  # not stored yet (in memory)
    alerts_unaudited: int  # stored, held back
    detail: str


class StorageHealth:
    def __init__(self, audit: Audit, outbox: Outbox, notifier: Status, ok_status: str = "matching") -> None:
        self._audit = audit
        self._outbox = outbox
        self._notifier = notifier
        self._ok_status = ok_status
        self._waiting = 0
        self._unaudited = 0
        self._audit_broken = ""
        self._detail = ""
        self._reported = OK
        self._next_retry = 0.0

    def alert_failed(self, exc: EdgeAgentError, waiting: int) -> None:
        """MatchingPipeline's on_alert_failure hook."""
        self._waiting = waiting
        self._detail = exc.message
        self._update()

    def safe_append(self, kind: str, details: dict[str, Any]) -> bool:
        """An audit record the agent can live without for a while (counts, summaries): a failure
        is reported as health, not raised."""
        try:
            self._audit.append(kind, details)
        except EdgeAgentError as exc:
            self._audit_broken = exc.message
            self._detail = exc.message
            self._update()
            return False
        if self._audit_broken:
            self._audit_broken = ""
            self._update()
        return True

    def tick(self, alerts_waiting: int) -> None:
        """Called from the frame loop: retry held alerts' audit records, notice recovery."""
        self._waiting = alerts_waiting
        now = time.monotonic()
        if now >= self._next_retry:
            self._next_retry = now + RETRY_S
            self._unaudited = self._outbox.complete_audits()
        self._update()

    @property
    def state(self) -> str:
        if self._waiting:
            return ALERTS_NOT_STORED
        if self._unaudited:
            return ALERTS_HELD
        if self._audit_broken:
            return AUDIT_UNWRITABLE
        return OK

    def report(self) -> HealthReport:
        return HealthReport(self.state, self._waiting, self._unaudited, self._detail if self.state != OK else "")

    def _update(self) -> None:
        state = self.state
        if state == self._reported:
            return
        previous, self._reported = self._reported, state
        if state == OK:
            log.warning("alerts are stored again (was %s)", previous)
            self._notifier.status(self._ok_status)
            self._record("storage_recovered", {"was": previous})
        else:
            text = f"{state}: {self._detail} ({self._waiting} alerts waiting in memory, {self._unaudited} held unaudited); free disk space"
            log.error("%s", text)
            self._notifier.status(text[:200])
            self._record("storage_failed", {"state": state, "reason": self._detail[:300], "alerts_waiting": self._waiting, "alerts_unaudited": self._unaudited})

    def _record(self, kind: str, details: dict[str, Any]) -> None:
        try:
            self._audit.append(kind, details)
        except EdgeAgentError:
            pass  # the log itself may be what is full; the state is in telemetry and systemd STATUS
