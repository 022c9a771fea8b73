"""Long fuzz run (issue 11.4 target: >= 1,000,000 executions per parser, 0 crashes).

Runs every target in tests/fuzz/targets.py under atheris, one process per parser, each for --runs
executions (or --max-time seconds, whichever ends first), and prints a table: parser,
executions, exec/s, crashes. A crashing input is kept under --workdir/crashes/<parser>/.

    nice -n 10 python benchmarks/fuzz.py [--runs 1000000] [--max-time 0] [--jobs 1] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from fuzzing import FuzzResult, fuzz  # noqa: E402
from targets import TARGETS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="executions per parser (default 1,000,000)")
    parser.add_argument("--max-time", type=int, default=0, help="seconds per parser at most (0: until --runs)")
    parser.add_argument("--jobs", type=int, default=1, help="parsers fuzzed at once (each is one process)")
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="these parsers only")
    parser.add_argument("--workdir", type=Path, default=None, help="corpora and crashes (default: a new temporary folder)")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the fuzzing processes (the machine is shared)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edge-agent-fuzz-"))
    names = args.only or list(TARGETS)
    print(f"fuzzing {len(names)} parsers, {args.runs:,} executions each"
          f"{f' or {args.max_time} s' if args.max_time else ''}; corpora and crashes in {workdir}", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda n: _one(n, args, workdir), names))
    print()
    print(table(results))
    return 1 if any(r.crashes for r in results) else 0


def _one(name: str, args: argparse.Namespace, workdir: Path) -> FuzzResult:
    result = fuzz(name, args.runs, workdir, max_time_s=args.max_time, nice=args.nice)
    print(f"  {name}: {result.executions:,} executions, {result.per_second:,.0f}/s, {result.crashes} crashes", flush=True)
    if result.crashes:
        print(f"    crashing input: {result.crash_input}\n{result.log_tail}", flush=True)
    return result


def table(results: list[FuzzResult]) -> str:
    """The README's table (Markdown)."""
    rows = ["| parser | what it exercises | executions | exec/s | crashes |", "|---|---|---:|---:|---:|"]
    for r in results:
        rows.append(f"| `{r.name}` | {r.parser} | {r.executions:,} | {r.per_second:,.0f} | {r.crashes} |")
    total = sum(r.executions for r in results)
    rows.append(f"| **all** | | **{total:,}** | | **{sum(r.crashes for r in results)}** |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
