"""Benchmark: verify + decrypt + index a 10,000-entry watchlist package (issue 3 target: < 1 s).

Random unit templates stand in for real ones (the load path does not look at their values).
Prints a table: entries, templates per entry, package bytes, bytes per entry, median load time.

    python benchmarks/watchlist_load.py [--entries 10000] [--templates-per-entry 1 3] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.identity.keys import init_device, load_device_keys
from edge_agent.watchlist.entry import CATEGORIES, WatchlistEntry
from edge_agent.watchlist.loader import load_watchlist
from edge_agent.watchlist.package import pack_watchlist

TARGET_SECONDS = 1.0
START = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
MODEL = {"detector_sha256": "d" * 64, "aligner": "bench", "embedder_sha256": "e" * 64}


def build(entries: int, per_entry: int, authority: Ed25519PrivateKey, device, model: dict[str, str] = MODEL, start: datetime = START) -> bytes:
    record = DeploymentRecord(
        "BENCH-1", "Supt Bench", "benchmark", "n/a", "lab", "benchmark", start, start + timedelta(hours=8),
        "DPIA-B", "EIA-B", "LFR", "fixed", False, 0.6, entries, (device.device_id,),
    )
    rows = [
        WatchlistEntry(f"CASE-{i:06d}", CATEGORIES[i % 4], "custody image", "PACE s64A", date(2024, 1, 1), date(2026, 10, 1), False, None, per_entry)
        for i in range(entries)
    ]
    rng = np.random.default_rng(0)
    templates = rng.standard_normal((entries * per_entry, 128)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    return pack_watchlist(
        SignedDeployment.sign(record, authority), rows, templates, model, {device.device_id: device.sealing_public}, authority, start - timedelta(hours=1)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--templates-per-entry", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    authority = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:  # keys only; the package never touches disk here
        init_device(Path(tmp) / "dev", "bench-01")
        device = load_device_keys(Path(tmp) / "dev")
    now = START + timedelta(hours=1)
    print(f"{'entries':>8} {'tmpl/entry':>10} {'package bytes':>14} {'bytes/entry':>12} {'median load s':>14} {'max s':>7}  target < {TARGET_SECONDS} s")
    worst = 0.0
    for per_entry in args.templates_per_entry:
        package = build(args.entries, per_entry, authority, device)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            loaded = load_watchlist(package, device, authority.public_key(), MODEL, now)
            times.append(time.perf_counter() - t0)
        assert len(loaded.entries) == args.entries
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{args.entries:>8} {per_entry:>10} {len(package):>14} {len(package) / args.entries:>12.0f} {median:>14.3f} {max(times):>7.3f}")
    print("PASS" if worst < TARGET_SECONDS else "FAIL", f"(worst median {worst:.3f} s)")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
