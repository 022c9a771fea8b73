"""``edge-agent control-room``: listen for alerts, list them, adjudicate, hold, apply retention."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge_agent.errors import ConfigError
from edge_agent.identifiers import MAX_RETENTION_DAYS, check_retention

DEFAULT_DB = Path("alerts.db")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("control-room", help="receive, verify and adjudicate alerts (control-room side)")
    sub = group.add_subparsers(dest="control_room_command", metavar="SUBCOMMAND")
    sub.required = True

    listen = sub.add_parser("listen", help="subscribe to alerts, verify signatures, store them for review")
    listen.add_argument("--config", type=Path, help="TOML file with a [broker] table: url, ca, cert, key")
    listen.add_argument("--broker", help="broker URL, mqtts://host:8883 (instead of --config)")
    listen.add_argument("--ca", type=Path, help="broker CA certificate (PEM)")
    listen.add_argument("--tls-cert", type=Path, help="control-room client certificate (PEM)")
    listen.add_argument("--tls-key", type=Path, help="control-room client private key (PEM)")
    listen.add_argument("--registry", type=Path, required=True, help="device registry JSON (public keys per device)")
    listen.add_argument("--key", type=Path, required=True, help="control_room_x25519.key (opens sealed crops)")
    listen.add_argument("--db", type=Path, default=DEFAULT_DB, help="alert store (SQLite), default alerts.db")
    listen.add_argument("--client-id", default="control-room-1", help="stable MQTT client id of this listener (persistent session)")
    listen.add_argument("--max-age-hours", type=float, default=MAX_RETENTION_DAYS * 24, help=f"refuse alerts captured longer ago (default {MAX_RETENTION_DAYS * 24} = {MAX_RETENTION_DAYS} days)")
    listen.add_argument("--max-future-s", type=float, default=300, help="refuse alerts stamped further in the future (clock skew)")
    listen.add_argument("--retention-days", type=float, default=MAX_RETENTION_DAYS, help=f"delete alerts older than this unless held (at most {MAX_RETENTION_DAYS})")
    listen.add_argument("--exit-after", type=int, default=0, help="stop after this many messages (0: run until Ctrl-C/SIGTERM)")
    listen.set_defaults(func=cmd_listen)

    alerts = sub.add_parser("alerts", help="list stored alerts")
    alerts.add_argument("--db", type=Path, default=DEFAULT_DB)
    alerts.add_argument("--status", choices=("pending_review", "confirmed", "rejected"))
    alerts.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    alerts.set_defaults(func=cmd_alerts)

    rejections = sub.add_parser("rejections", help="list refused messages and why")
    rejections.add_argument("--db", type=Path, default=DEFAULT_DB)
    rejections.add_argument("--json", action="store_true")
    rejections.set_defaults(func=cmd_rejections)

    adj = sub.add_parser("adjudicate", help="record a reviewer's decision on an alert")
    adj.add_argument("event_id")
    adj.add_argument("--db", type=Path, default=DEFAULT_DB)
    adj.add_argument("--decision", required=True, choices=("confirmed", "rejected"))
    adj.add_argument("--reviewer", required=True, help="reviewer id, e.g. PC1234")
    adj.add_argument("--reason", required=True, help="why (required)")
    adj.add_argument("--engaged", choices=("yes", "no"), help="whether officers engaged the person")
    _audit_args(adj)
    adj.set_defaults(func=cmd_adjudicate)

    hold = sub.add_parser("hold", help="place a legal hold: the alert is kept past retention")
    hold.add_argument("event_id")
    hold.add_argument("--db", type=Path, default=DEFAULT_DB)
    hold.add_argument("--reason", required=True)
    hold.add_argument("--by", default=None, help="who authorised the hold (default: the logged-in user)")
    _audit_args(hold)
    hold.set_defaults(func=cmd_hold)

    crop = sub.add_parser("crop", help="decrypt an alert's face crop to a JPEG file for review")
    crop.add_argument("event_id")
    crop.add_argument("--db", type=Path, default=DEFAULT_DB)
    crop.add_argument("--key", type=Path, required=True, help="control_room_x25519.key")
    crop.add_argument("--out", type=Path, required=True)
    crop.set_defaults(func=cmd_crop)

    purge = sub.add_parser("purge", help="delete alerts past retention (unless held)")
    purge.add_argument("--db", type=Path, default=DEFAULT_DB)
    purge.add_argument("--retention-days", type=float, default=MAX_RETENTION_DAYS)
    _audit_args(purge)
    purge.set_defaults(func=cmd_purge)


def _audit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audit-log", type=Path, help="append an audit record to this tamper-evident log")
    parser.add_argument("--audit-key", type=Path, help="Ed25519 key that signs audit checkpoints (with --audit-log)")
    parser.add_argument("--actor", default="control-room", help="audit actor id, e.g. control-room:ops1")


def _audit(args: argparse.Namespace):
    """The audit log named on the command line, or None."""
    if args.audit_log is None:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_agent.audit.log import AuditLog
    from edge_agent.crypto.keyfiles import load_private_key

    key = load_private_key(args.audit_key, Ed25519PrivateKey) if args.audit_key else None
    return AuditLog.open(args.audit_log, key, args.actor)


def _close(audit) -> None:
    if audit is not None:
        audit.close()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _broker_config(args: argparse.Namespace):
    from edge_agent.events.mqtt_connection import BrokerConfig

    if args.config is not None:
        if args.broker:
            raise ConfigError("give either --config or --broker, not both", "put the broker settings in one place")
        return BrokerConfig.from_toml(args.config)
    if not (args.broker and args.ca and args.tls_cert and args.tls_key):
        raise ConfigError("no broker configured", "pass --config FILE, or --broker mqtts://host:8883 --ca CA --tls-cert CERT --tls-key KEY")
    return BrokerConfig.from_url(args.broker, args.ca, args.tls_cert, args.tls_key)


def _retention(days: float) -> timedelta:
    if not 0 < days <= MAX_RETENTION_DAYS:
        raise ConfigError(f"--retention-days {days} must be between 0 and {MAX_RETENTION_DAYS}", f"policing.md: alert data is kept at most {MAX_RETENTION_DAYS} days")
    return check_retention(timedelta(days=days), "--retention-days")


def cmd_listen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.adjudication import apply_retention
    from edge_agent.control_room.intake import AlertIntake
    from edge_agent.control_room.listener import AlertListener
    from edge_agent.control_room.store import AlertStore
    from edge_agent.crypto.keyfiles import load_private_key
    from edge_agent.hardening import disable_core_dumps
    from edge_agent.identity.registry import DeviceRegistry

    hardened = disable_core_dumps()  # before the crop key or any alert is in memory
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("edge_agent.hardening").info(hardened.describe())
    config = _broker_config(args)
    retention = _retention(args.retention_days)
    max_age = timedelta(hours=args.max_age_hours)
    registry = DeviceRegistry.load(args.registry)
    key = load_private_key(args.key, X25519PrivateKey)
    store = AlertStore(args.db)
    done = threading.Event()
    count = 0

    def on_verdict(verdict) -> None:
        nonlocal count
        count += 1
        status = "ACCEPTED pending_review" if verdict.accepted else f"REJECTED {verdict.reason}"
        print(f"{status} event={verdict.event_id} device={verdict.device_id} {verdict.detail}".rstrip(), flush=True)
        if args.exit_after and count >= args.exit_after:
            done.set()

    intake = AlertIntake(registry, key, store, max_age=max_age, max_future=timedelta(seconds=args.max_future_s))
    listener = AlertListener(
        config, intake, client_id=args.client_id, on_verdict=on_verdict,
        housekeeping=lambda: apply_retention(store, _utc_now(), retention, max_age),
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    listener.start()
    print(f"listening on {config.host}:{config.port} ({listener.subscription}); store {args.db}", file=sys.stderr, flush=True)
    try:
        while not done.is_set() and not listener.subscribed.wait(0.2):
            pass
        if listener.subscribed.is_set():
            print(f"subscribed to {listener.subscription}", file=sys.stderr, flush=True)
        done.wait()
    finally:
        listener.stop()
        store.close()
    return 0


def _open_store(path: Path):
    from edge_agent.control_room.store import AlertStore, StoreError

    if not Path(path).exists():
        raise StoreError(f"alert store {path} does not exist", "run edge-agent control-room listen --db PATH first, or pass the right --db")
    return AlertStore(path)


def cmd_alerts(args: argparse.Namespace) -> int:
    with _open_store(args.db) as store:
        alerts = store.alerts(status=args.status)
        if args.json:
            out = []
            for a in alerts:
                item = a.as_dict()
                item["adjudications"] = store.adjudications(a.event_id)
                out.append(item)
            print(json.dumps(out, indent=2, sort_keys=True))
            return 0
    if not alerts:
        print("no alerts")
        return 0
    print(f"{'event_id':36}  {'captured_at':24}  {'device':12} {'seq':>5}  {'subject':14} {'category':22} {'score':>7}  status")
    for a in alerts:
        hold = "  [hold]" if a.hold_reason else ""
        print(f"{a.event_id:36}  {a.captured_at:24}  {a.device_id:12} {a.seq:>5}  {a.subject_ref:14} {a.category:22} {a.score:7.4f}  {a.status}{hold}")
    return 0


def cmd_rejections(args: argparse.Namespace) -> int:
    with _open_store(args.db) as store:
        rows = store.rejections()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, sort_keys=True))
        return 0
    for r in rows:
        print(f"{r.received_at}  {r.reason:22} device={r.claimed_device} event={r.event_id}  {r.detail}")
    if not rows:
        print("no rejections")
    return 0


def cmd_adjudicate(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import Adjudication, adjudicate

    engaged = None if args.engaged is None else args.engaged == "yes"
    adjudication = Adjudication(args.event_id, args.decision, args.reviewer, args.reason, engaged, _utc_now())
    audit = _audit(args)
    try:
        with _open_store(args.db) as store:
            adjudicate(store, adjudication, audit)
    finally:
        _close(audit)
    print(f"alert {args.event_id}: {args.decision} by {args.reviewer}")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import place_hold

    audit = _audit(args)
    try:
        with _open_store(args.db) as store:
            place_hold(store, args.event_id, args.reason, args.by or getpass.getuser(), _utc_now(), audit)
    finally:
        _close(audit)
    print(f"alert {args.event_id}: legal hold recorded")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.crypto.keyfiles import load_private_key
    from edge_agent.events.crop import open_crop
    from edge_agent.events.schema import AlertEvent, parse_payload

    key = load_private_key(args.key, X25519PrivateKey)
    with _open_store(args.db) as store:
        event = AlertEvent.from_dict(parse_payload(store.payload(args.event_id)))
    jpeg = open_crop(event.crop_sealed, key, event.event_id)
    args.out.write_bytes(jpeg)
    print(f"wrote {args.out} ({len(jpeg)} bytes)")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import apply_retention

    retention = _retention(args.retention_days)
    audit = _audit(args)
    try:
        with _open_store(args.db) as store:
            deleted = apply_retention(store, _utc_now(), retention, retention, audit)
    finally:
        _close(audit)
    print(f"deleted {len(deleted)} alert(s) past {args.retention_days:g} days")
    return 0
