"""``edge-agent run --config FILE``: the on-device agent (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the live agent: capture, match, publish signed alerts")
    run.add_argument("--config", type=Path, required=True, help="agent TOML file (docs/formats/config.md)")
    run.add_argument("--check", action="store_true", help="validate the config and key files, then exit")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent.config import load_config
    from edge_agent.hardening import disable_core_dumps

    config = load_config(args.config)
    logging.basicConfig(level=config.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.check:
        print(f"{args.config}: valid (device {config.device.id}, profile {config.hardware.profile})")
        return 0
    # The config holds no secret (keys are named by path); nothing sensitive is in memory yet.
    logging.getLogger("edge_agent.hardening").info(disable_core_dumps().describe())
    from edge_agent.agent.runner import run_agent

    summary = run_agent(config)
    print(
        f"stopped ({summary.stopped_because}): {summary.frames} frames, {summary.faces} faces of {summary.people} people, "
        f"{summary.alerts} alerts, {summary.dropped_frames} frames dropped; first frame after {summary.startup_s:.2f} s"
    )
    return 0
