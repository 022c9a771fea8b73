"""A device in its own process for the fault suite: the project's own outbox, spool, audit log
and publisher (receipts required), raising alerts at a fixed rate so tests can SIGKILL it.

``--count N --rate R`` makes N attempts at R per second (one the spool refuses, e.g. on a full
disk, is counted as refused, never as raised); then it keeps publishing until the spool is empty. It writes a status line to ``--status`` (JSON, atomically) every 0.2 s: raised, refused,
spool depth, receipts. Started again on the same spool (``--count 0``) it only drains.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from edge_agent.audit.log import AuditLog
from edge_agent.crypto.keyfiles import load_private_key, load_public_key
from edge_agent.errors import EdgeAgentError
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision
from edge_agent.events.mqtt_client import AlertPublisher
from edge_agent.events.mqtt_connection import Backoff, BrokerConfig
from edge_agent.events.outbox import AlertOutbox
from edge_agent.events.schema import Candidate
from edge_agent.events.spool import Spool, SpoolError

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt-similarity-112/1", "embedder_sha256": "e" * 64, "precision": "int8"}
CROP = b"\xff\xd8" + b"fault-crop" * 200 + b"\xff\xd9"  # ~2 KB, like a small face crop


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("broker", "ca", "cert", "key", "state", "status"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--device-dir", type=Path, required=True)
    ap.add_argument("--crop-pub", type=Path, required=True)
    ap.add_argument("--receipt-pub", type=Path, required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--max-s", type=float, default=120.0)
    args = ap.parse_args()

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    device_id = (args.device_dir / "device_id").read_text().strip()
    key = load_private_key(args.device_dir / "device_ed25519.key", Ed25519PrivateKey)
    state = Path(args.state)
    audit = AuditLog.open(state / "audit.log", key, f"device:{device_id}")
    spool = Spool(state / "spool.db")
    config = BrokerConfig.from_url(args.broker, Path(args.ca), Path(args.cert), Path(args.key), keepalive_s=5)
    publisher = AlertPublisher(config, device_id, spool, backoff=Backoff(0.05, 1.0), receipt_key=load_public_key(args.receipt_pub, Ed25519PublicKey),
                               audit=audit)
    outbox = AlertOutbox(EventBuilder(DeviceContext(device_id, "dep-test", "wl-1", MODEL), key, load_public_key(args.crop_pub, X25519PublicKey)),
                         spool, audit, notify=publisher.notify)
    publisher.start()
    decision = MatchDecision("subj-1", "suspect", 0.81, 0.64, (Candidate("subj-1", 0.81), Candidate("subj-2", 0.5)), (10, 10, 50, 60))
    counts = {"raised": 0, "refused": 0}
    started = time.monotonic()
    last_status = 0.0

    def status(final: bool = False) -> None:
        stats = spool.stats()
        state_ = publisher.state()
        doc = {**counts, "depth": stats.depth, "receipts": state_.receipts, "retransmits": state_.retransmits, "published": state_.published,
               "acked": state_.acknowledged, "receipts_refused": state_.receipts_refused, "connects": state_.connects,
               "unaudited": outbox.health().unaudited, "pid": os.getpid(), "final": final}
        tmp = Path(args.status + ".tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, args.status)
        except OSError:
            pass  # the status file may live on the full disk too

    due = time.monotonic()
    while counts["raised"] + counts["refused"] < args.count and not stop["now"] and time.monotonic() - started < args.max_s:
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.01))
            continue
        due += 1.0 / args.rate
        try:
            outbox.raise_alert(decision, CROP, datetime.now(timezone.utc))
            counts["raised"] += 1
        except SpoolError as exc:
            counts["refused"] += 1  # never accepted: the disk is full; the agent keeps going
            if counts["refused"] % 200 == 1:
                print(f"refused #{counts['refused']}: {exc.message}", file=sys.stderr, flush=True)
            due = time.monotonic() + 0.05
        if outbox.health().unaudited:
            outbox.complete_audits()
        if now - last_status > 0.2:
            last_status = now
            status()
    while not stop["now"] and time.monotonic() - started < args.max_s:
        if outbox.health().unaudited:
            outbox.complete_audits()
        if spool.stats().depth == 0:
            break
        status()
        time.sleep(0.1)
    publisher.stop(drain_s=2.0)
    status(final=True)
    spool.close()
    try:
        audit.close()
    except EdgeAgentError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
