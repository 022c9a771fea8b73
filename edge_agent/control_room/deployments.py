"""The deployment records the control room knows: imported signed files, checked against the
authority key on import and again on every use.

An alert cites its deployment; the control room refuses one whose deployment it does not hold,
that was captured outside the record's window, on a device the record does not name, or at a
threshold below the record's (policing.md 1-2, 9; issue 10.13). Records are imported with
``edge-agent control-room import-deployments FILE|DIR...`` into the store (so every listener and
console sharing it knows them), audited as ``deployment_imported``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.control_room.auditing import DEPLOYMENT_IMPORTED, AuditSink
from edge_agent.control_room.db import Database, StoreError
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.errors import ConfigError, EdgeAgentError, SecurityError
from edge_agent.events.schema import format_time


@dataclass(frozen=True)
class WindowRefusal:
    reason: str  # unknown_deployment, device_not_in_deployment, outside_deployment, threshold_below_deployment
    detail: str


class DeploymentBook:
    """Verified deployment records by id, read from the store (cached once verified)."""

    def __init__(self, db: Database, authority_pub: Ed25519PublicKey) -> None:
        self._db = db
        self._authority = authority_pub
        self._cache: dict[str, DeploymentRecord] = {}
        self._lock = threading.Lock()

    def import_signed(self, signed: SignedDeployment, now: datetime, imported_by: str, audit: AuditSink) -> tuple[DeploymentRecord, bool]:
        """Verify and store one record; (record, False) when the identical record was already held.
        A different record under an id already held is refused: the authority issues a new id."""
        record = signed.verify(self._authority)
        data = signed.to_bytes()
        with self._db.write() as tx:
            row = tx.one("SELECT signed FROM deployments WHERE deployment_id=?", (record.deployment_id,))
            if row is not None:
                held = SignedDeployment.from_bytes(bytes(row[0]))
                if held.record_bytes != signed.record_bytes:
                    raise SecurityError(
                        f"deployment {record.deployment_id} is already held with different content",
                        "a signed deployment record is never replaced; the authority issues a new deployment id",
                    )
                return record, False
            tx.run("INSERT INTO deployments (deployment_id, signed, starts, ends, imported_at, imported_by) VALUES (?,?,?,?,?,?)",
                   (record.deployment_id, data, format_time(record.start), format_time(record.end), format_time(now), imported_by))
        audit.append(DEPLOYMENT_IMPORTED, {"deployment_id": record.deployment_id, "start": format_time(record.start), "end": format_time(record.end),
                                     "mode": record.mode, "device_ids": list(record.device_ids), "alert_threshold": record.alert_threshold})
        return record, True

    def import_paths(self, paths: list[Path], now: datetime, imported_by: str, audit: AuditSink) -> list[tuple[DeploymentRecord, bool]]:
        """Import files, and every ``*.json`` in directories given; all are verified before any is stored."""
        files: list[Path] = []
        for path in map(Path, paths):
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()))
            elif path.is_file():
                files.append(path)
            else:
                raise ConfigError(f"deployment file {path} not found", "give signed deployment files or a folder of them")
        if not files:
            raise ConfigError("no signed deployment files found", "give signed deployment files (*.json) or a folder of them")
        signed = []
        for path in files:
            try:
                item = SignedDeployment.load(path)
                item.verify(self._authority)
            except EdgeAgentError as exc:
                raise type(exc)(f"{path}: {exc.message}", exc.hint) from None
            signed.append(item)
        return [self.import_signed(item, now, imported_by, audit) for item in signed]

    def record(self, deployment_id: str) -> DeploymentRecord | None:
        with self._lock:
            cached = self._cache.get(deployment_id)
        if cached is not None:
            return cached
        with self._db.read() as tx:
            row = tx.one("SELECT signed FROM deployments WHERE deployment_id=?", (deployment_id,))
        if row is None:
            return None
        try:
            record = SignedDeployment.from_bytes(bytes(row[0])).verify(self._authority)
        except SecurityError as exc:
            raise StoreError(f"stored deployment {deployment_id} no longer verifies: {exc.message}",
                             "the store was altered or the authority key changed; investigate before accepting alerts") from None
        with self._lock:
            self._cache[deployment_id] = record
        return record

    def records(self) -> list[DeploymentRecord]:
        with self._db.read() as tx:
            ids = [r[0] for r in tx.rows("SELECT deployment_id FROM deployments ORDER BY starts")]
        return [r for r in (self.record(i) for i in ids) if r is not None]

    def check(self, deployment_id: str, device_id: str, captured_at: datetime, threshold: float) -> WindowRefusal | None:
        """None when the alert sits inside the deployment it cites; else why not."""
        record = self.record(deployment_id)
        if record is None:
            return WindowRefusal("unknown_deployment", f"no deployment record {deployment_id!r} is imported in this control room")
        if device_id not in record.device_ids:
            return WindowRefusal("device_not_in_deployment", f"deployment {deployment_id} does not name device {device_id}")
        if not record.start <= captured_at < record.end:
            return WindowRefusal("outside_deployment", f"captured {format_time(captured_at)}, outside deployment {deployment_id}'s window "
                                                       f"{format_time(record.start)} to {format_time(record.end)}")
        if threshold < round(record.alert_threshold, 6):  # events carry 6 decimals
            return WindowRefusal("threshold_below_deployment", f"alert threshold {threshold} is below deployment {deployment_id}'s {record.alert_threshold}")
        return None
