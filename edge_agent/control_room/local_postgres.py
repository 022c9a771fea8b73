"""A private PostgreSQL server for tests and benchmarks: ``initdb`` into a folder, a free loopback port.

Never the machine's own server (port 5432 or a system cluster): each test session or benchmark
run starts its own as a child process that dies with it (even when the session is killed),
trusting only local connections, and removes it after.
Debian puts the binaries under /usr/lib/postgresql/<version>/bin (package ``postgresql``).
"""

from __future__ import annotations

import ctypes
import getpass
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.local_broker import free_port


class PostgresUnavailable(EdgeAgentError):
    """PostgreSQL is not installed here, or the private server would not start."""


def find_postgres_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                        reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


class PostgresServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.data = self.workdir / "pgdata"
        self.socket_dir = self.workdir / "sock"
        self.log = self.workdir / "postgres.log"
        self.port = port or free_port()
        if self.port == 5432:
            raise PostgresUnavailable("refusing port 5432: it belongs to the machine's own PostgreSQL", "let the launcher pick a free port")
        self.user = getpass.getuser()
        self._bin: Path | None = None
        self._as_postgres = os.geteuid() == 0  # postgres refuses to run as root
        self._proc: subprocess.Popen | None = None

    def _child_setup(self) -> None:
        """In the child: drop to the postgres user when root, then die with the parent, so a test
        session that is killed never leaves its private server running."""
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG, after the uid change that clears it

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, preexec_fn=self._child_setup)

    def start(self, timeout_s: float = 60.0) -> "PostgresServer":
        self._bin = find_postgres_bin()
        if self._bin is None:
            raise PostgresUnavailable("PostgreSQL is not installed (no initdb/pg_ctl found)", "apt-get install postgresql")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_postgres:
            self.user = "postgres"
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
            os.chmod(self.workdir, 0o700)
        result = self._run([str(self._bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync",
                            "--locale=C.UTF-8"])
        if result.returncode != 0:
            result = self._run([str(self._bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"])
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.strip()[-500:]}", f"see {self.workdir}")
        log = open(self.log, "ab")
        try:
            self._proc = subprocess.Popen(
                [str(self._bin / "postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.socket_dir),
                 "-c", "fsync=on", "-c", "max_connections=50"], stdout=log, stderr=log, preexec_fn=self._child_setup)
        finally:
            log.close()
        try:
            self._wait_ready(timeout_s)
        except PostgresUnavailable:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                text = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
                raise PostgresUnavailable(f"PostgreSQL exited at start on 127.0.0.1:{self.port}: {text}", f"see {self.log}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.Error as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"PostgreSQL on port {self.port} does not accept connections: {exc}", f"see {self.log}") from None
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name comes from the caller's own test, not from input
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), waited for."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
