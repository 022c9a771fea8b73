"""``edge-agent models measure|show``: time each model's int8 and float variants on this device.

The systemd unit runs ``models measure --if-stale`` before the agent starts, so a device measures
itself on its first boot and again after a model, runtime or thread-count change; ``auto``
precision then runs the variant that was faster here (vision/model_timings.py says why).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.agent.config import AgentConfig, load_config
from edge_agent.errors import ModelError
from edge_agent.vision import model_timings
from edge_agent.vision.cpu_profile import read_cpu_profile
from edge_agent.vision.model_choice import FAMILIES
from edge_agent.vision.model_files import ModelManifest, default_models_dir

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="time the models' int8 and float variants on this device")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    measure = sub.add_parser("measure", help="time every variant here and record which one precision = 'auto' runs")
    measure.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    measure.add_argument("--if-stale", action="store_true",
                         help="only when there are no timings yet or they describe another CPU, model, runtime or thread count")
    measure.add_argument("--rounds", type=int, default=30, help="timed invokes of each variant (default 30)")
    measure.add_argument("--budget", type=float, default=model_timings.DEFAULT_BUDGET_S, metavar="SECONDS",
                         help=f"stop each model's timing at its share of this (after {model_timings.MIN_ROUNDS} rounds), "
                              f"so the unit's start timeout is never run out (default {model_timings.DEFAULT_BUDGET_S:g})")
    measure.set_defaults(func=cmd_measure)
    show = sub.add_parser("show", help="print the recorded timings and whether they still describe this device")
    show.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    show.set_defaults(func=cmd_show)


def _stale_reason(config: AgentConfig, timings: model_timings.ModelTimings) -> str | None:
    manifest = ModelManifest(config.detector.models_dir or default_models_dir())
    here = model_timings.MeasuredOn.here(read_cpu_profile(), config.hardware.threads)
    return timings.stale_reason(here, manifest.recorded_sha256)


def cmd_measure(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_files=False)
    path = model_timings.path_in(config.device.state_dir)
    if args.if_stale:
        if config.hardware.precision != "auto":
            print(f"hardware.precision is {config.hardware.precision}: the timings would not be used; nothing measured")
            return 0
        try:
            current = model_timings.load(path)
        except ModelError as exc:
            print(f"{exc.message}: measuring again")
            current = None
        reason = _stale_reason(config, current) if current is not None else "there are none yet"
        if reason is None:
            print(f"{path}: up to date (measured {current.measured_at if current else ''}); nothing measured")
            return 0
        print(f"measuring: {reason}")
    from edge_agent.vision.model_measure import measure  # loads LiteRT: only when measuring

    # The Edge TPU runs the embedder's int8 graph whatever is chosen: only the CPU's models are timed.
    families = [f for key, f in FAMILIES.items() if key != "embedder" or config.hardware.delegate == "none"]
    rounds = max(args.rounds, model_timings.MIN_ROUNDS)
    timings = measure(families, config.hardware.threads, config.detector.models_dir, rounds=rounds, budget_s=args.budget)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    model_timings.save(path, timings)
    _print(timings, path)
    if config.hardware.precision != "auto":
        print(f"note: hardware.precision is {config.hardware.precision}, so the agent runs that, not these choices")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_files=False)
    path = model_timings.path_in(config.device.state_dir)
    timings = model_timings.load(path)
    if timings is None:
        print(f"{path}: no timings; precision 'auto' follows the CPU profile ({model_timings.MEASURE_HINT})")
        return 0
    _print(timings, path)
    reason = _stale_reason(config, timings)
    print("these timings describe this device" if reason is None else f"stale: {reason}; {model_timings.MEASURE_HINT}")
    return 0


def _print(timings: model_timings.ModelTimings, path: Path) -> None:
    device = timings.device
    print(f"{path}: measured {timings.measured_at} on {device.machine} {device.cpu_model}, {device.threads} thread(s), {device.runtime}")
    print(f"  {'family':<22} {'variant':<9} {'ms per invoke':>13}  chosen")
    for family in timings.families:
        for v in family.variants:
            mark = "<- auto runs this" if v.precision == family.chosen else ""
            if v.precision == family.chosen and family.chosen != family.profile_choice:
                mark += f" (the CPU profile would run {family.profile_choice})"
            print(f"  {family.family:<22} {v.precision:<9} {v.median_ms:>13.2f}  {mark}")
