"""Audited loading: every load of a watchlist on a device, and every refusal, goes to the audit log.

The loader (loader.py) verifies and decrypts; the store (store.py) keeps the file. This module is
the only way a device uses either, so that nothing is matched, and nothing installed, without an
audit record saying which package, under which deployment and threshold evidence, or why not.

Issue 10.8: a refused package never replaces a good one. A new package is verified in full
(signature, device, deployment, expiry, model: everything ``load_watchlist`` checks) in memory
before the store's atomic replace; a refused one leaves the installed package as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.config_reader import read_file_bytes
from edge_agent.audit.log import AuditLog
from edge_agent.deployment.policy import threshold_evidence
from edge_agent.errors import EdgeAgentError
from edge_agent.watchlist.errors import WatchlistExpired
from edge_agent.watchlist.loader import DeviceTrust, LoadedWatchlist
from edge_agent.watchlist.store import WatchlistStore, destroy_file, read_summary
from edge_agent.timestamps import format_timestamp


def load_installed(store: WatchlistStore, trust: DeviceTrust, now: datetime, audit: AuditLog) -> LoadedWatchlist:
    """Load the stored package into memory, auditing the load or the refusal (with its reason)."""
    return load_audited(store.read(), trust, now, audit)


def load_audited(package: bytes, trust: DeviceTrust, now: datetime, audit: AuditLog, *, source: str = "installed") -> LoadedWatchlist:
    """Verify and decrypt ``package``; audit ``watchlist_loaded`` or ``watchlist_refused`` (with the
    refusal's class, message, where the package came from and its SHA-256), then return or re-raise."""
    try:
        loaded = trust.load(package, now)
    except EdgeAgentError as exc:  # every refusal is audited, whatever its class
        audit.append(
            "watchlist_refused",
            {"reason": type(exc).__name__, "message": exc.message[:500], "source": source, "package_sha256": hashlib.sha256(package).hexdigest()},
            now=now,
        )
        raise
    audit.append("watchlist_loaded", {**loaded_details(loaded), "source": source}, now=now)
    return loaded


def install_verified(
    store: WatchlistStore, package: bytes, trust: DeviceTrust, now: datetime, audit: AuditLog, *, source: str = "pushed"
) -> LoadedWatchlist:
    """Verify ``package`` in full for this device now, and only then replace the stored package with
    it (atomically). A refusal is audited and raised; the stored package is not touched."""
    loaded = load_audited(package, trust, now, audit, source=source)
    store.install(package)
    return loaded


@dataclass(frozen=True)
class PushOutcome:
    """What became of a pushed package: installed (``loaded``), or refused with the installed one kept."""

    loaded: LoadedWatchlist | None
    refusal: EdgeAgentError | None = None
    ended: bool = False  # refused because its deployment has ended: the pushed copy was destroyed


def accept_pushed(store: WatchlistStore, pushed: Path, trust: DeviceTrust, now: datetime, audit: AuditLog) -> PushOutcome:
    """Install a pushed package if it verifies in full, then overwrite and delete the pushed copy, so
    the only copy on the device is the one retention will destroy (Met practice: the import medium is
    wiped). A refused package stays where it was pushed (a package for a deployment that has not
    started yet is accepted once it has), unless its deployment has ended: then it is destroyed
    like an installed one (``deployment_ended``, ``watchlist_wiped``)."""
    pushed = Path(pushed)
    data = read_file_bytes(pushed, "pushed watchlist", "check watchlist.package in the config", "watchlist.package names the package file itself")
    try:
        loaded = install_verified(store, data, trust, now, audit, source=str(pushed))
    except EdgeAgentError as exc:
        if not has_ended(exc, data, now):
            return PushOutcome(None, exc)
        destroy_ended(pushed, data, now, audit)
        return PushOutcome(None, exc, ended=True)
    if pushed.resolve() != store.path.resolve():
        destroy_file(pushed)
    return PushOutcome(loaded)


def has_ended(refusal: EdgeAgentError, data: bytes, now: datetime) -> bool:
    """Was ``data`` refused because its deployment has ended (its expiry, no later than the end, has passed)?"""
    summary = read_summary(data)
    return isinstance(refusal, WatchlistExpired) or (summary is not None and now >= summary.expires)


def destroy_ended(path: Path, data: bytes, now: datetime, audit: AuditLog) -> None:
    """Destroy a package file whose deployment has ended wherever it was handed over (Met practice:
    the import medium is wiped; policing.md 4): ``deployment_ended``, then ``watchlist_wiped``."""
    details: dict[str, Any] = {"source": str(path)}
    summary = read_summary(data)
    if summary is not None:  # unverified: at worst an early wipe of a refused file
        details.update(deployment_id=summary.deployment_id, expires=format_timestamp(summary.expires))
    audit.append("deployment_ended", details, now=now)
    destroy_file(path)
    audit.append("watchlist_wiped", {**details, "reason": "deployment ended", "package": path.name}, now=now)


def loaded_details(loaded: LoadedWatchlist) -> dict[str, Any]:
    return {
        "deployment_id": loaded.deployment.deployment_id,
        "package_id": loaded.package_id,
        "subjects": len(loaded.entries),
        "template_count": len(loaded.gallery),
        "expires": format_timestamp(loaded.expires_at),
        "threshold": loaded.deployment.alert_threshold,
        **threshold_evidence(loaded.deployment),
    }
