"""``edge-agent`` entry point: one subcommand group per module, errors printed without tracebacks."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge_agent.errors import EdgeAgentError

#: Options that name a private key (or a folder of them). A command given one disables core dumps
#: before it runs: a crash must not hand that key, or what it decrypts, to systemd-coredump (issue 10.4).
PRIVATE_KEY_OPTIONS: frozenset[str] = frozenset(
    {"authority_key", "approver_key", "device_keys", "key", "receipt_key", "audit_key", "tls_key", "tls_key_file"}
)

# Each module exposes register(subparsers); handlers return an exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "recognition", "search",
    "keys", "deployment", "watchlist", "audit",
    "agent",
    "demo",
    "evaluate",
    "control_room",
    "config", "capture", "models",
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
        # Only when this process is the command (argv from sys.argv): the limits cannot be raised
        # again, and a caller embedding main() (a test runner) keeps its own.
        if argv is None and holds_private_key(args):
            from edge_agent.hardening import disable_core_dumps

            disable_core_dumps()
        return int(args.func(args) or 0)
    except EdgeAgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def holds_private_key(args: argparse.Namespace) -> bool:
    """Whether this command was given a private key (so it must not be able to dump core)."""
    return any(getattr(args, name, None) is not None for name in PRIVATE_KEY_OPTIONS)


if __name__ == "__main__":
    sys.exit(main())
