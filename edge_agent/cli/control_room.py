"""``edge-agent control-room``: listen for alerts, review and adjudicate them, holds, retention,
crop export, deployment import, console accounts and the browser console.

Every command that changes an alert, shows its details or lets its face leave the control room
needs ``--audit-log`` (issue 10.3): an action that cannot be audited does not happen. The store
is ``--db PATH`` (SQLite) or a ``postgresql://`` URL, also read from ``EDGE_AGENT_STORE`` so a
password need not appear on a command line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge_agent.errors import ConfigError
from edge_agent.identifiers import MAX_RETENTION_DAYS, check_retention

DEFAULT_DB = "alerts.db"
STORE_ENV = "EDGE_AGENT_STORE"


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get(STORE_ENV) or DEFAULT_DB,
                        help=f"alert store: a SQLite path or a postgresql:// URL (default: ${STORE_ENV}, else {DEFAULT_DB})")


def _audit_args(parser: argparse.ArgumentParser, actor: str | None = None) -> None:
    parser.add_argument("--audit-log", type=Path, required=True, help="the control room's tamper-evident audit log (required)")
    parser.add_argument("--audit-key", type=Path, help="Ed25519 key that signs audit checkpoints")
    parser.add_argument("--actor", default=actor, help="audit actor id (default: operator:<login name>)")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("control-room", help="receive, verify and adjudicate alerts (control-room side)")
    sub = group.add_subparsers(dest="control_room_command", metavar="SUBCOMMAND")
    sub.required = True

    listen = sub.add_parser("listen", help="subscribe to alerts, verify signatures, store them for review")
    _broker_args(listen)
    listen.add_argument("--registry", type=Path, required=True, help="device registry JSON (public keys per device)")
    listen.add_argument("--key", type=Path, required=True, help="control_room_x25519.key (opens sealed crops)")
    listen.add_argument("--authority-pub", type=Path, required=True, help="the authority's public key: imported deployment records are checked with it")
    _db_arg(listen)
    listen.add_argument("--client-id", default="control-room-1", help="stable MQTT client id of this listener (persistent session)")
    listen.add_argument("--receipt-key", type=Path, help="control_room_ed25519.key: sign a receipt for every stored alert (devices keep alerts until one arrives)")
    listen.add_argument("--control-room-id", default="control-room", help="the control room's id in receipts and adjudication notices")
    listen.add_argument("--max-age-hours", type=float, default=MAX_RETENTION_DAYS * 24, help=f"refuse alerts captured longer ago (default {MAX_RETENTION_DAYS * 24} = {MAX_RETENTION_DAYS} days)")
    listen.add_argument("--max-future-s", type=float, default=300, help="refuse alerts stamped further in the future (clock skew)")
    listen.add_argument("--retention-days", type=float, default=MAX_RETENTION_DAYS, help=f"delete alerts older than this unless held (at most {MAX_RETENTION_DAYS})")
    listen.add_argument("--exit-after", type=int, default=0, help="stop after this many messages (0: run until Ctrl-C/SIGTERM)")
    _audit_args(listen)
    listen.set_defaults(func=cmd_listen)

    alerts = sub.add_parser("alerts", help="list stored alerts (pending ones show only what a queue needs)")
    _db_arg(alerts)
    alerts.add_argument("--status", choices=("pending_review", "confirmed", "rejected"))
    alerts.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    alerts.set_defaults(func=cmd_alerts)

    show = sub.add_parser("show", help="show one alert in full (subject, candidates, model); audited as a view")
    show.add_argument("event_id")
    _db_arg(show)
    _audit_args(show)
    show.set_defaults(func=cmd_show)

    rejections = sub.add_parser("rejections", help="list refused messages and why")
    _db_arg(rejections)
    rejections.add_argument("--json", action="store_true")
    rejections.set_defaults(func=cmd_rejections)

    adj = sub.add_parser("adjudicate", help="record a reviewer's decision on an alert")
    adj.add_argument("event_id")
    _db_arg(adj)
    adj.add_argument("--decision", required=True, choices=("confirmed", "rejected"))
    adj.add_argument("--reviewer", required=True, help="reviewer id, e.g. PC1234")
    adj.add_argument("--reason", required=True, help="why (required)")
    adj.add_argument("--engaged", choices=("yes", "no"), help="whether officers engaged the person")
    _audit_args(adj)
    adj.set_defaults(func=cmd_adjudicate)

    hold = sub.add_parser("hold", help="place a legal hold: the alert is kept past retention")
    hold.add_argument("event_id")
    _db_arg(hold)
    hold.add_argument("--reason", required=True)
    hold.add_argument("--by", default=None, help="who authorised the hold (default: the logged-in user)")
    _audit_args(hold)
    hold.set_defaults(func=cmd_hold)

    release = sub.add_parser("release-hold", help="end a legal hold (the alert falls under retention again)")
    release.add_argument("event_id")
    _db_arg(release)
    release.add_argument("--reason", required=True)
    release.add_argument("--by", default=None, help="who authorised the release (default: the logged-in user)")
    _audit_args(release)
    release.set_defaults(func=cmd_release_hold)

    crop = sub.add_parser("crop", help="export an adjudicated alert's face crop to a new 0600 JPEG file (audited)")
    crop.add_argument("event_id")
    _db_arg(crop)
    crop.add_argument("--key", type=Path, required=True, help="control_room_x25519.key")
    crop.add_argument("--out", type=Path, required=True)
    _audit_args(crop)
    crop.set_defaults(func=cmd_crop)

    purge = sub.add_parser("purge", help="delete alerts past retention (unless held); audited")
    _db_arg(purge)
    purge.add_argument("--retention-days", type=float, default=MAX_RETENTION_DAYS)
    _audit_args(purge)
    purge.set_defaults(func=cmd_purge)

    imp = sub.add_parser("import-deployments", help="import signed deployment records (files or folders of *.json)")
    imp.add_argument("paths", type=Path, nargs="+")
    imp.add_argument("--authority-pub", type=Path, required=True, help="the authority's public key (records must verify under it)")
    _db_arg(imp)
    _audit_args(imp)
    imp.set_defaults(func=cmd_import_deployments)

    refs = sub.add_parser("import-references", help="import a watchlist build's reference images (sealed to this control room)")
    refs.add_argument("file", type=Path, help="the OUT.references.json written by edge-agent watchlist build --control-room-pub")
    refs.add_argument("--key", type=Path, required=True, help="control_room_x25519.key (every image must open with it)")
    _db_arg(refs)
    _audit_args(refs)
    refs.set_defaults(func=cmd_import_references)

    acc = sub.add_parser("accounts", help="console operator accounts (viewer, adjudicator, supervisor)")
    acc_sub = acc.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    add = acc_sub.add_parser("add", help="create an account; the password is read from stdin (or a prompt)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("viewer", "adjudicator", "supervisor"))
    _db_arg(add)
    _audit_args(add)
    add.set_defaults(func=cmd_accounts_add)
    lst = acc_sub.add_parser("list", help="list accounts")
    _db_arg(lst)
    lst.set_defaults(func=cmd_accounts_list)
    for name, helptext in (("disable", "disable an account (ends its sessions)"), ("enable", "enable an account again")):
        p = acc_sub.add_parser(name, help=helptext)
        p.add_argument("username")
        _db_arg(p)
        _audit_args(p)
        p.set_defaults(func=cmd_accounts_disable, disable=name == "disable")

    receipts = sub.add_parser("receipts", help="the signed receipts of a device's stored alerts (for edge-agent audit verify --receipts)")
    _db_arg(receipts)
    receipts.add_argument("--device", required=True, help="device id")
    receipts.add_argument("--receipt-key", type=Path, required=True, help="control_room_ed25519.key")
    receipts.add_argument("--control-room-id", default="control-room")
    receipts.add_argument("--out", type=Path, required=True, help="file to write, one receipt per line")
    receipts.set_defaults(func=cmd_receipts)

    serve = sub.add_parser("serve", help="the browser console (with the listener in the same process when a broker is given)")
    _db_arg(serve)
    serve.add_argument("--key", type=Path, required=True, help="control_room_x25519.key (crops and reference images, in memory only)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--tls-cert-file", type=Path, help="serve HTTPS with this certificate (cookies are then Secure)")
    serve.add_argument("--tls-key-file", type=Path, help="the certificate's private key")
    serve.add_argument("--behind-tls-proxy", action="store_true", help="mark cookies Secure: a TLS proxy terminates HTTPS in front")
    serve.add_argument("--authority-pub", type=Path, help="the authority's public key (shows deployment records; needed with --listen)")
    serve.add_argument("--listen", action="store_true", help="also run the alert listener and the fleet monitor in this process")
    _broker_args(serve)
    serve.add_argument("--registry", type=Path, help="device registry (with --listen)")
    serve.add_argument("--client-id", default="control-room-console-1", help="MQTT client id of the in-process listener")
    serve.add_argument("--receipt-key", type=Path, help="control_room_ed25519.key (with --listen): receipts for stored alerts, decisions sent back to devices")
    serve.add_argument("--control-room-id", default="control-room", help="the control room's id in receipts and adjudication notices")
    serve.add_argument("--session-idle-minutes", type=float, default=15)
    serve.add_argument("--session-hours", type=float, default=8)
    _audit_args(serve)
    serve.set_defaults(func=cmd_serve)


def _broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with a [broker] table: url, ca, cert, key")
    parser.add_argument("--broker", help="broker URL, mqtts://host:8883 (instead of --config)")
    parser.add_argument("--ca", type=Path, help="broker CA certificate (PEM)")
    parser.add_argument("--tls-cert", type=Path, help="control-room client certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="control-room client private key (PEM)")


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def open_audit(args: argparse.Namespace, actor: str | None = None):
    """The control room's audit log named on the command line (required)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_agent.audit.log import AuditLog
    from edge_agent.crypto.keyfiles import load_private_key

    key = load_private_key(args.audit_key, Ed25519PrivateKey) if args.audit_key else None
    return AuditLog.open(args.audit_log, key, actor or _actor(args))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def broker_config(args: argparse.Namespace):
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


def _deployment_book(store, authority_pub: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_agent.control_room.deployments import DeploymentBook
    from edge_agent.crypto.keyfiles import load_public_key

    return DeploymentBook(store.db, load_public_key(authority_pub, Ed25519PublicKey))


def open_store(location: str, create: bool = False):
    from edge_agent.control_room.db import is_postgres
    from edge_agent.control_room.store import AlertStore, StoreError

    if not create and not is_postgres(location) and not Path(location).exists():
        raise StoreError(f"alert store {location} does not exist", "run edge-agent control-room listen --db PATH first, or pass the right --db")
    return AlertStore(location)


@contextmanager
def audited_store(args: argparse.Namespace, create: bool = False):
    """(store, audit log) for one command: the audit log opens first, so nothing runs unaudited."""
    audit = open_audit(args)
    try:
        with open_store(args.db, create=create) as store:
            yield store, audit
    finally:
        audit.close()


def cmd_listen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.adjudication import apply_retention
    from edge_agent.control_room.intake import AlertIntake
    from edge_agent.control_room.listener import AlertListener
    from edge_agent.crypto.keyfiles import load_private_key
    from edge_agent.hardening import disable_core_dumps
    from edge_agent.identity.registry import DeviceRegistry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    config = broker_config(args)
    retention = _retention(args.retention_days)
    max_age = timedelta(hours=args.max_age_hours)
    registry = DeviceRegistry.load(args.registry)
    # Arguments and public material checked; no private key, crop or alert is in memory yet.
    logging.getLogger("edge_agent.hardening").info(disable_core_dumps().describe())
    key = load_private_key(args.key, X25519PrivateKey)
    audit = open_audit(args, args.actor or f"control-room:{args.client_id}")
    store = open_store(args.db, create=True)
    done = threading.Event()
    count = 0

    def on_verdict(verdict) -> None:
        nonlocal count
        count += 1
        status = "ACCEPTED pending_review" if verdict.accepted else f"REJECTED {verdict.reason}"
        print(f"{status} event={verdict.event_id} device={verdict.device_id} {verdict.detail}".rstrip(), flush=True)
        if args.exit_after and count >= args.exit_after:
            done.set()

    try:
        deployments = _deployment_book(store, args.authority_pub)
        intake = AlertIntake(registry, key, store, deployments, audit, max_age=max_age, max_future=timedelta(seconds=args.max_future_s))
        listener = AlertListener(
            config, intake, client_id=args.client_id, on_verdict=on_verdict,
            housekeeping=lambda: apply_retention(store, _utc_now(), retention, audit),
            receipts=_receipt_issuer(args, store),
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        listener.start()
        print(f"listening on {config.host}:{config.port} ({listener.subscription}); store {store.location}", file=sys.stderr, flush=True)
        try:
            while not done.is_set() and not listener.subscribed.wait(0.2):
                pass
            if listener.subscribed.is_set():
                print(f"subscribed to {listener.subscription}", file=sys.stderr, flush=True)
            done.wait()
        finally:
            listener.stop()
    finally:
        store.close()
        audit.close()
    return 0


def alert_json(store, alert) -> dict:
    """An alert for listing: a pending one shows only its queue fields (issue 10.2)."""
    from edge_agent.control_room.store import PENDING

    if alert.status == PENDING:
        return alert.queue_dict()
    item = alert.as_dict()
    item["adjudications"] = store.adjudications(alert.event_id)
    return item


def cmd_alerts(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        alerts = store.alerts(status=args.status)
        if args.json:
            print(json.dumps([alert_json(store, a) for a in alerts], indent=2, sort_keys=True))
            return 0
    if not alerts:
        print("no alerts")
        return 0
    print(f"{'event_id':36}  {'captured_at':24}  {'device':12} {'deployment':14} {'category':22} {'score':>7}  status")
    for a in alerts:
        hold = "  [hold]" if a.hold_reason else ""
        print(f"{a.event_id:36}  {a.captured_at:24}  {a.device_id:12} {a.deployment_id:14} {a.category:22} {a.score:7.4f}  {a.status}{hold}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from edge_agent.control_room.auditing import ALERT_VIEWED

    with audited_store(args) as (store, audit):
        alert = store.alert(args.event_id)
        audit.append(ALERT_VIEWED, {"event_id": alert.event_id, "status": alert.status, "via": "cli"})
        item = alert.as_dict()
        item["adjudications"] = store.adjudications(alert.event_id)
        item["hold_history"] = store.hold_history(alert.event_id)
    print(json.dumps(item, indent=2, sort_keys=True))
    return 0


def cmd_rejections(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
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
    with audited_store(args) as (store, audit):
        adjudicate(store, adjudication, audit)
    print(f"alert {args.event_id}: {args.decision} by {args.reviewer}")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import place_hold

    with audited_store(args) as (store, audit):
        place_hold(store, args.event_id, args.reason, args.by or getpass.getuser(), _utc_now(), audit)
    print(f"alert {args.event_id}: legal hold recorded")
    return 0


def cmd_release_hold(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import release_hold

    with audited_store(args) as (store, audit):
        release_hold(store, args.event_id, args.reason, args.by or getpass.getuser(), _utc_now(), audit)
    print(f"alert {args.event_id}: legal hold released")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.adjudication import export_crop
    from edge_agent.crypto.keyfiles import load_private_key

    key = load_private_key(args.key, X25519PrivateKey)
    with audited_store(args) as (store, audit):
        digest = export_crop(store, args.event_id, key, args.out, audit)
    print(f"wrote {args.out} (sha256 {digest}, mode 0600); export audited")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from edge_agent.control_room.adjudication import apply_retention

    retention = _retention(args.retention_days)
    with audited_store(args) as (store, audit):
        result = apply_retention(store, _utc_now(), retention, audit)
    print(f"deleted {len(result.deleted)} alert(s) past {args.retention_days:g} days; "
          f"replay memory kept back to {result.replay_horizon} ({result.forgotten} older entries forgotten)")
    return 0


def cmd_import_deployments(args: argparse.Namespace) -> int:
    with audited_store(args, create=True) as (store, audit):
        results = _deployment_book(store, args.authority_pub).import_paths(args.paths, _utc_now(), _actor(args), audit)
    for record, new in results:
        state = "imported" if new else "already held"
        print(f"deployment {record.deployment_id}: {state} ({record.mode}, {record.start.isoformat()} to {record.end.isoformat()}, "
              f"devices {', '.join(record.device_ids)})")
    return 0


def cmd_import_references(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.references import ReferenceBook
    from edge_agent.crypto.keyfiles import load_private_key

    key = load_private_key(args.key, X25519PrivateKey)
    with audited_store(args, create=True) as (store, audit):
        count = ReferenceBook(store.db).import_file(args.file, key, audit)
    print(f"imported {count} reference image(s), still sealed to the control room")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ", "type the same password twice")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_accounts_add(args: argparse.Namespace) -> int:
    from edge_agent.control_room.accounts import AccountBook
    from edge_agent.control_room.auditing import ACCOUNT_CHANGED

    password = _read_password()
    with audited_store(args, create=True) as (store, audit):
        account = AccountBook(store.db).create(args.username, args.role, password, _actor(args), _utc_now())
        audit.append(ACCOUNT_CHANGED, {"username": account.username, "action": "create", "role": account.role})
    print(f"account {account.username} ({account.role}) created")
    return 0


def cmd_accounts_list(args: argparse.Namespace) -> int:
    from edge_agent.control_room.accounts import AccountBook

    with open_store(args.db) as store:
        rows = AccountBook(store.db).accounts()
    for a in rows:
        print(f"{a.username:24} {a.role:12} {'disabled' if a.disabled else 'active':9} created {a.created_at} by {a.created_by}")
    if not rows:
        print("no accounts (create one with: edge-agent control-room accounts add NAME --role supervisor --audit-log LOG)")
    return 0


def cmd_accounts_disable(args: argparse.Namespace) -> int:
    from edge_agent.control_room.accounts import AccountBook
    from edge_agent.control_room.auditing import ACCOUNT_CHANGED

    with audited_store(args) as (store, audit):
        AccountBook(store.db).set_disabled(args.username, args.disable)
        audit.append(ACCOUNT_CHANGED, {"username": args.username, "action": "disable" if args.disable else "enable"})
    print(f"account {args.username} {'disabled' if args.disable else 'enabled'}")
    return 0


def cmd_receipts(args: argparse.Namespace) -> int:
    """Receipts are deterministic (stored payload, stored_at, Ed25519): these are the bytes the device got."""
    from edge_agent.control_room.receipting import ReceiptIssuer
    from edge_agent.durable import atomic_write

    store = open_store(args.db)
    try:
        issuer = ReceiptIssuer.from_key_file(args.receipt_key, args.control_room_id, store)
        lines = []
        for alert in store.alerts():
            if alert.device_id == args.device:
                out = issuer.receipt(alert.event_id)
                if out is not None:
                    lines.append(out.payload)
    finally:
        store.close()
    atomic_write(args.out, b"".join(line + b"\n" for line in lines), mode=0o600)
    print(f"{len(lines)} receipt(s) for {args.device} written to {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge_agent.control_room.accounts import LoginPolicy
    from edge_agent.control_room.fleet import FleetBook, FleetMonitor
    from edge_agent.control_room.web.app import ConsoleConfig, create_app
    from edge_agent.crypto.keyfiles import load_private_key
    from edge_agent.hardening import disable_core_dumps

    disable_core_dumps()  # before the crop key or any decrypted image is in memory
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        raise ConfigError("--tls-cert-file and --tls-key-file go together", "give both to serve HTTPS, or neither")
    if args.listen and not (args.registry and args.authority_pub):
        raise ConfigError("--listen needs --registry and --authority-pub", "the listener verifies devices and deployments")
    key = load_private_key(args.key, X25519PrivateKey)
    audit = open_audit(args, args.actor or "control-room:console")
    store = open_store(args.db, create=True)
    background: list = []
    try:
        deployments = _deployment_book(store, args.authority_pub) if args.authority_pub else None
        broker = broker_config(args) if (args.listen or args.config or args.broker) else None
        if broker is not None:
            background.append(FleetMonitor(broker, FleetBook(store.db)).start())
        on_adjudicated = None
        if args.listen:
            listener = _start_listener(args, broker, store, deployments, key, audit)
            background.append(listener)
            # The reviewer's decision goes back to the device, signed (issue 12.1).
            on_adjudicated = lambda alert, d: listener.notify_adjudication(d.event_id, d.decision, d.engaged, d.at, d.reviewer)  # noqa: E731
        policy = LoginPolicy(idle=timedelta(minutes=args.session_idle_minutes), absolute=timedelta(hours=args.session_hours))
        secure = bool(args.tls_cert_file) or args.behind_tls_proxy
        app = create_app(ConsoleConfig(store, audit, key, deployments, secure_cookies=secure, policy=policy, on_adjudicated=on_adjudicated))
        scheme = "https" if args.tls_cert_file else "http"
        print(f"console on {scheme}://{args.host}:{args.port}/ (store {store.location})", file=sys.stderr, flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ssl_certfile=args.tls_cert_file, ssl_keyfile=args.tls_key_file)
    finally:
        for item in background:
            item.stop()
        store.close()
        audit.close()
    return 0


def _start_listener(args, broker, store, deployments, key, audit):
    from edge_agent.control_room.adjudication import apply_retention
    from edge_agent.control_room.intake import AlertIntake
    from edge_agent.control_room.listener import AlertListener
    from edge_agent.identity.registry import DeviceRegistry

    intake = AlertIntake(DeviceRegistry.load(args.registry), key, store, deployments, audit)
    retention = _retention(MAX_RETENTION_DAYS)
    return AlertListener(broker, intake, client_id=args.client_id,
                         housekeeping=lambda: apply_retention(store, _utc_now(), retention, audit),
                         receipts=_receipt_issuer(args, store)).start()


def _receipt_issuer(args, store):
    """A ReceiptIssuer when --receipt-key is given (else the listener signs nothing, with a warning)."""
    from edge_agent.control_room.receipting import ReceiptIssuer

    if args.receipt_key is None:
        logging.getLogger(__name__).warning("no --receipt-key: devices get no receipts and keep re-sending alerts if they require them")
        return None
    return ReceiptIssuer.from_key_file(args.receipt_key, args.control_room_id, store)
