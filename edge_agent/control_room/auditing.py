"""What the control room writes to its audit log (docs/formats/control-room.md, "Audit records").

One home for the control room's record kinds. The log itself is edge_agent.audit.log.AuditLog;
every control-room action takes it as a required argument (an action that cannot be audited
does not happen).
"""

from __future__ import annotations

from typing import Any, Protocol

ALERT_ACCEPTED = "alert_accepted"
ALERT_REFUSED = "alert_refused"
ALERT_VIEWED = "alert_viewed"
ADJUDICATION_RECORDED = "adjudication_recorded"
LEGAL_HOLD_PLACED = "legal_hold_placed"
LEGAL_HOLD_RELEASED = "legal_hold_released"
RETENTION_RUN = "alerts_deleted_retention"  # the name the deployment report has always read
CROP_EXPORTED = "crop_exported"
DEPLOYMENT_IMPORTED = "deployment_imported"
REFERENCES_IMPORTED = "references_imported"
ACCOUNT_CHANGED = "account_changed"
LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
LOGGED_OUT = "logged_out"

KINDS = (
    ALERT_ACCEPTED, ALERT_REFUSED, ALERT_VIEWED, ADJUDICATION_RECORDED, LEGAL_HOLD_PLACED, LEGAL_HOLD_RELEASED, RETENTION_RUN,
    CROP_EXPORTED, DEPLOYMENT_IMPORTED, REFERENCES_IMPORTED, ACCOUNT_CHANGED, LOGIN_SUCCEEDED, LOGIN_FAILED, LOGGED_OUT,
)


class AuditSink(Protocol):
    """The part of AuditLog the control room uses (tests may pass a recorder)."""

    def append(self, kind: str, details: dict[str, Any], actor: str | None = None) -> Any: ...
