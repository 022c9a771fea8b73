"""The load benchmark runs and reports bytes per entry (a small size here; the 10,000 run is the benchmark)."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "watchlist_load.py"


def test_benchmark_runs(capsys):
    module = runpy.run_path(str(BENCH))
    assert module["main"](["--entries", "300", "--templates-per-entry", "2", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "bytes/entry" in out and "PASS" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("300"))
    assert 1024 < float(row.split()[3]) < 2048  # 2 float32 templates (1,024 B) + metadata + overhead
