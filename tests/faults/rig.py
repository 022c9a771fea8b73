"""The fault-suite rig: a real Mosquitto, the control room and devices in their own processes
(so each can be SIGKILLed, stopped or frozen), and the count of what was raised, delivered to the
store, seen twice and lost. Loopback only; every wait is bounded in time.

Used by tests/faults/ and benchmarks/receipts.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.crypto.keyfiles import write_private_key
from edge_agent.fleet.local_broker import CONTROL_ROOM_USER, MessagingEnv, MosquittoBroker

HERE = Path(__file__).resolve().parent
DEVICE_PROC = HERE / "device_proc.py"
ROOM_PROC = HERE / "room_proc.py"


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@dataclass
class Tally:
    """One fault case's count. ``lost`` is raised minus stored; ``duplicates_in_store`` must be 0."""

    case: str
    raised: int = 0  # accepted by a device (its alert_raised audit records, unique event ids)
    refused: int = 0  # never accepted (disk full): not an alert yet
    delivered: int = 0  # distinct alerts in the control room's store
    duplicates_seen: int = 0  # repeats the control room received and dropped (QoS 1, retransmissions)
    duplicates_in_store: int = 0
    lost: int = 0
    receipted_twice: int = 0  # alerts the device audited more than one receipt for
    rate_per_s: float = 0.0
    seconds: float = 0.0
    restarts: int = 0  # processes killed and started again by the rig (what systemd does)
    notes: list[str] = field(default_factory=list)

    ROW = "{case:<34} {raised:>7} {refused:>7} {delivered:>9} {duplicates_seen:>6} {duplicates_in_store:>8} {lost:>5} {receipted_twice:>6} {rate_per_s:>7.0f} {seconds:>6.1f}"
    HEADER = f"{'case':<34} {'raised':>7} {'refused':>7} {'delivered':>9} {'dupes':>6} {'in-store':>8} {'lost':>5} {'2xrcpt':>6} {'rate/s':>7} {'secs':>6}"

    def line(self) -> str:
        return self.ROW.format(**self.__dict__)


class Rig:
    def __init__(self, env: MessagingEnv, root: Path, devices: tuple[str, ...] = ("cam-01", "cam-02")) -> None:
        self.env = env
        self.root = root
        self.devices = devices
        root.mkdir(parents=True, exist_ok=True)
        self.broker = MosquittoBroker(env, root / "broker")
        self.authority_key = root / "authority.key"
        write_private_key(self.authority_key, Ed25519PrivateKey.generate())
        self.db = root / "room" / "alerts.db"
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.room: subprocess.Popen | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.state_dirs: dict[str, Path] = {}
        self.restarts = 0

    # -- processes ------------------------------------------------------------------------
    def _client_args(self, user: str) -> list[str]:
        ident = self.env.clients[user]
        return ["--broker", self.broker.url, "--ca", str(self.env.ca_cert), "--cert", str(ident.cert), "--key", str(ident.key)]

    def start_room(self, timeout_s: float = 30.0) -> None:
        args = [sys.executable, str(ROOM_PROC), *self._client_args(CONTROL_ROOM_USER), "--db", str(self.db), "--registry", str(self.env.registry_path),
                "--crop-key", str(self.env.control_room_key), "--receipt-key", str(self.env.receipt_key), "--authority-key", str(self.authority_key),
                "--audit", str(self.db.parent / "audit.log"), "--devices", ",".join(sorted(self.env.devices))]
        log = open(self.root / "room.log", "a")
        self.room = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline and self.room.poll() is None:
            line = self.room.stdout.readline()  # type: ignore[union-attr]
            if line.strip() == "subscribed":
                return
        raise AssertionError(f"the control room did not subscribe (exit {self.room.poll()}, last line {line!r})")

    def kill_room(self) -> None:
        assert self.room is not None
        self.room.kill()
        self.room.wait(10)

    def stop_room(self) -> None:
        if self.room is not None and self.room.poll() is None:
            self.room.terminate()
            try:
                self.room.wait(15)
            except subprocess.TimeoutExpired:
                self.room.kill()
                self.room.wait(5)

    def start_device(self, device_id: str, count: int, rate: float, state_dir: Path | None = None, max_s: float = 120.0) -> None:
        state = state_dir or self.state_dirs.get(device_id) or self.root / "devices" / device_id
        state.mkdir(parents=True, exist_ok=True)
        self.state_dirs[device_id] = state
        args = [sys.executable, str(DEVICE_PROC), *self._client_args(device_id), "--device-dir", str(self.env.devices[device_id]),
                "--crop-pub", str(self.env.control_room_pub), "--receipt-pub", str(self.env.receipt_pub), "--state", str(state),
                "--status", str(self.root / f"{device_id}.status.json"), "--count", str(count), "--rate", str(rate), "--max-s", str(max_s)]
        log = open(self.root / f"{device_id}.log", "a")  # a file, not a pipe: a full pipe would block the device
        self.procs[device_id] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, text=True)
        log.close()

    def status(self, device_id: str) -> dict:
        try:
            return json.loads((self.root / f"{device_id}.status.json").read_text())
        except (OSError, ValueError):
            return {}

    def kill_device(self, device_id: str) -> None:
        self.procs[device_id].kill()
        self.procs[device_id].wait(10)

    def wait_devices(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for device_id, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError(f"device {device_id} did not drain within {timeout_s}s: {self.status(device_id)}") from None
            if proc.returncode != 0:
                raise AssertionError(f"device {device_id} exited {proc.returncode}: {(self.root / f'{device_id}.log').read_text()[-2000:]}")

    def signal_broker(self, sig: int) -> None:
        assert self.broker.proc is not None
        os.kill(self.broker.proc.pid, sig)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self.stop_room()
        self.broker.stop()

    # -- counting -------------------------------------------------------------------------
    def raised_ids(self, device_id: str) -> set[str]:
        ids = set()
        for line in (self.state_dirs[device_id] / "audit.log").read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "alert_raised":
                ids.add(record["details"]["event_id"])
        return ids

    def receipt_counts(self, device_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in (self.state_dirs[device_id] / "audit.log").read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "receipt_received":
                counts[record["details"]["event_id"]] = counts.get(record["details"]["event_id"], 0) + 1
        return counts

    def tally(self, case: str, seconds: float) -> Tally:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            stored = {e for (e,) in db.execute("SELECT event_id FROM alerts")}
            rows = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            keyed = db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT device_id, spool_epoch, seq FROM alerts)").fetchone()[0]
            dupes = db.execute("SELECT COUNT(*) FROM rejections WHERE reason = 'duplicate_event'").fetchone()[0]
        finally:
            db.close()
        raised: set[str] = set()
        twice = 0
        refused = 0
        for device_id in self.state_dirs:
            raised |= self.raised_ids(device_id)
            twice += sum(1 for n in self.receipt_counts(device_id).values() if n > 1)
            refused += int(self.status(device_id).get("refused", 0))
        return Tally(case, len(raised), refused, len(raised & stored), dupes, rows - keyed, len(raised - stored), twice,
                     len(raised) / seconds if seconds else 0.0, seconds, self.restarts)
