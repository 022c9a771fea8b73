"""One alert that cannot be stored must not drop the others (issue 10.9), and a full disk must
not end the agent: alerts wait and are retried, the failure is reported and audited."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from edge_agent.agent.pipeline import MAX_WAITING_ALERTS, MatchingPipeline, _PendingAlert
from edge_agent.agent.storage_health import ALERTS_HELD, ALERTS_NOT_STORED, OK, StorageHealth
from edge_agent.agent.tracking import AlertGate
from edge_agent.audit.log import AuditLog
from edge_agent.events.builder import MatchDecision
from edge_agent.events.schema import Candidate, EventFormatError
from edge_agent.events.spool import SpoolError

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


class ActiveWatchlist:
    def active(self, now):
        return True


class FlakySpool:
    """Stands in for outbox.raise_alert: refuses alerts while ``full`` (SQLITE_FULL)."""

    def __init__(self) -> None:
        self.full = False
        self.stored: list[str] = []
        self.bad: set[str] = set()

    def raise_alert(self, decision, crop, captured_at):
        if decision.subject_ref in self.bad:
            raise EventFormatError(f"subject {decision.subject_ref} cannot be encoded", "fix the watchlist")
        if self.full:
            raise SpoolError("spool is full (disk or database limit): the new alert was NOT stored", "free disk space")
        self.stored.append(decision.subject_ref)


def pending(ref: str) -> _PendingAlert:
    return _PendingAlert(MatchDecision(ref, "suspect", 0.8, 0.6, (Candidate(ref, 0.8),), (0, 0, 10, 10)), b"\xff\xd8c\xff\xd9", NOW)


def pipeline_with(spool: FlakySpool, failures: list) -> MatchingPipeline:
    gate = AlertGate(settle_s=0.0, cooldown_s=0.0)
    return MatchingPipeline(None, ActiveWatchlist(), 0.6, spool.raise_alert, lambda: NOW, gate=gate,
                            on_alert_failure=lambda exc, waiting: failures.append((exc.message, waiting)))


def test_a_refused_alert_keeps_it_and_every_later_one_for_a_retry():
    spool, failures = FlakySpool(), []
    pipe = pipeline_with(spool, failures)
    for track, ref in enumerate(["s-1", "s-2", "s-3"]):
        pipe.gate.offer(track, pending(ref), 0.0)
    spool.full = True
    assert pipe.finish() == 0  # used to raise on the first and drop the other two
    assert pipe.counters.alerts_waiting == 3 and failures and failures[-1][1] == 3
    spool.full = False
    assert pipe.finish() == 3
    assert spool.stored == ["s-1", "s-2", "s-3"]
    assert pipe.counters.alerts == 3 and pipe.counters.alerts_waiting == 0 and pipe.counters.alerts_not_stored == 0


def test_an_alert_that_cannot_be_built_is_given_up_alone():
    spool, failures = FlakySpool(), []
    spool.bad = {"s-2"}
    pipe = pipeline_with(spool, failures)
    for track, ref in enumerate(["s-1", "s-2", "s-3"]):
        pipe.gate.offer(track, pending(ref), 0.0)
    assert pipe.finish() == 2
    assert spool.stored == ["s-1", "s-3"] and pipe.counters.alerts_not_stored == 1
    assert "s-2" in failures[0][0]


def test_waiting_alerts_are_bounded_and_counted():
    spool, failures = FlakySpool(), []
    spool.full = True
    pipe = pipeline_with(spool, failures)
    for track in range(MAX_WAITING_ALERTS + 5):
        pipe.gate.offer(track, pending(f"s-{track}"), 0.0)
    pipe.finish()
    assert pipe.counters.alerts_waiting == MAX_WAITING_ALERTS and pipe.counters.alerts_not_stored == 5
    spool.full = False
    assert pipe.finish() == MAX_WAITING_ALERTS
    assert spool.stored[0] == "s-5", "the oldest were given up, newest kept"


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, text: str) -> None:
        self.lines.append(text)


class Outbox:
    def __init__(self) -> None:
        self.held = 0

    def complete_audits(self) -> int:
        return self.held


def test_storage_health_reports_and_audits_each_change_of_state(tmp_path):
    log = AuditLog.open(tmp_path / "audit.log", None, "device:cam-01")
    notes, outbox = Notes(), Outbox()
    health = StorageHealth(log, outbox, notes, "matching for deployment D")
    assert health.state == OK
    health.alert_failed(SpoolError("spool is full", "free disk space"), 2)
    assert health.state == ALERTS_NOT_STORED and "spool is full" in notes.lines[-1]
    health.alert_failed(SpoolError("spool is full", "free disk space"), 3)  # same state: no new record
    outbox.held = 1
    health.tick(0)
    assert health.state == ALERTS_HELD
    outbox.held = 0
    health._next_retry = 0.0
    health.tick(0)
    assert health.state == OK and notes.lines[-1] == "matching for deployment D"
    log.close()
    kinds = [(r["kind"], r["details"].get("state")) for r in map(json.loads, (tmp_path / "audit.log").read_text().splitlines())]
    assert kinds == [("storage_failed", ALERTS_NOT_STORED), ("storage_failed", ALERTS_HELD), ("storage_recovered", None)]
