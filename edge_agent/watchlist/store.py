"""The one watchlist package stored on a device, its wiping, and destruction at deployment end.

Only the encrypted, signed package is ever on disk; plaintext lives in memory (loader.py). Wiping
overwrites the file with random bytes, fsyncs, then unlinks it. On flash storage an overwrite is
best effort (wear levelling may keep old blocks), which is why the package is encrypted at rest in
the first place. Every wipe is written to the audit log (policing.md 4 and 15).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.audit.log import AuditLog
from edge_agent.crypto.canonical import CanonicalJsonError, parse_utc
from edge_agent.deployment.policy import threshold_evidence
from edge_agent.deployment.record import SignedDeployment
from edge_agent.durable import atomic_write, fsync_dir
from edge_agent.errors import EdgeAgentError
from edge_agent.identity.keys import DeviceKeys
from edge_agent.watchlist.format import MAGIC, check_magic_and_version
from edge_agent.watchlist.loader import LoadedWatchlist, load_watchlist

PACKAGE_NAME = "watchlist.eawl"


class WatchlistStoreError(EdgeAgentError):
    """The stored package cannot be written or removed."""


@dataclass(frozen=True)
class StoredSummary:
    """What can be read from a stored package's header without keys (for retention decisions only)."""

    deployment_id: str
    expires: datetime
    package_id: str


@dataclass(frozen=True)
class WatchlistStore:
    directory: Path

    @property
    def path(self) -> Path:
        return Path(self.directory) / PACKAGE_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise WatchlistStoreError(f"no watchlist is installed in {self.directory}", "install one with: edge-agent watchlist load") from None

    def install(self, package: bytes) -> Path:
        """Atomically replace the stored package (ciphertext only), overwriting the old one first."""
        check_magic_and_version(package)
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The old package's bytes are overwritten only once the new one is safely on disk.
        old = self.path if self.exists() else None
        try:
            return atomic_write(self.path, package, 0o600, before_replace=(lambda: _overwrite(old)) if old is not None else None)
        except OSError as exc:
            raise WatchlistStoreError(f"cannot store the watchlist in {directory}: {exc.strerror}", "check free space and permissions") from None

    def import_file(self, source: Path) -> Path:
        """Install a pushed package, then overwrite and delete the pushed copy, so the only copy on
        the device is the one retention will destroy (Met practice: the import medium is wiped)."""
        source = Path(source)
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            raise WatchlistStoreError(f"pushed watchlist {source} not found", "check watchlist.package in the config") from None
        installed = self.install(data)
        if source.resolve() != installed.resolve():
            _overwrite(source)
            source.unlink()
            fsync_dir(source.parent)
        return installed

    def summary(self) -> StoredSummary | None:
        """Header fields of the stored package, unverified; None if there is no package or it is unreadable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            if data[:4] != MAGIC:
                return None
            (header_len,) = struct.unpack_from(">I", data, 5)
            header = json.loads(data[9 : 9 + header_len].decode("utf-8"))
            return StoredSummary(str(header["deployment_id"]), parse_utc(header["expires"], "expires"), str(header["package_id"]))
        except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError, CanonicalJsonError):
            return None

    def wipe(self, audit: AuditLog, reason: str, now: datetime, actor: str | None = None) -> bool:
        """Overwrite and delete the stored package; audit it. Returns False if nothing was stored."""
        if not self.exists():
            return False
        summary = self.summary()
        try:
            _overwrite(self.path)
            self.path.unlink()
            fsync_dir(Path(self.directory))
        except OSError as exc:
            raise WatchlistStoreError(f"cannot wipe {self.path}: {exc.strerror}", "check permissions; the package is still encrypted at rest") from None
        details = {"reason": reason, "package": PACKAGE_NAME}
        if summary is not None:
            details.update(deployment_id=summary.deployment_id, package_id=summary.package_id)
        audit.append("watchlist_wiped", details, actor=actor, now=now)
        return True


def enforce_retention(store: WatchlistStore, now: datetime, audit: AuditLog) -> bool:
    """Destroy the stored package once its deployment has ended (or it cannot be read). Call periodically.

    The expiry read here is unverified: a tampered header can at worst cause an early wipe,
    never keep a package past a genuine expiry (the loader refuses that independently).
    """
    if not store.exists():
        return False
    summary = store.summary()
    if summary is None:
        return store.wipe(audit, "unreadable package", now)
    if now < summary.expires:
        return False
    audit.append("deployment_ended", {"deployment_id": summary.deployment_id, "expires": summary.expires.isoformat()}, now=now)
    return store.wipe(audit, "deployment ended", now)


def load_installed(
    store: WatchlistStore,
    device_keys: DeviceKeys,
    authority_pub: Ed25519PublicKey,
    model_identity: object,
    now: datetime,
    audit: AuditLog,
    approver_pubs: Sequence[Ed25519PublicKey] = (),
    *,
    expected_deployment: SignedDeployment | None = None,
) -> LoadedWatchlist:
    """Load the stored package into memory, auditing the load or the refusal (with its reason)."""
    return load_audited(
        store.read(), device_keys, authority_pub, model_identity, now, audit, approver_pubs, expected_deployment=expected_deployment
    )


def load_audited(
    package: bytes,
    device_keys: DeviceKeys,
    authority_pub: Ed25519PublicKey,
    model_identity: object,
    now: datetime,
    audit: AuditLog,
    approver_pubs: Sequence[Ed25519PublicKey] = (),
    *,
    expected_deployment: SignedDeployment | None = None,
) -> LoadedWatchlist:
    try:
        loaded = load_watchlist(package, device_keys, authority_pub, model_identity, now, approver_pubs, expected_deployment=expected_deployment)
    except EdgeAgentError as exc:  # every refusal is audited, whatever its class
        audit.append("watchlist_refused", {"reason": type(exc).__name__, "message": exc.message[:500]}, now=now)
        raise
    audit.append("watchlist_loaded", loaded_details(loaded), now=now)
    return loaded


def loaded_details(loaded: LoadedWatchlist) -> dict:
    return {
        "deployment_id": loaded.deployment.deployment_id,
        "package_id": loaded.package_id,
        "subjects": len(loaded.entries),
        "template_count": len(loaded.gallery),
        "expires": loaded.expires_at.isoformat(),
        "threshold": loaded.deployment.alert_threshold,
        **threshold_evidence(loaded.deployment),
    }


def _overwrite(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as fh:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            fh.write(os.urandom(chunk))
            remaining -= chunk
        os.fsync(fh.fileno())
