"""Control-room alert store: SQLite (WAL, synchronous=FULL) by default, PostgreSQL when configured.

Tables (edge_agent.control_room.schema): ``alerts`` (accepted, verified alerts; the signed payload
kept as evidence, the crop still sealed so the face is encrypted at rest), ``adjudications``
(append-only reviewer decisions), ``holds`` and ``hold_history`` (legal holds stop retention
deletion; a hold is never overwritten, only released), ``seen`` (the replay memory: event id and
``(device_id, spool_epoch, seq)`` of everything accepted, kept after the alert is purged for as
long as an event could still be accepted) and ``rejections`` (what was refused and why, without
the payload).

Every accepted alert starts as ``pending_review``: nothing is actionable before a person
adjudicates it (policing.md 11).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.control_room.db import Database, StoreError, UniqueViolation, open_database
from edge_agent.control_room.schema import STORE_SCHEMA_VERSION, ensure_schema
from edge_agent.events.schema import AlertEvent, format_time
from edge_agent.identifiers import MAX_RETENTION

PENDING = "pending_review"
STATUSES = (PENDING, "confirmed", "rejected")
#: Used when no intake has recorded its acceptance window in this store yet.
DEFAULT_ACCEPT_WINDOW = MAX_RETENTION + timedelta(minutes=5)  # the default max age and clock-skew allowance
_INTAKE_LOCK = "edge-agent intake"  # intake and purge exclude each other around the replay horizon


class DuplicateAlert(StoreError):
    """The event id (``duplicate_event``) or the device's sequence (``seq_reused``) was seen before,
    or the event is older than the replay memory (``out_of_window``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, "duplicates are expected after reconnects and are dropped")
        self.reason = reason


@dataclass(frozen=True)
class StoredAlert:
    event_id: str
    device_id: str
    spool_epoch: str
    seq: int
    deployment_id: str
    watchlist_version: str
    subject_ref: str
    category: str
    score: float
    threshold: float
    model: dict[str, str]
    face_box: list[int]
    candidates: list[dict[str, Any]]
    captured_at: str
    received_at: str
    crop_sha256: str
    status: str
    hold_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def queue_dict(self) -> dict[str, Any]:
        """What a review queue needs, and no more: which subject, which candidates and where the
        face was stay inside the control room's audited review until a person decides."""
        return {k: getattr(self, k) for k in QUEUE_FIELDS}


#: The fields of an alert shown before adjudication (queue, ``alerts --json``).
QUEUE_FIELDS = ("event_id", "device_id", "deployment_id", "captured_at", "received_at", "score", "category", "status", "hold_reason")


@dataclass(frozen=True)
class Rejection:
    received_at: str
    topic: str
    claimed_device: str | None
    event_id: str | None
    reason: str
    detail: str
    payload_sha256: str


@dataclass(frozen=True)
class Hold:
    event_id: str
    reason: str
    held_by: str
    at: str


@dataclass(frozen=True)
class PurgeResult:
    deleted: list[str]  # alert ids deleted at retention
    forgotten: int  # replay-memory entries dropped (their events can no longer be accepted)
    replay_horizon: str  # events captured before this are refused from now on


_ALERT_COLUMNS = (
    "a.event_id, a.device_id, a.spool_epoch, a.seq, a.deployment_id, a.watchlist_version, a.subject_ref, a.category, a.score, "
    "a.threshold, a.model, a.face_box, a.candidates, a.captured_at, a.received_at, a.crop_sha256, a.status, h.reason"
)
_ALERT_FROM = "FROM alerts a LEFT JOIN holds h ON h.event_id = a.event_id"


def event_epoch(event: AlertEvent) -> str:
    """The spool epoch an event carries (lfr.alert/2); ``''`` for v1 events, which carry none."""
    return str(getattr(event, "spool_epoch", "") or "")


class AlertStore:
    def __init__(self, location: str | Path, read_only: bool = False) -> None:
        """``location``: a SQLite path or a ``postgresql://`` URL. ``read_only`` opens an existing
        store without writing to it or beside it (reports on an evidence copy)."""
        self.db: Database = open_database(location, read_only)
        self.path = location
        self.location = self.db.location
        try:
            ensure_schema(self.db)
        except BaseException:
            self.db.close()
            raise

    schema_version = STORE_SCHEMA_VERSION

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- intake -----------------------------------------------------------------------------
    def add_alert(self, event: AlertEvent, payload: bytes, crop_sha256: str, received_at: datetime) -> None:
        """Store a verified alert as pending_review. DuplicateAlert if its id or (device, epoch, seq)
        was seen, or if it predates the replay memory (it could be a replay we no longer remember)."""
        epoch = event_epoch(event)
        for _attempt in range(2):
            try:
                with self.db.write(lock_key=_INTAKE_LOCK) as tx:
                    _check_new(tx, event, epoch)
                    tx.run("INSERT INTO seen (event_id, device_id, spool_epoch, seq, captured_at) VALUES (?,?,?,?,?)",
                           (event.event_id, event.device_id, epoch, event.seq, event.captured_at_text))
                    tx.run(
                        "INSERT INTO alerts (event_id, device_id, spool_epoch, seq, deployment_id, watchlist_version, subject_ref, category, "
                        "score, threshold, model, face_box, candidates, captured_at, received_at, crop_sha256, payload, status) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            event.event_id, event.device_id, epoch, event.seq, event.deployment_id, event.watchlist_version,
                            event.subject_ref, event.category, event.score, event.threshold, json.dumps(event.model, sort_keys=True),
                            json.dumps(list(event.face_box)), json.dumps([c.as_dict() for c in event.candidates]),
                            event.captured_at_text, format_time(received_at), crop_sha256, payload, PENDING,
                        ),
                    )
                return
            except UniqueViolation:
                continue  # another listener stored it between our check and insert: classify it again
        raise StoreError(f"event {event.event_id} collides in the store but matches no earlier event", "this is a bug; the message was not acknowledged")

    def record_accept_window(self, window: timedelta) -> None:
        """Remember the widest acceptance window (max age + future skew) any intake has used, so a
        purge keeps the replay memory for as long as that intake could still accept an event."""
        seconds = int(window.total_seconds()) + 1
        with self.db.write() as tx:
            row = tx.one("SELECT value FROM meta WHERE key='accept_window_s'")
            if row is None:
                tx.run("INSERT INTO meta (key, value) VALUES ('accept_window_s', ?)", (str(seconds),))
            elif int(row[0]) < seconds:
                tx.run("UPDATE meta SET value=? WHERE key='accept_window_s'", (str(seconds),))

    def accept_window(self) -> timedelta:
        with self.db.read() as tx:
            row = tx.one("SELECT value FROM meta WHERE key='accept_window_s'")
        return DEFAULT_ACCEPT_WINDOW if row is None else timedelta(seconds=int(row[0]))

    def replay_horizon(self) -> str | None:
        """Events captured before this time are refused: the replay memory before it is gone."""
        with self.db.read() as tx:
            row = tx.one("SELECT value FROM meta WHERE key='replay_horizon'")
        return None if row is None else str(row[0])

    def add_rejection(self, rejection: Rejection) -> None:
        with self.db.write() as tx:
            tx.run(
                "INSERT INTO rejections (received_at, topic, claimed_device, event_id, reason, detail, payload_sha256) VALUES (?,?,?,?,?,?,?)",
                (rejection.received_at, rejection.topic, rejection.claimed_device, rejection.event_id, rejection.reason, rejection.detail, rejection.payload_sha256),
            )

    def quarantine(self, received_at: str, topic: str, payload: bytes) -> None:
        """Keep a message that hit an internal error, so it can be re-checked after a fix."""
        with self.db.write() as tx:
            tx.run("INSERT INTO quarantine (received_at, topic, payload) VALUES (?,?,?)", (received_at, topic, payload))

    def quarantined(self) -> list[tuple[str, str, bytes]]:
        with self.db.read() as tx:
            return [(r, t, bytes(p)) for r, t, p in tx.rows("SELECT received_at, topic, payload FROM quarantine ORDER BY id")]

    # ---- review -----------------------------------------------------------------------------
    def alerts(self, status: str | None = None, newest_first: bool = False, limit: int | None = None) -> list[StoredAlert]:
        sql = f"SELECT {_ALERT_COLUMNS} {_ALERT_FROM}"
        args: list[Any] = []
        if status is not None:
            sql += " WHERE a.status = ?"
            args.append(status)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY a.captured_at {order}, a.device_id {order}, a.seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self.db.read() as tx:
            rows = tx.rows(sql, args)
        return [_alert(r) for r in rows]

    def alert(self, event_id: str) -> StoredAlert:
        with self.db.read() as tx:
            row = tx.one(f"SELECT {_ALERT_COLUMNS} {_ALERT_FROM} WHERE a.event_id=?", (event_id,))
        if row is None:
            raise StoreError(f"no alert {event_id} in {self.location}", "list alerts with: edge-agent control-room alerts")
        return _alert(row)

    def payload(self, event_id: str) -> bytes:
        """The signed event exactly as received (evidence; its crop is still sealed)."""
        with self.db.read() as tx:
            row = tx.one("SELECT payload FROM alerts WHERE event_id=?", (event_id,))
        if row is None:
            raise StoreError(f"no alert {event_id} in {self.location}", "list alerts with: edge-agent control-room alerts")
        return bytes(row[0])

    def rejections(self) -> list[Rejection]:
        with self.db.read() as tx:
            rows = tx.rows("SELECT received_at, topic, claimed_device, event_id, reason, detail, payload_sha256 FROM rejections ORDER BY id")
        return [Rejection(*r) for r in rows]

    def record_adjudication(self, event_id: str, decision: str, reviewer: str, reason: str, engaged: bool | None, at: datetime) -> None:
        with self.db.write() as tx:
            row = tx.one("SELECT status FROM alerts WHERE event_id=?", (event_id,))
            if row is None:
                raise StoreError(f"no alert {event_id} to adjudicate", "list alerts with: edge-agent control-room alerts")
            # The status guard in the UPDATE makes a decision final even with several consoles at once.
            if row[0] != PENDING or tx.run("UPDATE alerts SET status=? WHERE event_id=? AND status=?", (decision, event_id, PENDING)) != 1:
                raise StoreError(f"alert {event_id} was already adjudicated ({row[0]})", "adjudications are final and append-only; record a new note elsewhere")
            tx.run(
                "INSERT INTO adjudications (event_id, decision, reviewer, reason, engaged, at) VALUES (?,?,?,?,?,?)",
                (event_id, decision, reviewer, reason, None if engaged is None else int(engaged), format_time(at)),
            )

    def adjudications(self, event_id: str) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            rows = tx.rows("SELECT decision, reviewer, reason, engaged, at FROM adjudications WHERE event_id=? ORDER BY id", (event_id,))
        return [{"decision": d, "reviewer": r, "reason": why, "engaged": None if e is None else bool(e), "at": at} for d, r, why, e, at in rows]

    # ---- legal holds ------------------------------------------------------------------------
    def hold(self, event_id: str, reason: str, held_by: str, at: datetime) -> None:
        """Place a legal hold. An existing hold is never replaced: release it first (both are recorded)."""
        with self.db.write() as tx:
            if tx.one("SELECT 1 FROM alerts WHERE event_id=?", (event_id,)) is None:
                raise StoreError(f"no alert {event_id} to hold", "it may already have been deleted by retention")
            existing = tx.one("SELECT reason, held_by, at FROM holds WHERE event_id=?", (event_id,))
            if existing is not None:
                raise StoreError(
                    f"alert {event_id} is already on legal hold (by {existing[1]} at {existing[2]}: {existing[0]!r})",
                    "a hold is not overwritten; release it with a reason first if it must change",
                )
            tx.run("INSERT INTO holds (event_id, reason, held_by, at) VALUES (?,?,?,?)", (event_id, reason, held_by, format_time(at)))
            tx.run("INSERT INTO hold_history (event_id, action, reason, actor, at) VALUES (?,?,?,?,?)",
                   (event_id, "placed", reason, held_by, format_time(at)))

    def release_hold(self, event_id: str, reason: str, released_by: str, at: datetime) -> Hold:
        """End a legal hold (the alert then falls under retention again); returns the hold released."""
        with self.db.write() as tx:
            row = tx.one("SELECT event_id, reason, held_by, at FROM holds WHERE event_id=?", (event_id,))
            if row is None:
                raise StoreError(f"alert {event_id} has no legal hold to release", "list holds with: edge-agent control-room alerts")
            tx.run("DELETE FROM holds WHERE event_id=?", (event_id,))
            tx.run("INSERT INTO hold_history (event_id, action, reason, actor, at) VALUES (?,?,?,?,?)",
                   (event_id, "released", reason, released_by, format_time(at)))
        return Hold(*row)

    def hold_history(self, event_id: str) -> list[dict[str, str]]:
        with self.db.read() as tx:
            rows = tx.rows("SELECT action, reason, actor, at FROM hold_history WHERE event_id=? ORDER BY id", (event_id,))
        return [{"action": a, "reason": r, "actor": who, "at": at} for a, r, who, at in rows]

    # ---- retention --------------------------------------------------------------------------
    def purge(self, now: datetime, retention: timedelta) -> PurgeResult:
        """Delete alerts captured before ``now - retention`` unless held, with their rejections and
        quarantined messages. Replay memory is kept for the widest acceptance window any intake
        recorded; what is forgotten moves the replay horizon, before which events are refused."""
        cutoff = format_time(now - retention)
        horizon = format_time(now - self.accept_window())
        with self.db.write(lock_key=_INTAKE_LOCK) as tx:
            ids = [r[0] for r in tx.rows(
                "SELECT event_id FROM alerts WHERE captured_at < ? AND event_id NOT IN (SELECT event_id FROM holds) ORDER BY captured_at", (cutoff,)
            )]
            tx.many("DELETE FROM adjudications WHERE event_id=?", [(i,) for i in ids])
            tx.many("DELETE FROM alerts WHERE event_id=?", [(i,) for i in ids])
            row = tx.one("SELECT value FROM meta WHERE key='replay_horizon'")
            if row is None:
                tx.run("INSERT INTO meta (key, value) VALUES ('replay_horizon', ?)", (horizon,))
            elif str(row[0]) < horizon:
                tx.run("UPDATE meta SET value=? WHERE key='replay_horizon'", (horizon,))
            else:
                horizon = str(row[0])
            forgotten = tx.run("DELETE FROM seen WHERE captured_at < ? AND event_id NOT IN (SELECT event_id FROM alerts)", (horizon,))
            tx.run("DELETE FROM rejections WHERE received_at < ?", (cutoff,))
            tx.run("DELETE FROM quarantine WHERE received_at < ?", (cutoff,))
        return PurgeResult(ids, max(0, forgotten), horizon)


def _check_new(tx: Any, event: AlertEvent, epoch: str) -> None:
    horizon = tx.one("SELECT value FROM meta WHERE key='replay_horizon'")
    if horizon is not None and event.captured_at_text < str(horizon[0]):
        raise DuplicateAlert("out_of_window", f"captured {event.captured_at_text}, before the replay memory's horizon {horizon[0]}")
    row = tx.one("SELECT event_id FROM seen WHERE event_id=?", (event.event_id,))
    if row is not None:
        raise DuplicateAlert("duplicate_event", f"event {event.event_id} was already received")
    row = tx.one("SELECT event_id FROM seen WHERE device_id=? AND spool_epoch=? AND seq=?", (event.device_id, epoch, event.seq))
    if row is not None:
        where = f" (spool epoch {epoch})" if epoch else ""
        raise DuplicateAlert("seq_reused", f"device {event.device_id} already sent seq {event.seq}{where} as event {row[0]}")


def _alert(row: tuple[Any, ...]) -> StoredAlert:
    (event_id, device_id, epoch, seq, deployment_id, wl, subject_ref, category, score, threshold, model, box, cands,
     captured_at, received_at, crop_sha, status, hold) = row
    return StoredAlert(
        event_id, device_id, epoch, int(seq), deployment_id, wl, subject_ref, category, float(score), float(threshold),
        json.loads(model), json.loads(box), json.loads(cands), captured_at, received_at, crop_sha, status, hold,
    )


__all__ = ["AlertStore", "StoredAlert", "Rejection", "Hold", "PurgeResult", "StoreError", "DuplicateAlert", "PENDING", "STATUSES", "QUEUE_FIELDS"]
