"""A device-side alert publisher in its own process, so tests can SIGKILL it like a crashed agent.

Raises ``--count`` alerts (one every ``--interval`` seconds) through the real outbox, spool and
publisher, printing ``raised <seq>`` after each is committed; then keeps publishing until the
spool is empty (or forever with ``--linger``). Exit code 0 when drained.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_client import AlertPublisher
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import Candidate
from edge_agent.events.spool import Spool

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt-similarity-112/1", "embedder_sha256": "e" * 64, "precision": "int8"}
CROP = b"\xff\xd8" + b"test-crop" * 10 + b"\xff\xd9"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--device-dir", type=Path, required=True)
    ap.add_argument("--control-room-pub", type=Path, required=True)
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--linger", action="store_true")
    args = ap.parse_args()

    device_id = (args.device_dir / "device_id").read_text().strip()
    key = load_private_key(args.device_dir / "device_ed25519.key", Ed25519PrivateKey)
    control_room = load_public_key(args.control_room_pub, X25519PublicKey)
    config = BrokerConfig.from_url(args.broker, Path(args.ca), Path(args.cert), Path(args.key), keepalive_s=5)
    spool = Spool(args.spool)
    publisher = AlertPublisher(config, device_id, spool, backoff=Backoff(0.05, 0.5)).start()
    outbox = AlertOutbox(EventBuilder(DeviceContext(device_id, "dep-test", "wl-1", MODEL), key, control_room), spool, notify=publisher.notify)
    decision = MatchDecision("subj-1", "suspect", 0.81, 0.64, (Candidate("subj-1", 0.81), Candidate("subj-2", 0.5)), (10, 10, 50, 60))
    for _ in range(args.count):
        event = outbox.raise_alert(decision, CROP, datetime.now(timezone.utc))
        print(f"raised {event.seq}", flush=True)
        if args.interval:
            time.sleep(args.interval)
    print("ready", flush=True)
    while args.linger or spool.stats().depth:
        time.sleep(0.02)
    publisher.stop()
    print("drained", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
