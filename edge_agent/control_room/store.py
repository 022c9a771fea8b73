"""Control-room alert store (SQLite, WAL, synchronous=FULL).

Tables: ``alerts`` (accepted, verified alerts; the signed payload kept as evidence, the crop
still sealed so the face is encrypted at rest), ``adjudications`` (append-only reviewer
decisions), ``holds`` (legal holds that stop retention deletion), ``seen`` (event id and
device sequence of everything accepted — the replay/duplicate memory, which outlives the alert
itself until the acceptance window has passed) and ``rejections`` (what was refused and why,
without the payload).

Every accepted alert starts as ``pending_review``: nothing is actionable before a person
adjudicates it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeAgentError
from edge_agent.events.schema import AlertEvent, format_time

STORE_SCHEMA_VERSION = 1
PENDING = "pending_review"
STATUSES = (PENDING, "confirmed", "rejected")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deployment_id TEXT NOT NULL,
    watchlist_version TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    category TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    model TEXT NOT NULL,
    face_box TEXT NOT NULL,
    candidates TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    crop_sha256 TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending_review', 'confirmed', 'rejected')),
    UNIQUE (device_id, seq)
);
CREATE TABLE IF NOT EXISTS adjudications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'rejected')),
    reviewer TEXT NOT NULL,
    reason TEXT NOT NULL,
    engaged INTEGER,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holds (
    event_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    held_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    captured_at TEXT NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    claimed_device TEXT,
    event_id TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL
);
"""


class StoreError(EdgeAgentError):
    """The alert store cannot be read or written, or an operation on it is not allowed."""


class DuplicateAlert(StoreError):
    """The event id (``duplicate_event``) or the device's sequence number (``seq_reused``) was seen before."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, "duplicates are expected after reconnects and are dropped")
        self.reason = reason


@dataclass(frozen=True)
class StoredAlert:
    event_id: str
    device_id: str
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


@dataclass(frozen=True)
class Rejection:
    received_at: str
    topic: str
    claimed_device: str | None
    event_id: str | None
    reason: str
    detail: str
    payload_sha256: str


_ALERT_COLUMNS = (
    "a.event_id, a.device_id, a.seq, a.deployment_id, a.watchlist_version, a.subject_ref, a.category, a.score, a.threshold, "
    "a.model, a.face_box, a.candidates, a.captured_at, a.received_at, a.crop_sha256, a.status, h.reason"
)


class AlertStore:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only`` opens an existing store without writing to it (reports on an evidence copy)."""
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if read_only:
                if not self.path.is_file():
                    raise StoreError(f"alert store {self.path} does not exist", "give the control room's alerts.db (or a copy of it)")
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(STORE_SCHEMA_VERSION),))
            version = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"alert store {self.path} cannot be opened: {exc}", "check the path, disk and permissions") from None
        if version != str(STORE_SCHEMA_VERSION):
            raise StoreError(f"alert store {self.path} has schema version {version}", f"this tool reads version {STORE_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db, self._lock, self.path)

    # ---- intake -----------------------------------------------------------------------------
    def add_alert(self, event: AlertEvent, payload: bytes, crop_sha256: str, received_at: datetime) -> None:
        """Store a verified alert as pending_review; DuplicateAlert if its id or (device, seq) was seen."""
        with self._tx() as db:
            row = db.execute("SELECT event_id, seq FROM seen WHERE event_id=? OR (device_id=? AND seq=?)", (event.event_id, event.device_id, event.seq)).fetchone()
            if row is not None:
                if row[0] == event.event_id:
                    raise DuplicateAlert("duplicate_event", f"event {event.event_id} was already received")
                raise DuplicateAlert("seq_reused", f"device {event.device_id} already sent seq {event.seq} as event {row[0]}")
            db.execute("INSERT INTO seen VALUES (?,?,?,?)", (event.event_id, event.device_id, event.seq, event.captured_at_text))
            db.execute(
                "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    event.event_id,
                    event.device_id,
                    event.seq,
                    event.deployment_id,
                    event.watchlist_version,
                    event.subject_ref,
                    event.category,
                    event.score,
                    event.threshold,
                    json.dumps(event.model, sort_keys=True),
                    json.dumps(list(event.face_box)),
                    json.dumps([c.as_dict() for c in event.candidates]),
                    event.captured_at_text,
                    format_time(received_at),
                    crop_sha256,
                    payload,
                    PENDING,
                ),
            )

    def add_rejection(self, rejection: Rejection) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rejections (received_at, topic, claimed_device, event_id, reason, detail, payload_sha256) VALUES (?,?,?,?,?,?,?)",
                (rejection.received_at, rejection.topic, rejection.claimed_device, rejection.event_id, rejection.reason, rejection.detail, rejection.payload_sha256),
            )

    def quarantine(self, received_at: str, topic: str, payload: bytes) -> None:
        """Keep a message that hit an internal error, so it can be re-checked after a fix."""
        with self._tx() as db:
            db.execute("INSERT INTO quarantine (received_at, topic, payload) VALUES (?,?,?)", (received_at, topic, payload))

    def quarantined(self) -> list[tuple[str, str, bytes]]:
        with self._lock:
            return [(r, t, bytes(p)) for r, t, p in self._db.execute("SELECT received_at, topic, payload FROM quarantine ORDER BY id")]

    # ---- review -----------------------------------------------------------------------------
    def alerts(self, status: str | None = None) -> list[StoredAlert]:
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts a LEFT JOIN holds h ON h.event_id = a.event_id"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE a.status = ?"
            args = (status,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY a.captured_at, a.device_id, a.seq", args).fetchall()
        return [_alert(r) for r in rows]

    def alert(self, event_id: str) -> StoredAlert:
        with self._lock:
            row = self._db.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts a LEFT JOIN holds h ON h.event_id = a.event_id WHERE a.event_id=?", (event_id,)).fetchone()
        if row is None:
            raise StoreError(f"no alert {event_id} in {self.path}", "list alerts with: edge-agent control-room alerts")
        return _alert(row)

    def payload(self, event_id: str) -> bytes:
        """The signed event exactly as received (evidence; its crop is still sealed)."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM alerts WHERE event_id=?", (event_id,)).fetchone()
        if row is None:
            raise StoreError(f"no alert {event_id} in {self.path}", "list alerts with: edge-agent control-room alerts")
        return bytes(row[0])

    def rejections(self) -> list[Rejection]:
        with self._lock:
            rows = self._db.execute("SELECT received_at, topic, claimed_device, event_id, reason, detail, payload_sha256 FROM rejections ORDER BY id").fetchall()
        return [Rejection(*r) for r in rows]

    def record_adjudication(self, event_id: str, decision: str, reviewer: str, reason: str, engaged: bool | None, at: datetime) -> None:
        with self._tx() as db:
            row = db.execute("SELECT status FROM alerts WHERE event_id=?", (event_id,)).fetchone()
            if row is None:
                raise StoreError(f"no alert {event_id} to adjudicate", "list alerts with: edge-agent control-room alerts")
            if row[0] != PENDING:
                raise StoreError(f"alert {event_id} was already adjudicated ({row[0]})", "adjudications are final and append-only; record a new note elsewhere")
            db.execute(
                "INSERT INTO adjudications (event_id, decision, reviewer, reason, engaged, at) VALUES (?,?,?,?,?,?)",
                (event_id, decision, reviewer, reason, None if engaged is None else int(engaged), format_time(at)),
            )
            db.execute("UPDATE alerts SET status=? WHERE event_id=?", (decision, event_id))

    def adjudications(self, event_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT decision, reviewer, reason, engaged, at FROM adjudications WHERE event_id=? ORDER BY id", (event_id,)).fetchall()
        return [{"decision": d, "reviewer": r, "reason": why, "engaged": None if e is None else bool(e), "at": at} for d, r, why, e, at in rows]

    def hold(self, event_id: str, reason: str, held_by: str, at: datetime) -> None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM alerts WHERE event_id=?", (event_id,)).fetchone() is None:
                raise StoreError(f"no alert {event_id} to hold", "it may already have been deleted by retention")
            db.execute("INSERT OR REPLACE INTO holds VALUES (?,?,?,?)", (event_id, reason, held_by, format_time(at)))

    # ---- retention --------------------------------------------------------------------------
    def purge(self, now: datetime, retention: timedelta, replay_window: timedelta) -> list[str]:
        """Delete alerts captured before ``now - retention`` unless held; forget dedupe entries and
        rejections older than the window/retention. Returns the deleted alert ids."""
        cutoff = format_time(now - retention)
        seen_cutoff = format_time(now - max(replay_window, retention))
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT event_id FROM alerts WHERE captured_at < ? AND event_id NOT IN (SELECT event_id FROM holds) ORDER BY captured_at", (cutoff,)
            )]
            db.executemany("DELETE FROM alerts WHERE event_id=?", [(i,) for i in ids])
            db.execute("DELETE FROM seen WHERE captured_at < ? AND event_id NOT IN (SELECT event_id FROM alerts)", (seen_cutoff,))
            db.execute("DELETE FROM rejections WHERE received_at < ?", (cutoff,))
            db.execute("DELETE FROM quarantine WHERE received_at < ?", (cutoff,))
        return ids


def _alert(row: tuple[Any, ...]) -> StoredAlert:
    (event_id, device_id, seq, deployment_id, wl, subject_ref, category, score, threshold, model, box, cands, captured_at, received_at, crop_sha, status, hold) = row
    return StoredAlert(
        event_id, device_id, int(seq), deployment_id, wl, subject_ref, category, float(score), float(threshold),
        json.loads(model), json.loads(box), json.loads(cands), captured_at, received_at, crop_sha, status, hold,
    )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the store lock; rollback on any error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, path: Path) -> None:
        self._db, self._lock, self._path = db, lock, path

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._lock.release()
            raise StoreError(f"alert store {self._path} is not writable: {exc}", "check disk space and permissions") from None
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        try:
            if exc_type is None:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as err:
                    self._db.execute("ROLLBACK")
                    raise StoreError(f"alert store {self._path} write failed: {err}", "check disk space; the message was not acknowledged") from None
            else:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"alert store {self._path} write failed: {exc}", "check disk space; the message was not acknowledged") from None
        finally:
            self._lock.release()
        return False

