"""Benchmark: receipts (issue 12 targets), printed as a table.

1. Round trip device -> control room -> device at ``--rate`` alerts/s for ``--seconds``: from just
   before the alert is built (sign, seal, spool, audit) to the device applying the control room's
   signed receipt (verified, matched, audited, row deleted). Beside it, the same alerts' time to
   the broker's PUBACK: all a device knew before receipts. Target: receipt p99 <= 50 ms at 50/s.
2. The broker restarted (SIGTERM) and the control room killed and restarted mid-stream, with
   the device, room and broker in their own processes (tests/faults/rig.py): every alert must
   end receipted exactly once (one receipt_received per alert in the device's audit log) and
   stored exactly once.

    python benchmarks/receipts.py [--rate 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "faults")]

from edge_agent.audit.log import AuditLog  # noqa: E402
from edge_agent.control_room.listener import AlertListener  # noqa: E402
from edge_agent.control_room.local_room import ALWAYS, local_intake, sample_deployment  # noqa: E402
from edge_agent.control_room.receipting import ReceiptIssuer  # noqa: E402
from edge_agent.control_room.store import AlertStore  # noqa: E402
from edge_agent.crypto.keyfiles import load_private_key, load_public_key  # noqa: E402
from edge_agent.events.builder import DeviceContext, EventBuilder, MatchDecision  # noqa: E402
from edge_agent.events.mqtt_client import AlertPublisher  # noqa: E402
from edge_agent.events.mqtt_connection import Backoff  # noqa: E402
from edge_agent.events.outbox import AlertOutbox  # noqa: E402
from edge_agent.events.schema import Candidate  # noqa: E402
from edge_agent.events.spool import Spool  # noqa: E402
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, MosquittoBroker, make_messaging_env  # noqa: E402
from edge_agent.identity.registry import DeviceRegistry  # noqa: E402

MODEL = {"detector_sha256": "d" * 64, "aligner": "5pt-similarity-112/1", "embedder_sha256": "e" * 64, "precision": "int8"}
CROP = b"\xff\xd8" + b"bench-crop" * 200 + b"\xff\xd9"
DECISION = MatchDecision("subj-1", "suspect", 0.81, 0.64, (Candidate("subj-1", 0.81),), (10, 10, 50, 60))


def round_trip(root: Path, rate: float, seconds: float) -> dict[str, float]:
    env = make_messaging_env(root / "env", ("cam-01",))
    broker = MosquittoBroker(env, root / "broker").start()
    store = AlertStore(root / "alerts.db")
    room_audit = AuditLog.open(root / "room-audit.log", None, "control-room:bench")
    authority = Ed25519PrivateKey.generate()
    intake = local_intake(DeviceRegistry.load(env.registry_path), load_private_key(env.control_room_key, X25519PrivateKey), store, authority,
                          [sample_deployment(authority, "dep-test", ("cam-01",), start=ALWAYS[0], end=ALWAYS[1], threshold=0.5)], room_audit)
    listener = AlertListener(broker.broker_config(CONTROL_ROOM_USER), intake, client_id="bench-room", share_group="bench",
                             receipts=ReceiptIssuer.from_key_file(env.receipt_key, "control-room", store)).start()
    assert listener.subscribed.wait(10), listener.last_error
    key = load_private_key(env.devices["cam-01"] / "device_ed25519.key", Ed25519PrivateKey)
    audit = AuditLog.open(root / "device-audit.log", key, "device:cam-01")
    spool = Spool(root / "spool.db")
    publisher = AlertPublisher(broker.broker_config("cam-01"), "cam-01", spool, backoff=Backoff(0.05, 0.5),
                               receipt_key=load_public_key(env.receipt_pub, Ed25519PublicKey), audit=audit)
    outbox = AlertOutbox(EventBuilder(DeviceContext("cam-01", "dep-test", "wl-1", MODEL), key, load_private_key(env.control_room_key, X25519PrivateKey).public_key()),
                         spool, audit, notify=publisher.notify)
    started: dict[int, float] = {}
    receipted: dict[int, float] = {}
    lock = threading.Lock()

    def on_receipt(receipt) -> None:
        with lock:
            receipted[receipt.seq] = time.perf_counter()

    publisher.on_receipt = on_receipt
    acked_at: dict[int, float] = {}
    original = publisher._on_publish

    def on_publish(client, userdata, mid, reason_code, properties) -> None:  # the PUBACK, for comparison
        seq = publisher._inflight.get(mid)
        if seq is not None and seq not in acked_at:
            acked_at[seq] = time.perf_counter()
        original(client, userdata, mid, reason_code, properties)

    publisher._on_publish = on_publish  # type: ignore[method-assign]
    publisher.start()
    deadline = time.monotonic() + 10
    while not publisher.state().connected and time.monotonic() < deadline:
        time.sleep(0.02)
    count = int(rate * seconds)
    due = time.perf_counter()
    for _ in range(count):
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        due += 1.0 / rate
        t0 = time.perf_counter()
        event = outbox.raise_alert(DECISION, CROP, datetime.now(timezone.utc))
        started[event.seq] = t0
    deadline = time.monotonic() + 60
    while spool.stats().depth and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.stop()
    listener.stop(end_session=True)
    broker.stop()
    spool.close()
    audit.close()
    store.close()
    room_audit.close()
    rt = np.array([(receipted[s] - started[s]) * 1000 for s in started if s in receipted])
    pa = np.array([(acked_at[s] - started[s]) * 1000 for s in started if s in acked_at])
    return {"alerts": count, "receipted": len(rt), "rt_p50": float(np.percentile(rt, 50)), "rt_p99": float(np.percentile(rt, 99)),
            "rt_max": float(rt.max()), "pa_p50": float(np.percentile(pa, 50)), "pa_p99": float(np.percentile(pa, 99)), "pa_max": float(pa.max())}


def restarts(root: Path, rate: float, seconds: float) -> dict[str, int]:
    from rig import Rig, wait_until

    env = make_messaging_env(root / "env", ("cam-01",))
    rig = Rig(env, root / "rig", devices=("cam-01",))
    rig.broker.start()
    rig.start_room()
    try:
        count = int(rate * seconds)
        rig.start_device("cam-01", count, rate)
        time.sleep(seconds / 3)
        rig.broker.stop()  # SIGTERM
        rig.broker.start()
        time.sleep(seconds / 3)
        rig.kill_room()
        time.sleep(2.0)
        rig.start_room()
        wait_until(lambda: rig.procs["cam-01"].poll() is not None, 120, "the device drained")
        rig.wait_devices(10)
        tally = rig.tally("restarts", seconds)
        receipts = rig.receipt_counts("cam-01")
        raised = rig.raised_ids("cam-01")
        return {"raised": tally.raised, "stored": tally.delivered, "lost": tally.lost, "in_store_twice": tally.duplicates_in_store,
                "receipted_once": sum(1 for e in raised if receipts.get(e) == 1), "receipted_twice": tally.receipted_twice,
                "never_receipted": sum(1 for e in raised if e not in receipts), "duplicates_seen": tally.duplicates_seen}
    finally:
        rig.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp under the tmpfs, so fsync latency is not what is measured
    root = Path(tempfile.mkdtemp(prefix="receipts-bench-", dir=shm if shm.is_dir() else None))
    try:
        rt = round_trip(root / f"rt-{uuid.uuid4().hex[:6]}", args.rate, args.seconds)
        rs = restarts(root / "restarts", args.rate, args.seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nReceipt round trip at {args.rate:.0f} alerts/s for {args.seconds:.0f} s ({rt['alerts']} alerts, {rt['receipted']} receipted), loopback, TLS:")
    print(f"{'measure':<58} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'raise -> signed receipt applied (ours, target p99 <= 50)':<58} {rt['rt_p50']:>8.1f} {rt['rt_p99']:>8.1f} {rt['rt_max']:>8.1f}")
    print(f"{'raise -> broker PUBACK (all a device knew before)':<58} {rt['pa_p50']:>8.1f} {rt['pa_p99']:>8.1f} {rt['pa_max']:>8.1f}")
    print(f"\nBroker restarted (SIGTERM) and control room killed and restarted mid-stream, {args.rate:.0f} alerts/s:")
    for name, value in rs.items():
        print(f"  {name:<18} {value}")
    ok = rt["rt_p99"] <= 50 and rs["lost"] == 0 and rs["receipted_once"] == rs["raised"] and rs["in_store_twice"] == 0
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
