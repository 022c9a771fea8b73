"""Start one fuzz target in its own process (libFuzzer exits when it is done) and read its result."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RUN_TARGET = Path(__file__).resolve().parent / "run_target.py"


@dataclass(frozen=True)
class FuzzResult:
    name: str
    parser: str  # what the target exercises
    executions: int
    seconds: float  # fuzzing time, set-up (imports, keys, seeds) excluded
    crashes: int
    crash_input: Path | None
    log_tail: str

    @property
    def per_second(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0


def fuzz(name: str, runs: int, workdir: Path, max_time_s: int = 0, nice: int = 0, timeout_s: float | None = None) -> FuzzResult:
    """Fuzz ``name`` for ``runs`` executions (or ``max_time_s`` seconds, whichever ends first)."""
    corpus, artifacts = workdir / "corpus" / name, workdir / "crashes" / name
    cmd = [sys.executable, str(RUN_TARGET), name, f"--runs={runs}", f"--corpus={corpus}", f"--artifacts={artifacts}"]
    if max_time_s:
        cmd.append(f"--max-time={max_time_s}")
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s, env=env)
    ended = time.time()
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("INFO: Instrumenting"))
    parser = re.search(r"^fuzz: parser (.*)$", log, re.M)
    started = re.search(r"^fuzz: started ([0-9.]+)$", log, re.M)
    executed = re.findall(r"^stat::number_of_executed_units: (\d+)$", log, re.M)
    crashed = proc.returncode != 0 or "Uncaught Python exception" in log
    saved = sorted(artifacts.glob("crash-*")) + sorted(artifacts.glob("oom-*")) + sorted(artifacts.glob("timeout-*"))
    return FuzzResult(
        name=name,
        parser=parser.group(1) if parser else "",
        executions=int(executed[-1]) if executed else 0,
        seconds=ended - float(started.group(1)) if started else 0.0,
        crashes=1 if crashed else 0,
        crash_input=saved[-1] if saved else None,
        log_tail=_tail(log),
    )


def _tail(log: str) -> str:
    """The uncaught exception and what follows it, or the last lines."""
    at = log.find("=== Uncaught Python exception")
    lines = log[at:].splitlines() if at >= 0 else log.splitlines()[-40:]
    return "\n".join(lines[:80])
