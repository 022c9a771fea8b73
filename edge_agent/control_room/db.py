"""The control room's database connection: SQLite by default, PostgreSQL when configured.

Everything above this module writes one SQL dialect (``?`` placeholders, ``ON CONFLICT``) and
sees one error type (:class:`StoreError`); this module owns the differences: placeholder style,
column types in the schema, how a write transaction takes its lock, file permissions (a SQLite
store and its ``-wal``/``-shm`` are created 0600) and how an evidence copy is opened without
writing beside it.

A store location is a path (SQLite) or a ``postgresql://`` URL. Several listeners and consoles
share one control room through PostgreSQL (or through one SQLite file on one host).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_agent.errors import EdgeAgentError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(EdgeAgentError):
    """The alert store cannot be read or written, or an operation on it is not allowed."""


class UniqueViolation(StoreError):
    """An insert hit a unique constraint (another writer got there first)."""


@dataclass(frozen=True)
class Dialect:
    """Column types per backend, substituted into the one schema text (``{id}``, ``{blob}``, ``{real}``)."""

    name: str
    id: str
    blob: str
    real: str


SQLITE = Dialect("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL")
POSTGRES = Dialect("postgresql", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "DOUBLE PRECISION")


class Tx(Protocol):
    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def run(self, sql: str, args: Sequence[Any] = ()) -> int: ...

    def many(self, sql: str, args: Sequence[Sequence[Any]]) -> None: ...


class Database(Protocol):
    dialect: Dialect
    location: str
    read_only: bool

    def write(self, lock_key: str | None = None) -> Any: ...

    def read(self) -> Any: ...

    def script(self, sql: str) -> None: ...

    def close(self) -> None: ...


def is_postgres(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_database(location: str | Path, read_only: bool = False) -> "Database":
    """A SQLite file path or a PostgreSQL URL; ``read_only`` never writes to (or beside) the store."""
    if is_postgres(location):
        return PostgresDatabase(str(location), read_only)
    return SqliteDatabase(Path(location), read_only)


def redact(location: str) -> str:
    """A store location fit for messages: a PostgreSQL URL loses its password."""
    if not is_postgres(location) or "@" not in location:
        return location
    scheme, rest = location.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else location


# ---- SQLite ---------------------------------------------------------------------------------


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, tuple(args)).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._db.execute(sql, tuple(args)).fetchone()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, tuple(args)).rowcount

    def many(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, [tuple(a) for a in args])


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does: its -wal and -shm copy this mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)  # an older store created with the umask: alert data is not for other users
        return
    os.close(fd)


class SqliteDatabase:
    """One connection under a lock; WAL with synchronous=FULL; writes under ``BEGIN IMMEDIATE``."""

    dialect = SQLITE

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._tmpdir: str | None = None
        if self.path.is_dir():
            raise StoreError(f"alert store {self.path} is a directory", "give the path of the store file, e.g. alerts.db")
        try:
            if read_only:
                self._db = self._open_evidence_copy()
            else:
                _create_private(self.path)
                for suffix in ("-wal", "-shm"):  # left by an older version with the umask's mode
                    side = Path(f"{self.path}{suffix}")
                    if side.exists() and stat.S_IMODE(side.stat().st_mode) & 0o077:
                        os.chmod(side, 0o600)
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"alert store {self.path} cannot be opened: {exc}", "check the path, disk and permissions") from None
        except PermissionError as exc:
            raise StoreError(f"alert store {self.path} cannot be opened: {exc.strerror}", "check the permissions") from None

    def _open_evidence_copy(self) -> sqlite3.Connection:
        """Open without writing anything beside the file (no -wal, no -shm, no lock files).

        A store file alone opens ``immutable``. If a ``-wal`` lies beside it (a copy taken while the
        control room ran), its latest records live there: copy both into a private temporary folder
        and read that, so nothing is lost and the evidence stays byte-for-byte as it was.
        """
        if not self.path.is_file():
            raise StoreError(f"alert store {self.path} does not exist", "give the control room's alerts.db (or a copy of it)")
        wal = Path(f"{self.path}-wal")
        source = self.path
        if wal.exists() and wal.stat().st_size > 0:
            self._tmpdir = tempfile.mkdtemp(prefix="edge-agent-evidence-")
            source = Path(self._tmpdir) / "alerts.db"
            shutil.copyfile(self.path, source)
            shutil.copyfile(wal, f"{source}-wal")
            db = sqlite3.connect(source, check_same_thread=False, timeout=30)
            db.execute("PRAGMA query_only=ON")
            return db
        return sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False, timeout=30)

    @contextmanager
    def write(self, lock_key: str | None = None) -> Iterator[_SqliteTx]:
        """One write transaction; SQLite's ``BEGIN IMMEDIATE`` already serialises writers."""
        if self.read_only:
            raise StoreError(f"alert store {self.path} is open read-only", "this is a bug: reports never write")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"alert store {self.path} is not writable: {exc}", "check disk space and permissions") from None
            try:
                yield _SqliteTx(self._db)
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                if "UNIQUE" in str(exc):
                    raise UniqueViolation(str(exc), "another writer stored it first") from None
                raise StoreError(f"alert store {self.path} refused a write: {exc}", "this is a bug") from None
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"alert store {self.path} write failed: {exc}", "check disk space; the message was not acknowledged") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"alert store {self.path} write failed: {exc}", "check disk space; the message was not acknowledged") from None

    @contextmanager
    def read(self) -> Iterator[_SqliteTx]:
        with self._lock:
            try:
                yield _SqliteTx(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"alert store {self.path} cannot be read: {exc}", "check the file is an edge-agent alert store") from None

    def script(self, sql: str) -> None:
        with self._lock:
            try:
                self._db.executescript(sql)
            except sqlite3.Error as exc:
                raise StoreError(f"alert store {self.path} schema cannot be created: {exc}", "check disk space and permissions") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


# ---- PostgreSQL -----------------------------------------------------------------------------


def _pg_sql(sql: str) -> str:
    if "%" in sql:
        raise StoreError("SQL text holds a '%'", "this is a bug: pass values as parameters")
    return sql.replace("?", "%s")


class _PgTx:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(_pg_sql(sql), tuple(args))
        return list(self._cur.fetchall())

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(_pg_sql(sql), tuple(args))
        return self._cur.fetchone()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        self._cur.execute(_pg_sql(sql), tuple(args))
        return int(self._cur.rowcount)

    def many(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(_pg_sql(sql), [tuple(a) for a in args])


class PostgresDatabase:
    """One psycopg connection under a lock. Writers that must not interleave (intake vs the
    purge that moves the replay horizon) take a transaction-scoped advisory lock by name."""

    dialect = POSTGRES

    def __init__(self, url: str, read_only: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError("a PostgreSQL store needs the psycopg driver", "pip install 'edge_agent[control-room]'") from None
        self._psycopg = psycopg
        self.location = redact(url)
        self.read_only = read_only
        self._lock = threading.Lock()
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            if read_only:
                self._db.read_only = True
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self.location} cannot be reached: {_pg_message(exc)}",
                             "check the URL, that the server runs and that the role may connect") from None

    @contextmanager
    def write(self, lock_key: str | None = None) -> Iterator[_PgTx]:
        if self.read_only:
            raise StoreError(f"alert store {self.location} is open read-only", "this is a bug: reports never write")
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    if lock_key is not None:
                        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
                    yield _PgTx(cur)
            except psycopg.errors.UniqueViolation as exc:
                raise UniqueViolation(_pg_message(exc), "another writer stored it first") from None
            except psycopg.Error as exc:
                self._recover()
                raise StoreError(f"alert store {self.location} write failed: {_pg_message(exc)}",
                                 "check the database server; the message was not acknowledged") from None

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    yield _PgTx(cur)
            except psycopg.Error as exc:
                self._recover()
                raise StoreError(f"alert store {self.location} cannot be read: {_pg_message(exc)}", "check the database server") from None

    def _recover(self) -> None:
        if self._db.closed or self._db.broken:
            return
        try:
            self._db.rollback()
        except self._psycopg.Error:
            pass

    def script(self, sql: str) -> None:
        with self.write(lock_key="edge-agent schema") as tx:
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    tx.run(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _pg_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
