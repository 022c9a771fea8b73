"""Control-room fixtures: both store backends (SQLite file; PostgreSQL on a server this session
starts itself). Helpers (signed deployments, an audit recorder): tests/control_room_helpers.py."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from edge_agent.control_room.local_postgres import PostgresServer, PostgresUnavailable
from skips import missing

REQUIRE_POSTGRES_ENV = "EDGE_AGENT_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL on a free loopback port (never the machine's own). Skipped when
    PostgreSQL is not installed; a failure where EDGE_AGENT_REQUIRE_POSTGRES=1 (CI)."""
    workdir = Path(tempfile.mkdtemp(prefix="edge-agent-pg-"))  # outside pytest's 0700 root-owned tree: postgres must reach it
    server = PostgresServer(workdir)
    try:
        server.start()
    except PostgresUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        missing(f"{exc.message} ({exc.hint})", REQUIRE_POSTGRES_ENV)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def store_location(request, tmp_path) -> str:
    """Where a test's store lives: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "alerts.db")
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")
