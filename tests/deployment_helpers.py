"""A deployment spec for CLI tests: active from an hour ago for eight hours, one device."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path


def write_spec(path: Path, **changes) -> Path:
    """Write the spec to ``path``; keyword arguments replace or add fields."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    spec = {
        "deployment_id": "DEP-E2E-1",
        "authorising_officer": "Supt Example",
        "purpose": "Test deployment",
        "legal_basis": "Common law",
        "location": "Lab",
        "location_rationale": "Testing",
        "start": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "end": (now + timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
        "dpia_ref": "DPIA-T",
        "equality_impact_ref": "EIA-T",
        "mode": "LFR",
        "platform": "body_worn",
        "alert_threshold": 0.6,
        "watchlist_cap": 10,
        "device_ids": ["cam-01"],
    }
    spec.update(changes)
    path.write_text(json.dumps(spec))
    return path
