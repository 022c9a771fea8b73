"""``edge-agent demo``: run the live agent end to end on the bundled sample and show the alerts."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from edge_agent.errors import EdgeAgentError


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the live agent on a bundled sample video and print the verified alerts")
    demo.add_argument("--workdir", type=Path, default=None, help="keep everything in this new folder (default: a temporary one, removed afterwards)")
    demo.add_argument("--no-broker", action="store_true", help="skip Mosquitto: hand alerts to the control room in-process")
    demo.add_argument("--every-frame", action="store_true",
                      help="read every frame of the video instead of replaying it as a live camera (slow or emulated machines)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo.live import run_demo

    keep = args.workdir is not None
    if keep:
        if args.workdir.exists() and any(args.workdir.iterdir()):
            raise EdgeAgentError(f"{args.workdir} is not empty", "give a new or empty folder: the demo creates keys there")
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    try:
        result = run_demo(workdir, sys.stdout, use_broker=not args.no_broker, kept=keep, every_frame=args.every_frame)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result.verified and not result.rejected else 1
