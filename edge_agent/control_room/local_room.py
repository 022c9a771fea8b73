"""A control room assembled in one call, for the demo, benchmarks and tests: a store, its audit
log, the deployment record(s) it knows and an intake, like ``edge-agent control-room listen``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.control_room.auditing import AuditSink
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.intake import AlertIntake, KeyRegistry
from edge_agent.control_room.store import AlertStore
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment

#: A window wide enough for any test or benchmark run (fixed, so the record's bytes are too).
ALWAYS = (datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


def sample_deployment(
    authority: Ed25519PrivateKey,
    deployment_id: str = "dep-1",
    devices: Sequence[str] = ("cam-01", "cam-02"),
    start: datetime | None = None,
    end: datetime | None = None,
    threshold: float = 0.64,
) -> SignedDeployment:
    """A signed LFR deployment record with placeholder governance text (never for real use)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    record = DeploymentRecord(
        deployment_id=deployment_id, authorising_officer="Supt Example", purpose="test", legal_basis="common law", location="lab",
        location_rationale="testing", start=start or now - timedelta(days=60), end=end or now + timedelta(days=1), dpia_ref="DPIA-T",
        equality_impact_ref="EIA-T", mode="LFR", platform="fixed", silent=False, alert_threshold=threshold, watchlist_cap=10,
        device_ids=tuple(devices),
    )
    return SignedDeployment.sign(record, authority)


def local_intake(
    registry: KeyRegistry,
    control_room_key: X25519PrivateKey,
    store: AlertStore,
    authority: Ed25519PrivateKey,
    deployments: Sequence[SignedDeployment],
    audit: AuditSink,
    **kwargs,
) -> AlertIntake:
    """An intake whose store holds ``deployments`` (imported and audited like the CLI does)."""
    book = DeploymentBook(store.db, authority.public_key())
    for signed in deployments:
        book.import_signed(signed, datetime.now(timezone.utc), "local", audit)
    return AlertIntake(registry, control_room_key, store, book, audit, **kwargs)
