"""``edge-agent keys``: create authority, approver, device and control-room key directories."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from edge_agent.identity.keys import init_approver, init_authority, init_control_room, init_device, load_device_keys
from edge_agent.identity.registry import DeviceRegistry


def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="create key directories (private keys 0600, never overwritten)")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = sub.add_parser("init-authority", help="the central authority's Ed25519 signing key")
    p.add_argument("directory", type=Path)
    p.set_defaults(func=cmd_init_authority)

    p = sub.add_parser("init-approver", help="an approver's Ed25519 key (second signature for a lowered threshold)")
    p.add_argument("directory", type=Path)
    p.set_defaults(func=cmd_init_approver)

    p = sub.add_parser("init-device", help="a device's Ed25519 (events) and X25519 (watchlists) keys")
    p.add_argument("--id", required=True, dest="device_id", help="device id, e.g. cam-01")
    p.add_argument("directory", type=Path)
    p.add_argument("--registry", type=Path, help="add the device's public keys to this registry file (created if absent)")
    p.set_defaults(func=cmd_init_device)

    p = sub.add_parser("init-control-room", help="the control room's X25519 key (opens alert crops) and Ed25519 key (signs receipts)")
    p.add_argument("directory", type=Path)
    p.set_defaults(func=cmd_init_control_room)


def cmd_init_authority(args: argparse.Namespace) -> int:
    paths = init_authority(args.directory)
    print(f"authority key: {paths.signing_key} (keep offline)\npublic key:    {paths.public_key} (pin on every device)")
    return 0


def cmd_init_approver(args: argparse.Namespace) -> int:
    paths = init_approver(args.directory)
    print(f"approver key: {paths.signing_key}\npublic key:   {paths.public_key} (pin on devices that may accept lowered thresholds)")
    return 0


def cmd_init_device(args: argparse.Namespace) -> int:
    registry = None
    if args.registry is not None:
        # Refuse a duplicate id before creating any key, so a refusal leaves nothing half-made.
        registry = DeviceRegistry.load(args.registry) if args.registry.exists() else DeviceRegistry()
        if args.device_id in registry:
            from edge_agent.errors import ConfigError

            raise ConfigError(f"device {args.device_id!r} is already in {args.registry}", "choose another id or retire the old entry first")
    paths = init_device(args.directory, args.device_id)
    print(f"device {args.device_id}: keys in {paths.directory}")
    if registry is not None:
        keys = load_device_keys(args.directory)
        registry.add(args.device_id, keys.signing_public, keys.sealing_public, datetime.now(timezone.utc))
        registry.save(args.registry)
        print(f"registered in {args.registry}")
    return 0


def cmd_init_control_room(args: argparse.Namespace) -> int:
    paths = init_control_room(args.directory)
    print(f"control-room key: {paths.sealing_key}\npublic key:       {paths.sealing_public} (give to devices)")
    print(f"receipt key:      {paths.receipt_key}\npublic key:       {paths.receipt_public} (give to devices)")
    return 0
