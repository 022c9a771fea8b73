"""``edge-agent watchlist``: central build, device load/wipe/retention, and header inspection."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AUDIT_FILE_NAME, AuditLog
from edge_agent.cli.progress import Progress
from edge_agent.crypto.canonical import CanonicalJsonError, parse_utc
from edge_agent.deployment.policy import describe_threshold
from edge_agent.deployment.record import SignedDeployment
from edge_agent.durable import atomic_write
from edge_agent.errors import ConfigError
from edge_agent.identity.keys import DeviceKeys, load_approver_public, load_authority_key, load_authority_public, load_device_keys
from edge_agent.identity.registry import DeviceRegistry
from edge_agent.vision.identity import DEFAULT_DETECTOR, DETECTOR_CHOICES
from edge_agent.watchlist.build import DEFAULT_MAX_IMAGE_AGE_YEARS, build_watchlist, read_subjects_csv
from edge_agent.watchlist.format import check_magic_and_version, decode_container
from edge_agent.watchlist.installed import install_verified
from edge_agent.watchlist.loader import DeviceTrust
from edge_agent.watchlist.retention import enforce_retention
from edge_agent.watchlist.store import WatchlistStore

WATCHLIST_DIR = "watchlist"  # inside the device state directory


def register(subparsers: argparse._SubParsersAction) -> None:
    wl = subparsers.add_parser("watchlist", help="encrypted, signed, expiring watchlist packages")
    sub = wl.add_subparsers(dest="watchlist_command", metavar="ACTION", required=True)

    p = sub.add_parser("build", help="(central) build a package from subjects.csv and reference photos")
    p.add_argument("--deployment", type=Path, required=True, help="signed deployment file")
    p.add_argument("--subjects", type=Path, required=True, help="CSV: " + ", ".join(("subject_ref", "category", "image", "...")))
    p.add_argument("--images", type=Path, required=True, help="folder the CSV image paths are relative to")
    p.add_argument("--for-device", action="extend", nargs="+", required=True, dest="devices", metavar="ID")
    p.add_argument("--registry", type=Path, required=True, help="device registry (public keys)")
    p.add_argument("--authority-key", type=Path, required=True, help="authority key file or directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--expires", help="UTC expiry earlier than the deployment end, e.g. 2026-11-22T18:00:00Z")
    p.add_argument("--control-room-pub", type=Path, help="control_room_x25519.pub: also write the reference images sealed to the control room")
    p.add_argument("--record-out", type=Path, help="the signed central build record (default: OUT.record.json): the listings the package leaves out; never sent to a device")
    p.add_argument("--references-out", type=Path, help="where to write them (default: OUT.references.json); never sent to a device")
    p.add_argument("--max-image-age-years", type=float, default=DEFAULT_MAX_IMAGE_AGE_YEARS, help="warn on older reference images")
    p.add_argument("--models", type=Path, default=None)
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR, help="must match the devices' detector setting")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("load", help="(device) verify a package for this device and install it")
    _device_options(p)
    p.add_argument("--package", type=Path, help="default: watchlist.package from --config")
    p.add_argument("--authority-pub", type=Path, help="the pinned authority public key (default: from --config)")
    p.add_argument("--approver-pub", type=Path, action="append", default=[], help="pinned approver public key (repeatable)")
    p.add_argument("--models", type=Path, default=None)
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default=None, help=f"default: from --config, else {DEFAULT_DETECTOR}")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("wipe", help="(device) overwrite and delete the stored package; audited")
    _device_options(p)
    p.add_argument("--reason", default="operator request")
    p.set_defaults(func=cmd_wipe)

    p = sub.add_parser("enforce-retention", help="(device) destroy the stored package if its deployment has ended")
    _device_options(p)
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("inspect", help="print a package's header (deployment, model, expiry, devices); no keys needed")
    p.add_argument("package", type=Path)
    p.add_argument("--authority-pub", type=Path, help="also verify the authority signature")
    p.set_defaults(func=cmd_inspect)


def _device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="the agent's agent.toml: state dir, keys, authority key and detector come from it")
    p.add_argument("--state-dir", type=Path, help="device state directory (instead of --config)")
    p.add_argument("--device-keys", type=Path, help="device key directory (instead of --config)")
    p.add_argument("--audit-log", type=Path, help=f"default: STATE_DIR/{AUDIT_FILE_NAME}")
    p.add_argument("--actor", default=None, help="who is acting (default operator:<login>)")


@dataclass(frozen=True)
class DeviceSide:
    """Where a device command finds its state and keys: an agent.toml, or explicit flags."""

    state_dir: Path
    keys: DeviceKeys
    authority_pub: Path | None
    detector: str | None
    models_dir: Path | None
    package: Path | None
    deployment_record: Path | None


def _device_side(args: argparse.Namespace) -> DeviceSide:
    if args.config is not None:
        from edge_agent.agent.config import load_config
        from edge_agent.crypto.keyfiles import load_private_key

        config = load_config(args.config)
        keys = DeviceKeys(
            config.device.id,
            load_private_key(config.device.signing_key, Ed25519PrivateKey),
            load_private_key(config.device.watchlist_key, X25519PrivateKey),
        )
        return DeviceSide(
            args.state_dir or Path(config.device.state_dir), keys, Path(config.device.authority_public_key),
            config.detector.model, config.detector.models_dir, config.watchlist.package, config.deployment.record,
        )
    if args.state_dir is None or args.device_keys is None:
        raise ConfigError("no device named", "pass --config /etc/edge-agent/agent.toml, or both --state-dir and --device-keys")
    return DeviceSide(args.state_dir, load_device_keys(args.device_keys), None, None, None, None, None)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def _audit(args: argparse.Namespace, side: DeviceSide) -> AuditLog:
    return AuditLog.open(args.audit_log or side.state_dir / AUDIT_FILE_NAME, side.keys.signing_key, _actor(args))


def _core(models: Path | None, detector: str):
    from edge_agent.vision.core import RecognitionCore

    return RecognitionCore.load(models, detector=detector)


def cmd_build(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    if args.out.exists():
        raise ConfigError(f"{args.out} already exists", "choose another --out")
    deployment = SignedDeployment.load(args.deployment)
    subjects = read_subjects_csv(args.subjects)
    registry = DeviceRegistry.load(args.registry)
    recipients = {device_id: registry.sealing_key(device_id) for device_id in dict.fromkeys(args.devices)}
    expires = None
    if args.expires:
        try:
            expires = parse_utc(args.expires, "--expires")
        except CanonicalJsonError as exc:
            raise ConfigError(exc.message, exc.hint) from None
    control_room = None
    if args.control_room_pub is not None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        from edge_agent.crypto.keyfiles import load_public_key

        control_room = load_public_key(args.control_room_pub, X25519PublicKey)
    elif args.references_out is not None:
        raise ConfigError("--references-out needs --control-room-pub", "give the control room's X25519 public key to seal the images to")
    record_out = args.record_out or Path(f"{args.out}.record.json")
    if record_out.exists():
        raise ConfigError(f"{record_out} already exists", "choose another --record-out")
    references_out = args.references_out or Path(f"{args.out}.references.json")
    if control_room is not None and references_out.exists():
        raise ConfigError(f"{references_out} already exists", "choose another --references-out")
    core = _core(args.models, args.detector)
    total = sum(len(s.images) for s in subjects)
    with Progress(total, "embedding reference images") as bar:
        result = build_watchlist(
            deployment, subjects, args.images, recipients, load_authority_key(args.authority_key), core, now,
            args.max_image_age_years, expires, on_image=bar.advance, control_room=control_room,
        )
    for w in result.warnings:
        print(f"warning [{w.code}] {w.subject_ref}: {w.message}", file=sys.stderr)
    atomic_write(args.out, result.package, 0o644)  # encrypted and signed; readable by whoever ships it
    atomic_write(record_out, result.record, 0o600)  # the listings' legal basis, dates, under-18 notes: central only
    print(f"{record_out}: central build record (image source, legal basis, dates, under-18 justification; keep it, do not ship it)")
    if result.references is not None:
        atomic_write(references_out, result.references, 0o600)  # sealed, but for the control room only
        print(f"{references_out}: reference images sealed to the control room (import with edge-agent control-room import-references)")
    size = len(result.package)
    print(
        f"{args.out}: {len(result.entries)} subjects, {result.template_count} templates, {size} bytes "
        f"({size / max(1, len(result.entries)):.0f} B/subject), for {', '.join(recipients)}; {len(result.warnings)} warning(s)"
    )
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    side = _device_side(args)
    package = args.package or side.package
    authority = args.authority_pub or side.authority_pub
    if package is None or authority is None:
        raise ConfigError("no package or authority key given", "pass --package and --authority-pub (or a --config that names them)")
    authority_pub = load_authority_public(authority)
    approvers = [load_approver_public(p) for p in args.approver_pub]
    identity = _core(args.models or side.models_dir, args.detector or side.detector or DEFAULT_DETECTOR).identity
    expected = SignedDeployment.load(side.deployment_record) if side.deployment_record and Path(side.deployment_record).is_file() else None
    try:
        data = Path(package).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"package {package} not found", "check the path") from None
    # Verified in memory before it is stored, so a refused package never replaces a good one.
    with _audit(args, side) as audit:
        trust = DeviceTrust(side.keys, authority_pub, identity, approvers, expected)
        loaded = install_verified(WatchlistStore(side.state_dir / WATCHLIST_DIR), data, trust, now, audit, source=str(package))
    print(
        f"watchlist for deployment {loaded.deployment.deployment_id} installed: {len(loaded.entries)} subjects, "
        f"{len(loaded.gallery)} templates, expires {loaded.expires_at.isoformat()}"
    )
    print(describe_threshold(loaded.deployment))
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    side = _device_side(args)
    store = WatchlistStore(side.state_dir / WATCHLIST_DIR)
    with _audit(args, side) as audit:
        wiped = store.wipe(audit, args.reason, datetime.now(timezone.utc))
    print("watchlist wiped" if wiped else "no watchlist stored; nothing to wipe")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    side = _device_side(args)
    store = WatchlistStore(side.state_dir / WATCHLIST_DIR)
    with _audit(args, side) as audit:
        destroyed = enforce_retention(store, datetime.now(timezone.utc), audit)
    print("watchlist destroyed (deployment ended)" if destroyed else "nothing to destroy")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from edge_agent.watchlist.loader import verify_package_signature

    data = args.package.read_bytes()
    check_magic_and_version(data)
    if args.authority_pub:
        verify_package_signature(data, load_authority_public(args.authority_pub))
    container = decode_container(data)
    header = dict(container.header)
    deployment = SignedDeployment.from_json(header.pop("deployment")).unverified_record()
    header["deployment_end"] = deployment.end.isoformat()
    header["alert_threshold"] = deployment.alert_threshold
    header["sealed_for"] = sorted(container.seals)
    header["payload_bytes"] = len(container.payload)
    header["signature"] = "valid" if args.authority_pub else "not checked (pass --authority-pub)"
    print(json.dumps(header, indent=2))
    return 0
