"""Helpers for the search tests: a search site built with the project's own CLI, as a newcomer
would: authority and device keys, a signed deployment, and a watchlist built for it and sealed to
the device (CASE-0001: Obama, CASE-0002: Biden)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from deployment_helpers import write_spec

from edge_agent.cli.main import main

SUBJECTS = """subject_ref,category,image,image_source,legal_basis,image_date,last_review_date,under_18,under_18_justification
CASE-0001,wanted_by_court,obama_1.jpg,custody image,Warrant WX-1,2024-01-05,2026-10-01,no,
CASE-0002,suspect,biden_1.jpg,custody image,PACE s64A,2024-02-01,2026-10-01,no,
"""


@dataclass(frozen=True)
class Site:
    root: Path
    deployment: Path
    watchlist: Path
    audit_log: Path

    def args(self, target: Path | str, *extra: str, device: str = "cam-01", deployment: Path | None = None, watchlist: Path | None = None) -> list[str]:
        """``edge-agent search`` arguments for ``target`` under this site's deployment and watchlist."""
        return [
            "search", str(target), "--deployment", str(deployment or self.deployment), "--watchlist", str(watchlist or self.watchlist),
            "--device-keys", str(self.root / "keys" / device), "--authority-pub", str(self.root / "auth" / "authority_ed25519.pub"),
            "--audit-log", str(self.audit_log), "--actor", "operator:dc-4411", *extra,
        ]

    def audit_records(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines()] if self.audit_log.exists() else []

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.audit_records() if r["kind"] != "checkpoint"]

    def last(self, kind: str) -> dict:
        return [r for r in self.audit_records() if r["kind"] == kind][-1]["details"]


def build_site(root: Path, fixtures_dir: Path, **spec) -> Site:
    """Keys for cam-01 and cam-02 (both registered), a deployment (``spec`` overrides the test
    spec's fields) and a watchlist sealed to cam-01 only."""
    root.mkdir(parents=True, exist_ok=True)
    images = root / "images"
    images.mkdir()
    for name in ("obama_1.jpg", "biden_1.jpg"):
        shutil.copy(fixtures_dir / "faces" / name, images / name)
    (root / "subjects.csv").write_text(SUBJECTS)
    registry = root / "registry.json"
    assert main(["keys", "init-authority", str(root / "auth")]) == 0
    for device in ("cam-01", "cam-02"):
        assert main(["keys", "init-device", "--id", device, str(root / "keys" / device), "--registry", str(registry)]) == 0
    spec = {"deployment_id": "DEP-RFR-0007", "mode": "RFR", "platform": "central", "alert_threshold": 0.6,
            "device_ids": ["cam-01", "cam-02"], **spec}
    deployment = root / "deployment.json"
    assert main(["deployment", "create", "--spec", str(write_spec(root / "spec.json", **spec)), "--authority-key", str(root / "auth"),
                 "--out", str(deployment)]) == 0
    watchlist = root / "watchlist.eawl"
    assert main(["watchlist", "build", "--deployment", str(deployment), "--subjects", str(root / "subjects.csv"), "--images", str(images),
                 "--for-device", "cam-01", "--registry", str(registry), "--authority-key", str(root / "auth"), "--out", str(watchlist)]) == 0
    return Site(root, deployment, watchlist, root / "search-audit.log")
