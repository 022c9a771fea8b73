"""The control-room store's tables, in one SQL text for both backends (docs/formats/control-room.md).

Version 2 (this one) adds to version 1: the device's ``spool_epoch`` in the replay key
``(device_id, spool_epoch, seq)`` (``''`` for lfr.alert/1 events, which carry none), legal-hold
history (a hold is never overwritten; placing and releasing are rows), imported deployment
records (the window each alert is checked against), sealed reference images, console accounts,
sessions and login failures, and the fleet's last status and telemetry. A version 1 SQLite store
is migrated in place on first open for writing.
"""

from __future__ import annotations

from edge_agent.control_room.db import Database, Dialect, StoreError

STORE_SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    spool_epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    deployment_id TEXT NOT NULL,
    watchlist_version TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    category TEXT NOT NULL,
    score {real} NOT NULL,
    threshold {real} NOT NULL,
    model TEXT NOT NULL,
    face_box TEXT NOT NULL,
    candidates TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    crop_sha256 TEXT NOT NULL,
    payload {blob} NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending_review', 'confirmed', 'rejected')),
    UNIQUE (device_id, spool_epoch, seq)
);
CREATE INDEX IF NOT EXISTS alerts_captured ON alerts (captured_at);
CREATE TABLE IF NOT EXISTS adjudications (
    id {id},
    event_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'rejected')),
    reviewer TEXT NOT NULL,
    reason TEXT NOT NULL,
    engaged INTEGER,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS adjudications_event ON adjudications (event_id);
CREATE TABLE IF NOT EXISTS holds (
    event_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    held_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hold_history (
    id {id},
    event_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('placed', 'released')),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    spool_epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    captured_at TEXT NOT NULL,
    UNIQUE (device_id, spool_epoch, seq)
);
CREATE INDEX IF NOT EXISTS seen_captured ON seen (captured_at);
CREATE TABLE IF NOT EXISTS quarantine (
    id {id},
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    id {id},
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    claimed_device TEXT,
    event_id TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    deployment_id TEXT PRIMARY KEY,
    signed {blob} NOT NULL,
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    imported_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reference_images (
    deployment_id TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    idx INTEGER NOT NULL,
    image_date TEXT NOT NULL,
    sealed {blob} NOT NULL,
    PRIMARY KEY (deployment_id, subject_ref, idx)
);
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'adjudicator', 'supervisor')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    id {id},
    username TEXT NOT NULL,
    client TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    state TEXT,
    state_at TEXT,
    heartbeat_at TEXT,
    telemetry TEXT,
    updated_at TEXT NOT NULL
)
"""

# Version 1 keyed replay on (device_id, seq) and had no hold history: rebuild those two tables.
_MIGRATE_V1 = """
ALTER TABLE alerts RENAME TO alerts_v1;
ALTER TABLE seen RENAME TO seen_v1;
{tables};
INSERT INTO alerts SELECT event_id, device_id, '', seq, deployment_id, watchlist_version, subject_ref, category, score,
    threshold, model, face_box, candidates, captured_at, received_at, crop_sha256, payload, status FROM alerts_v1;
INSERT INTO seen SELECT event_id, device_id, '', seq, captured_at FROM seen_v1;
INSERT INTO hold_history (event_id, action, reason, actor, at) SELECT event_id, 'placed', reason, held_by, at FROM holds;
DROP TABLE alerts_v1;
DROP TABLE seen_v1;
UPDATE meta SET value = '2' WHERE key = 'schema_version'
"""


def tables(dialect: Dialect) -> str:
    return _TABLES.format(id=dialect.id, blob=dialect.blob, real=dialect.real)


def ensure_schema(db: Database) -> None:
    """Create (or migrate) the tables; refuse a store written by a newer version."""
    if db.read_only:
        check_version(db)
        return
    if db.dialect.name == "sqlite":
        version = _sqlite_version(db)
        if version == "1":
            db.script("BEGIN IMMEDIATE;\n" + _MIGRATE_V1.format(tables=tables(db.dialect)) + ";\nCOMMIT;")
    db.script(tables(db.dialect))
    with db.write(lock_key="edge-agent schema") as tx:
        tx.run("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING", (str(STORE_SCHEMA_VERSION),))
    check_version(db)


def _sqlite_version(db: Database) -> str | None:
    with db.read() as tx:
        if tx.one("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'") is None:
            return None
        row = tx.one("SELECT value FROM meta WHERE key='schema_version'")
    return None if row is None else str(row[0])


def check_version(db: Database) -> None:
    with db.read() as tx:
        row = tx.one("SELECT value FROM meta WHERE key='schema_version'")
    version = None if row is None else str(row[0])
    if version != str(STORE_SCHEMA_VERSION):
        raise StoreError(f"alert store {db.location} has schema version {version}",
                         f"this edge-agent reads version {STORE_SCHEMA_VERSION}; use the edge-agent that wrote it, or upgrade")
