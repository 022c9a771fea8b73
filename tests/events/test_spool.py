"""Spool: durable, ordered, sequence numbers that survive restarts, bounded with counted drops."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from edge_agent.errors import ConfigError
from edge_agent.events.spool import Spool, SpoolDrop, SpoolError

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def payload_of(size: int):
    def make(seq: int) -> tuple[str, bytes]:
        return str(uuid.uuid4()), f"event-{seq}".encode().ljust(size, b".")

    return make


def test_append_pending_acknowledge_and_seq_survive_reopen(tmp_path):
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        items = [spool.append(payload_of(10)) for _ in range(3)]
        assert [i.seq for i in items] == [1, 2, 3]
        assert [p.seq for p in spool.pending()] == [1, 2, 3]
        assert spool.acknowledge(2) is True
        assert spool.acknowledge(2) is False
    with Spool(path) as spool:
        assert [p.payload for p in spool.pending()] == [b"event-1...", b"event-3..."]
        assert spool.append(payload_of(10)).seq == 4  # never reused, even after deletes and restart
        assert [p.seq for p in spool.pending(after_seq=1, limit=1)] == [3]
        assert spool.stats().depth == 3
        assert spool._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_size_bound_drops_oldest_counts_and_reports(tmp_path):
    drops: list[SpoolDrop] = []
    with Spool(tmp_path / "s.db", max_bytes=250, on_drop=drops.append) as spool:
        for _ in range(5):
            spool.append(payload_of(100))
        stats = spool.stats()
        assert [p.seq for p in spool.pending()] == [4, 5]
        assert stats.dropped_size_limit == 3 and stats.bytes == 200
        assert [d.seqs for d in drops] == [(1,), (2,), (3,)]
        assert all(d.reason == "size_limit" for d in drops)


def test_retention_purges_old_undelivered_events_with_a_count(tmp_path):
    clock = Clock(T0)
    drops: list[SpoolDrop] = []
    with Spool(tmp_path / "s.db", retention=timedelta(days=1), clock=clock, on_drop=drops.append) as spool:
        spool.append(payload_of(10))
        clock.now = T0 + timedelta(hours=20)
        spool.append(payload_of(10))
        clock.now = T0 + timedelta(hours=25)
        drop = spool.purge_expired()
        assert drop is not None and drop.seqs == (1,) and drop.reason == "retention"
        assert [p.seq for p in spool.pending()] == [2]
        assert spool.stats().dropped_retention == 1
        assert spool.purge_expired() is None
        assert drops == [drop]


def test_retention_cannot_exceed_31_days(tmp_path):
    with pytest.raises(ConfigError, match="31 days"):
        Spool(tmp_path / "s.db", retention=timedelta(days=32))


def test_disk_full_is_a_clear_error_and_keeps_what_was_accepted(tmp_path):
    path = tmp_path / "s.db"
    with Spool(path) as spool:
        for _ in range(3):
            spool.append(payload_of(100))
        page_count = spool._db.execute("PRAGMA page_count").fetchone()[0]
        spool._db.execute(f"PRAGMA max_page_count={page_count}")  # the database cannot grow: like a full disk
        with pytest.raises(SpoolError, match="full.*NOT stored"):
            for _ in range(50):
                spool.append(payload_of(4000))
        accepted = spool.stats().last_seq
    with Spool(path) as spool:
        assert [p.seq for p in spool.pending()] == list(range(1, accepted + 1))
        assert spool.append(payload_of(10)).seq == accepted + 1


def test_corrupt_spool_file_is_a_clear_error(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SpoolError, match="cannot be opened"):
        Spool(path)


def test_failed_event_construction_allocates_no_sequence(tmp_path):
    with Spool(tmp_path / "s.db") as spool:
        def boom(seq: int):
            raise ValueError("builder failed")

        with pytest.raises(ValueError):
            spool.append(boom)
        assert spool.append(payload_of(10)).seq == 1
        with pytest.raises(sqlite3.IntegrityError):
            dup = spool.pending()[0].event_id
            spool.append(lambda seq: (dup, b"x"))
        assert spool.stats().last_seq == 1
