"""``edge-agent config check FILE``: validate an agent.toml before it goes to a device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.agent.config import AgentConfig, load_config
from edge_agent.capture.opencv import redact_url
from edge_agent.library_pins import scored_versions, warnings
from edge_agent.vision import model_timings
from edge_agent.vision.core import ModelFiles


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
    if not args.no_file_checks:  # the models and timings are the device's: not there on a workstation
        print(f"  models        {_model_choice(cfg)}")
    versions = scored_versions()
    print(f"  libraries     {', '.join(v.describe() for v in versions)}")
    for warning in warnings(versions):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _model_choice(cfg: AgentConfig) -> str:
    """Which variant of each model this machine runs, and what chose it (vision/model_timings.py)."""
    hw = cfg.hardware
    timings, problem = model_timings.for_device(cfg.device.state_dir) if hw.precision == "auto" else (None, None)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    files = ModelFiles.resolve(cfg.detector.models_dir, cfg.detector.model, hw.precision, timings=timings, threads=hw.threads)
    return f"{files.identity.precision}, chosen by {files.choice_note}"
