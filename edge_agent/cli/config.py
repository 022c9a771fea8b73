"""``edge-agent config check FILE``: validate an agent.toml before it goes to a device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.agent.config import load_config
from edge_agent.capture.opencv import redact_url
from edge_agent.library_pins import scored_versions, warnings


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="validate agent configuration files")
    sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate agent.toml and print the settings it resolves to")
    check.add_argument("file", type=Path, nargs="?", default=Path("/etc/edge-agent/agent.toml"))
    check.add_argument("--no-file-checks", action="store_true",
                       help="do not require key/certificate files to exist (checking a config on a workstation)")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file, check_files=not args.no_file_checks)
    hw, cap = cfg.hardware, cfg.capture
    print(f"{args.file}: valid (config format {cfg.config_version})")
    print(f"  device        {cfg.device.id}  state {cfg.device.state_dir}")
    print(f"  hardware      profile {hw.profile}, {hw.threads} threads, delegate {hw.delegate}")
    print(f"  capture       {redact_url(cap.source)} {cap.width}x{cap.height} @ {cap.fps:g} fps")
    print(f"  detector      {cfg.detector.model} (min score {cfg.detector.min_score:g})")
    if cfg.mqtt is None:
        print("  mqtt          none (offline)")
    else:
        print(f"  mqtt          {cfg.mqtt.host}:{cfg.mqtt.port} tls={'on' if cfg.mqtt.tls else 'off'} MQTT {cfg.mqtt.protocol} prefix {cfg.mqtt.topic_prefix}")
    print(f"  deployment    {cfg.deployment.record or 'none: no matching until one is installed'}")
    versions = scored_versions()
    print(f"  libraries     {', '.join(v.describe() for v in versions)}")
    for warning in warnings(versions):
        print(f"warning: {warning}", file=sys.stderr)
    return 0

