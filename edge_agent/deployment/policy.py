"""The rules a deployment must satisfy before a device may match against a watchlist.

policing.md 1-3 and 9: no matching without an active deployment; matching stops at its end; a
threshold below the calibrated default needs a second, pinned approver's signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.errors import SecurityError

if TYPE_CHECKING:
    from edge_agent.deployment.record import DeploymentRecord, SignedDeployment

# The calibrated default alert threshold (SFace cosine similarity), the ONE place it lives.
# Why 0.55: on a held-out LFW-style evaluation of this same pipeline (int8 BlazeFace, 4-point
# alignment, int8 SFace; ../shared/requirements/models.md) a 1,000-subject watchlist needed about
# 0.51 for FPIR 0.003, and FPIR grows with watchlist size, so the default sits above that. The
# 204-image dev set cannot resolve a 1-in-6,000 budget (it would need ~23,000 non-mated searches:
# `edge-agent calibrate` says so), so this stays provisional until a force runs `edge-agent
# calibrate` on a large consented test set and replaces it with that output.
CALIBRATED_DEFAULT_THRESHOLD = 0.55


class DeploymentRefused(SecurityError):
    """A deployment record does not authorise matching here and now."""


class DeploymentExpired(DeploymentRefused):
    pass


class DeploymentNotStarted(DeploymentRefused):
    pass


class DeviceNotInDeployment(DeploymentRefused):
    pass


class ThresholdApprovalMissing(DeploymentRefused):
    pass


def needs_threshold_approval(record: "DeploymentRecord") -> bool:
    return record.alert_threshold < CALIBRATED_DEFAULT_THRESHOLD


def check_record(record: "DeploymentRecord", device_id: str, now: datetime, threshold_approved: bool) -> None:
    """Raise a specific DeploymentRefused unless ``record`` lets ``device_id`` match at ``now``."""
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware UTC datetime")
    if now < record.start:
        raise DeploymentNotStarted(
            f"deployment {record.deployment_id} has not started (starts {record.start.isoformat()}, now {now.isoformat()})",
            "no matching before the authorised start; check the device clock or wait",
        )
    if now >= record.end:
        raise DeploymentExpired(
            f"deployment {record.deployment_id} ended at {record.end.isoformat()} (now {now.isoformat()})",
            "matching stops at the deployment end; a new deployment must be authorised",
        )
    if device_id not in record.device_ids:
        raise DeviceNotInDeployment(
            f"device {device_id!r} is not named in deployment {record.deployment_id} (devices: {', '.join(record.device_ids)})",
            "the authority must issue a deployment that names this device",
        )
    if needs_threshold_approval(record) and not threshold_approved:
        raise ThresholdApprovalMissing(
            f"deployment {record.deployment_id} lowers the alert threshold to {record.alert_threshold} "
            f"below the calibrated default {CALIBRATED_DEFAULT_THRESHOLD} without a valid approval signature",
            "a pinned approver must sign it: edge-agent deployment approve FILE --approver-key KEY",
        )


def authorise(
    signed: "SignedDeployment",
    authority_pub: Ed25519PublicKey,
    device_id: str,
    now: datetime,
    approver_pubs: Sequence[Ed25519PublicKey] = (),
) -> "DeploymentRecord":
    """Verify the authority signature, then every policy rule; return the record only if all pass."""
    record = signed.verify(authority_pub)
    check_record(record, device_id, now, signed.threshold_approved(approver_pubs, authority_pub))
    return record
