"""One atomic-write helper (issue 15.2): old or new content, never half; the mode asked for; used everywhere."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from edge_agent import durable
from edge_agent.durable import atomic_write

PACKAGE = Path(__file__).resolve().parents[2] / "edge_agent"


def test_replaces_content_with_the_mode_asked_for(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    atomic_write(path, b"public", 0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp file left


def test_a_failure_before_the_rename_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def boom() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, b"new", before_replace=boom)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_new_bytes_and_directory_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    seen: list[bytes] = []
    atomic_write(tmp_path / "f", b"data", before_replace=lambda: seen.append(b"".join(p.read_bytes() for p in tmp_path.glob(".f.*"))))
    assert seen == [b"data"]  # the new bytes were complete on disk before the old file was touched
    assert any(s.startswith(str(tmp_path / ".f.")) for s in synced) and str(tmp_path) in synced


def test_no_other_module_replaces_files_by_hand():
    """Every rename-over goes through durable.atomic_write (the provisioning folder rename is a directory)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "durable.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"os\.replace\(|os\.rename\(|mkstemp\(|\.tmp\"\)", line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []
    assert re.search(r"os\.replace\(", Path(durable.__file__).read_text())  # positive control: the scan sees the helper's own rename
