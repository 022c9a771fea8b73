"""Store-and-forward queue for signed alerts: SQLite in WAL mode with synchronous=FULL.

An alert is committed here (signed, crop sealed) before anyone tries to publish it, and its row
is deleted only when the broker acknowledges it (PUBACK). The per-device sequence counter lives
in the same database and is advanced in the same transaction that stores the event, so a crash
can neither lose an accepted event nor reuse a sequence number.

Each spool database draws a random 128-bit epoch when it is created and keeps it for its life;
alerts carry it (``spool_epoch``), so if the spool is lost and recreated, its restarted sequence
numbers are told apart from replays (issue 10.10).

Spooling an alert and auditing it are one durable step (issue 11): a row is committed with
``audited = 0`` and the publisher does not see it until the caller has written its audit record
and marked it (``mark_audited``). A crash between the two leaves an unsent row that the next
start audits first (``unaudited()``), never a sent alert with no audit record.

The queue is bounded by total bytes and by age. When full, the *oldest* undelivered events are
dropped to make room (a fresh alert is the actionable one); events older than the retention
period are purged. Every drop is counted in the database and reported to ``on_drop`` (the
caller audits it) — never silent.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.events.schema import format_time, parse_time
from edge_agent.identifiers import MAX_RETENTION, check_retention

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SPOOL_SCHEMA_VERSION = 2  # 2: events.audited (1 read and upgraded in place)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    audited INTEGER NOT NULL DEFAULT 1
);
"""


class SpoolError(EdgeAgentError):
    """The spool database cannot accept or read events."""


@dataclass(frozen=True)
class SpooledEvent:
    seq: int
    event_id: str
    created_at: datetime
    payload: bytes


@dataclass(frozen=True)
class SpoolDrop:
    """Events removed by policy, never by delivery: reason is "size_limit" or "retention"."""

    reason: str
    event_ids: tuple[str, ...]
    seqs: tuple[int, ...]


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    bytes: int
    dropped_size_limit: int
    dropped_retention: int
    last_seq: int
    oldest_created_at: datetime | None = None  # the oldest alert still waiting (for a receipt or to be sent)


EventFactory = Callable[[int], tuple[str, bytes]]  # seq -> (event_id, payload)


class Spool:
    """One device's durable outbox. Thread-safe; each instance owns one SQLite connection."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retention: timedelta = MAX_RETENTION,
        on_drop: Callable[[SpoolDrop], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ConfigError(f"spool max_bytes {max_bytes} must be positive", "set a size bound in bytes")
        check_retention(retention, "spool retention")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.retention = retention
        self._on_drop = on_drop
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SPOOL_SCHEMA_VERSION,))
            self._upgrade()
            for key in ("last_seq", "dropped_size_limit", "dropped_retention"):
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (key,))
            # Stored as a 16-byte BLOB: a hex text in an INTEGER-affinity column could be coerced to a number.
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (os.urandom(16),))
            epoch = self._db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
            version = self._meta("schema_version")
            # Deletions after PUBACK go through a second connection without fsync: losing one in a
            # power cut only means the alert is sent again (the listener drops the duplicate),
            # and the next FULL commit on the main connection syncs the WAL anyway.
            self._ack_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._ack_db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"spool database {self.path} cannot be opened: {exc}", "check the disk and file permissions; do not delete it (it holds undelivered alerts)") from None
        if not isinstance(epoch, bytes) or len(epoch) != 16:
            raise SpoolError(f"spool {self.path} has a damaged epoch", "keep the file for its undelivered alerts; move it aside to start a new spool")
        self.epoch = epoch.hex()  # lfr.alert/2 spool_epoch
        if version != SPOOL_SCHEMA_VERSION:
            raise SpoolError(f"spool {self.path} has schema version {version}", f"this agent reads version {SPOOL_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._ack_db.close()
            self._db.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def _upgrade(self) -> None:
        """Version 1 -> 2: add ``audited`` (rows of a v1 spool were audited when they were stored)."""
        if self._meta("schema_version") != 1:
            return
        self._db.execute("BEGIN IMMEDIATE")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        if "audited" not in columns:
            self._db.execute("ALTER TABLE events ADD COLUMN audited INTEGER NOT NULL DEFAULT 1")
        self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SPOOL_SCHEMA_VERSION,))
        self._db.execute("COMMIT")

    def append(self, make_event: EventFactory, audited: bool = True) -> SpooledEvent:
        """Allocate the next sequence number, build the event with it and commit both atomically.

        With ``audited=False`` the row stays invisible to ``pending``/``get`` until
        ``mark_audited``. Raises SpoolError (nothing changed) when the disk or database is full.
        """
        now = self._clock()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seq = self._meta("last_seq") + 1
                    event_id, payload = make_event(seq)
                    if len(payload) > self.max_bytes:
                        raise SpoolError(f"event of {len(payload)} bytes is larger than the whole spool ({self.max_bytes})", "raise the spool size bound")
                    self._db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
                    self._db.execute(
                        "INSERT INTO events (seq, event_id, created_at, payload, size, audited) VALUES (?,?,?,?,?,?)",
                        (seq, event_id, format_time(now), payload, len(payload), int(audited)),
                    )
                    drops = self._enforce_size(exclude_seq=seq)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLITE_FULL may already have rolled back
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise self._storage_error(exc) from None
        if drops:
            self._report(drops)
        return SpooledEvent(seq, event_id, now, payload)

    def _storage_error(self, exc: sqlite3.Error) -> SpoolError:
        text = str(exc)
        if "full" in text:
            return SpoolError(
                f"spool {self.path} is full (disk or database limit): the new alert was NOT stored",
                "free disk space; undelivered alerts already in the spool are kept",
            )
        return SpoolError(f"spool {self.path} write failed: {text}", "check the disk; undelivered alerts already in the spool are kept")

    def _enforce_size(self, exclude_seq: int) -> SpoolDrop | None:
        total = int(self._db.execute("SELECT COALESCE(SUM(size),0) FROM events").fetchone()[0])
        if total <= self.max_bytes:
            return None
        victims: list[tuple[int, str]] = []
        for seq, event_id, size in self._db.execute("SELECT seq, event_id, size FROM events WHERE seq != ? ORDER BY seq", (exclude_seq,)):
            if total <= self.max_bytes:
                break
            victims.append((seq, event_id))
            total -= size
        return self._drop(victims, "size_limit")

    def _drop(self, victims: list[tuple[int, str]], reason: str) -> SpoolDrop | None:
        if not victims:
            return None
        self._db.executemany("DELETE FROM events WHERE seq=?", [(s,) for s, _ in victims])
        self._db.execute("UPDATE meta SET value=value+? WHERE key=?", (len(victims), f"dropped_{reason}"))
        return SpoolDrop(reason, tuple(e for _, e in victims), tuple(s for s, _ in victims))

    def purge_expired(self) -> SpoolDrop | None:
        """Drop undelivered events older than the retention period (counted, reported)."""
        cutoff = format_time(self._clock() - self.retention)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                victims = [(int(s), e) for s, e in self._db.execute("SELECT seq, event_id FROM events WHERE created_at < ? ORDER BY seq", (cutoff,))]
                drop = self._drop(victims, "retention")
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._storage_error(exc) from None
        if drop:
            self._report(drop)
        return drop

    def _report(self, drop: SpoolDrop) -> None:
        if self._on_drop is not None:
            self._on_drop(drop)

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[SpooledEvent]:
        """Undelivered events with seq > after_seq, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, created_at, payload FROM events WHERE seq > ? AND audited = 1 ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [SpooledEvent(int(s), e, parse_time(c), bytes(p)) for s, e, c, p in rows]

    def get(self, seq: int) -> SpooledEvent | None:
        """The queued event with this seq, or None if it was delivered or dropped."""
        with self._lock:
            row = self._db.execute("SELECT seq, event_id, created_at, payload FROM events WHERE seq=? AND audited = 1", (seq,)).fetchone()
        if row is None:
            return None
        return SpooledEvent(int(row[0]), row[1], parse_time(row[2]), bytes(row[3]))

    def unaudited(self) -> list[SpooledEvent]:
        """Committed rows whose audit record was not yet written (a crash or a full disk in between)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, event_id, created_at, payload FROM events WHERE audited = 0 ORDER BY seq").fetchall()
        return [SpooledEvent(int(s), e, parse_time(c), bytes(p)) for s, e, c, p in rows]

    def mark_audited(self, seq: int) -> None:
        """The row's audit record is on disk: hand it to the publisher."""
        with self._lock:
            try:
                self._db.execute("UPDATE events SET audited = 1 WHERE seq = ?", (seq,))
            except sqlite3.OperationalError as exc:
                raise self._storage_error(exc) from None

    def acknowledge(self, seq: int) -> bool:
        """Delete a delivered event (call only on PUBACK). True if it was still queued."""
        with self._lock:
            try:
                cur = self._ack_db.execute("DELETE FROM events WHERE seq=?", (seq,))
            except sqlite3.OperationalError as exc:
                raise self._storage_error(exc) from None
            return cur.rowcount == 1

    def stats(self) -> SpoolStats:
        with self._lock:
            depth, size, oldest = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size),0), MIN(created_at) FROM events").fetchone()
            return SpoolStats(
                depth=int(depth),
                bytes=int(size),
                dropped_size_limit=self._meta("dropped_size_limit"),
                dropped_retention=self._meta("dropped_retention"),
                last_seq=self._meta("last_seq"),
                oldest_created_at=parse_time(oldest, "created_at") if oldest else None,
            )
