"""Run one fuzz target under atheris (libFuzzer) in this process, then exit.

    python tests/fuzz/run_target.py NAME --runs N [--max-time S] [--corpus DIR] [--artifacts DIR]

libFuzzer owns the process (it exits when done), so each target runs in a process of its own;
tests/fuzz/test_fuzz.py and benchmarks/fuzz.py start one per target and read the last lines:
``stat::number_of_executed_units`` and ``stat::average_exec_per_sec`` (-print_final_stats), and
on a crash the uncaught exception and the saved input (``crash-<sha1>`` in the artifacts folder).
Only edge_agent's own modules are instrumented for coverage (the libraries are not under test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets  # noqa: E402  (it imports edge_agent only inside its functions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted({**targets.TARGETS, **targets.CONTROLS}))
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--max-time", type=int, default=0, help="seconds; 0: no limit")
    parser.add_argument("--corpus", type=Path, required=True, help="working corpus folder (seeds are written into it)")
    parser.add_argument("--artifacts", type=Path, required=True, help="where a crashing input is saved")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: random)")
    args = parser.parse_args()

    # Building the target imports the edge_agent modules it reaches: instrument exactly those.
    with atheris.instrument_imports(include=["edge_agent"]):
        target = {**targets.TARGETS, **targets.CONTROLS}[args.name](targets.make_world())
    args.corpus.mkdir(parents=True, exist_ok=True)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(target.seeds):
        target.run(seed)  # every seed must pass cleanly: a seed that is refused would start the fuzzer nowhere
        (args.corpus / f"seed-{i}").write_bytes(seed)
    max_len = max(len(s) for s in target.seeds) * 2 + 64
    flags = [
        f"-runs={args.runs}",
        f"-max_len={max_len}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=1",
        "-rss_limit_mb=3072",
        "-timeout=20",
        f"-seed={args.seed}",
    ]
    if args.max_time:
        flags.append(f"-max_total_time={args.max_time}")
    atheris.Setup([sys.argv[0], *flags, str(args.corpus)], target.run)
    print(f"fuzz: parser {target.parser}", file=sys.stderr, flush=True)
    print(f"fuzz: started {time.time():.3f}", file=sys.stderr, flush=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
