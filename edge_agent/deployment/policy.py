"""The rules a deployment must satisfy before a device may match against a watchlist.

policing.md 1-3 and 9: no matching without an active deployment; matching stops at its end; a
threshold below the calibrated default needs a second, pinned approver's signature. The calibrated
default is the threshold of the calibration report the record cites, else the provisional
constant (deployment/calibration.py); a cited calibration must fit the models, watchlist cap and budget it is used for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.deployment.calibration import CALIBRATED_DEFAULT_THRESHOLD, CalibrationCitation
from edge_agent.deployment.errors import (
    CalibrationMismatch,
    DeploymentExpired,
    DeploymentNotStarted,
    DeploymentRefused,
    DeviceNotInDeployment,
    ThresholdApprovalMissing,
)
from edge_agent.deployment.record import DeploymentRecord, SignedDeployment
from edge_agent.errors import SecurityError

__all__ = [  # the refusals are raised here; their one definition is deployment/errors.py
    "CALIBRATED_DEFAULT_THRESHOLD", "CalibrationMismatch", "DeploymentExpired", "DeploymentNotStarted", "DeploymentRefused",
    "DeviceNotInDeployment", "ThresholdApprovalMissing", "authorise", "calibrated_default", "check_calibration", "check_record",
    "cited_calibration", "describe_threshold", "needs_threshold_approval", "threshold_evidence",
]

def cited_calibration(record: DeploymentRecord) -> CalibrationCitation | None:
    return record.calibration if isinstance(record.calibration, CalibrationCitation) else None


def calibrated_default(record: DeploymentRecord) -> float:
    """The threshold below which this deployment needs an approval: its cited calibration's, else the provisional constant."""
    citation = cited_calibration(record)
    return citation.threshold if citation is not None else CALIBRATED_DEFAULT_THRESHOLD


def needs_threshold_approval(record: DeploymentRecord) -> bool:
    return record.alert_threshold < calibrated_default(record)


def threshold_evidence(record: DeploymentRecord) -> dict[str, object]:
    """The threshold's evidence in a few flat fields, for audit records, reports and displays."""
    citation = cited_calibration(record)
    if citation is None:
        return {"threshold_basis": "provisional_default", "calibrated_default": CALIBRATED_DEFAULT_THRESHOLD}
    return {
        "threshold_basis": "calibration_report",
        "calibrated_default": citation.threshold,
        "calibration_sha256": citation.report_sha256,
        "calibration_budget": citation.budget_text,
        "calibration_watchlist_size": citation.watchlist_size,
        "calibration_fpir_upper95": citation.fpir_upper95,
        "calibration_searches": {"nonmated": citation.nonmated_searches, "mated": citation.mated_searches},
    }


def describe_threshold(record: DeploymentRecord) -> str:
    """One line for operators: the threshold and the evidence it rests on (or the warning that there is none)."""
    citation = cited_calibration(record)
    if citation is None:
        return (f"warning: deployment {record.deployment_id} cites no calibration: its threshold rests on the provisional default "
                f"{CALIBRATED_DEFAULT_THRESHOLD} (policing.md 9); cite one with edge-agent deployment create --calibration")
    return (f"threshold {record.alert_threshold:g} rests on calibration sha256 {citation.report_sha256} "
            f"(calibrated threshold {citation.threshold:g} for budget {citation.budget_text} at watchlist <= {citation.watchlist_size:,}; "
            f"FPIR upper 95% bound {citation.fpir_upper95:.3g} from {citation.nonmated_searches:,} non-mated and "
            f"{citation.mated_searches:,} mated searches)")


def check_calibration(record: DeploymentRecord, model_identity: Mapping[str, str] | None) -> None:
    """Refuse a cited calibration that is not evidence for this deployment (``model_identity``: the
    models that will run, as ModelIdentity.as_dict(); None skips that comparison)."""
    citation = cited_calibration(record)
    if citation is None:
        return
    cited = f"calibration {citation.report_sha256[:12]}"
    if record.watchlist_cap > citation.watchlist_size:
        raise CalibrationMismatch(
            f"deployment {record.deployment_id} allows {record.watchlist_cap:,} watchlist subjects but {cited} holds only for {citation.watchlist_size:,}",
            "FPIR grows with watchlist size: lower watchlist_cap, or calibrate for the cap (edge-agent calibrate --watchlist-size)",
        )
    if record.false_alert_budget is not None and citation.budget > record.false_alert_budget:
        raise CalibrationMismatch(
            f"deployment {record.deployment_id} authorises {record.false_alert_budget:.3g} false alerts per face but {cited} "
            f"was calibrated for a looser {citation.budget:.3g} ({citation.budget_text})",
            "calibrate for the authorised budget (edge-agent calibrate --budget) and cite that report",
        )
    if model_identity is not None:
        running = {k: str(model_identity.get(k)) for k in citation.model}
        differing = sorted(k for k, v in citation.model.items() if running[k] != v)
        if differing:
            raise CalibrationMismatch(
                f"deployment {record.deployment_id} cites {cited}, made with other models ({', '.join(differing)} differ from the models the device runs)",
                "a threshold is only valid for the models it was calibrated on: re-run edge-agent calibrate with the device's models",
            )


def check_record(
    record: DeploymentRecord,
    device_id: str,
    now: datetime,
    threshold_approved: bool,
    model_identity: Mapping[str, str] | None = None,
) -> None:
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
    check_calibration(record, model_identity)
    if needs_threshold_approval(record) and not threshold_approved:
        basis = "of its cited calibration" if cited_calibration(record) is not None else "(provisional)"
        raise ThresholdApprovalMissing(
            f"deployment {record.deployment_id} lowers the alert threshold to {record.alert_threshold} "
            f"below the calibrated default {calibrated_default(record)} {basis} without a valid approval signature",
            "a pinned approver must sign it: edge-agent deployment approve FILE --approver-key KEY",
        )


def authorise(
    signed: SignedDeployment,
    authority_pub: Ed25519PublicKey,
    device_id: str,
    now: datetime,
    approver_pubs: Sequence[Ed25519PublicKey] = (),
    model_identity: Mapping[str, str] | None = None,
) -> DeploymentRecord:
    """Verify the authority signature, then every policy rule; return the record only if all pass.
    Every refusal is a DeploymentRefused, a bad signature or record included."""
    try:
        record = signed.verify(authority_pub)
    except SecurityError as exc:
        raise DeploymentRefused(exc.message, exc.hint) from None
    check_record(record, device_id, now, signed.threshold_approved(approver_pubs, authority_pub), model_identity)
    return record
