"""Start-up hardening shared by the agent and the control room: no core dumps, ever.

A crash dump of either process would hold frames, templates, the decrypted watchlist, face
crops and private keys (policing.md: non-match biometrics are deleted immediately and reach no
disk). The unit sets ``LimitCORE=0``; this does the same from inside, so a process started any
other way (by hand, by a test, under another supervisor) is covered too:

* ``RLIMIT_CORE`` soft and hard 0: the kernel writes no core file, and the process (without
  CAP_SYS_RESOURCE) cannot raise it again;
* ``PR_SET_DUMPABLE`` 0: no core is handed to a pipe handler either (systemd-coredump,
  apport: ``core_pattern = |...`` ignores RLIMIT_CORE), and other processes of the same user
  cannot ptrace it or read its memory through /proc.

Both are read back from the kernel, so what is reported is what holds, not what was asked.
"""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass

from edge_agent.errors import SecurityError

log = logging.getLogger(__name__)

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class CoreDumpState:
    core_limit: tuple[int, int]  # (soft, hard) RLIMIT_CORE after the change
    dumpable: int | None  # PR_GET_DUMPABLE after the change; None where prctl does not exist

    def describe(self) -> str:
        soft, hard = self.core_limit
        return f"core dumps disabled (RLIMIT_CORE {soft}/{hard}, dumpable {self.dumpable})"


def _prctl(option: int, arg: int = 0) -> int:
    import ctypes  # only here: 4 ms of import the config parser and the CLI help never pay

    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.prctl(option, arg, 0, 0, 0))
    if result < 0:
        errno = ctypes.get_errno()
        raise SecurityError(
            f"prctl({option}) failed with errno {errno}: core dumps could not be disabled",
            "the process would be dumpable; check the seccomp filter allows prctl (systemd @system-service does)",
        )
    return result


def disable_core_dumps() -> CoreDumpState:
    """Set RLIMIT_CORE to 0/0 and make the process non-dumpable; return what the kernel now reports."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    dumpable: int | None = None
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_DUMPABLE, 0)
        dumpable = _prctl(PR_GET_DUMPABLE)
    state = CoreDumpState(resource.getrlimit(resource.RLIMIT_CORE), dumpable)
    if state.core_limit != (0, 0) or dumpable not in (0, None):
        raise SecurityError(f"core dumps are still possible: {state}", "run the agent on Linux under the shipped systemd unit")
    if dumpable is None:
        log.warning("no prctl on %s: only RLIMIT_CORE guards against core dumps", sys.platform)
    return state
