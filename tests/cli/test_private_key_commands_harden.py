"""Every command given a private key disables core dumps before reading it (issue 10.4).

The key file is a FIFO: the command blocks opening it, so its core limit can be read from outside
while it runs, after the hardening and before any key byte is in memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core_dump_helpers import allow_core_dumps, core_limit
from edge_agent.cli.main import PRIVATE_KEY_OPTIONS, build_parser, holds_private_key


def _blocked_on(fifo, argv: list[str]) -> tuple[str, str]:
    """Run ``argv`` until it opens the FIFO key file (we hold the writing end, so it then waits
    in read()), and return its core limit as seen from outside."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=allow_core_dumps)
    writer = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:  # succeeds only once a reader has the FIFO open
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
                continue
            return core_limit(proc.pid)
        pytest.fail(f"{argv[:2]} never opened its key file")
    finally:
        proc.kill()
        proc.communicate()
        if writer is not None:
            os.close(writer)


@pytest.mark.parametrize("argv", [
    ["control-room", "crop", "00000000-0000-4000-8000-000000000000", "--db", "{db}", "--key", "{key}", "--out", "{out}",
     "--audit-log", "{audit}"],
    ["control-room", "receipts", "--db", "{db}", "--device", "cam-01", "--receipt-key", "{key}", "--out", "{out}"],
])
def test_a_command_reading_a_private_key_cannot_dump_core(tmp_path, argv):
    fifo = tmp_path / "key.pem"
    os.mkfifo(fifo, 0o600)
    (tmp_path / "alerts.db").touch()
    paths = {"db": tmp_path / "alerts.db", "key": fifo, "out": tmp_path / "out.bin", "audit": tmp_path / "audit.log"}
    soft, hard = _blocked_on(fifo, [a.format(**paths) for a in argv])
    assert (soft, hard) == ("0", "0"), f"{argv[:2]} read a private key with core dumps possible"


def test_every_private_key_option_of_every_command_is_covered():
    """A new option naming a private key must join PRIVATE_KEY_OPTIONS, or its command could dump it."""
    import argparse

    found = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif action.dest.endswith(("key", "keys", "key_file")) and "pub" not in action.dest:
                found.add(action.dest)

    walk(build_parser())
    assert found, "the walk found no key option at all"
    assert found <= PRIVATE_KEY_OPTIONS, f"not hardened: {sorted(found - PRIVATE_KEY_OPTIONS)}"
    assert holds_private_key(argparse.Namespace(key="x")) and not holds_private_key(argparse.Namespace(db="x"))
