"""Launch a child with core dumps allowed and read its core limit from outside (issue 10.4 tests)."""

from __future__ import annotations

import resource
from pathlib import Path


def allow_core_dumps() -> None:
    """preexec_fn: start the child with core dumps as permissive as this machine allows, so a 0 seen
    later is the child's own doing."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def core_limit(pid: int) -> tuple[str, str]:
    """(soft, hard) 'Max core file size' of a running process, as /proc/PID/limits shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError(f"no core limit in /proc/{pid}/limits")
