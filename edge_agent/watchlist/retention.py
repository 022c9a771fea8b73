"""Destruction of the stored watchlist once its deployment has ended (policing.md 2 and 4).

Called at start-up and periodically by the agent, and by ``edge-agent watchlist retention``.
"""

from __future__ import annotations

from datetime import datetime

from edge_agent.audit.log import AuditLog
from edge_agent.watchlist.store import WatchlistStore
from edge_agent.timestamps import format_timestamp


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
    audit.append("deployment_ended", {"deployment_id": summary.deployment_id, "expires": format_timestamp(summary.expires)}, now=now)
    return store.wipe(audit, "deployment ended", now)
