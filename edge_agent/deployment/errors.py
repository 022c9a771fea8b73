"""Why a deployment does not authorise matching: one exception module for the deployment package.

Every refusal is a SecurityError (the CLI prints error:/hint: and exits 2); callers that need to
tell the cases apart (audit reasons, tests) catch the specific class. Kept apart from the policy
and the record so that both, and anything reporting on them, can raise and catch these without
importing each other (cryptography's ``exceptions.py`` is the model).
"""

from __future__ import annotations

from edge_agent.errors import SecurityError


class DeploymentRefused(SecurityError):
    """A deployment record does not authorise matching here and now."""


class DeploymentExpired(DeploymentRefused):
    """Now is at or past the deployment's end: matching stops (policing.md 2)."""


class DeploymentNotStarted(DeploymentRefused):
    """Now is before the deployment's start."""


class DeviceNotInDeployment(DeploymentRefused):
    """The record does not name this device."""


class ThresholdApprovalMissing(DeploymentRefused):
    """The threshold is below the calibrated default and no pinned approver signed it (policing.md 9)."""


class CalibrationMismatch(DeploymentRefused):
    """The cited calibration is not evidence for this deployment (other models, smaller watchlist, looser budget)."""
