"""``config_changed``: the audit log says when the agent starts under a different configuration.

Issue 10.3 / docs/formats/audit.md: a changed threshold source, capture source or quality gate
changes what the device does, so the first start under a new config file writes one record with
the new and previous SHA-256 of the file's bytes and the names of the keys that differ. The last
run's hash and values live in ``<state_dir>/config.last.json`` (0600, replaced atomically after
the record is written: a crash in between writes the record again, never loses it).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from edge_agent.agent.config import AgentConfig
from edge_agent.audit.log import AuditLog
from edge_agent.durable import atomic_write

LAST_CONFIG = "config.last.json"
MAX_CHANGED_KEYS = 64


def record_config_change(config: AgentConfig, state_dir: Path, audit: AuditLog, now: datetime | None = None) -> bool:
    """Audit ``config_changed`` if this config's hash differs from the last run's; True if it did."""
    path = Path(state_dir) / LAST_CONFIG
    previous_hash, previous_values = _last(path)
    if previous_hash == config.sha256:
        return False
    current = dict(config.values)
    changed = sorted(k for k in set(current) | set(previous_values) if current.get(k) != previous_values.get(k))
    details: dict[str, object] = {
        "path": str(config.path),
        "sha256": config.sha256,
        "previous_sha256": previous_hash,
        "changed": changed[:MAX_CHANGED_KEYS] if previous_hash is not None else [],
    }
    if len(changed) > MAX_CHANGED_KEYS and previous_hash is not None:
        details["changed_truncated"] = len(changed) - MAX_CHANGED_KEYS
    audit.append("config_changed", details, now=now)
    atomic_write(path, json.dumps({"sha256": config.sha256, "values": current}, sort_keys=True).encode() + b"\n", 0o600)
    return True


def _last(path: Path) -> tuple[str | None, dict[str, str]]:
    """The last run's hash and values; (None, {}) on a first start or an unreadable file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        sha, values = doc["sha256"], doc["values"]
        if isinstance(sha, str) and isinstance(values, dict) and all(isinstance(v, str) for v in values.values()):
            return sha, values
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None, {}
