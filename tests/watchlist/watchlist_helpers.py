"""Helpers for the watchlist tests: real keys, real deployments, real random unit templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.deployment.calibration import CalibrationCitation
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.identity.keys import DeviceKeys
from edge_agent.watchlist.entry import WatchlistEntry
from edge_agent.watchlist.package import pack_watchlist

START = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=8)
DURING = START + timedelta(hours=1)
MODEL = {"detector_sha256": "d" * 64, "aligner": "umeyama-5pt-112-v1", "embedder_sha256": "e" * 64}


def make_record(**changes) -> DeploymentRecord:
    values = dict(
        deployment_id="DEP-2026-0042",
        authorising_officer="Supt A. Example (collar 1234)",
        purpose="Locate people wanted on warrant",
        legal_basis="Common law policing powers; DPA 2018 s35",
        location="Example Street",
        location_rationale="Intelligence that listed subjects attend",
        start=START,
        end=END,
        dpia_ref="DPIA-1",
        equality_impact_ref="EIA-1",
        mode="LFR",
        platform="fixed",
        silent=False,
        alert_threshold=0.6,
        watchlist_cap=2000,
        device_ids=("cam-01", "cam-02"),
    )
    values.update(changes)
    return DeploymentRecord(**values)


def citation(**changes) -> CalibrationCitation:
    """A calibration citation for MODEL, as deployment create makes from a report file."""
    values = dict(
        report_sha256="ab" * 32, created_at="2026-11-20T12:00:00+00:00", tool_version="edge_agent 0.1.0",
        evaluation_report_sha256="cd" * 32, evaluation_set_sha256="ef" * 32, **MODEL,
        budget=1 / 6000, budget_text="1/6000", watchlist_size=2000, evaluated_watchlist_size=10000, threshold=0.58,
        fpir_upper95=0.000162, nonmated_searches=300000, mated_searches=1000,
    )
    values.update(changes)
    return CalibrationCitation(**values)


def unit_templates(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((n, 128)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def make_entries(n: int, templates_each: int = 1) -> list[WatchlistEntry]:
    cats = ("wanted_by_court", "suspect", "missing_vulnerable", "risk_to_self_or_others")
    return [
        WatchlistEntry(f"CASE-{i:05d}", cats[i % 4], "custody image", "PACE s64A", date(2024, 1, 1), date(2026, 10, 1), False, None, templates_each)
        for i in range(n)
    ]


@dataclass
class World:
    authority: Ed25519PrivateKey
    devices: dict[str, DeviceKeys]
    deployment: SignedDeployment
    tmp: Path

    def pack(self, n=5, templates_each=1, recipients=("cam-01",), seed=0, deployment=None, entries=None, **kw) -> tuple[bytes, np.ndarray]:
        entries = entries or make_entries(n, templates_each)
        templates = unit_templates(sum(e.templates for e in entries), seed)
        data = pack_watchlist(
            deployment or self.deployment,
            entries,
            templates,
            MODEL,
            {d: self.devices[d].sealing_public for d in recipients},
            self.authority,
            kw.pop("now", START - timedelta(hours=2)),
            **kw,
        )
        return data, templates
