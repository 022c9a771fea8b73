"""``edge-agent audit``: verify a device's hash-chained, checkpoint-signed audit log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.audit import verify_audit_log
from edge_agent.crypto.keyfiles import load_public_key
from edge_agent.errors import ConfigError
from edge_agent.identity.keys import DEVICE_SIGN_PUB
from edge_agent.identity.registry import DeviceRegistry


def register(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="tamper-evident audit log")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = sub.add_parser("verify", help="check the chain and signed checkpoints; names the first bad record")
    p.add_argument("log", type=Path)
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--device-pub", type=Path, help="the device's device_ed25519.pub (or its key directory)")
    key.add_argument("--registry", type=Path, help="device registry (with --device)")
    p.add_argument("--device", help="device id to look up in --registry")
    p.add_argument("--checkpoint-every", type=int, default=100, help="interval the device used (default 100)")
    p.add_argument("--receipts", type=Path,
                   help="the control room's receipts for this device (edge-agent control-room receipts): proves the log was not cut or rewritten up to the last receipted point")
    p.add_argument("--control-room-pub", type=Path, help="control_room_ed25519.pub, the key the receipts are signed with (with --receipts)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    if args.device_pub:
        path = args.device_pub / DEVICE_SIGN_PUB if args.device_pub.is_dir() else args.device_pub
        return load_public_key(path, Ed25519PublicKey)
    if not args.device:
        raise ConfigError("--registry needs --device ID", "name the device whose log this is")
    return DeviceRegistry.load(args.registry).signing_key(args.device)


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_audit_log(args.log, _public_key(args), args.checkpoint_every)
    anchors = None
    if args.receipts is not None:
        from edge_agent.audit.receipt_anchors import check_receipt_anchors, read_receipts
        from edge_agent.identity.keys import read_device_id

        if args.control_room_pub is None:
            raise ConfigError("--receipts needs --control-room-pub", "pass control_room_ed25519.pub, the key the receipts are signed with")
        device_id = args.device or (read_device_id(args.device_pub) if args.device_pub and args.device_pub.is_dir() else None)
        if device_id is None:
            raise ConfigError("--receipts needs the device id", "pass --device ID (or --device-pub with the device's key directory)")
        anchors = check_receipt_anchors(args.log, read_receipts(args.receipts), load_public_key(args.control_room_pub, Ed25519PublicKey), device_id)
    if args.json:
        print(json.dumps({**result.__dict__, **({"receipts": anchors.__dict__} if anchors else {})}, indent=2))
    else:
        print(result.summary())
        if anchors is not None:
            print(anchors.summary())
    return 0 if result.ok and (anchors is None or anchors.ok) else 1
