"""Tamper-evident audit log: hash-chained records with signed checkpoints (docs/formats/audit.md)."""

from edge_agent.audit.log import AuditError, AuditLog, AuditRecord, BiometricDataRefused
from edge_agent.audit.verify import VerifyResult, verify_audit_log

__all__ = ["AuditError", "AuditLog", "AuditRecord", "BiometricDataRefused", "VerifyResult", "verify_audit_log"]
