"""``edge-agent`` entry point: one subcommand group per module, errors printed without tracebacks."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge_agent.errors import EdgeAgentError

# Each module exposes register(subparsers); handlers return an exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "recognition",
    "keys", "deployment", "watchlist", "audit",
    "agent",
    "demo",
    "evaluate",
    "control_room",
    "config", "capture",
    "fleet",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="On-device face recognition for police cameras. Every alert is a possible match for a person to review.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_agent.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeAgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
