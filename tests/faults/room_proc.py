"""The control room in its own process for the fault suite: a real listener (persistent session,
shared subscription), a SQLite store and receipts, until SIGTERM/SIGKILL. Restarted on the same
store it continues (its deployment is imported once, with a fixed authority key)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.audit.log import AuditLog
from edge_agent.control_room.listener import AlertListener
from edge_agent.control_room.local_room import ALWAYS, local_intake, sample_deployment
from edge_agent.control_room.receipting import ReceiptIssuer
from edge_agent.control_room.store import AlertStore
from edge_agent.crypto.keyfiles import load_private_key
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig
from edge_agent.identity.registry import DeviceRegistry


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("broker", "ca", "cert", "key", "db", "registry", "crop-key", "receipt-key", "authority-key", "audit"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--devices", default="cam-01,cam-02,cam-03")
    args = ap.parse_args()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    store = AlertStore(args.db)
    audit = AuditLog.open(Path(args.audit), None, "control-room:faults")
    authority = load_private_key(Path(args.authority_key), Ed25519PrivateKey)
    record = sample_deployment(authority, "dep-test", tuple(args.devices.split(",")), start=ALWAYS[0], end=ALWAYS[1], threshold=0.5)
    intake = local_intake(DeviceRegistry.load(Path(args.registry)), load_private_key(Path(args.crop_key), X25519PrivateKey), store, authority, [record], audit)
    config = BrokerConfig.from_url(args.broker, Path(args.ca), Path(args.cert), Path(args.key), keepalive_s=5)
    listener = AlertListener(config, intake, client_id="faults-room", session_expiry_s=3600, backoff=Backoff(0.05, 1.0), share_group="faults",
                             receipts=ReceiptIssuer.from_key_file(Path(args.receipt_key), "control-room", store)).start()
    if listener.subscribed.wait(20):
        print("subscribed", flush=True)
    while not done.wait(1.0):
        print(f"receipts_sent {listener.receipts_sent} error {listener.last_error}", file=sys.stderr, flush=True)
    listener.stop()
    store.close()
    audit.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
